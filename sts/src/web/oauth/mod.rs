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
mod device;
mod endpoints;
mod logout;
mod token;
mod token_redirect;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, web};

pub use crate::oauth::error::OAuthError;
pub use crate::oauth::grants::GrantData;
pub use crate::oauth::params::{parse_params, with_params};
use crate::web::AppState;

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
    .service(
        web::resource("/sso/device_authorization")
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route(web::post().to(device::authorization)),
    )
    .service(
        web::resource("/sso/device")
            .app_data(web::FormConfig::default().limit(8 * 1024))
            .route(web::get().to(device::get))
            .route(web::post().to(device::post)),
    )
    .service(
        web::resource("/sso/flow/redirect/token")
            .app_data(web::FormConfig::default().limit(8 * 1024))
            .route(web::get().to(token_redirect::get))
            .route(web::post().to(token_redirect::post)),
    )
    .route(
        "/sso/static/form_post.js",
        web::get().to(authorize::form_post_js),
    );
}

/// A form posted from one of our own pages: an `Origin` header, when the browser sends one, is ours.
pub fn same_origin(req: &actix_web::HttpRequest, st: &AppState) -> bool {
    match req.headers().get(actix_web::http::header::ORIGIN) {
        None => true,
        Some(origin) => {
            let ours = url::Url::parse(&st.issuer)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            origin.to_str().ok() == Some(ours.as_str())
        }
    }
}

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
    parse_params(body).map_err(|e| OAuthError::invalid_request(e.to_string()))
}

/// A JSON answer that must not be cached (tokens, token metadata).
pub fn json_no_store(value: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(value)
}

/// OAuth errors as HTTP: 401 for `invalid_client` (with `WWW-Authenticate: Basic` when the client tried
/// Basic), 500 for `server_error`, 503 for `temporarily_unavailable`, else 400; never cached.
impl actix_web::ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self.error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = self.error, detail = ?self.description, "oauth endpoint failed");
        } else {
            tracing::info!(error = self.error, detail = ?self.description, "oauth request refused");
        }
        let mut r = HttpResponse::build(status);
        r.insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((PRAGMA, "no-cache"));
        if self.basic_challenge && status == StatusCode::UNAUTHORIZED {
            r.insert_header((WWW_AUTHENTICATE, "Basic realm=\"sts\", charset=\"UTF-8\""));
        }
        r.json(serde_json::json!({"error": self.error, "error_description": self.description}))
    }
}

/// The OpenID Provider's rules for this request.
pub fn op(st: &AppState) -> crate::oauth::Op<'_> {
    crate::oauth::Op {
        pool: &st.pool,
        clients: &st.clients,
        tokens: &st.tokens,
        keys: &st.keys,
        issuer: &st.issuer,
        now: st.clock.now(),
        session_idle: st.web.login.session_idle,
    }
}

/// [`crate::oauth::Op::verify_own`] for this request.
pub fn verify_own(
    st: &AppState,
    token: &str,
    typ: &str,
    allow_expired: bool,
) -> Result<serde_json::Value, crate::oauth::own_tokens::NotOurs> {
    op(st).verify_own(token, typ, allow_expired)
}
