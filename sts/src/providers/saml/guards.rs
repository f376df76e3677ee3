//! Parser-differential guards that run on the raw text before samael and libxmlsec1 (and again on a
//! decrypted assertion): no DTD, comments or processing instructions, XML 1.0 only, no tag the textual
//! scanning could misread, signature structures limited to same-document references, and the start tags
//! counted. The scanning is linear with bounded look-ahead.

pub(super) fn has_unsafe_xml(xml: &str) -> bool {
    let upper = xml.to_ascii_uppercase();
    upper.contains("<!DOCTYPE") || upper.contains("<!ENTITY")
}

/// Comments are outside exclusive c14n, so `ali<!---->ce` keeps a valid signature while parsers disagree
/// on the text (CVE-2017-11427 class); processing instructions have no place in a SAML message either.
/// Real IdPs send neither, so both are refused (the leading XML declaration excepted).
pub(super) fn has_comment_or_pi(xml: &str) -> bool {
    let body = xml.trim_start_matches('\u{feff}');
    let body = if body.starts_with("<?xml") {
        body.split_once("?>").map(|(_, rest)| rest).unwrap_or("")
    } else {
        body
    };
    body.contains("<!--") || body.contains("<?")
}

/// The XML declaration, when present, must say version 1.0 (samael verifies with libxml2 but reads the
/// signed copy with quick-xml, which honours the declaration: XML 1.1 would change signed values).
pub(super) fn xml_declaration_ok(xml: &str) -> bool {
    let t = xml.trim_start_matches('\u{feff}');
    if !t.starts_with("<?xml") {
        return true;
    }
    let Some(end) = t.find("?>") else {
        return false;
    };
    let decl = &t[..end];
    // Exactly one version attribute, and it says 1.0 (`version="1.1" version="1.0"` is refused).
    decl.matches("version").count() == 1
        && (decl.contains("version=\"1.0\"") || decl.contains("version='1.0'"))
}

/// The document without its XML declaration (checked by [`xml_declaration_ok`] first): both parsers
/// then read it as XML 1.0, whatever a recovering parser would have made of the declaration.
pub(super) fn without_declaration(xml: &str) -> &str {
    let t = xml.trim_start_matches('\u{feff}');
    match t.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map(|(_, body)| body).unwrap_or(""),
        None => t,
    }
}

/// Signature structures a SAML IdP never needs and that make xmlsec fetch or compute on the attacker's
/// behalf before the signature value is checked: a Reference to anything but this document (`""` or
/// `#id`: `file:`, `http:`... would be opened), transforms other than enveloped-signature and
/// canonicalisation (XPath, XSLT...), Manifest, and a RetrievalMethod other than XML Encryption's
/// same-document reference to an EncryptedKey (`Type="...#EncryptedKey" URI="#id"`, the layout some IdPs
/// use for encrypted assertions; nothing is fetched for it).
pub(super) fn unsafe_signature_structure(xml: &str) -> Option<String> {
    const TRANSFORMS: &[&str] = &[
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
    ];
    for local in ["Manifest", "XPath", "XSLT"] {
        if count_start_tags(xml, local) > 0 {
            return Some(format!("{local} in a signature"));
        }
    }
    for (name, head) in start_tags(xml) {
        let ok = match local_name(name) {
            "Reference" => attr_value(head, "URI")
                .as_deref()
                .is_none_or(|u| u.is_empty() || plain_fragment(u)),
            "Transform" => attr_value(head, "Algorithm")
                .as_deref()
                .is_some_and(|a| TRANSFORMS.contains(&a)),
            "RetrievalMethod" => {
                attr_value(head, "Type").as_deref()
                    == Some("http://www.w3.org/2001/04/xmlenc#EncryptedKey")
                    && attr_value(head, "URI")
                        .as_deref()
                        .is_some_and(plain_fragment)
                    && head.trim_end().ends_with('/')
            }
            _ => true,
        };
        if !ok {
            return Some(format!(
                "`{}` in a signature is not allowed",
                head.chars().take(200).collect::<String>()
            ));
        }
    }
    None
}

/// `#` and a bare ID (letters, digits, `_`, `-`, `.`): a same-document reference, never an XPointer
/// expression (`#xpointer(...)`) that xmlsec would evaluate.
pub(super) fn plain_fragment(uri: &str) -> bool {
    uri.strip_prefix('#').is_some_and(|id| {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    })
}

/// Tags the textual guards could misread are refused before anything parses the message: a tag name
/// longer than 128 bytes (the guards look at the first 128), a start tag longer than 4 KiB, a `<` inside a
/// tag, a `>` or `<` inside an attribute value (the guards end a tag at the first `>`). Linear: each scan
/// stops at the next `<`.
pub(super) fn misleading_tag(xml: &str) -> Option<String> {
    for (i, _) in xml.match_indices('<') {
        let rest = &xml[i + 1..];
        let name_len = rest
            .char_indices()
            .take(129)
            .find(|(_, c)| c.is_whitespace() || matches!(c, '>' | '/' | '<'))
            .map(|(j, _)| j);
        match name_len {
            Some(n) if n <= 128 => {}
            None if rest.len() <= 128 => {}
            _ => return Some("a tag name longer than 128 bytes".into()),
        }
        if rest.starts_with(['/', '?', '!']) {
            continue;
        }
        let mut quote: Option<char> = None;
        let mut closed = false;
        for (j, c) in rest.char_indices() {
            if j > 4096 {
                return Some("a start tag longer than 4 KiB".into());
            }
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (Some(_), '>' | '<') => {
                    return Some("`>` or `<` inside an attribute value".into());
                }
                (None, '>') => {
                    closed = true;
                    break;
                }
                (None, '<') => return Some("`<` inside a tag".into()),
                _ => {}
            }
        }
        if !closed {
            return Some("an unterminated tag".into());
        }
    }
    None
}

/// The value of `name="..."` (or single quotes) in a start tag's text.
pub(super) fn attr_value(head: &str, name: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let needle = format!(" {name}={quote}");
        if let Some(at) = head.find(&needle).or_else(|| {
            head.find(&format!("\n{name}={quote}"))
                .or_else(|| head.find(&format!("\t{name}={quote}")))
        }) {
            let v = &head[at + needle.len()..];
            return v.find(quote).map(|end| v[..end].to_string());
        }
    }
    None
}

/// The Value of the first StatusCode element, if any (for an error message only).
pub(super) fn first_status_code(xml: &str) -> Option<String> {
    let at = xml.find("StatusCode ")?;
    let rest = &xml[at..];
    let v = rest.find("Value=\"")? + 7;
    let end = rest[v..].find('"')?;
    let value: String = rest[v..v + end]
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(200)
        .collect();
    Some(value)
}

/// Start tags as (qualified name, text up to the closing `>`), with bounded look-ahead so the scan stays
/// linear on hostile input (names are at most 128 bytes, tag heads at most 4 KiB).
pub(super) fn start_tags(xml: &str) -> impl Iterator<Item = (&str, &str)> {
    xml.match_indices('<').filter_map(move |(i, _)| {
        let rest = &xml[i + 1..];
        // O(1) bounds (byte length, moved back to a char boundary); each scan below also stops at the
        // next `<`, so the total work stays linear in the input.
        let bounded = |n: usize| {
            let mut end = rest.len().min(n);
            while !rest.is_char_boundary(end) {
                end -= 1;
            }
            &rest[..end]
        };
        let window = bounded(128);
        let name_end = window
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/' || c == '<')
            .unwrap_or(window.len());
        let name = &rest[..name_end];
        if name.is_empty()
            || name.starts_with('/')
            || name.starts_with('?')
            || name.starts_with('!')
        {
            return None;
        }
        let head_window = bounded(4096);
        let head = &head_window[..head_window.find(['>', '<']).unwrap_or(head_window.len())];
        Some((name, head))
    })
}

pub(super) fn local_name(qualified: &str) -> &str {
    qualified.rsplit(':').next().unwrap_or(qualified)
}

/// Start tags whose local name is exactly `local` (any prefix).
pub(super) fn count_start_tags(xml: &str, local: &str) -> usize {
    start_tags(xml)
        .filter(|(name, _)| local_name(name) == local)
        .count()
}
