//! OpenID Connect relying party (authorization code flow, OIDC Core 1.0 section 3.1).
//!
//! Checks on the way back, in order (the caller has already consumed the single-use `state`, bound to
//! the browser):
//! 1. RFC 9207: when the authorization response carries `iss`, it must equal the issuer; when the
//!    provider announces `authorization_response_iss_parameter_supported`, it must be present.
//! 2. The code is exchanged at the token endpoint with the PKCE verifier (RFC 7636) and client
//!    authentication (`client_secret_basic` or `client_secret_post`); redirects are not followed.
//! 3. ID token (section 3.1.3.7): the header `alg` must be in the provider's pinned list (never `none`,
//!    never HS* — so a token MACed with the public key is refused); the key is looked up by `kid` in the
//!    provider's JWKS only (never `jku`/`x5u`/`jwk` from the token), refetched at most once per cool-down on
//!    an unknown `kid`; the JWK's own `alg`/`use` must agree; the signature verifies; `iss` equals the
//!    issuer exactly; `aud` contains our client id; `azp` is required when there are several audiences and
//!    must be our client id when present; `exp`, `nbf` and `iat` hold with 60 s of skew; `sub` is present;
//!    `nonce` equals the one stored in the login flow.
//! 4. Optional userinfo (section 5.3): its `sub` must equal the ID token's `sub`; its claims are merged
//!    under the ID token's (ID token values win).
//!
//! Discovery (OpenID Connect Discovery 1.0 section 4.3): the document's `issuer` must equal the configured
//! issuer exactly; it is cached and refreshed after `discovery_refresh_seconds`. Discovery and JWKS fetches
//! go through [`SharedFetch`]: no lock is held while a request is out, concurrent logins share one request,
//! and a failure is remembered for a few seconds, so a hanging IdP costs each login at most one timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Mutex;

use super::client::{CLIENT_KEYS, ClientRaw, OAuthClient};
use super::http::Outbound;
use super::kinds::{KindConfig, KindSettings, OpenContext};
use super::login::{AuthorizeRequest, CallbackRoute, Login, RedirectLogin};
use super::settings::{ClaimDefaults, SecretVars, endpoint_url};
use super::shared_fetch::SharedFetch;
use super::{Callback, FlowSecrets, ProviderError};
use crate::clock::SharedClock;
use crate::crypto::constant_time_eq;
use crate::providers::settings::Refused;

const LEEWAY_SECONDS: u64 = 60;
/// At most one JWKS refetch for an unknown `kid` per this period.
const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// JWKS cache lifetime (an unknown `kid` refetches earlier, once per cool-down).
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

pub struct OidcProvider {
    id: String,
    s: Arc<OidcSettings>,
    http: Outbound,
    clock: SharedClock,
    meta: SharedFetch<Metadata>,
    jwks: SharedFetch<Arc<JwkSet>>,
    last_forced: Mutex<Option<Instant>>,
}

impl OidcProvider {
    pub fn new(id: &str, s: Arc<OidcSettings>, http: Outbound, clock: SharedClock) -> Self {
        Self {
            id: id.to_string(),
            s,
            http,
            clock,
            meta: SharedFetch::default(),
            jwks: SharedFetch::default(),
            last_forced: Mutex::new(None),
        }
    }

    fn issuer(&self) -> &str {
        &self.s.issuer
    }

    /// Provider metadata: discovered (cached) or from the configuration.
    pub async fn metadata(&self) -> Result<Metadata, ProviderError> {
        let refresh = match &self.s.endpoints {
            OidcEndpoints::Manual {
                authorization,
                token,
                jwks,
                userinfo,
            } => {
                return Ok(Metadata {
                    issuer: self.issuer().to_string(),
                    authorization_endpoint: authorization.clone(),
                    token_endpoint: token.clone(),
                    jwks_uri: jwks.clone(),
                    userinfo_endpoint: userinfo.clone(),
                    authorization_response_iss_parameter_supported: false,
                });
            }
            OidcEndpoints::Discover { refresh_seconds } => Duration::from_secs(*refresh_seconds),
        };
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer().trim_end_matches('/')
        );
        let (http, issuer) = (self.http.clone(), self.issuer().to_string());
        self.meta
            .get(refresh, false, || async move {
                let m: Metadata = http.json("discovery", http.client().get(&url)).await?;
                if m.issuer != issuer {
                    return Err(ProviderError::Discovery(format!(
                        "document issuer `{}` is not `{issuer}`",
                        m.issuer
                    )));
                }
                for u in [&m.authorization_endpoint, &m.token_endpoint, &m.jwks_uri]
                    .into_iter()
                    .chain(m.userinfo_endpoint.as_ref())
                {
                    endpoint_url(u).map_err(|e| ProviderError::Discovery(e.0))?;
                }
                Ok(m)
            })
            .await
    }

    fn fetch_jwks(
        &self,
        jwks_uri: &str,
    ) -> impl FnOnce()
        -> futures_util::future::BoxFuture<'static, Result<Arc<JwkSet>, ProviderError>>
    + use<> {
        let (http, uri) = (self.http.clone(), jwks_uri.to_string());
        move || {
            Box::pin(async move {
                let set: JwkSet = http.json("jwks", http.client().get(&uri)).await?;
                Ok(Arc::new(set))
            })
        }
    }

    /// Steps 1 to 4 of the module's list.
    async fn check_and_exchange(
        &self,
        secrets: &FlowSecrets,
        iss: Option<&str>,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Value, ProviderError> {
        let meta = self.metadata().await?;
        match iss {
            Some(i) if i != self.issuer() => return Err(ProviderError::IssuerMismatch),
            None if meta.authorization_response_iss_parameter_supported => {
                return Err(ProviderError::IssuerMissing);
            }
            _ => {}
        }
        let tokens = self
            .s
            .client
            .exchange_code(
                &self.http,
                &meta.token_endpoint,
                code,
                redirect_uri,
                &secrets.pkce_verifier,
            )
            .await?;
        let id_token = tokens.id_token.ok_or(ProviderError::NoIdToken)?;
        let mut claims = self
            .validate_id_token(&id_token, &meta.jwks_uri, &secrets.nonce)
            .await?;
        if self.s.use_userinfo {
            let endpoint = meta
                .userinfo_endpoint
                .as_deref()
                .ok_or_else(|| ProviderError::Userinfo("no userinfo endpoint".into()))?;
            let access = tokens.access_token.ok_or(ProviderError::NoAccessToken)?;
            let info: Value = self
                .http
                .json(
                    "userinfo",
                    self.http.client().get(endpoint).bearer_auth(access),
                )
                .await?;
            if info.get("sub") != claims.get("sub") {
                return Err(ProviderError::Userinfo(
                    "`sub` differs from the ID token's".into(),
                ));
            }
            if let (Some(target), Value::Object(extra)) = (claims.as_object_mut(), info) {
                for (k, v) in extra {
                    target.entry(k).or_insert(v);
                }
            }
        }
        Ok(claims)
    }

    async fn jwk_for(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Jwk, ProviderError> {
        let set = self
            .jwks
            .get(JWKS_MAX_AGE, false, self.fetch_jwks(jwks_uri))
            .await?;
        if let Some(k) = find_key(&set, kid, alg) {
            return Ok(k);
        }
        let unknown = || {
            ProviderError::IdToken(format!(
                "no key `{}` in the provider's JWKS",
                kid.unwrap_or("-")
            ))
        };
        let cooling = {
            let mut last = self.last_forced.lock().unwrap_or_else(|p| p.into_inner());
            let cooling = last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_COOLDOWN);
            if !cooling {
                *last = Some(Instant::now());
            }
            cooling
        };
        if cooling {
            // Another login's refetch may be under way: its key set, else the error.
            return self
                .jwks
                .in_flight()
                .await
                .and_then(|set| find_key(&set, kid, alg))
                .ok_or_else(unknown);
        }
        tracing::info!(provider = %self.id, kid = ?kid.unwrap_or("-"), "unknown kid; refetching the provider's JWKS");
        let set = self
            .jwks
            .get(JWKS_MAX_AGE, true, self.fetch_jwks(jwks_uri))
            .await?;
        find_key(&set, kid, alg).ok_or_else(unknown)
    }

    async fn validate_id_token(
        &self,
        token: &str,
        jwks_uri: &str,
        nonce: &str,
    ) -> Result<Value, ProviderError> {
        let bad = |m: String| ProviderError::IdToken(m);
        sts_client::check_jws_header(token).map_err(bad)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| bad(format!("malformed or unsupported header: {e}")))?;
        let alg_name = format!("{:?}", header.alg);
        if !self.s.id_token_algs.contains(&alg_name) {
            return Err(bad(format!(
                "algorithm {alg_name} is not allowed for this provider"
            )));
        }
        let jwk = self
            .jwk_for(jwks_uri, header.kid.as_deref(), header.alg)
            .await?;
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|e| bad(format!("unusable provider key: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_issuer(&[self.issuer()]);
        v.set_audience(&[&self.s.client.client_id]);
        v.leeway = LEEWAY_SECONDS;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| bad(e.to_string()))?;
        let claims = data.claims;
        let auds: Vec<&str> = match &claims["aud"] {
            Value::String(a) => vec![a.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != self.s.client.client_id => {
                return Err(bad("`azp` is not our client id".into()));
            }
            None if auds.len() > 1 => return Err(bad("several audiences and no `azp`".into())),
            _ => {}
        }
        let now = self.clock.now();
        match claims.get("iat").and_then(Value::as_i64) {
            Some(iat) if iat <= now + LEEWAY_SECONDS as i64 => {}
            _ => return Err(bad("`iat` is missing or in the future".into())),
        }
        match claims.get("nonce").and_then(Value::as_str) {
            Some(n) if constant_time_eq(n.as_bytes(), nonce.as_bytes()) => {}
            Some(_) => return Err(bad("`nonce` does not match this login".into())),
            None => return Err(bad("`nonce` is missing".into())),
        }
        Ok(claims)
    }
}

/// Find the key for `kid` (or the only suitable key when the token has no kid); its `alg` and `use`, when
/// present, must agree with the token.
fn find_key(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    let suitable = |k: &&Jwk| {
        let alg_ok = k
            .common
            .key_algorithm
            .is_none_or(|ka| format!("{ka:?}") == format!("{alg:?}"));
        let use_ok = !matches!(
            k.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        );
        alg_ok && use_ok
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(suitable)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None => {
            let candidates: Vec<&Jwk> = set.keys.iter().filter(suitable).collect();
            (candidates.len() == 1).then(|| candidates[0].clone())
        }
    }
}

const ALLOWED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

/// `type = "oidc"`: the keys an OpenID Connect provider reads besides the common ones.
#[derive(Debug, Clone, Deserialize)]
pub struct OidcConfig {
    #[serde(flatten)]
    client: ClientRaw,
    issuer: Option<String>,
    discovery: Option<bool>,
    discovery_refresh_seconds: Option<u64>,
    id_token_algs: Option<Vec<String>>,
    use_userinfo: Option<bool>,
    jwks_uri: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
}

/// Endpoints of an OIDC provider: discovered, or set by hand.
#[derive(Debug, Clone, serde::Serialize)]
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

/// Validated OIDC settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OidcSettings {
    #[serde(flatten)]
    pub client: OAuthClient,
    /// The exact configured string: discovery `issuer` and ID token `iss` are compared to it byte for byte.
    pub issuer: String,
    pub endpoints: OidcEndpoints,
    pub id_token_algs: Vec<String>,
    pub use_userinfo: bool,
}

impl KindConfig for OidcConfig {
    const TYPE: &'static str = "oidc";
    const SHARED_KEYS: &'static [&'static str] = CLIENT_KEYS;
    const KEYS: &'static [&'static str] = &[
        "issuer",
        "discovery",
        "discovery_refresh_seconds",
        "id_token_algs",
        "use_userinfo",
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
    ];
    const CLAIMS: ClaimDefaults = ["sub", "preferred_username", "email", "name", "groups"];

    fn validate(self, env: &SecretVars) -> Result<Arc<dyn KindSettings>, Refused> {
        let mut client = self
            .client
            .validate(env, &["openid", "email", "profile"], true)?;
        if !client.scopes.iter().any(|s| s == "openid") {
            client.scopes.insert(0, "openid".into());
        }
        let check_url = |key: &str, v: &Option<String>| -> Result<Option<String>, Refused> {
            v.as_ref()
                .map(|u| endpoint_url(u).map_err(|m| Refused(format!("`{key}`: {m}"))))
                .transpose()
        };
        check_url("issuer", &self.issuer)?.ok_or("`issuer` is required")?;
        let issuer = self.issuer.clone().unwrap_or_default();
        let endpoints = if self.discovery.unwrap_or(true) {
            if self.authorization_endpoint.is_some()
                || self.token_endpoint.is_some()
                || self.jwks_uri.is_some()
            {
                return Err("key `authorization_endpoint/token_endpoint/jwks_uri (with discovery = true)` does not apply to type oidc".into());
            }
            let refresh_seconds = self.discovery_refresh_seconds.unwrap_or(3600);
            if !(60..=86_400).contains(&refresh_seconds) {
                return Err("`discovery_refresh_seconds` must be 60..=86400".into());
            }
            OidcEndpoints::Discover { refresh_seconds }
        } else {
            let need = |k: &str, v: &Option<String>| {
                check_url(k, v)?
                    .ok_or_else(|| Refused(format!("`{k}` is required when discovery = false")))
            };
            OidcEndpoints::Manual {
                authorization: need("authorization_endpoint", &self.authorization_endpoint)?,
                token: need("token_endpoint", &self.token_endpoint)?,
                jwks: need("jwks_uri", &self.jwks_uri)?,
                userinfo: check_url("userinfo_endpoint", &self.userinfo_endpoint)?,
            }
        };
        let algs = self.id_token_algs.unwrap_or_else(|| vec!["RS256".into()]);
        if algs.is_empty() || algs.iter().any(|a| !ALLOWED_ALGS.contains(&a.as_str())) {
            return Err(Refused(format!(
                "`id_token_algs` must be a non-empty subset of {ALLOWED_ALGS:?} (never none or HS*)"
            )));
        }
        Ok(Arc::new(OidcSettings {
            client,
            issuer,
            endpoints,
            id_token_algs: algs,
            use_userinfo: self.use_userinfo.unwrap_or(false),
        }))
    }
}

impl KindSettings for OidcSettings {
    fn type_name(&self) -> &'static str {
        OidcConfig::TYPE
    }
    fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Login, Refused> {
        Ok(Login::Redirect(Arc::new(OidcProvider::new(
            ctx.id,
            Arc::new(self.clone()),
            ctx.http.clone(),
            ctx.clock.clone(),
        ))))
    }
    fn endpoints(&self, base: &str, _id: &str) -> (String, Option<String>) {
        (format!("{base}/sso/sso-openid/openid-login"), None)
    }
    fn secret_destination(&self) -> Option<Value> {
        Some(serde_json::json!({
            "type": OidcConfig::TYPE,
            "client_id": self.client.client_id,
            "client_auth": self.client.client_auth,
            "issuer": self.issuer,
            "endpoints": self.endpoints,
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl RedirectLogin for OidcProvider {
    fn callback(&self) -> CallbackRoute {
        CallbackRoute::OpenId
    }
    fn authorization_url<'a>(
        &'a self,
        req: AuthorizeRequest<'a>,
        secrets: &'a FlowSecrets,
    ) -> futures_util::future::BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let endpoint = self.metadata().await?.authorization_endpoint;
            self.s
                .client
                .authorization_url(&endpoint, req, secrets, true)
        })
    }
    fn complete<'a>(
        &'a self,
        secrets: &'a FlowSecrets,
        cb: &'a Callback,
        redirect_uri: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async move {
            let code = super::client::code_of(cb)?;
            self.check_and_exchange(secrets, cb.iss.as_deref(), code, redirect_uri)
                .await
        })
    }
}
