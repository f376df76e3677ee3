//! The admin console's HTML pages (askama, auto-escaped) and form handlers.
//!
//! Every page needs an admin session; every POST needs the session's CSRF token (`csrf` field) as well.
//! Pages are never cached and carry the console's CSP (no inline script or style; same-origin assets).

mod applications;
mod keys;
mod providers;
mod sessions;
mod sign_in;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::auth::{self, LOGIN_CSRF_COOKIE, RateLimiter, SESSION_COOKIE};
use crate::backend::{
    AdminBackend, ApiTokenInfo, AuditEntry, BackendError, ClientInfo, Dashboard, KeyInfo,
    NewAdminSession, NewClient, ProviderDetail, ProviderInfo, RolePreview, SamlSpInfo,
    SsoSessionInfo,
};

crate::refusal!(
    /// Why a form body could not be read.
    FormRefused
);

pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Largest form body (the keystore upload has its own limit).
pub const FORM_LIMIT: usize = 64 * 1024;
/// Largest provider form (its TOML may hold an IdP's metadata XML: up to 256 KiB, urlencoded).
pub const PROVIDER_FORM_LIMIT: usize = 1024 * 1024;
/// Largest keystore upload (multipart body).
pub const UPLOAD_LIMIT: usize = 256 * 1024;

pub use self::{applications::*, keys::*, providers::*, sessions::*, sign_in::*};

type Backend = web::Data<dyn AdminBackend>;

/// The signed-in administrator of a request.
pub struct Admin {
    pub username: String,
    pub csrf: String,
    pub id_hash: String,
}

/// The admin of this request, or the redirect to the sign-in page.
pub async fn current_admin(req: &HttpRequest, b: &Backend) -> Result<Admin, HttpResponse> {
    let Some(c) = req.cookie(SESSION_COOKIE) else {
        return Err(to_login());
    };
    let id_hash = auth::hash(c.value());
    match b
        .admin_session(&id_hash, b.now() + auth::IDLE_SECONDS)
        .await
    {
        Ok(Some(s)) => Ok(Admin {
            username: s.username,
            csrf: s.csrf,
            id_hash,
        }),
        Ok(None) => Err(to_login()),
        Err(e) => Err(internal(e)),
    }
}

fn to_login() -> HttpResponse {
    redirect("/admin/login")
}

pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, to.to_string()))
        .insert_header((CACHE_CONTROL, "no-store"))
        .finish()
}

fn internal(e: BackendError) -> HttpResponse {
    tracing::error!(error = %e, "admin console: backend failure");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        "Something went wrong",
        "internal error; see the server log",
        "/admin",
    )
}

pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Content-Security-Policy", CSP))
            .insert_header((CACHE_CONTROL, "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "admin template failed");
            HttpResponse::InternalServerError().body("internal error")
        }
    }
}

/// Parse an urlencoded form; a field given twice is refused.
fn form(body: &[u8]) -> Result<HashMap<String, String>, FormRefused> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(FormRefused(format!("field `{k}` is given twice")));
        }
    }
    Ok(out)
}

/// The admin, after checking the CSRF token of a state-changing request.
async fn admin_for_post(
    req: &HttpRequest,
    b: &Backend,
    csrf: Option<&str>,
) -> Result<Admin, HttpResponse> {
    let admin = current_admin(req, b).await.map_err(|_| {
        message(
            StatusCode::UNAUTHORIZED,
            None,
            "Not signed in",
            "sign in to the admin console first",
            "/admin/login",
        )
    })?;
    if !csrf.is_some_and(|c| auth::constant_time_eq(c.as_bytes(), admin.csrf.as_bytes())) {
        tracing::warn!(admin = %admin.username, path = ?req.path(), "admin request refused: CSRF token missing or wrong");
        return Err(message(
            StatusCode::FORBIDDEN,
            Some(&admin),
            "Request refused",
            "the form's security token is missing or out of date; reload the page and try again",
            "/admin",
        ));
    }
    Ok(admin)
}

/// An extractor's refusal: the page (or redirect) the request is answered with.
fn refusal(r: HttpResponse) -> actix_web::Error {
    actix_web::error::InternalError::from_response("admin console refusal", r).into()
}

fn backend_of(req: &HttpRequest) -> Result<Backend, actix_web::Error> {
    req.app_data::<Backend>()
        .cloned()
        .ok_or_else(|| refusal(HttpResponse::InternalServerError().body("internal error")))
}

type Extracted<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, actix_web::Error>>>>;

/// The signed-in administrator of a page request; without a live session the request is answered
/// with the redirect to the sign-in page.
pub struct SignedIn(pub Admin);

impl actix_web::FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let b = backend_of(&req)?;
            current_admin(&req, &b).await.map(SignedIn).map_err(refusal)
        })
    }
}

/// A state-changing form post (urlencoded) by the signed-in administrator, its CSRF token checked
/// (`admin_for_post`). A form with a field given twice counts as empty, so its CSRF check fails.
pub struct AdminPost {
    pub admin: Admin,
    pub form: HashMap<String, String>,
}

impl actix_web::FromRequest for AdminPost {
    type Error = actix_web::Error;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await?;
            let form = form(&body).unwrap_or_default();
            let b = backend_of(&req)?;
            let admin = admin_for_post(&req, &b, form.get("csrf").map(String::as_str))
                .await
                .map_err(refusal)?;
            Ok(AdminPost { admin, form })
        })
    }
}

// ---------------------------------------------------------------------------------------------- layout

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    admin: Option<&'a Admin>,
    title: &'a str,
    text: &'a str,
    back: &'a str,
}

fn message(
    status: StatusCode,
    admin: Option<&Admin>,
    title: &str,
    text: &str,
    back: &str,
) -> HttpResponse {
    render(
        status,
        &MessagePage {
            admin,
            title,
            text,
            back,
        },
    )
}

fn failed(admin: &Admin, e: BackendError, back: &str) -> HttpResponse {
    match e {
        BackendError::Invalid(m) => {
            message(StatusCode::BAD_REQUEST, Some(admin), "Not saved", &m, back)
        }
        BackendError::Conflict(m) => {
            message(StatusCode::CONFLICT, Some(admin), "Not saved", &m, back)
        }
        BackendError::NotFound => message(
            StatusCode::NOT_FOUND,
            Some(admin),
            "Not found",
            "it does not exist (any more)",
            back,
        ),
        e => internal(e),
    }
}

/// A Unix time, however many references deep askama hands it over.
pub trait Secs {
    fn secs(&self) -> Option<i64>;
}
impl Secs for i64 {
    fn secs(&self) -> Option<i64> {
        Some(*self)
    }
}
impl Secs for Option<i64> {
    fn secs(&self) -> Option<i64> {
        *self
    }
}
impl<T: Secs + ?Sized> Secs for &T {
    fn secs(&self) -> Option<i64> {
        (**self).secs()
    }
}

pub fn time(t: impl Secs) -> String {
    let Some(t) = t.secs() else {
        return "-".into();
    };
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn opt_time(t: impl Secs) -> String {
    time(t)
}

#[derive(Template)]
#[template(path = "secret.html")]
/// A secret shown once (an application's secret, an API token).
struct SecretPage<'a> {
    admin: Option<&'a Admin>,
    title: &'a str,
    what: &'a str,
    secret: &'a str,
    back: &'a str,
}

// ---------------------------------------------------------------------------------------------- dashboard

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    admin: Option<&'a Admin>,
    d: &'a Dashboard,
}

pub async fn dashboard(SignedIn(admin): SignedIn, b: Backend) -> HttpResponse {
    match b.dashboard().await {
        Ok(d) => render(
            StatusCode::OK,
            &DashboardPage {
                admin: Some(&admin),
                d: &d,
            },
        ),
        Err(e) => internal(e),
    }
}

pub async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/admin.css"))
}

pub async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/admin.js"))
}
