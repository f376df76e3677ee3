//! Provider settings as written in the config file (`[[providers]]`), validated without network access.
//! One flat table per provider; keys that do not apply to its `type` are refused by name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Secret, strip_newline};
use crate::roles::{Constraints, RoleMapping};

/// The raw `[[providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub client_id: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub client_auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub auth_params: BTreeMap<String, String>,
    // OIDC
    pub issuer: Option<String>,
    pub discovery: Option<bool>,
    pub discovery_refresh_seconds: Option<u64>,
    pub id_token_algs: Option<Vec<String>>,
    pub use_userinfo: Option<bool>,
    pub jwks_uri: Option<String>,
    // both (OIDC: only when discovery = false)
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    // OAuth 2.0
    pub pkce: Option<bool>,
    // claim paths
    pub subject_claim: Option<String>,
    pub username_claim: Option<String>,
    pub email_claim: Option<String>,
    pub name_claim: Option<String>,
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub roles: RoleMapping,
    #[serde(default)]
    pub constraints: Constraints,
    pub connect_timeout_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    // SAML
    pub idp_metadata_file: Option<PathBuf>,
    pub idp_metadata_xml: Option<String>,
    pub sp_entity_id: Option<String>,
    pub sign_authn_requests: Option<bool>,
    pub force_authn: Option<bool>,
    pub name_id_format: Option<String>,
    pub allow_sha1: Option<bool>,
    pub clock_skew_seconds: Option<i64>,
    pub per_provider_acs: Option<bool>,
    pub allow_idp_initiated: Option<bool>,
    pub idp_metadata_url: Option<String>,
    pub metadata_refresh_seconds: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Oidc,
    Oauth2,
    Saml,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Oidc => "oidc",
            Kind::Oauth2 => "oauth2",
            Kind::Saml => "saml",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ClientAuth {
    #[serde(rename = "client_secret_basic")]
    Basic,
    #[serde(rename = "client_secret_post")]
    Post,
}

/// Claim paths used to build an [`super::Identity`].
#[derive(Debug, Clone, Serialize)]
pub struct ClaimPaths {
    pub subject: String,
    pub username: String,
    pub email: String,
    pub name: String,
    pub groups: String,
}

/// Endpoints of an OIDC provider: discovered, or set by hand.
#[derive(Debug, Clone, Serialize)]
pub enum OidcEndpoints {
    Discover {
        refresh_seconds: u64,
    },
    Manual {
        authorization: String,
        token: String,
        jwks: String,
        userinfo: Option<String>,
    },
}

/// SAML-specific settings.
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

/// Validated settings. Secrets are held in memory only, never written to the database.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderSettings {
    pub id: String,
    pub kind: Kind,
    pub display_name: String,
    pub enabled: bool,
    pub client_id: String,
    #[serde(skip)]
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub auth_params: BTreeMap<String, String>,
    /// OIDC: the issuer (exact string). OAuth 2.0: None.
    pub issuer: Option<String>,
    pub oidc_endpoints: Option<OidcEndpoints>,
    pub id_token_algs: Vec<String>,
    pub use_userinfo: bool,
    /// OAuth 2.0 endpoints.
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub pkce: bool,
    pub claims: ClaimPaths,
    pub roles: RoleMapping,
    pub constraints: Constraints,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub saml: Option<SamlSettings>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("provider `{id}`: {message}")]
pub struct SettingsError {
    pub id: String,
    pub message: String,
}

/// Parameters the STS sets itself; configuration may not override them.
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "response_mode",
    "request",
    "request_uri",
];
const ALLOWED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

impl RawProvider {
    /// Validate; `env` resolves `client_secret_env`.
    pub fn validate(
        self,
        env: &BTreeMap<String, String>,
    ) -> Result<ProviderSettings, SettingsError> {
        let id = self.id.clone();
        let err = |m: String| SettingsError {
            id: id.clone(),
            message: m,
        };
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err(
                "`id` must be 1-64 characters of a-z, 0-9 and '-'".into()
            ));
        }
        let kind = match self.kind.as_str() {
            "oidc" => Kind::Oidc,
            "oauth2" => Kind::Oauth2,
            "saml" => return self.validate_saml(id.clone()),
            other => {
                return Err(err(format!(
                    "unknown `type` `{other}` (allowed: oidc, oauth2, saml)"
                )));
            }
        };
        let not_for = |present: bool, key: &str| -> Result<(), SettingsError> {
            if present {
                Err(err(format!(
                    "key `{key}` does not apply to type {}",
                    kind.as_str()
                )))
            } else {
                Ok(())
            }
        };
        for (present, key) in [
            (self.idp_metadata_file.is_some(), "idp_metadata_file"),
            (self.idp_metadata_xml.is_some(), "idp_metadata_xml"),
            (self.sp_entity_id.is_some(), "sp_entity_id"),
            (self.sign_authn_requests.is_some(), "sign_authn_requests"),
            (self.force_authn.is_some(), "force_authn"),
            (self.name_id_format.is_some(), "name_id_format"),
            (self.allow_sha1.is_some(), "allow_sha1"),
            (self.clock_skew_seconds.is_some(), "clock_skew_seconds"),
            (self.per_provider_acs.is_some(), "per_provider_acs"),
            (self.allow_idp_initiated.is_some(), "allow_idp_initiated"),
            (self.idp_metadata_url.is_some(), "idp_metadata_url"),
            (
                self.metadata_refresh_seconds.is_some(),
                "metadata_refresh_seconds",
            ),
        ] {
            not_for(present, key)?;
        }
        let client_id = self
            .client_id
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| err("`client_id` is required".into()))?;
        let client_secret = match (&self.client_secret_env, &self.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "set `client_secret_env` or `client_secret_file`, not both".into(),
                ));
            }
            (Some(var), None) => Some(Secret::new(env.get(var).cloned().ok_or_else(|| {
                err(format!(
                    "environment variable {var} (client_secret_env) is not set"
                ))
            })?)),
            (None, Some(path)) => Some(Secret::new(strip_newline(
                std::fs::read_to_string(path)
                    .map_err(|e| err(format!("client_secret_file {}: {e}", path.display())))?,
            ))),
            (None, None) => None,
        };
        let client_auth = match self.client_auth.as_deref().unwrap_or("client_secret_basic") {
            "client_secret_basic" => ClientAuth::Basic,
            "client_secret_post" => ClientAuth::Post,
            other => {
                return Err(err(format!(
                    "`client_auth` `{other}`: allowed client_secret_basic, client_secret_post"
                )));
            }
        };
        if client_secret.as_ref().is_none_or(|s| s.expose().is_empty()) {
            return Err(err(
                "a non-empty client secret is required (`client_secret_env` or `client_secret_file`)".into(),
            ));
        }
        for k in self.auth_params.keys() {
            if RESERVED_PARAMS.contains(&k.as_str()) {
                return Err(err(format!("`auth_params.{k}` is set by the STS itself")));
            }
        }
        let check_url = |key: &str, v: &Option<String>| -> Result<Option<String>, SettingsError> {
            v.as_ref()
                .map(|u| endpoint_url(u).map_err(|m| err(format!("`{key}`: {m}"))))
                .transpose()
        };
        let connect_timeout_ms = self.connect_timeout_ms.unwrap_or(3000);
        let timeout_ms = self.timeout_ms.unwrap_or(10_000);
        if !(100..=60_000).contains(&connect_timeout_ms) || !(100..=120_000).contains(&timeout_ms) {
            return Err(err(
                "timeouts must be 100..=60000 ms (connect) and 100..=120000 ms (total)".into(),
            ));
        }
        let (issuer, oidc_endpoints, id_token_algs, use_userinfo, pkce) = match kind {
            Kind::Oidc => {
                not_for(self.pkce.is_some(), "pkce")?;
                check_url("issuer", &self.issuer)?
                    .ok_or_else(|| err("`issuer` is required".into()))?;
                // Kept as the exact configured string: ID token `iss` is compared to it byte for byte.
                let issuer = self.issuer.clone().unwrap_or_default();
                let endpoints = if self.discovery.unwrap_or(true) {
                    not_for(
                        self.authorization_endpoint.is_some()
                            || self.token_endpoint.is_some()
                            || self.jwks_uri.is_some(),
                        "authorization_endpoint/token_endpoint/jwks_uri (with discovery = true)",
                    )?;
                    let refresh_seconds = self.discovery_refresh_seconds.unwrap_or(3600);
                    if !(60..=86_400).contains(&refresh_seconds) {
                        return Err(err("`discovery_refresh_seconds` must be 60..=86400".into()));
                    }
                    OidcEndpoints::Discover { refresh_seconds }
                } else {
                    let need = |k: &str, v: &Option<String>| {
                        check_url(k, v)?
                            .ok_or_else(|| err(format!("`{k}` is required when discovery = false")))
                    };
                    OidcEndpoints::Manual {
                        authorization: need(
                            "authorization_endpoint",
                            &self.authorization_endpoint,
                        )?,
                        token: need("token_endpoint", &self.token_endpoint)?,
                        jwks: need("jwks_uri", &self.jwks_uri)?,
                        userinfo: check_url("userinfo_endpoint", &self.userinfo_endpoint)?,
                    }
                };
                let algs = self
                    .id_token_algs
                    .clone()
                    .unwrap_or_else(|| vec!["RS256".into()]);
                if algs.is_empty() || algs.iter().any(|a| !ALLOWED_ALGS.contains(&a.as_str())) {
                    return Err(err(format!(
                        "`id_token_algs` must be a non-empty subset of {ALLOWED_ALGS:?} (never none or HS*)"
                    )));
                }
                (
                    Some(issuer),
                    Some(endpoints),
                    algs,
                    self.use_userinfo.unwrap_or(false),
                    true,
                )
            }
            Kind::Oauth2 => {
                for (present, key) in [
                    (self.issuer.is_some(), "issuer"),
                    (self.discovery.is_some(), "discovery"),
                    (self.jwks_uri.is_some(), "jwks_uri"),
                    (self.id_token_algs.is_some(), "id_token_algs"),
                    (self.use_userinfo.is_some(), "use_userinfo"),
                    (
                        self.discovery_refresh_seconds.is_some(),
                        "discovery_refresh_seconds",
                    ),
                ] {
                    not_for(present, key)?;
                }
                for (k, v) in [
                    ("authorization_endpoint", &self.authorization_endpoint),
                    ("token_endpoint", &self.token_endpoint),
                    ("userinfo_endpoint", &self.userinfo_endpoint),
                ] {
                    if v.is_none() {
                        return Err(err(format!("`{k}` is required for type oauth2")));
                    }
                }
                (None, None, vec![], true, self.pkce.unwrap_or(true))
            }
            Kind::Saml => return Err(err("SAML entries are validated by validate_saml".into())),
        };
        let default_scopes: Vec<String> = match kind {
            Kind::Oidc => vec!["openid".into(), "email".into(), "profile".into()],
            Kind::Oauth2 | Kind::Saml => vec![],
        };
        let mut scopes = self.scopes.clone().unwrap_or(default_scopes);
        if kind == Kind::Oidc && !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        validate_roles(&self.roles).map_err(err)?;
        Ok(ProviderSettings {
            display_name: self.display_name.clone().unwrap_or_else(|| id.clone()),
            id: id.clone(),
            kind,
            enabled: self.enabled,
            client_id,
            client_secret,
            client_auth,
            scopes,
            auth_params: self.auth_params.clone(),
            issuer,
            oidc_endpoints,
            id_token_algs,
            use_userinfo,
            authorization_endpoint: check_url(
                "authorization_endpoint",
                &self.authorization_endpoint,
            )?,
            token_endpoint: check_url("token_endpoint", &self.token_endpoint)?,
            userinfo_endpoint: check_url("userinfo_endpoint", &self.userinfo_endpoint)?,
            pkce,
            claims: ClaimPaths {
                subject: self.subject_claim.clone().unwrap_or_else(|| "sub".into()),
                username: self
                    .username_claim
                    .clone()
                    .unwrap_or_else(|| "preferred_username".into()),
                email: self.email_claim.clone().unwrap_or_else(|| "email".into()),
                name: self.name_claim.clone().unwrap_or_else(|| "name".into()),
                groups: self.groups_claim.clone().unwrap_or_else(|| "groups".into()),
            },
            roles: self.roles,
            constraints: self.constraints,
            connect_timeout_ms,
            timeout_ms,
            saml: None,
        })
    }
}

/// The role claim path must be set; STS role names (rule targets, default roles) must be plain bounded
/// strings, since they go into every token.
fn validate_roles(r: &crate::roles::RoleMapping) -> Result<(), String> {
    if r.claim.is_empty() {
        return Err("`roles.claim` must not be empty".into());
    }
    let bad =
        |role: &String| role.is_empty() || role.len() > 256 || role.chars().any(char::is_control);
    if let Some(role) = r
        .rules
        .iter()
        .flat_map(|rule| rule.roles.iter())
        .chain(r.default_roles.iter())
        .find(|x| bad(x))
    {
        return Err(format!(
            "role name {role:?} in `roles` must be 1..=256 characters without control characters"
        ));
    }
    if let Some(rule) = r
        .rules
        .iter()
        .find(|rule| rule.pattern.is_empty() || rule.pattern.len() > 256)
    {
        return Err(format!(
            "`roles.rules` match {:?} must be 1..=256 characters",
            rule.pattern
        ));
    }
    Ok(())
}

/// An outbound endpoint: https, or http only on a loopback host (local IdPs, tests).
pub fn endpoint_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => return Err(format!("`{s}` has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "`{s}` must be https (plain http only on a loopback host)"
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(format!("`{s}` must not carry credentials or a fragment"));
    }
    Ok(url.to_string())
}

mod saml;
#[cfg(test)]
mod tests;
