//! Browser login through an identity provider, the SSO session it creates, and the user's own page.
//!
//! - `GET /sso/login?provider=ID&return_to=PATH&login_hint=H`: start a login (a chooser page when several
//!   providers are enabled and none is named). `return_to` must be a same-origin path; anything else is
//!   refused, never followed.
//! - `GET /sso/sso-openid/openid-login` (OIDC) and `GET /sso/sso-oauth/oauth-login` (OAuth 2.0): the
//!   callbacks. The login flow named by `state` is consumed (deleted) before anything else, so `state` is
//!   single-use; it must be bound to this browser (cookie), unexpired, and of the callback's kind.
//! - `POST /sso/login/form` (LDAP and other credentials kinds): the username and password typed into our
//!   own form (shown by `GET /sso/login`); the flow's `state` in the form is consumed first, then the
//!   attempt counted, then the credentials checked. A wrong password gives the form again under a fresh
//!   `state`.
//! - `GET /sso/echo` (only with `server.echo = true`): the headers and addresses that reach the STS, secrets
//!   redacted, for setting up a trusted gateway (`type = "header"`).
//! - `GET /sso/me`: who you are, your roles, and a fresh access token. `GET /sso/logout`: end the session.
//!
//! Every failure is a page with a reason code (also logged with the provider id) and leaves no session.

mod flow;
mod pages;
mod saml;
pub mod session;

use actix_web::web;

pub use flow::LoginError;

/// The username and password form: a state, a username (256 characters) and a password (1 KiB).
const FORM_BODY_LIMIT: usize = 8 * 1024;

/// The ACS reads the whole form itself (and refuses what is over its own limits with a page).
const ACS_BODY_LIMIT: usize = 1 << 20;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sso/login", web::get().to(flow::start))
        .service(
            web::resource("/sso/login/form")
                .app_data(web::FormConfig::default().limit(FORM_BODY_LIMIT))
                .route(web::post().to(flow::form_login)),
        )
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
                .route(web::post().to(saml::saml_acs)),
        )
        .route("/sso/sso-saml/metadata", web::get().to(saml::saml_metadata))
        .service(
            web::resource("/sso/sso-saml/{provider}/acs")
                .app_data(web::PayloadConfig::new(ACS_BODY_LIMIT))
                .route(web::post().to(saml::saml_acs)),
        )
        .route(
            "/sso/sso-saml/{provider}/metadata",
            web::get().to(saml::saml_metadata),
        )
        .route("/sso/me", web::get().to(flow::me))
        .route("/sso/echo", web::get().to(flow::echo))
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
