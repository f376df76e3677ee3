//! Identity providers the STS delegates login to. Each kind turns a browser round trip into one
//! [`Identity`]; roles are then extracted and mapped by [`crate::roles`] the same way for every kind.
//!
//! - [`oidc`]: OpenID Connect (discovery, code + PKCE + nonce, ID token validation, optional userinfo).
//! - [`oauth`]: plain OAuth 2.0 (code + PKCE, user-info JSON with configurable claim paths).
//! - [`settings`]: the `[[providers]]` configuration, validated without network access.
//! - [`http`]: outbound HTTP with timeouts, no redirects and a size limit.

pub mod http;
pub mod managed;
pub mod metadata;
pub mod oauth;
pub mod oidc;
pub mod saml;
pub mod saml_xml;
pub mod settings;
pub mod shared_fetch;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::clock::SharedClock;
use crate::roles;
pub use settings::{Kind, ProviderSettings, RawProvider, SettingsError};

/// Who logged in, as the provider says.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub subject: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub display_name: Option<String>,
    pub groups: Vec<String>,
    /// The raw claims the identity was built from (ID token claims merged with userinfo).
    pub claims: Value,
}

/// Secrets of one login attempt, kept server-side in the login flow.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FlowSecrets {
    pub nonce: String,
    pub pkce_verifier: String,
    /// SAML: the ID of the AuthnRequest sent (the only acceptable InResponseTo).
    #[serde(default)]
    pub saml_request_id: Option<String>,
}

/// Query parameters of a callback.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("the identity provider's discovery document could not be used: {0}")]
    Discovery(String),
    #[error("the identity provider could not be reached: {0}")]
    Outbound(#[from] http::OutboundError),
    #[error("the token endpoint refused the code: {error}")]
    TokenEndpoint { error: String },
    #[error("the token response had no ID token")]
    NoIdToken,
    #[error("the token response had no access token")]
    NoAccessToken,
    #[error("the ID token is invalid: {0}")]
    IdToken(String),
    #[error("the authorization response came from another issuer (RFC 9207 `iss` mismatch)")]
    IssuerMismatch,
    #[error(
        "the authorization response lacks the `iss` parameter this provider announces (RFC 9207)"
    )]
    IssuerMissing,
    #[error("the user-info response is invalid: {0}")]
    Userinfo(String),
    #[error("the identity has no subject at `{0}`")]
    NoSubject(String),
    #[error("the value of `{0}` contains control or line-separator characters")]
    BadValue(&'static str),
    #[error("the SAML response was refused: {1}")]
    Saml(&'static str, String),
    #[error("this provider cannot be used: {0}")]
    Unusable(String),
    /// The database or the blocking pool failed while checking a response (not the IdP's fault).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProviderError {
    /// A stable reason code for logs and error pages.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Discovery(_) => "discovery_failed",
            ProviderError::Outbound(e) => e.code(),
            ProviderError::TokenEndpoint { .. } => "token_endpoint_error",
            ProviderError::NoIdToken => "id_token_missing",
            ProviderError::NoAccessToken => "access_token_missing",
            ProviderError::IdToken(_) => "id_token_invalid",
            ProviderError::IssuerMismatch => "iss_mismatch",
            ProviderError::IssuerMissing => "iss_missing",
            ProviderError::Userinfo(_) => "userinfo_invalid",
            ProviderError::NoSubject(_) => "subject_missing",
            ProviderError::BadValue(_) => "invalid_claim_value",
            ProviderError::Saml(code, _) => code,
            ProviderError::Unusable(_) => "provider_unusable",
            ProviderError::Internal(_) => "internal_error",
        }
    }
}

enum Imp {
    Oidc(Box<oidc::OidcProvider>),
    OAuth(oauth::OAuthProvider),
    Saml(Box<saml::SamlProvider>),
    /// Configured but not usable in this process (e.g. SAML without SP credentials); says why.
    Broken(String),
}

/// What SAML providers need from the server: the SP credentials and our URLs.
#[derive(Clone)]
pub struct SamlContext {
    pub credentials: Arc<saml::SpCredentials>,
    /// Default SP entity ID (the SP metadata URL).
    pub entity_id: String,
    /// The shared ACS URL (`{public_url}/sso/sso-saml/acs`).
    pub acs_url: String,
    /// `{public_url}/sso/sso-saml`, for per-provider ACS URLs.
    pub base_url: String,
}

/// One configured identity provider.
pub struct Provider {
    pub settings: Arc<ProviderSettings>,
    imp: Imp,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.settings.id)
            .field("kind", &self.settings.kind)
            .finish()
    }
}

impl Provider {
    pub fn new(
        settings: ProviderSettings,
        clock: SharedClock,
        saml_ctx: Option<&SamlContext>,
    ) -> Self {
        let settings = Arc::new(settings);
        let http = http::Outbound::new(settings.connect_timeout_ms, settings.timeout_ms);
        let imp = match settings.kind {
            Kind::Oidc => Imp::Oidc(Box::new(oidc::OidcProvider::new(
                settings.clone(),
                http,
                clock,
            ))),
            Kind::Oauth2 => Imp::OAuth(oauth::OAuthProvider::new(settings.clone(), http)),
            Kind::Saml => match saml_ctx {
                None => Imp::Broken("SAML service provider credentials are not loaded".into()),
                Some(ctx) => match saml::SamlProvider::new(
                    settings.clone(),
                    ctx.credentials.clone(),
                    &ctx.entity_id,
                    &if settings.saml.as_ref().is_some_and(|s| s.per_provider_acs) {
                        format!("{}/{}/acs", ctx.base_url, settings.id)
                    } else {
                        ctx.acs_url.clone()
                    },
                ) {
                    Ok(p) => Imp::Saml(Box::new(p)),
                    Err(e) => Imp::Broken(e),
                },
            },
        };
        Self { settings, imp }
    }

    pub fn id(&self) -> &str {
        &self.settings.id
    }

    /// Where to send the browser. `login_hint` is passed through when given.
    pub async fn authorization_url(
        &self,
        state: &str,
        secrets: &mut FlowSecrets,
        redirect_uri: &str,
        login_hint: Option<&str>,
        force: bool,
    ) -> Result<String, ProviderError> {
        let endpoint = match &self.imp {
            Imp::Oidc(p) => p.authorization_endpoint().await?,
            Imp::OAuth(_) => self
                .settings
                .authorization_endpoint
                .clone()
                .ok_or_else(|| ProviderError::Unusable("no authorization_endpoint".into()))?,
            Imp::Saml(p) => {
                let (url, request_id) = p.authn_request_url(state, force)?;
                secrets.saml_request_id = Some(request_id);
                return Ok(url);
            }
            Imp::Broken(why) => return Err(ProviderError::Unusable(why.clone())),
        };
        let mut url =
            url::Url::parse(&endpoint).map_err(|e| ProviderError::Discovery(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state);
            if !self.settings.scopes.is_empty() {
                q.append_pair("scope", &self.settings.scopes.join(" "));
            }
            if self.settings.kind == Kind::Oidc {
                q.append_pair("nonce", &secrets.nonce);
            }
            if self.settings.pkce {
                q.append_pair(
                    "code_challenge",
                    &crate::crypto::pkce_s256(&secrets.pkce_verifier),
                )
                .append_pair("code_challenge_method", "S256");
            }
            for (k, v) in &self.settings.auth_params {
                if force && (k == "prompt" || k == "max_age") {
                    continue;
                }
                q.append_pair(k, v);
            }
            if let Some(hint) = login_hint {
                q.append_pair("login_hint", hint);
            }
            // An application asked for a fresh authentication (prompt=login, max_age): ask upstream too.
            if force {
                q.append_pair("prompt", "login");
                if self.settings.kind == Kind::Oidc {
                    q.append_pair("max_age", "0");
                }
            }
        }
        Ok(url.into())
    }

    /// Complete the login from the callback (state already checked by the caller).
    pub async fn complete(
        &self,
        secrets: &FlowSecrets,
        cb: &Callback,
        redirect_uri: &str,
    ) -> Result<Identity, ProviderError> {
        let code =
            cb.code
                .as_deref()
                .filter(|c| !c.is_empty())
                .ok_or(ProviderError::TokenEndpoint {
                    error: "no code in the callback".into(),
                })?;
        let claims = match &self.imp {
            Imp::Oidc(p) => {
                p.complete(secrets, cb.iss.as_deref(), code, redirect_uri)
                    .await?
            }
            Imp::OAuth(p) => p.complete(secrets, code, redirect_uri).await?,
            Imp::Saml(_) | Imp::Broken(_) => {
                return Err(ProviderError::Unusable(
                    "not a redirect-based provider".into(),
                ));
            }
        };
        identity_from_claims(&self.settings, claims)
    }
}

impl Provider {
    /// The whole ACS check of a SAMLResponse, in order: every check of `complete_saml` (on the blocking
    /// pool: XML signature verification is CPU work), then the single use of the assertion ID: it is
    /// kept in the replay cache until the assertion could no longer be valid anyway (its expiry or now,
    /// plus the clock skew and a minute), and an ID already there is `saml_replay`.
    pub async fn complete_saml_once(
        self: &Arc<Self>,
        pool: &crate::store::Pool,
        now: i64,
        secrets: Option<FlowSecrets>,
        saml_response: String,
    ) -> Result<Identity, ProviderError> {
        let me = self.clone();
        let (identity, assertion_id, keep_until) =
            tokio::task::spawn_blocking(move || me.complete_saml(secrets.as_ref(), &saml_response))
                .await
                .map_err(|e| ProviderError::Internal(format!("validation task: {e}")))??;
        let first_use = crate::store::saml::consume_assertion_id(
            pool,
            &assertion_id,
            self.id(),
            keep_until.max(now) + self.saml_clock_skew() + 60,
        )
        .await
        .map_err(|e| ProviderError::Internal(format!("replay cache: {e}")))?;
        if !first_use {
            return Err(ProviderError::Saml(
                "saml_replay",
                format!("assertion {assertion_id} was already used"),
            ));
        }
        Ok(identity)
    }

    /// Validate a SAMLResponse for this login flow and build the identity; the replay cache is
    /// `complete_saml_once`'s. Returns the identity, the assertion ID and until when it must be remembered.
    pub fn complete_saml(
        &self,
        secrets: Option<&FlowSecrets>,
        saml_response: &str,
    ) -> Result<(Identity, String, i64), ProviderError> {
        let Imp::Saml(p) = &self.imp else {
            return Err(ProviderError::Unusable("not a SAML provider".into()));
        };
        // With a login flow, its request ID is the only acceptable InResponseTo; without one the
        // response is unsolicited (refused unless the provider allows IdP-initiated login).
        let request_id = match secrets {
            Some(s) => Some(s.saml_request_id.as_deref().ok_or_else(|| {
                ProviderError::Saml("saml_invalid", "no request ID in this login flow".into())
            })?),
            None => None,
        };
        let (claims, assertion_id, keep_until) = p.validate(saml_response, request_id)?;
        Ok((
            identity_from_claims(&self.settings, claims)?,
            assertion_id,
            keep_until,
        ))
    }

    /// Replace the IdP metadata of a SAML provider (fetched from its URL); refused unless usable.
    pub fn set_saml_metadata(&self, xml: &str) -> Result<(), String> {
        match &self.imp {
            Imp::Saml(p) => p.set_idp_metadata(xml),
            _ => Err("not a SAML provider".into()),
        }
    }

    /// SAML clock skew in seconds (0 for other kinds).
    pub fn saml_clock_skew(&self) -> i64 {
        match &self.imp {
            Imp::Saml(p) => p.clock_skew(),
            _ => 0,
        }
    }

    /// Whether unsolicited responses are accepted for this provider.
    pub fn allows_idp_initiated(&self) -> bool {
        self.settings
            .saml
            .as_ref()
            .is_some_and(|s| s.allow_idp_initiated)
    }

    /// SP metadata XML for this SAML provider.
    pub fn saml_metadata(&self) -> Result<String, ProviderError> {
        match &self.imp {
            Imp::Saml(p) => p.metadata_xml(),
            Imp::Broken(why) => Err(ProviderError::Unusable(why.clone())),
            _ => Err(ProviderError::Unusable("not a SAML provider".into())),
        }
    }
}

fn string_at(claims: &Value, path: &str) -> Option<String> {
    match roles::lookup(claims, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        // SAML attributes are lists: a single value stands for itself; several are ambiguous.
        Value::Array(items) if items.len() == 1 => items[0]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        _ => None,
    }
}

/// Values are opaque: never trimmed or normalised; control and line-separator characters are refused.
fn clean(field: &'static str, v: Option<String>) -> Result<Option<String>, ProviderError> {
    match v {
        Some(s)
            if s.chars()
                .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}') =>
        {
            Err(ProviderError::BadValue(field))
        }
        Some(s) if s.len() > 1024 => Err(ProviderError::BadValue(field)),
        other => Ok(other),
    }
}

fn identity_from_claims(s: &ProviderSettings, claims: Value) -> Result<Identity, ProviderError> {
    let subject = clean("subject", string_at(&claims, &s.claims.subject))?
        .ok_or_else(|| ProviderError::NoSubject(s.claims.subject.clone()))?;
    let username = clean("username", string_at(&claims, &s.claims.username))?
        .unwrap_or_else(|| subject.clone());
    let email = clean("email", string_at(&claims, &s.claims.email))?;
    let display_name = clean("name", string_at(&claims, &s.claims.name))?;
    // Absent: unknown (None). Present: only a boolean `true` or the string "true" counts as verified.
    let email_verified = roles::lookup(&claims, "email_verified").map(|v| match v {
        Value::Bool(b) => *b,
        Value::String(s) => s == "true",
        _ => false,
    });
    let groups = roles::extract(&claims, &s.claims.groups, None);
    Ok(Identity {
        subject,
        username,
        email,
        email_verified,
        display_name,
        groups,
        claims,
    })
}

/// The identity providers, by id, in order (configuration first, then those added in the admin console).
/// Replaced as a whole entry when an admin edits one; readers get `Arc`s, so a login in progress keeps the
/// provider it started with.
pub struct Registry {
    providers: std::sync::RwLock<Vec<Arc<Provider>>>,
    clock: SharedClock,
    saml: std::sync::RwLock<Option<SamlContext>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new(
        settings: Vec<ProviderSettings>,
        clock: SharedClock,
        saml: Option<&SamlContext>,
    ) -> Self {
        let providers = settings
            .into_iter()
            .map(|s| Arc::new(Provider::new(s, clock.clone(), saml)))
            .collect();
        Self {
            providers: std::sync::RwLock::new(providers),
            clock,
            saml: std::sync::RwLock::new(saml.cloned()),
        }
    }

    /// Every provider (enabled or not), in order.
    pub fn all(&self) -> Vec<Arc<Provider>> {
        self.providers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The first enabled SAML provider (served at `/sso/sso-saml/metadata`).
    pub fn default_saml(&self) -> Option<Arc<Provider>> {
        self.enabled()
            .into_iter()
            .find(|p| p.settings.kind == Kind::Saml)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.providers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|p| p.id() == id)
            .cloned()
    }

    pub fn enabled(&self) -> Vec<Arc<Provider>> {
        self.all()
            .into_iter()
            .filter(|p| p.settings.enabled)
            .collect()
    }

    /// Whether SAML providers can be built (the SP credentials are loaded).
    pub fn has_saml_context(&self) -> bool {
        self.saml
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    pub fn set_saml_context(&self, ctx: SamlContext) {
        *self
            .saml
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ctx);
    }

    /// A provider built like the registry's own, not (yet) registered: to check it before saving.
    pub fn build(&self, settings: ProviderSettings) -> Arc<Provider> {
        let saml = self
            .saml
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Arc::new(Provider::new(settings, self.clock.clone(), saml.as_ref()))
    }

    /// Add a provider, or replace the one with the same id. Returns the new entry.
    pub fn upsert(&self, settings: ProviderSettings) -> Arc<Provider> {
        self.put(self.build(settings))
    }

    /// Register a built provider (replacing the one with the same id).
    pub fn put(&self, p: Arc<Provider>) -> Arc<Provider> {
        let mut list = self
            .providers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match list.iter_mut().find(|x| x.id() == p.id()) {
            Some(slot) => *slot = p.clone(),
            None => list.push(p.clone()),
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_are_checked() {
        let raw: RawProvider = toml::from_str(
            "id = \"a\"\ntype = \"oauth2\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\nauthorization_endpoint = \"https://x/a\"\ntoken_endpoint = \"https://x/t\"\nuserinfo_endpoint = \"https://x/u\"\nsubject_claim = \"id\"\n",
        )
        .unwrap();
        let s = raw
            .validate(&[("S".to_string(), "x".to_string())].into_iter().collect())
            .unwrap();
        let id = identity_from_claims(&s, serde_json::json!({"id": 42, "groups": ["g"]})).unwrap();
        assert_eq!(id.subject, "42");
        assert_eq!(id.username, "42");
        assert!(identity_from_claims(&s, serde_json::json!({"name": "x"})).is_err());
        let e = identity_from_claims(&s, serde_json::json!({"id": "a\u{2028}b"})).unwrap_err();
        assert_eq!(e.code(), "invalid_claim_value");
    }
}
