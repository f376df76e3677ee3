//! The OAuth 2.0 client part that OIDC and plain OAuth 2.0 providers share: client id and secret, client
//! authentication, scopes, extra authorization parameters, PKCE; the authorization URL and the code
//! exchange at the token endpoint (RFC 6749 section 4.1 with RFC 7636 PKCE).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::Outbound;
use super::login::AuthorizeRequest;
use super::settings::SecretVars;
use super::{FlowSecrets, ProviderError};
use crate::config::{Secret, strip_newline};
use crate::providers::settings::Refused;

/// The client keys of a `[[providers]]` entry.
pub const CLIENT_KEYS: &[&str] = &[
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "client_auth",
    "scopes",
    "auth_params",
];

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

#[derive(Debug, Clone, Deserialize)]
pub struct ClientRaw {
    pub client_id: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub client_auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub auth_params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ClientAuth {
    #[serde(rename = "client_secret_basic")]
    Basic,
    #[serde(rename = "client_secret_post")]
    Post,
}

/// Our client registration at the IdP.
#[derive(Debug, Clone, Serialize)]
pub struct OAuthClient {
    pub client_id: String,
    #[serde(skip)]
    pub client_secret: Secret,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub auth_params: BTreeMap<String, String>,
    pub pkce: bool,
}

impl ClientRaw {
    /// `default_scopes` when `scopes` is unset; `pkce` as the kind decided.
    pub fn validate(
        self,
        env: &SecretVars,
        default_scopes: &[&str],
        pkce: bool,
    ) -> Result<OAuthClient, Refused> {
        let client_id = self
            .client_id
            .filter(|c| !c.is_empty())
            .ok_or("`client_id` is required")?;
        let client_secret = match (&self.client_secret_env, &self.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err("set `client_secret_env` or `client_secret_file`, not both".into());
            }
            (Some(var), None) => env.get(var).cloned().ok_or_else(|| {
                format!("environment variable {var} (client_secret_env) is not set")
            })?,
            (None, Some(path)) => strip_newline(
                std::fs::read_to_string(path)
                    .map_err(|e| Refused(format!("client_secret_file {}: {e}", path.display())))?,
            ),
            (None, None) => String::new(),
        };
        let client_auth = match self.client_auth.as_deref().unwrap_or("client_secret_basic") {
            "client_secret_basic" => ClientAuth::Basic,
            "client_secret_post" => ClientAuth::Post,
            other => {
                return Err(Refused(format!(
                    "`client_auth` `{other}`: allowed client_secret_basic, client_secret_post"
                )));
            }
        };
        if client_secret.is_empty() {
            return Err(
                "a non-empty client secret is required (`client_secret_env` or `client_secret_file`)"
                    .into(),
            );
        }
        if let Some(k) = self
            .auth_params
            .keys()
            .find(|k| RESERVED_PARAMS.contains(&k.as_str()))
        {
            return Err(Refused(format!(
                "`auth_params.{k}` is set by the STS itself"
            )));
        }
        Ok(OAuthClient {
            client_id,
            client_secret: Secret::new(client_secret),
            client_auth,
            scopes: self
                .scopes
                .unwrap_or_else(|| default_scopes.iter().map(|s| s.to_string()).collect()),
            auth_params: self.auth_params,
            pkce,
        })
    }
}

#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
}

impl OAuthClient {
    /// The authorization request (RFC 6749 section 4.1.1): ours parameters first, then the configured
    /// `auth_params` (never one of ours), the login hint, and a forced fresh authentication.
    /// `oidc`: with `nonce`, and `max_age=0` when forced.
    pub fn authorization_url(
        &self,
        endpoint: &str,
        req: AuthorizeRequest<'_>,
        secrets: &FlowSecrets,
        oidc: bool,
    ) -> Result<String, ProviderError> {
        let mut url =
            url::Url::parse(endpoint).map_err(|e| ProviderError::Discovery(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", req.redirect_uri)
                .append_pair("state", req.state);
            if !self.scopes.is_empty() {
                q.append_pair("scope", &self.scopes.join(" "));
            }
            if oidc {
                q.append_pair("nonce", &secrets.nonce);
            }
            if self.pkce {
                q.append_pair(
                    "code_challenge",
                    &crate::crypto::pkce_s256(&secrets.pkce_verifier),
                )
                .append_pair("code_challenge_method", "S256");
            }
            for (k, v) in &self.auth_params {
                if req.force && (k == "prompt" || k == "max_age") {
                    continue;
                }
                q.append_pair(k, v);
            }
            if let Some(hint) = req.login_hint {
                q.append_pair("login_hint", hint);
            }
            if req.force {
                q.append_pair("prompt", "login");
                if oidc {
                    q.append_pair("max_age", "0");
                }
            }
        }
        Ok(url.into())
    }

    /// RFC 6749 section 4.1.3 with PKCE; client authentication per section 2.3.1 (form-urlencoded id and
    /// secret in HTTP Basic) or in the body. Redirects are not followed.
    pub(super) async fn exchange_code(
        &self,
        http: &Outbound,
        token_endpoint: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<TokenResponse, ProviderError> {
        let secret = self.client_secret.expose();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if self.pkce {
            form.push(("code_verifier", verifier));
        }
        let mut req = http
            .client()
            .post(token_endpoint)
            .header("Accept", "application/json");
        match self.client_auth {
            ClientAuth::Basic => {
                let enc = |v: &str| {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                };
                req = req.basic_auth(enc(&self.client_id), Some(enc(secret)));
            }
            ClientAuth::Post => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret));
            }
        }
        match http.json::<TokenResponse>("token", req.form(&form)).await {
            Ok(t) => Ok(t),
            Err(super::http::OutboundError::Status { body, status }) => {
                Err(ProviderError::TokenEndpoint {
                    error: body
                        .get("error")
                        .and_then(Value::as_str)
                        // IdP-controlled text: keep it to an error-code alphabet before logs and pages.
                        .map(|e| {
                            e.chars()
                                .filter(|c| {
                                    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
                                })
                                .take(64)
                                .collect()
                        })
                        .unwrap_or_else(|| format!("HTTP {status}")),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The code of a callback, or the error every redirect kind gives for its absence.
pub(super) fn code_of(cb: &super::Callback) -> Result<&str, ProviderError> {
    cb.code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or(ProviderError::TokenEndpoint {
            error: "no code in the callback".into(),
        })
}
