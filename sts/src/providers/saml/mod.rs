//! SAML 2.0 service provider (Web Browser SSO profile, SAML 2.0 Profiles section 4.1), built on samael.
//!
//! Outbound: an AuthnRequest over HTTP-Redirect with a fresh 128-bit ID; RelayState is our opaque
//! login-flow state; signed with RSA-SHA256 by the SP key (through aws-lc-rs) unless turned off.
//!
//! Inbound (HTTP-POST to the ACS), checks in this order, each with its own reason code (the login flow
//! named by RelayState has already been consumed by the caller; see `sso::login`):
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

mod config;
mod credentials;
mod decrypt;
mod guards;
mod metadata;
mod validate;
mod xmlsec_log;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer};
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::service_provider::ServiceProvider;
use samael::traits::ToXml;
use serde_json::{Map, Value};

use super::ProviderError;
use super::saml_xml;

use self::{guards::*, validate::*};
use crate::providers::settings::Refused;
pub use config::{SamlConfig, SamlSettings};
pub use credentials::{SP_KEY_AAD, SpCredentials, SpCredentialsError};
pub use metadata::parse_idp_metadata;

/// Decoded SAMLResponse size limit.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

pub struct SamlProvider {
    s: Arc<SamlSettings>,
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
        s: Arc<SamlSettings>,
        creds: Arc<SpCredentials>,
        sp_entity_id: &str,
        acs_url: &str,
    ) -> Result<Self, Refused> {
        let saml = &s;
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
    pub fn set_idp_metadata(&self, xml: &str) -> Result<(), Refused> {
        let idp = parse_idp_metadata(xml)?;
        let saml = &self.s;
        let sp = ServiceProvider {
            idp_metadata: idp,
            ..self.template.clone()
        };
        let sso_url = sp
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or("the IdP metadata has no HTTP-Redirect SingleSignOnService")?;
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
        let saml = &self.s;
        let idp = self.idp()?;
        let mut req = idp
            .sp
            .make_authentication_request(&idp.sso_url)
            .map_err(|e| ProviderError::Saml("saml_request", e.to_string()))?;
        let mut id = [0u8; 16];
        crate::crypto::fill_random(&mut id);
        req.id = format!("_{}", hex::encode(id));
        if force {
            req.force_authn = Some(true);
        }
        let xml = req
            .to_string()
            .map_err(|e| ProviderError::Saml("saml_request", format!("{e:?}")))?;
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut deflater, xml.as_bytes())
            .map_err(|e| ProviderError::Unusable(format!("deflating the AuthnRequest: {e}")))?;
        let deflated = deflater
            .finish()
            .map_err(|e| ProviderError::Unusable(format!("deflating the AuthnRequest: {e}")))?;
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
            let sig = self
                .creds
                .sign_rsa_sha256(query.as_bytes())
                .map_err(|e| ProviderError::Unusable(e.to_string()))?;
            query.push_str(&format!("&Signature={}", enc(&STANDARD.encode(sig))));
        }
        let sep = if idp.sso_url.contains('?') { '&' } else { '?' };
        Ok((format!("{}{sep}{query}", idp.sso_url), req.id))
    }
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }
}

#[cfg(test)]
mod tests;
