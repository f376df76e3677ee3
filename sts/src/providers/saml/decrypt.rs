//! Encrypted assertions: the content key unwrapped with the SP key through aws-lc-rs (RSA-OAEP), the
//! content decrypted (AES-CBC or AES-GCM), and the plaintext checked and put in the place of the
//! EncryptedAssertion inside the verified Response (`SamlProvider::decrypt_and_validate`).

use super::*;

/// XML Encryption content decryption: AES-CBC (ISO 10126 padding, IV first) or AES-GCM (IV first, tag last).
pub(super) fn decrypt_content(alg: &str, key: &[u8], mut data: Vec<u8>) -> Option<Vec<u8>> {
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
pub(super) fn oaep_algorithm(
    k: &saml_xml::KeyTransport,
) -> Option<&'static aws_lc_rs::rsa::OaepAlgorithm> {
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

impl SamlProvider {
    /// An EncryptedAssertion is accepted only inside a signed Response: the Response signature is verified
    /// (on the encrypted form) against the IdP metadata certificates; the assertion is decrypted with the
    /// SP key through aws-lc-rs (RSA-OAEP key transport; AES-CBC or AES-GCM content); the decrypted
    /// assertion goes through the same guards; then every Response and Assertion check runs on the verified
    /// Response with the plaintext assertion in place.
    pub(super) fn decrypt_and_validate(
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
        let doc = saml_xml::parse(&reduced).map_err(|e| bad("saml_invalid", e.0))?;
        if doc.root_element().tag_name().name() != "Response" {
            return Err(bad(
                "saml_invalid",
                "an encrypted assertion needs a signed Response; only the assertion's container is signed"
                    .into(),
            ));
        }
        let parts = saml_xml::encrypted_parts(&doc).map_err(|e| bad("saml_decrypt", e.0))?;
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
}
