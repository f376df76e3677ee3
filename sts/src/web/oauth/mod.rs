//! The STS as an OpenID Provider for web components, and as an OAuth 2.0 authorization server for machines.
//!
//! - `GET|POST /sso/authorize` (authorize.rs): authorization code flow with PKCE, `prompt`, `max_age`,
//!   `response_mode=query|form_post`, RFC 9207 `iss`. Unknown clients and unregistered redirect URIs get an
//!   error page, never a redirect.
//! - `POST /sso/token` (token.rs): `authorization_code`, `refresh_token` (rotating, reuse revokes the family),
//!   `client_credentials`; client authentication by secret (Basic or form), `private_key_jwt`, or none for
//!   public clients.
//! - `GET|POST /sso/userinfo`, `POST /sso/introspect`, `POST /sso/revoke` (endpoints.rs).
//! - `GET|POST /sso/logout` (logout.rs): RP-initiated logout.

mod authorize;
mod client_auth;
mod endpoints;
mod logout;
mod token;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::web::AppState;
use crate::web::sso::session::SessionIdentity;

/// Authorization codes live this long (seconds).
pub const CODE_TTL: i64 = 60;
/// Largest form body accepted by the token, introspection and revocation endpoints.
const FORM_LIMIT: usize = 64 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sso/authorize")
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route(web::get().to(authorize::get))
            .route(web::post().to(authorize::post)),
    )
    .route("/sso/authorize/resume", web::get().to(authorize::resume))
    .service(
        web::resource("/sso/token")
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route(web::post().to(token::token)),
    )
    .service(
        web::resource("/sso/userinfo")
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route(web::get().to(endpoints::userinfo_get))
            .route(web::post().to(endpoints::userinfo_post)),
    )
    .service(
        web::resource("/sso/introspect")
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route(web::post().to(endpoints::introspect)),
    )
    .service(
        web::resource("/sso/revoke")
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route(web::post().to(endpoints::revoke)),
    )
    .service(
        web::resource("/sso/logout")
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route(web::get().to(logout::get))
            .route(web::post().to(logout::post)),
    )
    .route(
        "/sso/static/form_post.js",
        web::get().to(authorize::form_post_js),
    );
}

/// An RFC 6749 / OIDC error answered as JSON (token, introspection, revocation endpoints).
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Answer `WWW-Authenticate: Basic` (the client tried HTTP Basic authentication).
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = match error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        // Descriptions may quote client input: escaped and bounded for the JSON body and the log line.
        let description =
            crate::text::display_safe(&description.into(), crate::text::MAX_DISPLAY_CHARS);
        Self {
            status,
            error,
            description,
            basic_challenge: false,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }

    pub fn response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(error = self.error, detail = ?self.description, "oauth endpoint failed");
        } else {
            tracing::info!(error = self.error, detail = ?self.description, "oauth request refused");
        }
        let mut r = HttpResponse::build(self.status);
        r.insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((PRAGMA, "no-cache"));
        if self.basic_challenge && self.status == StatusCode::UNAUTHORIZED {
            r.insert_header((WWW_AUTHENTICATE, "Basic realm=\"sts\", charset=\"UTF-8\""));
        }
        r.json(serde_json::json!({"error": self.error, "error_description": self.description}))
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error in an OAuth endpoint");
        OAuthError::new("server_error", "internal error")
    }
}

/// `application/x-www-form-urlencoded` (or a query string) as a map; a parameter given twice is an error
/// (RFC 6749 3.1, 3.2), and so is anything that is not UTF-8 form encoding.
pub fn parse_params(raw: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            // Only a parameter name of the protocols is ever quoted: any other name (which could carry
            // a secret, a newline or an escape sequence) is not repeated back or logged.
            return Err(if KNOWN_PARAMS.contains(&k.as_ref()) {
                format!("parameter `{k}` is given more than once")
            } else {
                "a parameter is given more than once".to_string()
            });
        }
    }
    Ok(out)
}

/// Parameter names of the endpoints (RFC 6749, 7636, 7009, 7662, 7523, OIDC Core and RP-Initiated Logout)
/// that an error message may name.
const KNOWN_PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "code_verifier",
    "refresh_token",
    "scope",
    "audience",
    "resource",
    "client_assertion",
    "client_assertion_type",
    "token",
    "token_type_hint",
    "response_type",
    "response_mode",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "id_token_hint",
    "acr_values",
    "ui_locales",
    "display",
    "claims",
    "request",
    "request_uri",
    "provider",
    "post_logout_redirect_uri",
    "confirm",
    "logout_hint",
];

/// Only `application/x-www-form-urlencoded` bodies are read.
pub fn form_body(
    req: &actix_web::HttpRequest,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.split(';').next().is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    }) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    parse_params(body).map_err(OAuthError::invalid_request)
}

/// What a code or refresh token grants: the user, the client's request, and how the user authenticated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantData {
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub subject: String,
    pub idp: String,
    pub roles: Vec<String>,
    pub identity: SessionIdentity,
    pub auth_time: i64,
    pub acr: Option<String>,
    pub amr: Option<Vec<String>>,
    pub sid: String,
}

/// A token this STS issued, verified: signature by a published key, RS256 only, `typ`, `iss`, and
/// (unless `allow_expired`) `exp`/`nbf` without leeway.
pub fn verify_own(
    st: &AppState,
    token: &str,
    typ: &str,
    allow_expired: bool,
) -> Result<serde_json::Value, String> {
    use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
    if token.len() > 16 * 1024 {
        return Err("token too large".into());
    }
    sts_client::check_jws_header(token)?;
    let header = decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err("algorithm not allowed".into());
    }
    if header.typ.as_deref().map(|t| t.to_ascii_lowercase()) != Some(typ.to_ascii_lowercase()) {
        return Err(format!("not a token of type {typ}"));
    }
    let kid = header.kid.ok_or("no kid")?;
    // The published keys, parsed once per key change (not per call).
    let snap = st.keys.current();
    let key = snap
        .jwks
        .decoding_key(&kid)
        .ok_or("signed by a key this STS does not publish")?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[&st.issuer]);
    v.validate_aud = false;
    // `nbf`/`iat` may be a little ahead on another replica; `exp` is checked below without leeway.
    v.leeway = 30;
    v.validate_exp = !allow_expired;
    v.validate_nbf = !allow_expired;
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = decode::<serde_json::Value>(token, key, &v).map_err(|e| e.to_string())?;
    if !allow_expired {
        // jsonwebtoken compares with its own clock; ours may be a test clock.
        let now = st.clock.now();
        if data.claims["exp"].as_i64().is_none_or(|e| e <= now) {
            return Err("expired".into());
        }
    }
    Ok(data.claims)
}

/// Append parameters to a redirect URI, keeping its own query.
pub fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return base.to_string();
    }
    match url::Url::parse(base) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => base.to_string(),
    }
}

/// A JSON answer that must not be cached (tokens, token metadata).
pub fn json_no_store(value: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_parameters_are_refused() {
        assert!(parse_params(b"a=1&b=2").is_ok());
        assert!(
            parse_params(b"code=1&code=2")
                .unwrap_err()
                .contains("`code`")
        );
        // Any other name is never repeated back: it could be a secret or carry a forged log line.
        for raw in [
            &b"a=1&a=2"[..],
            b"s3cr3t&s3cr3t",
            b"x%0AFORGED=1&x%0AFORGED=2",
            b"%1B%5B31m=1&%1B%5B31m=2",
        ] {
            let e = parse_params(raw).unwrap_err();
            assert_eq!(e, "a parameter is given more than once");
        }
    }

    #[test]
    fn params_are_appended_to_the_redirect_uri() {
        assert_eq!(
            with_params(
                "https://a.example.com/cb?x=1",
                &[("code", "c d"), ("state", "s")]
            ),
            "https://a.example.com/cb?x=1&code=c+d&state=s"
        );
    }
}
