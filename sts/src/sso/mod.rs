//! Browser login through an identity provider, the SSO session it creates, and the user's own page.
//!
//! - `GET /sso/login?provider=ID&return_to=PATH&login_hint=H`: start a login (a chooser page when several
//!   providers are enabled and none is named). `return_to` must be a same-origin path; anything else is
//!   refused, never followed.
//! - `GET /sso/sso-openid/openid-login` (OIDC) and `GET /sso/sso-oauth/oauth-login` (OAuth 2.0): the
//!   callbacks. The login flow named by `state` is consumed (deleted) before anything else, so `state` is
//!   single-use; it must be bound to this browser (cookie), unexpired, and of the callback's kind.
//! - `GET /sso/me`: who you are, your roles, and a fresh access token. `GET /sso/logout`: end the session.
//!
//! Every failure is a page with a reason code (also logged with the provider id) and leaves no session.

mod flow;
mod pages;
pub mod session;

use actix_web::web;

pub use flow::LoginError;

/// The ACS reads the whole form itself (and refuses what is over its own limits with a page).
const ACS_BODY_LIMIT: usize = 1 << 20;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sso/login", web::get().to(flow::start))
        .route(
            "/sso/sso-openid/openid-login",
            web::get().to(flow::oidc_callback),
        )
        .route(
            "/sso/sso-oauth/oauth-login",
            web::get().to(flow::oauth_callback),
        )
        .service(
            web::resource("/sso/sso-saml/acs")
                .app_data(web::PayloadConfig::new(ACS_BODY_LIMIT))
                .route(web::post().to(flow::saml_acs)),
        )
        .route("/sso/sso-saml/metadata", web::get().to(flow::saml_metadata))
        .service(
            web::resource("/sso/sso-saml/{provider}/acs")
                .app_data(web::PayloadConfig::new(ACS_BODY_LIMIT))
                .route(web::post().to(flow::saml_acs)),
        )
        .route(
            "/sso/sso-saml/{provider}/metadata",
            web::get().to(flow::saml_metadata),
        )
        .route("/sso/me", web::get().to(flow::me))
        .route("/sso/static/sts.css", web::get().to(pages::css))
        .route("/sso/static/sts.js", web::get().to(pages::js));
}

/// An HTML error page (auto-escaped, strict CSP, not cached).
pub fn error_page(
    status: actix_web::http::StatusCode,
    title: &str,
    message: &str,
    code: &str,
) -> actix_web::HttpResponse {
    pages::error(status, title, message, code)
}

/// Render an askama page with the pages' CSP, not cached.
pub fn render_page(
    status: actix_web::http::StatusCode,
    page: &impl askama::Template,
) -> actix_web::HttpResponse {
    pages::render(status, page)
}

/// The signed-out page.
pub fn logged_out_page() -> actix_web::HttpResponse {
    pages::render(actix_web::http::StatusCode::OK, &pages::LoggedOutPage)
}

/// Random 256-bit value, base64url.
pub fn random_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// How opaque random values are stored: SHA-256, hex. (They are 256-bit random, so a fast hash is right.)
pub fn hash(value: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// `return_to` must be a path on this origin: starts with one `/`, no `//` or `/\` (protocol-relative),
/// no backslashes or control characters, at most 2048 bytes.
pub fn valid_return_to(v: &str) -> bool {
    v.starts_with('/')
        && !v.starts_with("//")
        && !v.contains('\\')
        && v.len() <= 2048
        && !v.chars().any(|c| c.is_control() || c.is_whitespace())
        && !v.to_ascii_lowercase().contains("%2f%2f")
        && url::Url::parse("https://sts.invalid")
            .and_then(|b| b.join(v))
            .is_ok_and(|u| u.host_str() == Some("sts.invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_rules() {
        for ok in ["/sso/me", "/app?x=1", "/a/b#c"] {
            assert!(valid_return_to(ok), "{ok}");
        }
        for bad in [
            "https://evil.example.com/",
            "//evil.example.com",
            "/\\evil.example.com",
            "\\\\evil",
            "javascript:alert(1)",
            "",
            "evil.com",
            "/\tevil",
            "/%2F%2Fevil.example.com",
            "http:/evil.example.com",
        ] {
            assert!(!valid_return_to(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_are_random_and_hashes_hex() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 43);
        assert_eq!(hash("x").len(), 64);
    }
}
