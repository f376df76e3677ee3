//! Metadata: the IdP's (parsed and checked: entity ID, an HTTP-Redirect SSO endpoint, a signing
//! certificate, no DTD) and ours (`SamlProvider::metadata_xml`).

use super::*;
use crate::providers::settings::Refused;

/// Parse IdP metadata and check what a usable SAML IdP must have.
pub fn parse_idp_metadata(xml: &str) -> Result<EntityDescriptor, Refused> {
    if has_unsafe_xml(xml) {
        return Err("the metadata contains a DOCTYPE or entity declarations".into());
    }
    let ed: EntityDescriptor = xml
        .parse()
        .map_err(|e| Refused(format!("not SAML metadata: {e}")))?;
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
            crate::providers::settings::endpoint_url(&url)
                .map_err(|e| Refused(format!("SingleSignOnService: {e}")))?;
        }
    }
    Ok(ed)
}

impl SamlProvider {
    /// SP metadata: entityID, one HTTP-POST ACS, NameID formats, a signing KeyDescriptor.
    pub fn metadata_xml(&self) -> Result<String, ProviderError> {
        let bad = |e: String| ProviderError::Saml("saml_metadata", e);
        let mut ed = self.template.metadata().map_err(|e| bad(e.to_string()))?;
        let sign = self.s.sign_authn_requests;
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
}
