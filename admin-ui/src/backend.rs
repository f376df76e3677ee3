//! What the admin console needs from the server: the `AdminBackend` trait (implemented by `sts`, so this
//! crate does not depend on it) and the plain data it exchanges. Every state-changing method takes the
//! actor and writes the audit log itself, in the same step as the change.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// A failure: `Invalid` is the caller's fault (shown to them, nothing changed), `NotFound` likewise;
/// `Internal` is logged and shown as "internal error".
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state (an id that exists, an operation the resource does
    /// not support); nothing changed.
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Clone)]
pub struct NewAdminSession {
    pub id_hash: String,
    pub username: String,
    pub via: &'static str,
    pub csrf: String,
    pub now: i64,
    pub idle_expires_at: i64,
    pub expires_at: i64,
    /// Signed in through single sign-on: the SSO session's `sid`; the admin session ends with it.
    pub sso_sid: Option<String>,
    /// Details of the `admin.login` audit entry written with the session (e.g. `via`, `ip`).
    pub audit_details: serde_json::Value,
}

/// An administrator signed in through single sign-on.
#[derive(Debug, Clone)]
pub struct SsoAdmin {
    /// `sso:<sub>`.
    pub name: String,
    pub sid: String,
    /// The SSO session's absolute end.
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct AdminSession {
    pub username: String,
    pub csrf: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub source: String,
    pub state: String,
    pub created_at: i64,
    pub retire_at: Option<i64>,
}

/// The SAML service provider's key pair and certificate (apart from the token-signing keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamlSpInfo {
    /// SHA-256 of the certificate (DER), hex.
    pub fingerprint: String,
    pub subject: String,
    pub not_after: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SsoSessionInfo {
    pub sid: String,
    pub subject: String,
    pub provider: String,
    pub username: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub applications: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientInfo {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub client_type: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
    pub roles: Vec<String>,
    pub auth_method: String,
    /// Seconds; None: `tokens.lifetime_seconds`.
    pub access_token_lifetime_seconds: Option<u64>,
    pub refresh_token_lifetime_seconds: u64,
    /// Identity providers its users may log in with; empty: any.
    pub providers: Vec<String>,
    pub enabled: bool,
    pub secret_set: bool,
    /// "config" (read-only here) or "admin".
    pub managed_by: String,
}

/// A new application as entered in the console or the API; validated by the server like `[[clients]]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// "confidential" or "public".
    #[serde(rename = "type")]
    pub client_type: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Default: authorization_code + refresh_token.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub audience: Option<Vec<String>>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Seconds, 1..=`tokens.max_lifetime_seconds`, or 0 for the default (`tokens.lifetime_seconds`);
    /// absent: the default (an update keeps the current one).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub access_token_lifetime_seconds: Option<i64>,
    /// Seconds, 60..=2592000, or 0 for the default (28800); absent: the default (an update keeps the
    /// current one).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub refresh_token_lifetime_seconds: Option<i64>,
    /// Identity providers its users may log in with, empty for any; absent: any (an update keeps the
    /// current list).
    #[serde(default)]
    pub providers: Option<Vec<String>>,
}

/// A JSON number of seconds: JSON Schema's `integer` includes `362.0`, so a whole float is accepted too.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(Some(f as i64)),
        Some(_) => Err(serde::de::Error::custom(
            "expected a whole number of seconds",
        )),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiTokenInfo {
    pub id: String,
    pub name: String,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Dashboard {
    pub database_ok: bool,
    pub active_kid: Option<String>,
    pub active_key_source: Option<String>,
    pub active_key_created_at: Option<i64>,
    pub providers: i64,
    pub clients: i64,
    pub sso_sessions: i64,
    /// Last login per provider: (provider, subject, outcome, at).
    pub recent_logins: Vec<(String, Option<String>, String, i64)>,
    /// The latest sign-in outcomes, successes and failures: (provider, subject, outcome, at).
    pub recent_events: Vec<(String, Option<String>, String, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: String,
    pub enabled: bool,
    /// "config" (read-only here) or "admin".
    pub managed_by: String,
    /// Console providers: the settings as entered (TOML, no secret).
    pub source: Option<String>,
    /// What to register at the IdP: the redirect URI (OIDC, OAuth 2.0) or the ACS URL (SAML).
    pub callback_url: String,
    /// SAML: our SP metadata for this provider.
    pub sp_metadata_url: Option<String>,
    pub last_outcome: Option<String>,
    pub last_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastLogin {
    pub subject: Option<String>,
    pub outcome: String,
    pub at: i64,
    pub claims: serde_json::Value,
    pub external_values: Vec<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProviderDetail {
    pub info: ProviderInfo,
    /// The validated settings (no secret).
    pub settings: serde_json::Value,
    pub last_login: Option<LastLogin>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolePreview {
    pub external_values: Vec<String>,
    pub roles: Vec<String>,
}

/// One sign-in limit: at most `max` attempts under `key` within `window` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLimit {
    pub key: String,
    pub max: i64,
    pub window: i64,
}

/// The server side of the admin console: one trait per resource, so each can be implemented (and read)
/// on its own; anything that implements them all is an `AdminBackend`.
pub trait AdminBackend:
    ConsoleAdmin + KeysAdmin + SessionsAdmin + ApplicationsAdmin + ProvidersAdmin + TransferAdmin
{
}

impl<T> AdminBackend for T where
    T: ConsoleAdmin
        + KeysAdmin
        + SessionsAdmin
        + ApplicationsAdmin
        + ProvidersAdmin
        + TransferAdmin
{
}

/// The console itself: the clock, cookies, administrators' sign-in (password or single sign-on) and
/// sessions, API-token checks, audit entries that are not part of a change, the dashboard.
pub trait ConsoleAdmin: Send + Sync + 'static {
    fn now(&self) -> i64;
    /// `https://` public URL: cookies get `Secure`.
    fn secure_cookies(&self) -> bool;

    /// The argon2id hash of an administrator's password, if the administrator exists and has one.
    fn admin_password_hash(&self, username: &str) -> BoxFut<'_, Option<String>>;
    /// Store a new admin session and its `admin.login` audit entry (actor `admin:<username>`) in one
    /// transaction.
    fn insert_admin_session(&self, s: NewAdminSession) -> BoxFut<'_, ()>;
    /// A live admin session (idle deadline pushed to `idle_until`, capped by the absolute one).
    fn admin_session(&self, id_hash: &str, idle_until: i64) -> BoxFut<'_, Option<AdminSession>>;
    /// End an admin session; with `logout_actor`, its `admin.logout` audit entry commits with it.
    fn delete_admin_session(&self, id_hash: &str, logout_actor: Option<&str>) -> BoxFut<'_, ()>;
    /// The API token's name when it is valid (not revoked); records its use.
    fn api_token(&self, token_hash: &str) -> BoxFut<'_, Option<String>>;
    /// Write an audit entry that is not part of a change (sign-ins, refusals).
    fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> BoxFut<'_, ()>;

    /// Count a password sign-in attempt, in the database every replica shares: when one of `limits`
    /// already holds `max` attempts within its window, nothing is recorded and the answer is
    /// `Err(seconds to wait)`; otherwise the attempt is recorded under every key, in one transaction (so
    /// concurrent attempts on any replica cannot all pass the check).
    fn record_sign_in_attempt(
        &self,
        limits: Vec<AttemptLimit>,
        now: i64,
    ) -> BoxFut<'_, Result<(), i64>>;
    /// After a successful sign-in: forget the attempts under `forget` and give one back under `give_back`.
    fn sign_in_succeeded(&self, forget: String, give_back: String) -> BoxFut<'_, ()>;

    fn dashboard(&self) -> BoxFut<'_, Dashboard>;
    /// Whether holders of a configured admin role may sign in through single sign-on.
    fn sso_enabled(&self) -> bool;
    /// The admin name (`sso:<sub>`) for the SSO session with this cookie value, when it is live and holds an
    /// admin role; `Err(Invalid)` names why not.
    fn sso_admin(&self, sso_session_cookie: &str) -> BoxFut<'_, SsoAdmin>;
}

/// Token-signing keys and the SAML SP key.
pub trait KeysAdmin: Send + Sync + 'static {
    fn keys(&self) -> BoxFut<'_, Vec<KeyInfo>>;
    /// Generate a new active signing key; returns its kid.
    fn regenerate_key(&self, actor: &str) -> BoxFut<'_, String>;
    /// Stage a new key as the next one (published now, signing after the JWKS caches have turned over);
    /// returns its kid and when it becomes active. `Conflict` when one is staged already.
    fn stage_next_key(&self, actor: &str) -> BoxFut<'_, (String, i64)>;
    /// Import a PKCS#12 keystore (same checks as the CLI); returns the new active kid.
    fn import_keystore(&self, actor: &str, data: Vec<u8>, password: String) -> BoxFut<'_, String>;
    /// The SAML SP credentials, if created (they are made with the first SAML provider).
    fn saml_sp(&self) -> BoxFut<'_, Option<SamlSpInfo>>;
    /// Replace the SAML SP key and certificate with a PKCS#12 keystore (same checks as the CLI); SAML
    /// providers use it at once. Returns the new certificate fingerprint.
    fn import_saml_sp(&self, actor: &str, data: Vec<u8>, password: String) -> BoxFut<'_, String>;
}

/// Users' SSO sessions, the audit log and API tokens.
pub trait SessionsAdmin: Send + Sync + 'static {
    fn sso_sessions(&self) -> BoxFut<'_, Vec<SsoSessionInfo>>;
    /// End an SSO session and revoke its refresh tokens.
    fn revoke_sso_session(&self, actor: &str, sid: &str) -> BoxFut<'_, ()>;
    fn audit_log(&self, limit: i64, offset: i64) -> BoxFut<'_, (Vec<AuditEntry>, i64)>;
    fn api_tokens(&self) -> BoxFut<'_, Vec<ApiTokenInfo>>;
    /// Returns (id, token): the token is shown once and stored hashed.
    fn create_api_token(&self, actor: &str, name: &str) -> BoxFut<'_, (String, String)>;
    fn revoke_api_token(&self, actor: &str, id: &str) -> BoxFut<'_, ()>;
}

/// Registered applications (OAuth clients).
pub trait ApplicationsAdmin: Send + Sync + 'static {
    fn clients(&self) -> BoxFut<'_, Vec<ClientInfo>>;
    /// Register an application; returns it and, for a confidential client with a secret, the secret
    /// (shown once).
    fn create_client(&self, actor: &str, c: NewClient) -> BoxFut<'_, (ClientInfo, Option<String>)>;
    /// Replace an admin-managed application's settings (same id and type; its secret is kept).
    fn update_client(&self, actor: &str, id: &str, c: NewClient) -> BoxFut<'_, ClientInfo>;
    /// A new secret (shown once); the previous one stops working.
    fn rotate_client_secret(&self, actor: &str, id: &str) -> BoxFut<'_, String>;
    fn set_client_enabled(&self, actor: &str, id: &str, enabled: bool) -> BoxFut<'_, ()>;
}

/// Identity providers added in the console.
pub trait ProvidersAdmin: Send + Sync + 'static {
    fn providers(&self) -> BoxFut<'_, Vec<ProviderInfo>>;
    fn provider(&self, id: &str) -> BoxFut<'_, ProviderDetail>;
    /// Create (`existing` None) or replace a console provider from its TOML settings; `secret` None or
    /// empty keeps the stored one when editing. Validated like `[[providers]]`; active at once.
    fn save_provider(
        &self,
        actor: &str,
        existing: Option<&str>,
        source: String,
        secret: Option<String>,
    ) -> BoxFut<'_, ProviderInfo>;
    fn set_provider_enabled(&self, actor: &str, id: &str, enabled: bool) -> BoxFut<'_, ()>;
    /// What the provider's role mapping makes of sample claims (nothing is stored).
    fn preview_roles(&self, id: &str, claims: serde_json::Value) -> BoxFut<'_, RolePreview>;
}

/// Export and import of the whole configuration.
pub trait TransferAdmin: Send + Sync + 'static {
    /// The whole configuration as one versioned JSON document (no private keys; secret hashes only when
    /// asked).
    fn export(&self, actor: &str, with_secrets: bool) -> BoxFut<'_, serde_json::Value>;
    /// Validate a document completely, then apply it in one transaction; returns a summary.
    fn import(&self, actor: &str, doc: serde_json::Value) -> BoxFut<'_, serde_json::Value>;
}
