//! Identity providers the STS delegates login to. Each kind turns what the user does (a browser round
//! trip, a form, a trusted request) into one [`Identity`]; roles are then extracted and mapped by
//! [`crate::roles`] the same way for every kind.
//!
//! - [`kinds`]: the list of kinds and the `[[providers]]` entry as one `#[serde(tag = "type")]` enum;
//!   [`settings`]: the keys every kind shares; validation needs no network.
//! - [`login`]: the capabilities a kind offers (redirect, SAML POST, credentials form, request identity).
//! - [`oidc`]: OpenID Connect (discovery, code + PKCE + nonce, ID token validation, optional userinfo).
//! - [`oauth`]: plain OAuth 2.0 (code + PKCE, user-info JSON with configurable claim paths).
//! - [`saml`]: SAML 2.0 Web Browser SSO (signed responses, encrypted assertions, replay cache).
//! - [`ldap`]: LDAP / Active Directory (our own form; direct bind or search-then-bind; groups).
//! - [`proxy`]: a credential proxy (our own form; the credentials forwarded to a service that judges them).
//! - [`header`]: a trusted gateway's identity headers, believed only from the gateway.
//! - [`identity`]: claims to [`Identity`]; [`registry`]: the providers by id; [`metadata`]: IdP metadata
//!   fetched from a URL and refreshed; [`managed`]: providers added in the admin console.
//! - [`http`]: outbound HTTP with timeouts, no redirects and a size limit.

pub mod client;
pub mod header;
pub mod http;
pub mod identity;
pub mod kinds;
pub mod ldap;
pub mod login;
pub mod managed;
pub mod metadata;
pub mod oauth;
pub mod oidc;
pub mod proxy;
pub mod registry;
pub mod saml;
pub mod saml_xml;
pub mod settings;
pub mod shared_fetch;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::clock::SharedClock;
use crate::providers::settings::Refused;
pub use kinds::ProviderConfig;
pub use login::{AuthorizeRequest, CallbackRoute, Login};
pub use registry::Registry;
pub use settings::{ProviderSettings, SettingsError};

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
    /// A username and password the identity source refused (or malformed, or empty): the same answer
    /// for an unknown user and a wrong password.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The directory (or credentials upstream) failed: a reason code and the detail for the log.
    #[error("the directory could not check the sign-in: {1}")]
    Directory(&'static str, String),
    /// Identity headers refused: not from the gateway, without its secret, or malformed.
    #[error("the gateway's identity was refused: {1}")]
    Gateway(&'static str, String),
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
            ProviderError::InvalidCredentials => "invalid_credentials",
            ProviderError::Directory(code, _) => code,
            ProviderError::Gateway(code, _) => code,
            ProviderError::Internal(_) => "internal_error",
        }
    }
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

/// One configured identity provider: its settings and, when it could be opened, its login capability.
pub struct Provider {
    pub settings: Arc<ProviderSettings>,
    /// The capability, or why this provider cannot be used in this process (e.g. SAML without SP
    /// credentials); a configuration that validated but cannot be opened is refused at login, not at start.
    login: Result<Login, Refused>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.settings.id)
            .field("kind", &self.settings.kind.type_name())
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
        let login = settings.kind.open(&kinds::OpenContext {
            id: &settings.id,
            connect_timeout_ms: settings.connect_timeout_ms,
            timeout_ms: settings.timeout_ms,
            clock,
            http: http::Outbound::new(
                &settings.id,
                settings.connect_timeout_ms,
                settings.timeout_ms,
            ),
            saml: saml_ctx,
        });
        Self { settings, login }
    }

    pub fn id(&self) -> &str {
        &self.settings.id
    }

    /// The login capability, or `provider_unusable` with the reason.
    pub fn login(&self) -> Result<&Login, ProviderError> {
        self.login
            .as_ref()
            .map_err(|why| ProviderError::Unusable(why.0.clone()))
    }

    /// The SAML capability (`provider_unusable` for other kinds or when it could not be opened).
    pub fn saml(&self) -> Result<&dyn login::SamlPost, ProviderError> {
        match self.login()? {
            Login::SamlPost(p) => Ok(p.as_ref()),
            _ => Err(ProviderError::Unusable("not a SAML provider".into())),
        }
    }

    /// Complete a redirect login from its callback (state already checked by the caller).
    pub async fn complete(
        &self,
        secrets: &FlowSecrets,
        cb: &Callback,
        redirect_uri: &str,
    ) -> Result<Identity, ProviderError> {
        let Login::Redirect(r) = self.login()? else {
            return Err(ProviderError::Unusable(
                "not a redirect-based provider".into(),
            ));
        };
        let claims = r.complete(secrets, cb, redirect_uri).await?;
        identity::identity_from_claims(&self.settings, claims)
    }

    /// The whole ACS check of a SAMLResponse, in order: every check of [`login::SamlPost::validate`] (on
    /// the blocking pool: XML signature verification is CPU work), the identity built from the verified
    /// values, then the single use of the assertion ID: it is kept in the replay cache until the
    /// assertion could no longer be valid anyway (its expiry or now, plus the clock skew and a minute), and
    /// an ID already there is `saml_replay`.
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
            keep_until.max(now) + self.saml()?.clock_skew() + 60,
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
        let p = self.saml()?;
        // With a login flow, its request ID is the only acceptable InResponseTo; without one the
        // response is unsolicited (refused unless the provider allows IdP-initiated login).
        let request_id = match secrets {
            Some(s) => Some(s.saml_request_id.as_deref().ok_or_else(|| {
                ProviderError::Saml("saml_invalid", "no request ID in this login flow".into())
            })?),
            None => None,
        };
        let a = p.validate(saml_response, request_id)?;
        Ok((
            identity::identity_from_claims(&self.settings, a.claims)?,
            a.assertion_id,
            a.keep_until,
        ))
    }

    /// Whether unsolicited responses are accepted for this provider.
    pub fn allows_idp_initiated(&self) -> bool {
        self.saml().is_ok_and(|p| p.allows_idp_initiated())
    }
}
