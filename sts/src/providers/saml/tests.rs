use super::*;
use proptest::prelude::*;

/// A SAML provider against a made-up IdP whose metadata carries a real signing certificate.
fn provider() -> SamlProvider {
    let idp_creds = SpCredentials::ephemeral().unwrap();
    let cert = STANDARD.encode(&idp_creds.certificate_der);
    let xml = format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://idp.example.com/md\">\
         <md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\
         <md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data>\
         <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\
         <md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"https://idp.example.com/sso\"/>\
         </md:IDPSSODescriptor></md:EntityDescriptor>"
    );
    let mut table = toml::Table::new();
    table.insert("id".into(), "fuzz".into());
    table.insert("type".into(), "saml".into());
    table.insert("idp_metadata_xml".into(), xml.into());
    let settings = crate::providers::ProviderConfig::from_table(table)
        .unwrap()
        .validate(&Default::default())
        .unwrap();
    let saml = settings
        .kind
        .as_any()
        .downcast_ref::<SamlSettings>()
        .unwrap()
        .clone();
    SamlProvider::new(
        Arc::new(saml),
        Arc::new(SpCredentials::ephemeral().unwrap()),
        "https://sts.example.com/sso/sso-saml/metadata",
        "https://sts.example.com/sso/sso-saml/acs",
    )
    .unwrap()
}

fn provider_cached() -> &'static SamlProvider {
    static P: std::sync::OnceLock<SamlProvider> = std::sync::OnceLock::new();
    P.get_or_init(provider)
}

fn fragments() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "<?xml version=\"1.0\"?>",
        "<?xml version=\"1.1\"?>",
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\" Version=\"2.0\" IssueInstant=\"2026-11-22T00:00:00Z\">",
        "</samlp:Response>",
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\" Version=\"2.0\" IssueInstant=\"2026-11-22T00:00:00Z\">",
        "</saml:Assertion>",
        "<saml:Issuer>https://idp.example.com/md</saml:Issuer>",
        "<saml:NameID>alice</saml:NameID>",
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo/></ds:Signature>",
        "<!---->",
        "<!DOCTYPE x>",
        "&amp;",
        "&#x2028;",
        "\u{2028}",
        "<saml:EncryptedAssertion>",
        "]]>",
        "<![CDATA[",
        "alice",
        " ",
        ">",
        "<",
        "\"",
        "\0",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]
    /// Whatever arrives at the ACS, validation returns an error: never a panic, never an identity.
    #[test]
    fn acs_input_never_panics_or_passes(raw in ".{0,512}", xmlish in fragments()) {
        let p = provider_cached();
        prop_assert!(p.validate(&raw, Some("_req")).is_err());
        prop_assert!(p.validate(&STANDARD.encode(raw.as_bytes()), Some("_req")).is_err());
        prop_assert!(p.validate(&STANDARD.encode(xmlish.as_bytes()), Some("_req")).is_err());
    }
}

#[test]
fn authn_request_is_signed_over_the_exact_query() {
    let p = provider_cached();
    let (url, id) = p.authn_request_url("relay-123", false).unwrap();
    assert!(id.starts_with('_') && id.len() == 33, "{id}");
    let query = url.split_once('?').unwrap().1;
    let (signed, sig) = query.rsplit_once("&Signature=").unwrap();
    assert!(signed.starts_with("SAMLRequest=") && signed.contains("&RelayState=relay-123&SigAlg="));
    let sig: String = url::form_urlencoded::parse(format!("s={sig}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let sig = STANDARD.decode(sig).unwrap();
    let cert = x509_parser::parse_x509_certificate(&p.creds.certificate_der)
        .unwrap()
        .1;
    let spki = cert.public_key().subject_public_key.data.to_vec();
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        spki,
    );
    key.verify(signed.as_bytes(), &sig)
        .expect("signature verifies with the SP certificate");
}

#[test]
fn xml_guards() {
    assert!(xml_declaration_ok("<samlp:Response/>"));
    assert!(xml_declaration_ok(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>"
    ));
    assert!(!xml_declaration_ok("<?xml version=\"1.1\"?><a/>"));
    assert!(has_unsafe_xml("<!doctype x [<!entity a \"b\">]><a/>"));
    assert!(has_comment_or_pi("<a>ali<!---->ce</a>"));
    assert!(has_comment_or_pi("<a><?evil x?></a>"));
    assert!(!has_comment_or_pi("<?xml version=\"1.0\"?><a>alice</a>"));
    assert!(!xml_declaration_ok(
        "<?xml version=\"1.1\" version=\"1.0\"?><a/>"
    ));
    assert_eq!(without_declaration("<?xml version=\"1.0\"?><a/>"), "<a/>");
    let sig = |uri: &str, t: &str| {
        format!(
            "<ds:Signature><ds:SignedInfo><ds:Reference URI=\"{uri}\"><ds:Transforms><ds:Transform Algorithm=\"{t}\"/></ds:Transforms></ds:Reference></ds:SignedInfo></ds:Signature>"
        )
    };
    let env = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
    assert_eq!(unsafe_signature_structure(&sig("#_a1", env)), None);
    assert!(unsafe_signature_structure(&sig("file:///dev/zero", env)).is_some());
    assert!(unsafe_signature_structure(&sig("http://169.254.169.254/", env)).is_some());
    assert!(
        unsafe_signature_structure(&sig("#_a1", "http://www.w3.org/TR/1999/REC-xslt-19991116"))
            .is_some()
    );
    assert!(unsafe_signature_structure("<ds:Manifest/>").is_some());
    // XPointer expressions are not plain references.
    assert!(unsafe_signature_structure(&sig("#xpointer(//*[@ID='a'])", env)).is_some());
    assert!(unsafe_signature_structure(&sig("#a b", env)).is_some());
    // Tags the guards could misread.
    let long = "p".repeat(140);
    for bad in [
        format!(r#"<{long}:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"/>"#),
        r#"<ds:Reference Id="a>" URI="http://169.254.169.254/"/>"#.to_string(),
        r##"<ds:Reference Id='a<' URI="#a"/>"##.to_string(),
        format!(r#"<a b="{}"/>"#, "x".repeat(5000)),
        "<a <b>".to_string(),
        "<a href=\"x\"".to_string(),
    ] {
        assert!(misleading_tag(&bad).is_some(), "{bad}");
    }
    assert_eq!(
        misleading_tag(r#"<saml:Assertion ID="a" x='y'><b/></saml:Assertion>"#),
        None
    );
    // RetrievalMethod: only XML Encryption's same-document EncryptedKey reference, without transforms.
    let ek = "http://www.w3.org/2001/04/xmlenc#EncryptedKey";
    assert_eq!(
        unsafe_signature_structure(&format!(r##"<ds:RetrievalMethod Type="{ek}" URI="#k1"/>"##)),
        None
    );
    for bad in [
        format!(r#"<ds:RetrievalMethod Type="{ek}" URI="http://169.254.169.254/k"/>"#),
        format!(r##"<ds:RetrievalMethod Type="{ek}" URI="#"/>"##),
        r##"<ds:RetrievalMethod Type="http://www.w3.org/2000/09/xmldsig#X509Data" URI="#k1"/>"##
            .to_string(),
        format!(
            r##"<ds:RetrievalMethod Type="{ek}" URI="#k1"><ds:Transforms/></ds:RetrievalMethod>"##
        ),
        r##"<ds:RetrievalMethod URI="#k1"/>"##.to_string(),
    ] {
        assert!(unsafe_signature_structure(&bad).is_some(), "{bad}");
    }
    // Linear: a long run of `<` is scanned quickly.
    let started = std::time::Instant::now();
    let _ = count_start_tags(&"<".repeat(262_144), "Assertion");
    let _ = unsafe_signature_structure(&"<a ".repeat(87_381));
    let _ = unsafe_signature_structure(&format!("<a{}", " ".repeat(262_144)));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        count_start_tags(
            "<saml:Assertion ID=\"a\"><x/></saml:Assertion><Assertion>",
            "Assertion"
        ),
        2
    );
    assert_eq!(
        count_start_tags("<saml2:EncryptedAssertion>", "Assertion"),
        0
    );
    assert_eq!(
        count_start_tags("<samlp:Response><saml:AssertionX/>", "Assertion"),
        0
    );
}
