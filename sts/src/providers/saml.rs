//! SAML 2.0 service provider (Web Browser SSO profile, SAML 2.0 Profiles section 4.1), built on samael.
//!
//! Outbound: an AuthnRequest over HTTP-Redirect with a fresh 128-bit ID; RelayState is our opaque
//! login-flow state; signed with RSA-SHA256 by the SP key (through aws-lc-rs) unless turned off.
//!
//! Inbound (HTTP-POST to the ACS), checks in this order, each with its own reason code (the login flow
//! named by RelayState has already been consumed by the caller; see `sso::flow::consume_saml`):
//! 1. size (<= 256 KiB decoded), base64 (line breaks allowed), UTF-8 (`saml_malformed`);
//! 2. parser-differential guards before samael: no `<!DOCTYPE`/`<!ENTITY` (XXE, billion laughs), no
//!    comments or processing instructions (comment injection), an XML declaration, when present, says
//!    version 1.0, no tag the textual guards could misread (a name over 128 bytes, a tag over 4 KiB, `<`
//!    or `>` inside an attribute value) (`saml_unsafe_xml`); signature structures limited to same-document
//!    references by a bare ID (no XPointer), enveloped-signature and canonicalisation transforms, no
//!    Manifest, and RetrievalMethod only to an EncryptedKey by a bare ID; a Response with no assertion and a non-Success status is reported
//!    as the IdP's refusal (`saml_idp_status`); exactly one Assertion or EncryptedAssertion start tag
//!    (`saml_assertion_count`: signature-wrapping variants carry two);
//! 3. samael + libxmlsec1: the signature (on the Response or on the Assertion) verifies against the
//!    IdP metadata certificates only, never KeyInfo from the message; only the signed element is kept
//!    (`reduce_to_signed`; the error says whether there was no signature or none verified); signature
//!    algorithms RSA/ECDSA with SHA-256 or stronger (`allow_sha1` lifts the algorithm allow-list entirely,
//!    as samael has no SHA-1 entry) (`saml_invalid`);
//! 4. namespaces (`saml_xml`, roxmltree on the verified XML): every element with a SAML, XML Signature or
//!    XML Encryption local name must be in its namespace (samael matches local names only)
//!    (`saml_namespace`);
//! 5. samael's checks on the verified content: Destination, InResponseTo (the request ID stored in this
//!    login flow; for unsolicited responses, allowed per provider, there must be none), Issuer, Status,
//!    IssueInstant, Conditions NotBefore/NotOnOrAfter and the bearer SubjectConfirmationData (Recipient =
//!    our ACS, InResponseTo, time window) with the configured skew (`saml_invalid`, detail from samael);
//!    an EncryptedAssertion is accepted only inside a Response whose signature verifies; its parts are
//!    found by namespace in every layout XML Encryption allows (EncryptedKey inside EncryptedData's
//!    KeyInfo, beside it with or without a same-document RetrievalMethod, any prefixes); the content key is
//!    unwrapped with the SP key through aws-lc-rs (rsa-oaep-mgf1p, or xmlenc11 rsa-oaep with matching
//!    digest and MGF1), the content decrypted (AES-128/256, CBC or GCM, the key size matching the
//!    algorithm); the plaintext gets the guards of step 2 (`saml_decrypt` for every failure from the key
//!    unwrap to these guards, the detail only in the log, never on the page: no padding oracle), takes the
//!    EncryptedAssertion's place, and steps 4 and 5 run on the result;
//! 6. our own addition: Conditions with AudienceRestriction elements that all name our entity ID are
//!    required (samael skips the audience check when there is none) (`saml_audience`);
//! 7. values come only from the verified assertion, read by namespace (NameID, its Format, attributes,
//!    SessionIndex) and refused unless samael read the same (a parser differential) (`saml_namespace`);
//!    NameID and attribute values are opaque strings, and control or line-separator characters are refused
//!    (`invalid_claim_value`);
//! 8. the assertion ID is single-use: a replay cache keeps it until NotOnOrAfter plus the clock skew
//!    (`saml_replay`).
//!
//! Requirements at configuration time: IdP metadata with an entity ID, an HTTP-Redirect SSO endpoint,
//! and at least one signing certificate (samael would skip signature checks without one).

use std::sync::Arc;

use aws_lc_rs::rsa::KeyPair;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer};
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::service_provider::ServiceProvider;
use samael::traits::ToXml;
use serde_json::{Map, Value};

use super::ProviderError;
use super::saml_xml;
use super::settings::ProviderSettings;
use crate::keys::{KeyMaterial, KeyService};

/// Decoded SAMLResponse size limit.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// The SP's own key pair and self-signed certificate (apart from the token-signing keys).
pub struct SpCredentials {
    pub certificate_der: Vec<u8>,
    key: KeyPair,
    decrypting: aws_lc_rs::rsa::OaepPrivateDecryptingKey,
}

impl std::fmt::Debug for SpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpCredentials").finish_non_exhaustive()
    }
}

const SP_KEY_AAD: &str = "sts saml sp key v1:default";

impl SpCredentials {
    /// Fresh credentials held in memory only (tests and fuzzing; the server loads them from the store).
    pub fn ephemeral() -> anyhow::Result<Self> {
        let material = KeyMaterial::generate(2048)?;
        let cert = self_signed_certificate(&material.pkcs8)?;
        Self::from_parts(cert, &material.pkcs8)
    }

    /// Replace the SP key and certificate with those of a PKCS#12 keystore (the same checks as token-key
    /// import; a certificate is required, it goes into the SP metadata). Nothing changes on error.
    /// A running server uses the new key after its next restart.
    pub async fn import_pkcs12(
        keys: &KeyService,
        pool: impl sqlx::SqliteExecutor<'_>,
        data: &[u8],
        password: &str,
    ) -> anyhow::Result<String> {
        let material = crate::keys::import::from_pkcs12(data, password)?;
        let leaf = material.public.x5c.first().ok_or_else(|| {
            anyhow::anyhow!("the keystore has no certificate; the SAML SP metadata needs one")
        })?;
        Self::from_parts(STANDARD.decode(leaf)?, &material.pkcs8)?;
        let sealed = keys.seal(&material.pkcs8, SP_KEY_AAD)?;
        crate::store::saml::store_sp_credentials(
            pool,
            leaf,
            &sealed,
            keys.master_key_id(),
            keys.now(),
            true,
        )
        .await?;
        Ok(material.kid())
    }

    /// Load the SP credentials, generating them (RSA 2048 + a 10-year self-signed certificate) the first time.
    pub async fn load_or_create(
        keys: &KeyService,
        pool: &crate::store::Pool,
    ) -> anyhow::Result<Self> {
        if crate::store::saml::sp_credentials(pool).await?.is_none() {
            let material = tokio::task::spawn_blocking(|| KeyMaterial::generate(2048)).await??;
            let cert = self_signed_certificate(&material.pkcs8)?;
            let sealed = keys.seal(&material.pkcs8, SP_KEY_AAD)?;
            crate::store::saml::store_sp_credentials(
                pool,
                &STANDARD.encode(&cert),
                &sealed,
                keys.master_key_id(),
                keys.now(),
                false,
            )
            .await?;
            tracing::info!("generated the SAML SP key pair and certificate");
        }
        let (cert, sealed, master_id) = crate::store::saml::sp_credentials(pool)
            .await?
            .expect("just ensured");
        if master_id != keys.master_key_id() {
            anyhow::bail!(
                "the SAML SP key is sealed by master key id {master_id}, not by the configured master key"
            );
        }
        let pkcs8 = keys.open_sealed(&sealed, SP_KEY_AAD)?;
        Self::from_parts(STANDARD.decode(cert)?, &pkcs8)
    }

    fn from_parts(certificate_der: Vec<u8>, pkcs8: &[u8]) -> anyhow::Result<Self> {
        let key =
            KeyPair::from_pkcs8(pkcs8).map_err(|e| anyhow::anyhow!("SAML SP key unusable: {e}"))?;
        let dec = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|e| anyhow::anyhow!("SAML SP key unusable: {e}"))?;
        let decrypting = aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(dec)
            .map_err(|_| anyhow::anyhow!("SAML SP key unusable for OAEP"))?;
        Ok(Self {
            certificate_der,
            key,
            decrypting,
        })
    }

    /// RSA-OAEP key transport through aws-lc-rs (see [`oaep_algorithm`]).
    fn unwrap_key(
        &self,
        alg: &'static aws_lc_rs::rsa::OaepAlgorithm,
        wrapped: &[u8],
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let mut out = zeroize::Zeroizing::new(vec![0u8; self.decrypting.min_output_size()]);
        let n = self
            .decrypting
            .decrypt(alg, wrapped, &mut out, None)
            .ok()?
            .len();
        out.truncate(n);
        Some(out)
    }

    fn sign_rsa_sha256(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                msg,
                &mut sig,
            )
            .expect("RSA signing with a validated key");
        sig
    }
}

fn self_signed_certificate(pkcs8: &[u8]) -> anyhow::Result<Vec<u8>> {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "STS SAML service provider");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params.self_signed(&key)?.der().to_vec())
}

mod xmlsec_log {
    //! libxmlsec1 reports errors through a global callback that prints to stderr by default; route them
    //! to our log at debug level instead (every crypto failure already surfaces as a reason code).
    use std::ffi::{CStr, c_char, c_int};

    type Callback = unsafe extern "C" fn(
        *const c_char,
        c_int,
        *const c_char,
        *const c_char,
        *const c_char,
        c_int,
        *const c_char,
    );

    #[link(name = "xmlsec1")]
    unsafe extern "C" {
        fn xmlSecErrorsSetCallback(callback: Option<Callback>);
        fn xmlSecIOCleanupCallbacks();
    }

    unsafe extern "C" fn to_tracing(
        _file: *const c_char,
        _line: c_int,
        func: *const c_char,
        object: *const c_char,
        subject: *const c_char,
        reason: c_int,
        msg: *const c_char,
    ) {
        // SAFETY: xmlsec passes NUL-terminated strings or null pointers, valid for this call.
        let text = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        tracing::debug!(target: "xmlsec", func = %text(func), object = %text(object), subject = %text(subject), reason, message = %text(msg), "xmlsec");
    }

    /// Install the callback. samael initialises libxmlsec1 lazily (on the first key it loads), and that
    /// initialisation (xmlsec-openssl's) resets the callback to one that prints to stderr: force it first
    /// with a verification of a document without a signature, which loads `cert` and stops quietly at
    /// "no Signature element" (no xmlsec error is raised, so nothing is printed), then install ours.
    pub fn install(cert: &samael::crypto::CertificateDer) {
        use samael::crypto::{Crypto, CryptoProvider};
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = Crypto::verify_signed_xml("<a/>", cert, None);
            // SAFETY: as above.
            unsafe { xmlSecErrorsSetCallback(Some(to_tracing)) };
            // Defense in depth: xmlsec may open no URI at all (file:, http:...); same-document
            // references do not use these callbacks. (Hostile references are also refused before.)
            // SAFETY: removes xmlsec's registered input callbacks; called once, after initialisation.
            unsafe { xmlSecIOCleanupCallbacks() };
        });
    }
}

/// XML Encryption content decryption: AES-CBC (ISO 10126 padding, IV first) or AES-GCM (IV first, tag last).
fn decrypt_content(alg: &str, key: &[u8], mut data: Vec<u8>) -> Option<Vec<u8>> {
    use aws_lc_rs::cipher::{
        AES_128, AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey,
    };
    // The key must have the size the algorithm names (a 32-byte key under an aes128 URI is refused).
    let cipher = match (alg, key.len()) {
        (
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
            | "http://www.w3.org/2009/xmlenc11#aes128-gcm",
            16,
        ) => &AES_128,
        (
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
            | "http://www.w3.org/2009/xmlenc11#aes256-gcm",
            32,
        ) => &AES_256,
        _ => return None,
    };
    match alg {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
        | "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => {
            if data.len() < 32 || !data.len().is_multiple_of(16) {
                return None;
            }
            let iv: [u8; 16] = data[..16].try_into().ok()?;
            let dk =
                PaddedBlockDecryptingKey::cbc_iso10126(UnboundCipherKey::new(cipher, key).ok()?)
                    .ok()?;
            Some(
                dk.decrypt(&mut data[16..], DecryptionContext::Iv128(iv.into()))
                    .ok()?
                    .to_vec(),
            )
        }
        "http://www.w3.org/2009/xmlenc11#aes128-gcm"
        | "http://www.w3.org/2009/xmlenc11#aes256-gcm" => {
            use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
            let alg = if key.len() == 16 {
                &AES_128_GCM
            } else {
                &AES_256_GCM
            };
            if data.len() < 12 + 16 {
                return None;
            }
            let nonce = Nonce::try_assume_unique_for_key(&data[..12]).ok()?;
            let k = LessSafeKey::new(UnboundKey::new(alg, key).ok()?);
            let mut body = data[12..].to_vec();
            let n = k.open_in_place(nonce, Aad::empty(), &mut body).ok()?.len();
            body.truncate(n);
            Some(body)
        }
        _ => None,
    }
}

/// The aws-lc-rs OAEP parameters for an XML Encryption key transport: `rsa-oaep-mgf1p` (MGF1 with SHA-1,
/// digest SHA-1 by default) and XML Encryption 1.1 `rsa-oaep` (digest and MGF named, SHA-1 by default),
/// where the digest and the MGF1 hash are the same; no OAEPparams (label). Anything else: None.
fn oaep_algorithm(k: &saml_xml::KeyTransport) -> Option<&'static aws_lc_rs::rsa::OaepAlgorithm> {
    use aws_lc_rs::rsa::{
        OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    };
    if k.has_oaep_params {
        return None;
    }
    let digest = match k.digest.as_deref() {
        None | Some("http://www.w3.org/2000/09/xmldsig#sha1") => 1,
        Some("http://www.w3.org/2001/04/xmlenc#sha256") => 256,
        Some("http://www.w3.org/2001/04/xmldsig-more#sha384") => 384,
        Some("http://www.w3.org/2001/04/xmlenc#sha512") => 512,
        Some(_) => return None,
    };
    let mgf = match (k.algorithm.as_str(), k.mgf.as_deref()) {
        ("http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p", None) => 1,
        (
            "http://www.w3.org/2009/xmlenc11#rsa-oaep",
            None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1"),
        ) => 1,
        (
            "http://www.w3.org/2009/xmlenc11#rsa-oaep",
            Some("http://www.w3.org/2009/xmlenc11#mgf1sha256"),
        ) => 256,
        (
            "http://www.w3.org/2009/xmlenc11#rsa-oaep",
            Some("http://www.w3.org/2009/xmlenc11#mgf1sha384"),
        ) => 384,
        (
            "http://www.w3.org/2009/xmlenc11#rsa-oaep",
            Some("http://www.w3.org/2009/xmlenc11#mgf1sha512"),
        ) => 512,
        _ => return None,
    };
    match (digest, mgf) {
        (1, 1) => Some(&OAEP_SHA1_MGF1SHA1),
        (256, 256) => Some(&OAEP_SHA256_MGF1SHA256),
        (384, 384) => Some(&OAEP_SHA384_MGF1SHA384),
        (512, 512) => Some(&OAEP_SHA512_MGF1SHA512),
        _ => None,
    }
}

/// The signed content of `xml`, as libxmlsec1 verified it against the IdP metadata certificates (samael's
/// reduction, the same one its own parse makes). The error says whether a signature is missing or does
/// not verify.
fn reduce_to_signed(sp: &ServiceProvider, xml: &str) -> Result<String, ProviderError> {
    use samael::crypto::{Crypto, CryptoProvider, ReduceMode};
    let certs = sp.idp_signing_certs().ok().flatten().unwrap_or_default();
    Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        ReduceMode::default(),
        sp.allowed_signature_algorithms.as_deref(),
    )
    .map_err(|_| {
        ProviderError::Saml(
            "saml_invalid",
            if count_start_tags(xml, "Signature") == 0 {
                "the response carries no signature".into()
            } else if let Err(e) = roxmltree::Document::parse(xml) {
                // Only for the message: nothing is read from this parse.
                format!("the response is not well-formed XML ({e}), so its signature cannot be checked")
            } else {
                "no signature verifies against the IdP metadata certificates with an allowed algorithm"
                    .into()
            },
        )
    })
}

/// [`saml_xml::check_namespaces`] on verified XML, as a provider error.
fn check_namespaces(verified: &str) -> Result<(), ProviderError> {
    let doc = saml_xml::parse(verified).map_err(|e| ProviderError::Saml("saml_invalid", e))?;
    saml_xml::check_namespaces(&doc).map_err(|e| ProviderError::Saml("saml_namespace", e))
}

/// The values of the verified assertion read by namespace, refused unless samael read the same NameID and
/// attributes (two parsers that disagree about signed content mean an attack or a broken IdP).
fn namespace_aware_values(
    verified: &str,
    assertion: &samael::schema::Assertion,
) -> Result<saml_xml::AssertionValues, ProviderError> {
    let bad = |m: String| ProviderError::Saml("saml_namespace", m);
    let doc = saml_xml::parse(verified).map_err(bad)?;
    let ours = saml_xml::assertion_values(&doc).map_err(bad)?;
    let theirs_name_id = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.clone())
        .filter(|v| !v.is_empty());
    let theirs_attrs: Vec<(Option<String>, Option<String>, Vec<String>)> = assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
        .map(|a| {
            (
                a.name.clone(),
                a.friendly_name.clone(),
                a.values
                    .iter()
                    .filter_map(|v| v.value.clone())
                    .filter(|v| !v.is_empty())
                    .collect(),
            )
        })
        .collect();
    if ours.name_id != theirs_name_id || ours.attributes != theirs_attrs {
        return Err(bad(
            "the namespace-aware reading of the signed assertion differs from the SAML library's"
                .into(),
        ));
    }
    Ok(ours)
}

/// Parse IdP metadata and check what a usable SAML IdP must have.
pub fn parse_idp_metadata(xml: &str) -> Result<EntityDescriptor, String> {
    if has_unsafe_xml(xml) {
        return Err("the metadata contains a DOCTYPE or entity declarations".into());
    }
    let ed: EntityDescriptor = xml.parse().map_err(|e| format!("not SAML metadata: {e}"))?;
    if ed.entity_id.as_deref().is_none_or(str::is_empty) {
        return Err("the metadata has no entityID".into());
    }
    let sp = ServiceProvider {
        idp_metadata: ed.clone(),
        ..Default::default()
    };
    match sp.idp_signing_certs() {
        Ok(Some(certs)) if !certs.is_empty() => {}
        _ => {
            return Err(
                "the metadata has no IdP signing certificate; signatures could not be checked"
                    .into(),
            );
        }
    }
    match sp.sso_binding_location(HTTP_REDIRECT_BINDING) {
        None => {
            return Err(
                "the metadata has no SingleSignOnService with the HTTP-Redirect binding".into(),
            );
        }
        Some(url) => {
            super::settings::endpoint_url(&url).map_err(|e| format!("SingleSignOnService: {e}"))?;
        }
    }
    Ok(ed)
}

fn has_unsafe_xml(xml: &str) -> bool {
    let upper = xml.to_ascii_uppercase();
    upper.contains("<!DOCTYPE") || upper.contains("<!ENTITY")
}

/// Comments are outside exclusive c14n, so `ali<!---->ce` keeps a valid signature while parsers disagree
/// on the text (CVE-2017-11427 class); processing instructions have no place in a SAML message either.
/// Real IdPs send neither, so both are refused (the leading XML declaration excepted).
fn has_comment_or_pi(xml: &str) -> bool {
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
fn xml_declaration_ok(xml: &str) -> bool {
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
fn without_declaration(xml: &str) -> &str {
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
fn unsafe_signature_structure(xml: &str) -> Option<String> {
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
fn plain_fragment(uri: &str) -> bool {
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
fn misleading_tag(xml: &str) -> Option<String> {
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
fn attr_value(head: &str, name: &str) -> Option<String> {
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
fn first_status_code(xml: &str) -> Option<String> {
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
fn start_tags(xml: &str) -> impl Iterator<Item = (&str, &str)> {
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

fn local_name(qualified: &str) -> &str {
    qualified.rsplit(':').next().unwrap_or(qualified)
}

/// Start tags whose local name is exactly `local` (any prefix).
fn count_start_tags(xml: &str, local: &str) -> usize {
    start_tags(xml)
        .filter(|(name, _)| local_name(name) == local)
        .count()
}

pub struct SamlProvider {
    s: Arc<ProviderSettings>,
    /// Our side only (entity ID, ACS, certificate, policies); the IdP metadata is added per state.
    template: ServiceProvider,
    /// The IdP-dependent part; None until the IdP metadata is loaded (metadata fetched from a URL).
    state: std::sync::RwLock<Option<Arc<IdpState>>>,
    entity_id: String,
    creds: Arc<SpCredentials>,
}

struct IdpState {
    sp: ServiceProvider,
    /// The same SP accepting unsolicited (IdP-initiated) responses; only when the provider allows them.
    sp_unsolicited: Option<ServiceProvider>,
    sso_url: String,
}

impl SamlProvider {
    pub fn new(
        s: Arc<ProviderSettings>,
        creds: Arc<SpCredentials>,
        sp_entity_id: &str,
        acs_url: &str,
    ) -> Result<Self, String> {
        let saml = s.saml.as_ref().expect("validated");
        let allowed = if saml.allow_sha1 {
            None
        } else {
            Some(vec![
                AllowedSignatureAlgorithm::RsaSha256,
                AllowedSignatureAlgorithm::RsaSha384,
                AllowedSignatureAlgorithm::RsaSha512,
                AllowedSignatureAlgorithm::EcdsaSha256,
                AllowedSignatureAlgorithm::EcdsaSha384,
                AllowedSignatureAlgorithm::EcdsaSha512,
            ])
        };
        let entity_id = saml
            .sp_entity_id
            .clone()
            .unwrap_or_else(|| sp_entity_id.to_string());
        let template = ServiceProvider {
            entity_id: Some(entity_id.clone()),
            metadata_url: Some(sp_entity_id.to_string()),
            acs_url: Some(acs_url.to_string()),
            slo_url: Some(acs_url.to_string()),
            certificate: Some(CertificateDer::from(creds.certificate_der.clone())),
            authn_name_id_format: saml.name_id_format.clone(),
            force_authn: saml.force_authn,
            allow_idp_initiated: false,
            max_clock_skew: chrono::Duration::seconds(saml.clock_skew_seconds),
            max_issue_delay: chrono::Duration::seconds(90 + saml.clock_skew_seconds),
            allowed_signature_algorithms: allowed,
            ..Default::default()
        };
        xmlsec_log::install(&CertificateDer::from(creds.certificate_der.clone()));
        let initial = saml.idp_metadata_xml.clone();
        let provider = Self {
            s,
            template,
            state: std::sync::RwLock::new(None),
            entity_id,
            creds,
        };
        if !initial.is_empty() {
            provider.set_idp_metadata(&initial)?;
        }
        Ok(provider)
    }

    /// Install (or replace, on refresh) the IdP metadata; refused unless usable (see [`parse_idp_metadata`]).
    pub fn set_idp_metadata(&self, xml: &str) -> Result<(), String> {
        let idp = parse_idp_metadata(xml)?;
        let saml = self.s.saml.as_ref().expect("validated");
        let sp = ServiceProvider {
            idp_metadata: idp,
            ..self.template.clone()
        };
        let sso_url = sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .expect("checked in parse_idp_metadata");
        let sp_unsolicited = saml.allow_idp_initiated.then(|| ServiceProvider {
            allow_idp_initiated: true,
            ..sp.clone()
        });
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(IdpState {
            sp,
            sp_unsolicited,
            sso_url,
        }));
        Ok(())
    }

    fn idp(&self) -> Result<Arc<IdpState>, ProviderError> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                ProviderError::Unusable("the IdP metadata has not been loaded (yet)".into())
            })
    }

    /// The IdP-bound redirect carrying a (signed) AuthnRequest; returns (url, request id).
    pub fn authn_request_url(
        &self,
        relay_state: &str,
        force: bool,
    ) -> Result<(String, String), ProviderError> {
        let saml = self.s.saml.as_ref().expect("validated");
        let idp = self.idp()?;
        let mut req = idp
            .sp
            .make_authentication_request(&idp.sso_url)
            .map_err(|e| ProviderError::Saml("saml_request", e.to_string()))?;
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).expect("randomness");
        req.id = format!("_{}", hex::encode(id));
        if force {
            req.force_authn = Some(true);
        }
        let xml = req
            .to_string()
            .map_err(|e| ProviderError::Saml("saml_request", format!("{e:?}")))?;
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut deflater, xml.as_bytes()).expect("in-memory");
        let deflated = deflater.finish().expect("in-memory");
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        // SAML Bindings 3.4.4.1: the signature covers exactly this byte sequence.
        let mut query = format!(
            "SAMLRequest={}&RelayState={}",
            enc(&STANDARD.encode(deflated)),
            enc(relay_state)
        );
        if saml.sign_authn_requests {
            query.push_str(&format!(
                "&SigAlg={}",
                enc("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
            ));
            let sig = self.creds.sign_rsa_sha256(query.as_bytes());
            query.push_str(&format!("&Signature={}", enc(&STANDARD.encode(sig))));
        }
        let sep = if idp.sso_url.contains('?') { '&' } else { '?' };
        Ok((format!("{}{sep}{query}", idp.sso_url), req.id))
    }

    /// Validate a SAMLResponse (base64, from the ACS form) for the request `request_id`; returns the
    /// verified assertion as claims: `NameID`, `NameIDFormat`, `SessionIndex` and one entry per attribute
    /// Name and FriendlyName (arrays of strings), plus the assertion ID and expiry for the replay cache.
    pub fn validate(
        &self,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> Result<(Value, String, i64), ProviderError> {
        let bad = |code: &'static str, m: String| ProviderError::Saml(code, m);
        let idp = self.idp()?;
        // Solicited: InResponseTo must be the request ID of this login flow. Unsolicited (IdP-initiated):
        // only when the provider allows it, and then the assertion must not answer any request.
        let (sp, ids): (&ServiceProvider, Option<Vec<&str>>) =
            match (request_id, &idp.sp_unsolicited) {
                (Some(id), _) => (&idp.sp, Some(vec![id])),
                (None, Some(sp)) => (sp, None),
                (None, None) => {
                    return Err(bad(
                        "saml_unsolicited",
                        "IdP-initiated login is not enabled for this provider".into(),
                    ));
                }
            };
        // Some IdPs wrap the base64 at 64/76 columns.
        let compact: String = saml_response
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = STANDARD
            .decode(compact)
            .map_err(|_| bad("saml_malformed", "SAMLResponse is not base64".into()))?;
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(bad("saml_malformed", "SAMLResponse is too large".into()));
        }
        let xml = String::from_utf8(bytes)
            .map_err(|_| bad("saml_malformed", "SAMLResponse is not UTF-8".into()))?;
        if has_unsafe_xml(&xml) || !xml_declaration_ok(&xml) || has_comment_or_pi(&xml) {
            return Err(bad(
                "saml_unsafe_xml",
                "DOCTYPE, entity declarations, comments, processing instructions or a non-1.0 XML declaration"
                    .into(),
            ));
        }
        if let Some(why) = misleading_tag(&xml) {
            return Err(bad("saml_unsafe_xml", why));
        }
        let xml = without_declaration(&xml).to_string();
        let assertions = count_start_tags(&xml, "Assertion");
        let encrypted = count_start_tags(&xml, "EncryptedAssertion");
        if assertions + encrypted == 0
            && let Some(status) = first_status_code(&xml)
            && status != "urn:oasis:names:tc:SAML:2.0:status:Success"
        {
            // Not trusted (unsigned), only reported: the IdP declined (cancelled, denied, no passive...).
            return Err(bad(
                "saml_idp_status",
                format!("the IdP answered with status {status}"),
            ));
        }
        if assertions + encrypted != 1 {
            return Err(bad(
                "saml_assertion_count",
                format!(
                    "exactly one assertion is required, found {}",
                    assertions + encrypted
                ),
            ));
        }
        if let Some(why) = unsafe_signature_structure(&xml) {
            return Err(bad("saml_unsafe_xml", why));
        }
        let (assertion, verified) = if encrypted == 1 {
            self.decrypt_and_validate(sp, &xml, ids.as_deref())?
        } else {
            // The signed content as libxmlsec1 verified it (what samael parses next): read by namespace.
            let verified = reduce_to_signed(sp, &xml)?;
            check_namespaces(&verified)?;
            let assertion = sp
                .parse_xml_response(&xml, ids.as_deref())
                .map_err(|e| bad("saml_invalid", e.to_string()))?;
            (assertion, verified)
        };
        // Unsolicited: nothing in it may answer a request (samael does not check the Response's own
        // InResponseTo in that mode, so any occurrence refuses it).
        if ids.is_none() && xml.contains("InResponseTo") {
            return Err(bad(
                "saml_unsolicited",
                "an unsolicited response must not answer a request (InResponseTo)".into(),
            ));
        }
        if ids.is_none()
            && assertion
                .subject
                .iter()
                .flat_map(|s| s.subject_confirmations.iter().flatten())
                .any(|c| {
                    c.subject_confirmation_data
                        .as_ref()
                        .is_some_and(|d| d.in_response_to.is_some())
                })
        {
            return Err(bad(
                "saml_unsolicited",
                "an unsolicited response must not answer a request (InResponseTo)".into(),
            ));
        }
        let conditions = assertion
            .conditions
            .as_ref()
            .ok_or_else(|| bad("saml_audience", "the assertion has no Conditions".into()))?;
        let audience_ok = conditions
            .audience_restrictions
            .iter()
            .flatten()
            .map(|r| r.audience.iter().any(|a| a == &self.entity_id))
            // SAML Core 2.5.1.4: every AudienceRestriction must be met; at least one is required.
            .fold(None, |acc: Option<bool>, ok| {
                Some(acc.unwrap_or(true) && ok)
            })
            .unwrap_or(false);
        if !audience_ok {
            return Err(bad(
                "saml_audience",
                format!("no AudienceRestriction names `{}`", self.entity_id),
            ));
        }
        let not_on_or_after = conditions
            .not_on_or_after
            .map(|t| t.timestamp())
            .into_iter()
            .chain(
                assertion
                    .subject
                    .iter()
                    .flat_map(|s| s.subject_confirmations.iter().flatten())
                    .filter_map(|c| {
                        c.subject_confirmation_data
                            .as_ref()
                            .and_then(|d| d.not_on_or_after)
                    })
                    .map(|t| t.timestamp()),
            )
            .max()
            .unwrap_or_else(|| chrono::Utc::now().timestamp() + 600);

        let values = namespace_aware_values(&verified, &assertion)?;
        let mut claims = Map::new();
        if let Some(v) = values.name_id {
            claims.insert("NameID".into(), Value::String(v));
        }
        if let Some(f) = values.name_id_format {
            claims.insert("NameIDFormat".into(), Value::String(f));
        }
        if let Some(idx) = values.session_index {
            claims.insert("SessionIndex".into(), Value::String(idx));
        }
        for (name, friendly, vals) in values.attributes {
            for key in name.into_iter().chain(friendly) {
                let entry = claims.entry(key).or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(list) = entry {
                    list.extend(vals.iter().cloned().map(Value::String));
                }
            }
        }
        Ok((Value::Object(claims), assertion.id.clone(), not_on_or_after))
    }

    /// An EncryptedAssertion is accepted only inside a signed Response: the Response signature is verified
    /// (on the encrypted form) against the IdP metadata certificates; the assertion is decrypted with the
    /// SP key through aws-lc-rs (RSA-OAEP key transport; AES-CBC or AES-GCM content); the decrypted
    /// assertion goes through the same guards; then every Response and Assertion check runs on the verified
    /// Response with the plaintext assertion in place.
    fn decrypt_and_validate(
        &self,
        sp: &ServiceProvider,
        xml: &str,
        ids: Option<&[&str]>,
    ) -> Result<(samael::schema::Assertion, String), ProviderError> {
        let bad = |code: &'static str, m: String| ProviderError::Saml(code, m);
        let reduced = reduce_to_signed(sp, xml).map_err(|e| match e {
            ProviderError::Saml(code, m) => ProviderError::Saml(
                code,
                format!("an encrypted assertion needs a signed Response: {m}"),
            ),
            other => other,
        })?;
        check_namespaces(&reduced)?;
        let doc = saml_xml::parse(&reduced).map_err(|e| bad("saml_invalid", e))?;
        if doc.root_element().tag_name().name() != "Response" {
            return Err(bad(
                "saml_invalid",
                "an encrypted assertion needs a signed Response; only the assertion's container is signed"
                    .into(),
            ));
        }
        let parts = saml_xml::encrypted_parts(&doc).map_err(|e| bad("saml_decrypt", e))?;
        let b64 = |v: &str| STANDARD.decode(v.split_whitespace().collect::<String>());
        // The first EncryptedKey that opens with our key (an IdP may add keys for other recipients).
        let mut key = None;
        let mut why = String::new();
        for k in &parts.keys {
            let Some(alg) = oaep_algorithm(k) else {
                why = format!(
                    "key transport `{}` (digest {}, MGF {}) is not supported: use rsa-oaep-mgf1p or rsa-oaep with SHA-1/SHA-256/SHA-384/SHA-512 and the matching MGF1, without OAEPparams",
                    k.algorithm,
                    k.digest.as_deref().unwrap_or("SHA-1"),
                    k.mgf.as_deref().unwrap_or("MGF1-SHA-1")
                );
                continue;
            };
            let Ok(wrapped) = b64(&k.cipher_value) else {
                why = "an EncryptedKey's CipherValue is not base64".into();
                continue;
            };
            match self.creds.unwrap_key(alg, &wrapped) {
                Some(k) => {
                    key = Some(k);
                    break;
                }
                None => {
                    why = "the content key could not be decrypted with the SP key (encrypted for another certificate?)"
                        .into();
                }
            }
        }
        let key = key.ok_or_else(|| bad("saml_decrypt", why))?;
        let data = b64(&parts.cipher_value)
            .map_err(|_| bad("saml_decrypt", "CipherValue is not base64".into()))?;
        let plain = decrypt_content(&parts.data_algorithm, &key, data).ok_or_else(|| {
            bad(
                "saml_decrypt",
                format!(
                    "content decryption with `{}` failed (supported: AES-128/256 in GCM or CBC, with a key of that size)",
                    parts.data_algorithm
                ),
            )
        })?;
        // Every check of the plaintext answers `saml_decrypt` (shown without detail): which one failed
        // must not tell a sender whether the padding was right.
        let assertion_xml = String::from_utf8(plain).map_err(|_| {
            bad(
                "saml_decrypt",
                "the decrypted assertion is not UTF-8".into(),
            )
        })?;
        if !xml_declaration_ok(&assertion_xml) {
            return Err(bad(
                "saml_decrypt",
                "the decrypted assertion declares another XML version".into(),
            ));
        }
        let assertion_xml = match assertion_xml
            .trim_start_matches('\u{feff}')
            .strip_prefix("<?xml")
        {
            Some(rest) => rest
                .split_once("?>")
                .map(|(_, body)| body.to_string())
                .unwrap_or_default(),
            None => assertion_xml,
        };
        if has_unsafe_xml(&assertion_xml)
            || has_comment_or_pi(&assertion_xml)
            || misleading_tag(&assertion_xml).is_some()
            || count_start_tags(&assertion_xml, "Assertion") != 1
            || count_start_tags(&assertion_xml, "EncryptedAssertion") != 0
        {
            return Err(bad(
                "saml_decrypt",
                "the decrypted content is not exactly one plain assertion".into(),
            ));
        }
        // Put the plaintext assertion where the (signature-covered) EncryptedAssertion was.
        let rebuilt = format!(
            "{}{}{}",
            &reduced[..parts.range.start],
            assertion_xml.trim(),
            &reduced[parts.range.end..]
        );
        check_namespaces(&rebuilt)?;
        // The signature was verified above on the encrypted form: run samael's Response and Assertion
        // checks on the rebuilt document with an SP that has no certificates, i.e. does not re-verify.
        let mut unverified = sp.clone();
        for d in unverified
            .idp_metadata
            .idp_sso_descriptors
            .iter_mut()
            .flatten()
        {
            d.key_descriptors.clear();
        }
        let assertion = unverified
            .parse_xml_response(&rebuilt, ids)
            .map_err(|e| bad("saml_invalid", e.to_string()))?;
        Ok((assertion, rebuilt))
    }

    /// SP metadata: entityID, one HTTP-POST ACS, NameID formats, a signing KeyDescriptor.
    pub fn metadata_xml(&self) -> Result<String, ProviderError> {
        let bad = |e: String| ProviderError::Saml("saml_metadata", e);
        let mut ed = self.template.metadata().map_err(|e| bad(e.to_string()))?;
        let sign = self.s.saml.as_ref().is_some_and(|s| s.sign_authn_requests);
        for d in ed.sp_sso_descriptors.iter_mut().flatten() {
            // Two KeyDescriptors: signing, and encryption (samael marks both use="signing"; IdPs then
            // refuse to encrypt). No SingleLogoutService (not implemented).
            if let Some(kds) = d.key_descriptors.as_mut() {
                kds.truncate(2);
                if let Some(enc) = kds.get_mut(1) {
                    enc.key_use = Some("encryption".into());
                    enc.encryption_methods = Some(
                        [
                            "http://www.w3.org/2009/xmlenc11#aes256-gcm",
                            "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                            "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
                            "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                            "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
                        ]
                        .into_iter()
                        .map(|a| samael::metadata::EncryptionMethod {
                            algorithm: a.into(),
                        })
                        .collect(),
                    );
                }
            }
            d.single_logout_services = None;
            d.authn_requests_signed = Some(sign);
            // No validUntil: IdPs that enforce it would drop us after samael's default 48 hours.
            d.valid_until = None;
            d.want_assertions_signed = Some(true);
            d.name_id_formats = Some(vec![
                "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into(),
                "urn:oasis:names:tc:SAML:2.0:nameid-format:transient".into(),
                "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into(),
                "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".into(),
            ]);
        }
        ed.valid_until = None;
        ed.to_string().map_err(|e| bad(format!("{e:?}")))
    }

    /// How long past its own expiry an assertion could still be accepted (the configured clock skew).
    pub fn clock_skew(&self) -> i64 {
        self.s
            .saml
            .as_ref()
            .map(|s| s.clock_skew_seconds)
            .unwrap_or(0)
    }

    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }
}

#[cfg(test)]
mod tests {
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
        let raw: super::super::RawProvider = table.try_into().unwrap();
        let settings = Arc::new(raw.validate(&Default::default()).unwrap());
        SamlProvider::new(
            settings,
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
        assert!(
            signed.starts_with("SAMLRequest=") && signed.contains("&RelayState=relay-123&SigAlg=")
        );
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
            format!(
                r#"<{long}:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"/>"#
            ),
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
            unsafe_signature_structure(&format!(
                r##"<ds:RetrievalMethod Type="{ek}" URI="#k1"/>"##
            )),
            None
        );
        for bad in [
            format!(r#"<ds:RetrievalMethod Type="{ek}" URI="http://169.254.169.254/k"/>"#),
            format!(r##"<ds:RetrievalMethod Type="{ek}" URI="#"/>"##),
            r##"<ds:RetrievalMethod Type="http://www.w3.org/2000/09/xmldsig#X509Data" URI="#k1"/>"##.to_string(),
            format!(r##"<ds:RetrievalMethod Type="{ek}" URI="#k1"><ds:Transforms/></ds:RetrievalMethod>"##),
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
}
