//! HTML pages (askama, auto-escaped) and their static assets. Pages carry a strict CSP: no inline script
//! or style, same-origin assets only, no framing, and are never cached.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use askama::Template;

pub const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                            form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub code: &'a str,
}

pub struct ChooserEntry {
    pub name: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "chooser.html")]
pub struct ChooserPage {
    pub providers: Vec<ChooserEntry>,
}

/// Our username and password form (LDAP and other credentials kinds).
#[derive(Template)]
#[template(path = "login_form.html")]
pub struct LoginFormPage<'a> {
    pub provider: &'a str,
    pub state: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "me.html")]
pub struct MePage<'a> {
    pub subject: &'a str,
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
    pub provider: &'a str,
    pub roles: &'a [String],
    pub groups: &'a [String],
    pub token: &'a str,
    pub claims: &'a str,
    pub session_expires: &'a str,
    /// Applications given tokens in this session: (name, client id).
    pub apps: Vec<(String, String)>,
    /// Proves the sign-out form was posted from this page.
    pub logout_token: &'a str,
}

#[derive(Template)]
#[template(path = "logged_out.html")]
pub struct LoggedOutPage;

pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponseBuilder::new(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Content-Security-Policy", PAGE_CSP))
            .insert_header(("Cache-Control", "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            HttpResponse::InternalServerError().body("internal error")
        }
    }
}

/// An error page; the message may quote what a client or an IdP sent, so it is escaped and bounded
/// ([`crate::text::display_safe`]) before askama's HTML escaping.
pub fn error(status: StatusCode, title: &str, message: &str, code: &str) -> HttpResponse {
    let message = crate::text::display_safe(message, 2 * crate::text::MAX_DISPLAY_CHARS);
    render(
        status,
        &ErrorPage {
            title,
            message: &message,
            code,
        },
    )
}

pub async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../static/sts.css"))
}

pub async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../static/sts.js"))
}
