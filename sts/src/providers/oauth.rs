//! Plain OAuth 2.0 provider (GitHub style): authorization code (+ PKCE when the provider supports it,
//! on by default), token endpoint, then a JSON user-info endpoint read with the access token. The identity
//! comes from the user-info JSON through the configured claim paths; no ID token is used.
//!
//! Checks: the single-use `state` bound to the browser (caller); RFC 9207 `iss` is not defined for plain
//! OAuth providers and is ignored; the token response must carry an access token; the user-info answer
//! must be a JSON object within the size limit, fetched with the provider's timeouts and no redirects.

use std::sync::Arc;

use serde_json::Value;

use super::http::Outbound;
use super::oidc::exchange_code;
use super::settings::ProviderSettings;
use super::{FlowSecrets, ProviderError};

pub struct OAuthProvider {
    s: Arc<ProviderSettings>,
    http: Outbound,
}

impl OAuthProvider {
    pub fn new(s: Arc<ProviderSettings>, http: Outbound) -> Self {
        Self { s, http }
    }

    pub async fn complete(
        &self,
        secrets: &FlowSecrets,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Value, ProviderError> {
        let token_endpoint = self
            .s
            .token_endpoint
            .as_deref()
            .ok_or_else(|| ProviderError::Unusable("no token_endpoint".into()))?;
        let tokens = exchange_code(
            &self.http,
            &self.s,
            token_endpoint,
            code,
            redirect_uri,
            &secrets.pkce_verifier,
        )
        .await?;
        let access = tokens.access_token.ok_or(ProviderError::NoAccessToken)?;
        let endpoint = self
            .s
            .userinfo_endpoint
            .as_deref()
            .ok_or_else(|| ProviderError::Unusable("no userinfo_endpoint".into()))?;
        let info: Value = self
            .http
            .json(
                self.http
                    .client()
                    .get(endpoint)
                    .bearer_auth(access)
                    .header("Accept", "application/json"),
            )
            .await?;
        if !info.is_object() {
            return Err(ProviderError::Userinfo("not a JSON object".into()));
        }
        Ok(info)
    }
}
