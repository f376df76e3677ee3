//! Plain OAuth 2.0 provider (GitHub style): authorization code (+ PKCE when the provider supports it,
//! on by default), token endpoint, then a JSON user-info endpoint read with the access token. The identity
//! comes from the user-info JSON through the configured claim paths; no ID token is used.
//!
//! Checks, in order: the single-use `state` bound to the browser (the login flow, before this provider is
//! called); RFC 9207 `iss` is not defined for plain OAuth providers and is ignored; the callback must
//! carry a code; the token response must carry an access token; the user-info answer must be a JSON
//! object within the size limit, fetched with the provider's timeouts and no redirects; so must each
//! `userinfo_extra` document (any JSON), read with the same access token and put into the claims under its
//! name, never replacing a claim of the user-info answer.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{CLIENT_KEYS, ClientRaw, OAuthClient, code_of};
use super::http::Outbound;
use super::kinds::{KindConfig, KindSettings, OpenContext};
use super::login::{AuthorizeRequest, CallbackRoute, Login, RedirectLogin};
use super::settings::{ClaimDefaults, SecretVars, endpoint_url};
use super::{Callback, FlowSecrets, ProviderError};
use crate::providers::settings::Refused;

/// `type = "oauth2"`: the keys a plain OAuth 2.0 provider reads besides the common ones.
#[derive(Debug, Clone, Deserialize)]
pub struct OAuth2Config {
    #[serde(flatten)]
    client: ClientRaw,
    pkce: Option<bool>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
    userinfo_extra: Option<std::collections::BTreeMap<String, String>>,
}

/// Validated OAuth 2.0 settings.
#[derive(Debug, Clone, Serialize)]
pub struct OAuth2Settings {
    #[serde(flatten)]
    pub client: OAuthClient,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    /// More JSON documents read with the access token, each put into the claims under its name (GitHub's
    /// organisations and teams): name → URL.
    pub userinfo_extra: std::collections::BTreeMap<String, String>,
}

impl KindConfig for OAuth2Config {
    const TYPE: &'static str = "oauth2";
    const SHARED_KEYS: &'static [&'static str] = CLIENT_KEYS;
    const KEYS: &'static [&'static str] = &[
        "pkce",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "userinfo_extra",
    ];
    const CLAIMS: ClaimDefaults = ["sub", "preferred_username", "email", "name", "groups"];

    fn validate(self, env: &SecretVars) -> Result<Arc<dyn KindSettings>, Refused> {
        let client = self.client.validate(env, &[], self.pkce.unwrap_or(true))?;
        let need = |k: &str, v: Option<String>| -> Result<String, Refused> {
            let v = v.ok_or_else(|| Refused(format!("`{k}` is required for type oauth2")))?;
            endpoint_url(&v).map_err(|m| Refused(format!("`{k}`: {m}")))
        };
        let mut userinfo_extra = std::collections::BTreeMap::new();
        let extra = self.userinfo_extra.unwrap_or_default();
        if extra.len() > 4 {
            return Err("`userinfo_extra`: at most 4 documents".into());
        }
        for (name, url) in extra {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(Refused(format!(
                    "`userinfo_extra.{name}`: names are 1-64 of a-z, 0-9 and _"
                )));
            }
            let url =
                endpoint_url(&url).map_err(|m| Refused(format!("`userinfo_extra.{name}`: {m}")))?;
            userinfo_extra.insert(name, url);
        }
        Ok(Arc::new(OAuth2Settings {
            client,
            authorization_endpoint: need("authorization_endpoint", self.authorization_endpoint)?,
            token_endpoint: need("token_endpoint", self.token_endpoint)?,
            userinfo_endpoint: need("userinfo_endpoint", self.userinfo_endpoint)?,
            userinfo_extra,
        }))
    }
}

impl KindSettings for OAuth2Settings {
    fn type_name(&self) -> &'static str {
        OAuth2Config::TYPE
    }
    fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Login, Refused> {
        Ok(Login::Redirect(Arc::new(OAuthProvider {
            s: Arc::new(self.clone()),
            http: ctx.http.clone(),
        })))
    }
    fn endpoints(&self, base: &str, _id: &str) -> (String, Option<String>) {
        (format!("{base}/sso/sso-oauth/oauth-login"), None)
    }
    fn secret_destination(&self) -> Option<Value> {
        Some(serde_json::json!({
            "type": OAuth2Config::TYPE,
            "client_id": self.client.client_id,
            "client_auth": self.client.client_auth,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": self.token_endpoint,
            "userinfo_endpoint": self.userinfo_endpoint,
        }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub struct OAuthProvider {
    s: Arc<OAuth2Settings>,
    http: Outbound,
}

impl OAuthProvider {
    async fn exchange(
        &self,
        secrets: &FlowSecrets,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Value, ProviderError> {
        let tokens = self
            .s
            .client
            .exchange_code(
                &self.http,
                &self.s.token_endpoint,
                code,
                redirect_uri,
                &secrets.pkce_verifier,
            )
            .await?;
        let access = tokens.access_token.ok_or(ProviderError::NoAccessToken)?;
        let mut info: Value = self
            .http
            .json(
                "userinfo",
                self.http
                    .client()
                    .get(&self.s.userinfo_endpoint)
                    .bearer_auth(&access)
                    .header("Accept", "application/json"),
            )
            .await?;
        let Some(claims) = info.as_object_mut() else {
            return Err(ProviderError::Userinfo("not a JSON object".into()));
        };
        // Each extra document under its name; a name the user-info answer already has is kept as it is.
        for (name, url) in &self.s.userinfo_extra {
            let doc: Value = self
                .http
                .json(
                    "userinfo",
                    self.http
                        .client()
                        .get(url)
                        .bearer_auth(&access)
                        .header("Accept", "application/json"),
                )
                .await?;
            claims.entry(name.clone()).or_insert(doc);
        }
        Ok(info)
    }
}

impl RedirectLogin for OAuthProvider {
    fn callback(&self) -> CallbackRoute {
        CallbackRoute::OAuth
    }
    fn authorization_url<'a>(
        &'a self,
        req: AuthorizeRequest<'a>,
        secrets: &'a FlowSecrets,
    ) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            self.s
                .client
                .authorization_url(&self.s.authorization_endpoint, req, secrets, false)
        })
    }
    fn complete<'a>(
        &'a self,
        secrets: &'a FlowSecrets,
        cb: &'a Callback,
        redirect_uri: &'a str,
    ) -> BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async move { self.exchange(secrets, code_of(cb)?, redirect_uri).await })
    }
}
