//! `type = "saml"` entries: the IdP metadata source and the SP options, validated without network (a
//! metadata URL is fetched later, by the registry: `providers::metadata`); the SAML POST capability.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SamlProvider;
use crate::providers::ProviderError;
use crate::providers::kinds::{KindConfig, KindSettings, OpenContext};
use crate::providers::login::{Login, SamlAssertion, SamlPost};
use crate::providers::settings::Refused;
use crate::providers::settings::{ClaimDefaults, SecretVars, endpoint_url};

/// The keys a SAML provider reads besides the common ones.
#[derive(Debug, Clone, Deserialize)]
pub struct SamlConfig {
    idp_metadata_file: Option<PathBuf>,
    idp_metadata_xml: Option<String>,
    idp_metadata_url: Option<String>,
    metadata_refresh_seconds: Option<u64>,
    sp_entity_id: Option<String>,
    sign_authn_requests: Option<bool>,
    force_authn: Option<bool>,
    name_id_format: Option<String>,
    allow_sha1: Option<bool>,
    clock_skew_seconds: Option<i64>,
    per_provider_acs: Option<bool>,
    allow_idp_initiated: Option<bool>,
}

/// Validated SAML settings.
#[derive(Debug, Clone, Serialize)]
pub struct SamlSettings {
    /// The IdP metadata document (from `idp_metadata_file` or `idp_metadata_xml`; empty when fetched).
    pub idp_metadata_xml: String,
    /// Fetch the IdP metadata from here at start and every `metadata_refresh_seconds`.
    pub idp_metadata_url: Option<String>,
    pub metadata_refresh_seconds: u64,
    /// Our entity ID; default: the SP metadata URL.
    pub sp_entity_id: Option<String>,
    pub sign_authn_requests: bool,
    pub force_authn: bool,
    pub name_id_format: Option<String>,
    pub allow_sha1: bool,
    pub clock_skew_seconds: i64,
    /// Use `/sso/sso-saml/{id}/acs` instead of the shared ACS (for IdPs that need distinct ACS URLs).
    pub per_provider_acs: bool,
    /// Accept unsolicited (IdP-initiated) responses; off by default. All other checks still apply.
    pub allow_idp_initiated: bool,
}

impl KindConfig for SamlConfig {
    const TYPE: &'static str = "saml";
    const KEYS: &'static [&'static str] = &[
        "idp_metadata_file",
        "idp_metadata_xml",
        "idp_metadata_url",
        "metadata_refresh_seconds",
        "sp_entity_id",
        "sign_authn_requests",
        "force_authn",
        "name_id_format",
        "allow_sha1",
        "clock_skew_seconds",
        "per_provider_acs",
        "allow_idp_initiated",
    ];
    const CLAIMS: ClaimDefaults = ["NameID", "uid", "mail", "displayName", "groups"];

    fn validate(self, _env: &SecretVars) -> Result<Arc<dyn KindSettings>, Refused> {
        let sources = [
            self.idp_metadata_file.is_some(),
            self.idp_metadata_xml.is_some(),
            self.idp_metadata_url.is_some(),
        ];
        if sources.iter().filter(|x| **x).count() != 1 {
            return Err(
                "IdP metadata is required: exactly one of `idp_metadata_url`, `idp_metadata_file` or `idp_metadata_xml`".into(),
            );
        }
        let metadata_url = self
            .idp_metadata_url
            .as_deref()
            .map(|u| endpoint_url(u).map_err(|m| Refused(format!("`idp_metadata_url`: {m}"))))
            .transpose()?;
        let xml = match (&self.idp_metadata_file, self.idp_metadata_xml) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map_err(|e| Refused(format!("idp_metadata_file {}: {e}", path.display())))?,
            (None, Some(x)) => x,
            // Fetched at start and refreshed; checked the same way each time.
            (None, None) => String::new(),
        };
        // A SAML provider without IdP signing certificates cannot be saved: samael would skip signature checks.
        if metadata_url.is_none() {
            super::parse_idp_metadata(&xml).map_err(|m| Refused(format!("IdP metadata: {m}")))?;
        }
        let refresh = self.metadata_refresh_seconds.unwrap_or(3600);
        if !(60..=86_400).contains(&refresh) {
            return Err("`metadata_refresh_seconds` must be 60..=86400".into());
        }
        let skew = self.clock_skew_seconds.unwrap_or(120);
        if !(0..=600).contains(&skew) {
            return Err("`clock_skew_seconds` must be 0..=600".into());
        }
        Ok(Arc::new(SamlSettings {
            idp_metadata_xml: xml,
            sp_entity_id: self.sp_entity_id,
            sign_authn_requests: self.sign_authn_requests.unwrap_or(true),
            force_authn: self.force_authn.unwrap_or(false),
            name_id_format: self.name_id_format,
            allow_sha1: self.allow_sha1.unwrap_or(false),
            clock_skew_seconds: skew,
            per_provider_acs: self.per_provider_acs.unwrap_or(false),
            allow_idp_initiated: self.allow_idp_initiated.unwrap_or(false),
            idp_metadata_url: metadata_url,
            metadata_refresh_seconds: refresh,
        }))
    }
}

impl KindSettings for SamlSettings {
    fn type_name(&self) -> &'static str {
        SamlConfig::TYPE
    }
    fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Login, Refused> {
        let sp = ctx
            .saml
            .ok_or("SAML service provider credentials are not loaded")?;
        let acs = if self.per_provider_acs {
            format!("{}/{}/acs", sp.base_url, ctx.id)
        } else {
            sp.acs_url.clone()
        };
        let p = SamlProvider::new(
            Arc::new(self.clone()),
            sp.credentials.clone(),
            &sp.entity_id,
            &acs,
        )?;
        Ok(Login::SamlPost(Arc::new(p)))
    }
    fn endpoints(&self, base: &str, id: &str) -> (String, Option<String>) {
        (
            if self.per_provider_acs {
                format!("{base}/sso/sso-saml/{id}/acs")
            } else {
                format!("{base}/sso/sso-saml/acs")
            },
            Some(format!("{base}/sso/sso-saml/{id}/metadata")),
        )
    }
    fn remote_metadata(&self) -> Option<(&str, u64)> {
        self.idp_metadata_url
            .as_deref()
            .map(|u| (u, self.metadata_refresh_seconds))
    }
    fn needs_sp_credentials(&self) -> bool {
        true
    }
    fn asserts_verified_email(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl SamlPost for SamlProvider {
    fn authn_request_url(
        &self,
        relay_state: &str,
        force: bool,
    ) -> Result<(String, String), ProviderError> {
        SamlProvider::authn_request_url(self, relay_state, force)
    }
    fn validate(
        &self,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> Result<SamlAssertion, ProviderError> {
        let (claims, assertion_id, keep_until) =
            SamlProvider::validate(self, saml_response, request_id)?;
        Ok(SamlAssertion {
            claims,
            assertion_id,
            keep_until,
        })
    }
    fn set_idp_metadata(&self, xml: &str) -> Result<(), ProviderError> {
        SamlProvider::set_idp_metadata(self, xml).map_err(|e| ProviderError::Unusable(e.0))
    }
    fn metadata_xml(&self) -> Result<String, ProviderError> {
        SamlProvider::metadata_xml(self)
    }
    fn clock_skew(&self) -> i64 {
        self.s.clock_skew_seconds
    }
    fn allows_idp_initiated(&self) -> bool {
        self.s.allow_idp_initiated
    }
}
