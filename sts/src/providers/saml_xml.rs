//! Namespace-aware reading of the XML whose signature libxmlsec1 verified (the "reduced" document samael
//! also parses), with roxmltree. samael (quick-xml) matches elements by local name only, so:
//! - [`check_namespaces`]: every element whose local name samael reads (SAML assertion and protocol
//!   elements, XML Signature and XML Encryption elements) must be in its own namespace; an element with a
//!   SAML local name in another namespace (`<NameID xmlns="urn:other">`) refuses the whole message;
//! - [`assertion_values`]: the values we take (NameID and its Format, attributes with their values,
//!   SessionIndex) are read by namespace from the one `saml:Assertion`; the caller compares them with what
//!   samael read, so any disagreement between the two parsers refuses the message too;
//! - [`encrypted_parts`]: an `EncryptedAssertion` in every layout XML Encryption and SAML allow: the
//!   `xenc:EncryptedKey` inside `EncryptedData`'s `ds:KeyInfo`, or beside `EncryptedData` (referenced by a
//!   `ds:RetrievalMethod` or not), any namespace prefixes; key transport `rsa-oaep-mgf1p` or XML Encryption
//!   1.1 `rsa-oaep` with its `DigestMethod` and `MGF`.
//!
//! The input is libxml2's serialisation of verified content, never the raw POST body; roxmltree refuses
//! DTDs (the raw body has passed the DOCTYPE/entity guards before libxml2 saw it).

use std::ops::Range;

use roxmltree::{Document, Node};

crate::text::refusal!(
    /// Why the verified XML was refused (the reason names the element or attribute).
    XmlRefused
);

pub const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub const XENC11: &str = "http://www.w3.org/2009/xmlenc11#";

/// The namespace an element with this local name must have (the names samael and we read).
fn expected_namespace(local: &str) -> Option<&'static str> {
    Some(match local {
        "Assertion"
        | "EncryptedAssertion"
        | "Issuer"
        | "Subject"
        | "NameID"
        | "EncryptedID"
        | "BaseID"
        | "SubjectConfirmation"
        | "SubjectConfirmationData"
        | "Conditions"
        | "Condition"
        | "AudienceRestriction"
        | "Audience"
        | "OneTimeUse"
        | "ProxyRestriction"
        | "Advice"
        | "AuthnStatement"
        | "AuthnContext"
        | "AuthnContextClassRef"
        | "AuthnContextDecl"
        | "AuthnContextDeclRef"
        | "AuthenticatingAuthority"
        | "SubjectLocality"
        | "AttributeStatement"
        | "Attribute"
        | "AttributeValue"
        | "EncryptedAttribute"
        | "Statement"
        | "AuthzDecisionStatement"
        | "AssertionIDRef"
        | "AssertionURIRef" => SAML,
        "Response"
        | "Status"
        | "StatusCode"
        | "StatusMessage"
        | "StatusDetail"
        | "Extensions"
        | "NameIDPolicy"
        | "RequestedAuthnContext" => SAMLP,
        "Signature"
        | "SignedInfo"
        | "SignatureValue"
        | "SignatureMethod"
        | "CanonicalizationMethod"
        | "Reference"
        | "Transforms"
        | "Transform"
        | "DigestMethod"
        | "DigestValue"
        | "KeyInfo"
        | "KeyName"
        | "KeyValue"
        | "X509Data"
        | "X509Certificate"
        | "X509IssuerSerial"
        | "X509SubjectName"
        | "RetrievalMethod" => DS,
        "EncryptedData"
        | "EncryptedKey"
        | "EncryptionMethod"
        | "CipherData"
        | "CipherValue"
        | "CipherReference"
        | "ReferenceList"
        | "DataReference"
        | "KeyReference"
        | "CarriedKeyName"
        | "OAEPparams"
        | "EncryptionProperties" => XENC,
        "MGF" => XENC11,
        _ => return None,
    })
}

pub fn parse(xml: &str) -> Result<Document<'_>, XmlRefused> {
    Document::parse(xml).map_err(|e| XmlRefused(format!("the verified XML does not parse: {e}")))
}

/// Attribute local names samael reads (quick-xml matches attributes by local name too, so `x:Recipient`
/// would be read as `Recipient`).
const READ_ATTRIBUTES: &[&str] = &[
    "ID",
    "Id",
    "Version",
    "IssueInstant",
    "Destination",
    "InResponseTo",
    "Consent",
    "Format",
    "NameQualifier",
    "SPNameQualifier",
    "SPProvidedID",
    "Method",
    "Address",
    "DNSName",
    "NotBefore",
    "NotOnOrAfter",
    "Recipient",
    "Name",
    "NameFormat",
    "FriendlyName",
    "Value",
    "SessionIndex",
    "AuthnInstant",
    "SessionNotOnOrAfter",
    "Algorithm",
    "URI",
    "Type",
    "Count",
];

/// Refuse an element with a SAML, XML Signature or XML Encryption local name outside its namespace, and
/// a namespace-qualified attribute with a local name samael reads (`x:NotOnOrAfter`); other qualified
/// attributes (`x500:Encoding`, `xsi:type`) are left alone.
pub fn check_namespaces(doc: &Document<'_>) -> Result<(), XmlRefused> {
    for n in doc.descendants().filter(Node::is_element) {
        let local = n.tag_name().name();
        if let Some(expected) = expected_namespace(local)
            && n.tag_name().namespace() != Some(expected)
        {
            return Err(XmlRefused(format!(
                "element `{local}` is in namespace `{}`, not `{expected}`",
                n.tag_name().namespace().unwrap_or("(none)")
            )));
        }
        for a in n.attributes() {
            if let Some(ns) = a.namespace()
                && READ_ATTRIBUTES.contains(&a.name())
            {
                return Err(XmlRefused(format!(
                    "attribute `{}` of `{local}` is in namespace `{ns}`",
                    a.name()
                )));
            }
        }
    }
    Ok(())
}

fn is(n: &Node<'_, '_>, ns: &str, local: &str) -> bool {
    n.is_element() && n.tag_name().name() == local && n.tag_name().namespace() == Some(ns)
}

fn children<'a, 'input>(
    n: Node<'a, 'input>,
    ns: &'static str,
    local: &'static str,
) -> impl Iterator<Item = Node<'a, 'input>> {
    n.children().filter(move |c| is(c, ns, local))
}

fn only_child<'a, 'input>(
    n: Node<'a, 'input>,
    ns: &'static str,
    local: &'static str,
) -> Result<Option<Node<'a, 'input>>, XmlRefused> {
    let mut it = children(n, ns, local);
    let first = it.next();
    if it.next().is_some() {
        return Err(XmlRefused(format!("more than one `{local}`")));
    }
    Ok(first)
}

/// The text of a simple-content element (its text children joined); None when it has none or only XML
/// whitespace; an error when it has element children.
fn simple_text(n: Node<'_, '_>) -> Result<Option<String>, XmlRefused> {
    if n.children().any(|c| c.is_element()) {
        return Err(XmlRefused(format!(
            "`{}` has element content",
            n.tag_name().name()
        )));
    }
    let text: String = n.children().filter_map(|c| c.text()).collect();
    // Whitespace-only text counts as none (as samael reads it); other text is kept exactly.
    let blank = text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    Ok((!blank).then_some(text))
}

/// What we take from a verified assertion.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AssertionValues {
    pub name_id: Option<String>,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
    /// (Name, FriendlyName, values) in document order; empty values left out.
    pub attributes: Vec<(Option<String>, Option<String>, Vec<String>)>,
}

/// The one `saml:Assertion` of the document: the root, or a child of a `samlp:Response` root.
fn the_assertion<'a, 'input>(doc: &'a Document<'input>) -> Result<Node<'a, 'input>, XmlRefused> {
    let root = doc.root_element();
    if is(&root, SAML, "Assertion") {
        return Ok(root);
    }
    if !is(&root, SAMLP, "Response") {
        return Err("the verified element is neither a samlp:Response nor a saml:Assertion".into());
    }
    only_child(root, SAML, "Assertion")?.ok_or_else(|| "no saml:Assertion in the Response".into())
}

/// NameID, attributes and SessionIndex of the one assertion, read by namespace.
pub fn assertion_values(doc: &Document<'_>) -> Result<AssertionValues, XmlRefused> {
    let a = the_assertion(doc)?;
    let mut v = AssertionValues::default();
    if let Some(subject) = only_child(a, SAML, "Subject")?
        && let Some(name_id) = only_child(subject, SAML, "NameID")?
    {
        v.name_id = simple_text(name_id)?;
        v.name_id_format = name_id.attribute("Format").map(str::to_string);
    }
    v.session_index = children(a, SAML, "AuthnStatement")
        .find_map(|s| s.attribute("SessionIndex"))
        .map(str::to_string);
    for st in children(a, SAML, "AttributeStatement") {
        for attr in children(st, SAML, "Attribute") {
            let mut values = vec![];
            for val in children(attr, SAML, "AttributeValue") {
                if let Some(t) = simple_text(val)? {
                    values.push(t);
                }
            }
            v.attributes.push((
                attr.attribute("Name").map(str::to_string),
                attr.attribute("FriendlyName").map(str::to_string),
                values,
            ));
        }
    }
    Ok(v)
}

/// One way the content key may be transported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTransport {
    pub algorithm: String,
    /// `ds:DigestMethod` of the EncryptionMethod (None: SHA-1, the default).
    pub digest: Option<String>,
    /// `xenc11:MGF` of the EncryptionMethod (None: MGF1 with SHA-1, the default).
    pub mgf: Option<String>,
    /// An `xenc:OAEPparams` (label) is present and not empty.
    pub has_oaep_params: bool,
    /// The base64 text of the key's CipherValue.
    pub cipher_value: String,
}

/// An EncryptedAssertion taken apart.
#[derive(Debug)]
pub struct EncryptedParts {
    pub data_algorithm: String,
    /// The base64 text of EncryptedData's CipherValue.
    pub cipher_value: String,
    /// Candidate EncryptedKeys, the referenced or embedded one first.
    pub keys: Vec<KeyTransport>,
    /// Byte range of the `EncryptedAssertion` element in the document text (to put the plaintext there).
    pub range: Range<usize>,
}

fn key_transport(k: Node<'_, '_>) -> Result<KeyTransport, XmlRefused> {
    let method = only_child(k, XENC, "EncryptionMethod")?
        .ok_or("an EncryptedKey has no EncryptionMethod")?;
    let algorithm = method
        .attribute("Algorithm")
        .ok_or("an EncryptedKey's EncryptionMethod has no Algorithm")?
        .to_string();
    let digest = only_child(method, DS, "DigestMethod")?
        .and_then(|d| d.attribute("Algorithm"))
        .map(str::to_string);
    let mgf = only_child(method, XENC11, "MGF")?
        .and_then(|d| d.attribute("Algorithm"))
        .map(str::to_string);
    let has_oaep_params = only_child(method, XENC, "OAEPparams")?
        .is_some_and(|p| p.text().is_some_and(|t| !t.trim().is_empty()));
    let cipher_value = cipher_value(k)?;
    Ok(KeyTransport {
        algorithm,
        digest,
        mgf,
        has_oaep_params,
        cipher_value,
    })
}

fn cipher_value(n: Node<'_, '_>) -> Result<String, XmlRefused> {
    let data = only_child(n, XENC, "CipherData")?
        .ok_or_else(|| XmlRefused(format!("`{}` has no CipherData", n.tag_name().name())))?;
    if only_child(data, XENC, "CipherReference")?.is_some() {
        return Err("CipherReference (ciphertext fetched from elsewhere) is not supported".into());
    }
    let value = only_child(data, XENC, "CipherValue")?
        .ok_or_else(|| XmlRefused(format!("`{}` has no CipherValue", n.tag_name().name())))?;
    Ok(simple_text(value)?.unwrap_or_default())
}

/// The parts of the one `saml:EncryptedAssertion` child of a `samlp:Response` root.
pub fn encrypted_parts(doc: &Document<'_>) -> Result<EncryptedParts, XmlRefused> {
    let root = doc.root_element();
    if !is(&root, SAMLP, "Response") {
        return Err("the signed element is not the samlp:Response".into());
    }
    let ea = only_child(root, SAML, "EncryptedAssertion")?
        .ok_or("the signed Response has no saml:EncryptedAssertion")?;
    let data = only_child(ea, XENC, "EncryptedData")?
        .ok_or("the EncryptedAssertion has no xenc:EncryptedData")?;
    let data_algorithm = only_child(data, XENC, "EncryptionMethod")?
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or("the EncryptedData names no EncryptionMethod Algorithm")?
        .to_string();
    let cipher = cipher_value(data)?;
    let mut keys = vec![];
    let mut referenced: Option<String> = None;
    if let Some(info) = only_child(data, DS, "KeyInfo")? {
        for k in children(info, XENC, "EncryptedKey") {
            keys.push(key_transport(k)?);
        }
        for r in children(info, DS, "RetrievalMethod") {
            let ty = r.attribute("Type").unwrap_or_default();
            if ty != "http://www.w3.org/2001/04/xmlenc#EncryptedKey" {
                continue;
            }
            let uri = r.attribute("URI").unwrap_or_default();
            let id = uri
                .strip_prefix('#')
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    format!("RetrievalMethod URI `{uri}` is not a same-document reference")
                })?;
            referenced = Some(id.to_string());
        }
    }
    // EncryptedKeys beside EncryptedData: the referenced one, else every one (tried in order).
    let beside: Vec<Node<'_, '_>> = children(ea, XENC, "EncryptedKey").collect();
    match &referenced {
        Some(id) => {
            let k = beside
                .iter()
                .find(|k| k.attribute("Id") == Some(id.as_str()))
                .ok_or_else(|| XmlRefused(format!("RetrievalMethod points to `#{id}`, which is not an EncryptedKey of this assertion")))?;
            keys.insert(0, key_transport(*k)?);
        }
        None => {
            for k in beside {
                keys.push(key_transport(k)?);
            }
        }
    }
    if keys.is_empty() {
        return Err(
            "no xenc:EncryptedKey (inside KeyInfo, by RetrievalMethod or beside EncryptedData)"
                .into(),
        );
    }
    Ok(EncryptedParts {
        data_algorithm,
        cipher_value: cipher,
        keys,
        range: ea.range(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="r">"#;

    #[test]
    fn saml_local_names_in_other_namespaces_are_refused() {
        let ok = format!(
            r#"{HEAD}<saml:Assertion ID="a"><saml:Subject><saml:NameID Format="f">alice</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>"#
        );
        let doc = parse(&ok).unwrap();
        check_namespaces(&doc).unwrap();
        assert_eq!(
            assertion_values(&doc).unwrap().name_id.as_deref(),
            Some("alice")
        );
        for bad in [
            r#"<saml:Subject><NameID xmlns="urn:other">admin</NameID></saml:Subject>"#,
            r#"<saml:Subject><x:NameID xmlns:x="urn:oasis:names:tc:SAML:2.0:protocol">admin</x:NameID></saml:Subject>"#,
            r#"<saml:Subject><NameID>admin</NameID></saml:Subject>"#,
            r#"<saml:AttributeStatement><o:Attribute xmlns:o="urn:o" Name="groups"/></saml:AttributeStatement>"#,
            r#"<saml:Conditions><Audience xmlns="urn:x">sp</Audience></saml:Conditions>"#,
            r#"<saml:AttributeStatement><saml:Attribute Name="g"><x:AttributeValue xmlns:x="urn:x">admin</x:AttributeValue></saml:Attribute></saml:AttributeStatement>"#,
        ] {
            let xml =
                format!(r#"{HEAD}<saml:Assertion ID="a">{bad}</saml:Assertion></samlp:Response>"#);
            assert!(check_namespaces(&parse(&xml).unwrap()).is_err(), "{bad}");
        }
        // Qualified attributes with names samael reads are refused; others pass.
        for (attrs, ok) in [
            (
                r#"x:NotOnOrAfter="2999-01-01T00:00:00Z" xmlns:x="urn:x""#,
                false,
            ),
            (r#"x:Recipient="https://evil" xmlns:x="urn:x""#, false),
            (
                r#"x500:Encoding="LDAP" xmlns:x500="urn:oasis:names:tc:SAML:2.0:profiles:attribute:X500""#,
                true,
            ),
        ] {
            let xml = format!(
                r#"{HEAD}<saml:Assertion ID="a"><saml:Subject><saml:SubjectConfirmation Method="b"><saml:SubjectConfirmationData {attrs}/></saml:SubjectConfirmation></saml:Subject></saml:Assertion></samlp:Response>"#
            );
            assert_eq!(
                check_namespaces(&parse(&xml).unwrap()).is_ok(),
                ok,
                "{attrs}"
            );
        }
        // A foreign element with another local name is ignored by both parsers.
        let xml = format!(
            r#"{HEAD}<saml:Assertion ID="a"><saml:Subject><saml:NameID>alice</saml:NameID><x:Note xmlns:x="urn:x">hi</x:Note></saml:Subject></saml:Assertion></samlp:Response>"#
        );
        check_namespaces(&parse(&xml).unwrap()).unwrap();
    }

    #[test]
    fn values_are_read_by_namespace() {
        let xml = format!(
            r#"{HEAD}<saml:Assertion ID="a"><saml:Subject><saml:NameID>al&amp;ice</saml:NameID></saml:Subject><saml:AuthnStatement SessionIndex="s1"/><saml:AttributeStatement><saml:Attribute Name="urn:oid:1" FriendlyName="groups"><saml:AttributeValue>a</saml:AttributeValue><saml:AttributeValue/><saml:AttributeValue>b</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>"#
        );
        let v = assertion_values(&parse(&xml).unwrap()).unwrap();
        assert_eq!(v.name_id.as_deref(), Some("al&ice"));
        assert_eq!(v.session_index.as_deref(), Some("s1"));
        assert_eq!(
            v.attributes,
            vec![(
                Some("urn:oid:1".into()),
                Some("groups".into()),
                vec!["a".into(), "b".into()]
            )]
        );
        let two = format!(
            r#"{HEAD}<saml:Assertion ID="a"><saml:Subject><saml:NameID>a</saml:NameID><saml:NameID>b</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>"#
        );
        assert!(assertion_values(&parse(&two).unwrap()).is_err());
    }

    const KEY: &str = r#"<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"><ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></xenc:EncryptionMethod><ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIB</ds:X509Certificate></ds:X509Data></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>S0VZ</xenc:CipherValue></xenc:CipherData>"#;

    fn enc(inner: &str) -> String {
        format!(
            r#"{HEAD}<saml:EncryptedAssertion>{inner}</saml:EncryptedAssertion></samlp:Response>"#
        )
        .replace(
            "<samlp:Response ",
            r#"<samlp:Response xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" "#,
        )
    }

    const DATA_HEAD: &str = r#"<xenc:EncryptedData Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>"#;
    const DATA_TAIL: &str = r#"<xenc:CipherData><xenc:CipherValue>REFUQQ==</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>"#;

    #[test]
    fn every_encrypted_key_layout_is_found() {
        // Inside KeyInfo, with its own KeyInfo/X509Data.
        let inside = enc(&format!(
            "{DATA_HEAD}<ds:KeyInfo><xenc:EncryptedKey>{KEY}</xenc:EncryptedKey></ds:KeyInfo>{DATA_TAIL}"
        ));
        // Beside, referenced by RetrievalMethod.
        let beside = enc(&format!(
            r##"{DATA_HEAD}<ds:KeyInfo><ds:RetrievalMethod Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey" URI="#k1"/></ds:KeyInfo>{DATA_TAIL}<xenc:EncryptedKey Id="k1">{KEY}</xenc:EncryptedKey>"##
        ));
        // Beside, without a reference.
        let plain = enc(&format!(
            "{DATA_HEAD}{DATA_TAIL}<xenc:EncryptedKey>{KEY}</xenc:EncryptedKey>"
        ));
        for xml in [&inside, &beside, &plain] {
            let doc = parse(xml).unwrap();
            check_namespaces(&doc).unwrap();
            let p = encrypted_parts(&doc).unwrap();
            assert_eq!(
                p.data_algorithm,
                "http://www.w3.org/2009/xmlenc11#aes256-gcm"
            );
            assert_eq!(p.cipher_value, "REFUQQ==");
            assert_eq!(p.keys[0].cipher_value, "S0VZ");
            assert_eq!(
                p.keys[0].digest.as_deref(),
                Some("http://www.w3.org/2000/09/xmldsig#sha1")
            );
            assert!(xml[p.range.clone()].starts_with("<saml:EncryptedAssertion>"));
            assert!(xml[p.range.clone()].ends_with("</saml:EncryptedAssertion>"));
        }
        // Other prefixes mean nothing.
        let other = inside
            .replace("xenc:", "e:")
            .replace("xmlns:xenc=", "xmlns:e=")
            .replace("ds:", "d:")
            .replace("xmlns:ds=", "xmlns:d=")
            .replace("saml:", "s2:")
            .replace("xmlns:saml=", "xmlns:s2=");
        assert!(encrypted_parts(&parse(&other).unwrap()).is_ok(), "{other}");
        // A dangling reference names the problem.
        let dangling = beside.replace(r#"Id="k1""#, r#"Id="k2""#);
        let e = encrypted_parts(&parse(&dangling).unwrap()).unwrap_err().0;
        assert!(e.contains("#k1"), "{e}");
        let none = enc(&format!("{DATA_HEAD}{DATA_TAIL}"));
        assert!(
            encrypted_parts(&parse(&none).unwrap())
                .unwrap_err()
                .0
                .contains("no xenc:EncryptedKey")
        );
    }
}

#[cfg(test)]
mod agreement_with_samael {
    /// The namespace-aware reading and samael read the same values for whitespace, CDATA, entity and
    /// character references (so a real IdP's values never trip the differential check).
    #[test]
    fn both_parsers_read_the_same_values() {
        let xml = r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="a" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>i</saml:Issuer><saml:Subject><saml:NameID>  al&#105;ce </saml:NameID></saml:Subject><saml:AttributeStatement><saml:Attribute Name="ws" FriendlyName="f"><saml:AttributeValue>  spaced  </saml:AttributeValue><saml:AttributeValue><![CDATA[cd<x>]]></saml:AttributeValue><saml:AttributeValue>a&amp;b&#10;c</saml:AttributeValue><saml:AttributeValue>   </saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"#;
        let a: samael::schema::Assertion = xml.parse().unwrap();
        let ours = super::assertion_values(&super::parse(xml).unwrap()).unwrap();
        assert_eq!(ours.name_id, a.subject.unwrap().name_id.map(|n| n.value));
        let theirs: Vec<Option<String>> = a.attribute_statements.unwrap()[0].attributes[0]
            .values
            .iter()
            .filter_map(|v| v.value.clone())
            .map(Some)
            .collect();
        let ours_values: Vec<Option<String>> =
            ours.attributes[0].2.iter().cloned().map(Some).collect();
        assert_eq!(ours_values, theirs);
        assert_eq!(ours.name_id.as_deref(), Some("  alice "));
    }
}
