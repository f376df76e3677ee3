//! The admin console's HTML pages (askama, auto-escaped) and form handlers.
//!
//! Every page needs an admin session; every POST needs the session's CSRF token (`csrf` field) as well.
//! Pages are never cached and carry the console's CSP (no inline script or style; same-origin assets).

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

pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Largest form body (the keystore upload has its own limit).
pub const FORM_LIMIT: usize = 64 * 1024;
/// Largest provider form (its TOML may hold an IdP's metadata XML: up to 256 KiB, urlencoded).
pub const PROVIDER_FORM_LIMIT: usize = 1024 * 1024;
/// Largest keystore upload (multipart body).
pub const UPLOAD_LIMIT: usize = 256 * 1024;

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
fn form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("field `{k}` is given twice"));
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

// ---------------------------------------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    admin: Option<&'a Admin>,
    csrf: &'a str,
    error: Option<&'a str>,
    username: &'a str,
    sso: bool,
}

fn login_page(
    status: StatusCode,
    b: &Backend,
    error: Option<&str>,
    username: &str,
) -> HttpResponse {
    let token = auth::random_token();
    let mut r = render(
        status,
        &LoginPage {
            admin: None,
            csrf: &token,
            error,
            username,
            sso: b.sso_enabled(),
        },
    );
    let _ = r.add_cookie(&auth::cookie(
        LOGIN_CSRF_COOKIE,
        token,
        b.secure_cookies(),
        Some(1800),
    ));
    r
}

pub async fn login_form(b: Backend) -> HttpResponse {
    login_page(StatusCode::OK, &b, None, "")
}

#[derive(Template)]
#[template(path = "sso_continue.html")]
struct SsoContinuePage<'a> {
    admin: Option<&'a Admin>,
}

/// `GET /admin/sso`: back from a single sign-on (`/sso/login?return_to=/admin/sso`); the user's SSO
/// session must hold an admin role (`admin.sso_roles`). The page continues to /admin with a meta refresh:
/// the Strict admin cookie is not sent on the redirect chain that started at the IdP.
pub async fn sso(req: HttpRequest, b: Backend) -> HttpResponse {
    let Some(cookie) = req.cookie("sts_session") else {
        return login_page(
            StatusCode::UNAUTHORIZED,
            &b,
            Some("no single sign-on session; sign in first"),
            "",
        );
    };
    let sso = match b.sso_admin(cookie.value()).await {
        Ok(n) => n,
        Err(BackendError::Invalid(m)) => {
            return login_page(StatusCode::FORBIDDEN, &b, Some(&m), "");
        }
        Err(e) => return internal(e),
    };
    let now = b.now();
    if let Some(old) = req.cookie(SESSION_COOKIE) {
        let _ = b.delete_admin_session(&auth::hash(old.value()), None).await;
    }
    let id = auth::random_token();
    let name = sso.name.clone();
    // The console session ends with the SSO session (logout, revocation, its absolute end).
    let expires_at = (now + auth::ABSOLUTE_SECONDS).min(sso.expires_at);
    let session = NewAdminSession {
        id_hash: auth::hash(&id),
        username: name.clone(),
        via: "sso",
        csrf: auth::random_token(),
        now,
        idle_expires_at: (now + auth::IDLE_SECONDS).min(expires_at),
        expires_at,
        sso_sid: Some(sso.sid),
        audit_details: serde_json::json!({"via": "sso"}),
    };
    if let Err(e) = b.insert_admin_session(session).await {
        return internal(e);
    }
    let mut r = render(StatusCode::OK, &SsoContinuePage { admin: None });
    let _ = r.add_cookie(&auth::cookie(
        SESSION_COOKIE,
        id,
        b.secure_cookies(),
        Some(auth::ABSOLUTE_SECONDS),
    ));
    r
}

pub async fn login(
    req: HttpRequest,
    body: web::Bytes,
    b: Backend,
    limiter: web::Data<RateLimiter>,
) -> HttpResponse {
    let secure = b.secure_cookies();
    let Ok(f) = form(&body) else {
        return login_page(
            StatusCode::BAD_REQUEST,
            &b,
            Some("the form is malformed"),
            "",
        );
    };
    let username = f
        .get("username")
        .map(|u| u.trim().to_lowercase())
        .unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    // Login CSRF: the form's token must equal its cookie (double submit).
    let cookie = req
        .cookie(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if cookie.is_empty()
        || !f
            .get("csrf")
            .is_some_and(|c| auth::constant_time_eq(c.as_bytes(), cookie.as_bytes()))
    {
        return login_page(
            StatusCode::FORBIDDEN,
            &b,
            Some("the sign-in form expired; try again"),
            &username,
        );
    }
    if username.is_empty() || username.len() > 64 || password.is_empty() || password.len() > 1024 {
        return login_page(
            StatusCode::BAD_REQUEST,
            &b,
            Some("enter your user name and password"),
            &username,
        );
    }
    let ip = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let now = b.now();
    if let Err(wait) = limiter.attempt(&username, &ip, now) {
        tracing::warn!(account = ?username, ip = %ip, "admin sign-in refused: too many attempts");
        return login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &b,
            Some(&format!(
                "too many failed sign-ins; try again in {} minute(s)",
                (wait + 59) / 60
            )),
            &username,
        );
    }
    let Some(mut lease) = limiter.wait_for_slot().await else {
        return login_page(
            StatusCode::SERVICE_UNAVAILABLE,
            &b,
            Some("the server is busy; try again in a moment"),
            &username,
        );
    };
    let stored = match b.admin_password_hash(&username).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    // The lease moves into the blocking task and goes back to the pool when the task ends, also when this
    // request has gone away meanwhile.
    let ok =
        web::block(move || auth::verify_password_in(&password, stored.as_deref(), lease.blocks()))
            .await
            .unwrap_or(false);
    if !ok {
        let _ = b
            .audit(
                "-",
                "admin.login_failed",
                Some(&username),
                serde_json::json!({"ip": ip}),
            )
            .await;
        return login_page(
            StatusCode::UNAUTHORIZED,
            &b,
            Some("wrong user name or password"),
            &username,
        );
    }
    limiter.succeeded(&username);
    // A new session id at every sign-in; the previous one (if any) ends.
    if let Some(old) = req.cookie(SESSION_COOKIE) {
        let _ = b.delete_admin_session(&auth::hash(old.value()), None).await;
    }
    let id = auth::random_token();
    let session = NewAdminSession {
        id_hash: auth::hash(&id),
        username: username.clone(),
        via: "password",
        csrf: auth::random_token(),
        now,
        idle_expires_at: now + auth::IDLE_SECONDS,
        expires_at: now + auth::ABSOLUTE_SECONDS,
        sso_sid: None,
        audit_details: serde_json::json!({"ip": ip}),
    };
    if let Err(e) = b.insert_admin_session(session).await {
        return internal(e);
    }
    let mut r = redirect("/admin");
    let _ = r.add_cookie(&auth::cookie(
        SESSION_COOKIE,
        id,
        secure,
        Some(auth::ABSOLUTE_SECONDS),
    ));
    let _ = r.add_cookie(&auth::removal(LOGIN_CSRF_COOKIE, secure));
    r
}

pub async fn logout(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(e) = b
        .delete_admin_session(&admin.id_hash, Some(&format!("admin:{}", admin.username)))
        .await
    {
        return internal(e);
    }
    let mut r = redirect("/admin/login");
    let _ = r.add_cookie(&auth::removal(SESSION_COOKIE, b.secure_cookies()));
    r
}

// ---------------------------------------------------------------------------------------------- pages

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    admin: Option<&'a Admin>,
    d: &'a Dashboard,
}

pub async fn dashboard(req: HttpRequest, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
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

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage<'a> {
    admin: Option<&'a Admin>,
    keys: &'a [KeyInfo],
    sp: Option<&'a SamlSpInfo>,
}

pub async fn keys(req: HttpRequest, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let sp = match b.saml_sp().await {
        Ok(sp) => sp,
        Err(e) => return internal(e),
    };
    match b.keys().await {
        Ok(keys) => render(
            StatusCode::OK,
            &KeysPage {
                admin: Some(&admin),
                keys: &keys,
                sp: sp.as_ref(),
            },
        ),
        Err(e) => internal(e),
    }
}

pub async fn regenerate_key(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b.regenerate_key(&format!("admin:{}", admin.username)).await {
        Ok(kid) => message(
            StatusCode::OK,
            Some(&admin),
            "New signing key",
            &format!(
                "the new active key is {kid}; the previous one stays published until its tokens have expired"
            ),
            "/admin/keys",
        ),
        Err(e) => failed(&admin, e, "/admin/keys"),
    }
}

/// `POST /admin/keys/import`: multipart with `csrf`, `password` and the `keystore` file.
async fn import_upload(
    req: HttpRequest,
    payload: actix_multipart::Multipart,
    b: Backend,
    saml_sp: bool,
) -> HttpResponse {
    let fields = match crate::upload::read_fields(payload, UPLOAD_LIMIT).await {
        Ok(f) => f,
        Err(m) => {
            // Without a readable form there is no CSRF token either.
            tracing::info!(reason = ?m, "keystore upload unreadable");
            return match admin_for_post(&req, &b, None).await {
                // Not reached (no token given), but never a panic.
                Ok(a) => message(
                    StatusCode::FORBIDDEN,
                    Some(&a),
                    "Request refused",
                    &m,
                    "/admin/keys",
                ),
                Err(r) => r,
            };
        }
    };
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(|v| String::from_utf8(v.clone()).ok())
    };
    let admin = match admin_for_post(&req, &b, text("csrf").as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(data) = fields.get("keystore").filter(|d| !d.is_empty()).cloned() else {
        return message(
            StatusCode::BAD_REQUEST,
            Some(&admin),
            "Not imported",
            "choose a PKCS#12 file (.p12 / .pfx)",
            "/admin/keys",
        );
    };
    let password = text("password").unwrap_or_default();
    let actor = format!("admin:{}", admin.username);
    let result = if saml_sp {
        b.import_saml_sp(&actor, data, password).await.map(|f| {
            format!("the SAML SP certificate is now {f}; give IdP admins the new SP metadata")
        })
    } else {
        b.import_keystore(&actor, data, password)
            .await
            .map(|kid| format!("the new active key is {kid}"))
    };
    match result {
        Ok(msg) => message(
            StatusCode::OK,
            Some(&admin),
            "Keystore imported",
            &msg,
            "/admin/keys",
        ),
        Err(e) => failed(&admin, e, "/admin/keys"),
    }
}

pub async fn import_key(
    req: HttpRequest,
    payload: actix_multipart::Multipart,
    b: Backend,
) -> HttpResponse {
    import_upload(req, payload, b, false).await
}

pub async fn import_saml_key(
    req: HttpRequest,
    payload: actix_multipart::Multipart,
    b: Backend,
) -> HttpResponse {
    import_upload(req, payload, b, true).await
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage<'a> {
    admin: Option<&'a Admin>,
    sessions: &'a [SsoSessionInfo],
}

pub async fn sessions(req: HttpRequest, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b.sso_sessions().await {
        Ok(s) => render(
            StatusCode::OK,
            &SessionsPage {
                admin: Some(&admin),
                sessions: &s,
            },
        ),
        Err(e) => internal(e),
    }
}

pub async fn revoke_session(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b
        .revoke_sso_session(&format!("admin:{}", admin.username), &path)
        .await
    {
        Ok(()) => redirect("/admin/sessions"),
        Err(e) => failed(&admin, e, "/admin/sessions"),
    }
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ApplicationsPage<'a> {
    admin: Option<&'a Admin>,
    clients: &'a [ClientInfo],
}

pub async fn applications(req: HttpRequest, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b.clients().await {
        Ok(c) => render(
            StatusCode::OK,
            &ApplicationsPage {
                admin: Some(&admin),
                clients: &c,
            },
        ),
        Err(e) => internal(e),
    }
}

#[derive(Template)]
#[template(path = "secret.html")]
struct SecretPage<'a> {
    admin: Option<&'a Admin>,
    title: &'a str,
    what: &'a str,
    secret: &'a str,
    back: &'a str,
}

fn lines(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn words(v: Option<&String>) -> Option<Vec<String>> {
    v.map(|s| {
        s.split([' ', ',', '\n'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    })
    .filter(|w| !w.is_empty())
}

#[derive(Template)]
#[template(path = "application.html")]
struct ApplicationPage<'a> {
    admin: Option<&'a Admin>,
    c: &'a ClientInfo,
}

pub async fn application(req: HttpRequest, path: web::Path<String>, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b.clients().await {
        Ok(list) => match list
            .iter()
            .find(|c| c.id == *path && c.managed_by == "admin")
        {
            Some(c) => render(
                StatusCode::OK,
                &ApplicationPage {
                    admin: Some(&admin),
                    c,
                },
            ),
            None => message(
                StatusCode::NOT_FOUND,
                Some(&admin),
                "Not found",
                "no such application managed in the console",
                "/admin/applications",
            ),
        },
        Err(e) => internal(e),
    }
}

/// The application fields of a console form.
fn client_form(f: &HashMap<String, String>) -> NewClient {
    NewClient {
        id: f.get("id").cloned().unwrap_or_default().trim().to_string(),
        name: f
            .get("name")
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        client_type: f.get("type").cloned().unwrap_or_default(),
        redirect_uris: lines(f.get("redirect_uris")),
        post_logout_redirect_uris: lines(f.get("post_logout_redirect_uris")),
        grant_types: words(f.get("grant_types")),
        scopes: words(f.get("scopes")),
        audience: words(f.get("audience")),
        roles: words(f.get("roles")).unwrap_or_default(),
    }
}

pub async fn update_application(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let back = format!("/admin/applications/{}", path.as_str());
    match b
        .update_client(&format!("admin:{}", admin.username), &path, client_form(&f))
        .await
    {
        Ok(_) => redirect("/admin/applications"),
        Err(e) => failed(&admin, e, &back),
    }
}

pub async fn create_application(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let new = client_form(&f);
    match b
        .create_client(&format!("admin:{}", admin.username), new)
        .await
    {
        Ok((c, Some(secret))) => render(
            StatusCode::OK,
            &SecretPage {
                admin: Some(&admin),
                title: "Application registered",
                what: &format!(
                    "the client secret of {} — shown only now; copy it into the application's configuration",
                    c.id
                ),
                secret: &secret,
                back: "/admin/applications",
            },
        ),
        Ok((_, None)) => redirect("/admin/applications"),
        Err(e) => failed(&admin, e, "/admin/applications"),
    }
}

pub async fn rotate_secret(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b
        .rotate_client_secret(&format!("admin:{}", admin.username), &path)
        .await
    {
        Ok(secret) => render(
            StatusCode::OK,
            &SecretPage {
                admin: Some(&admin),
                title: "New client secret",
                what: &format!(
                    "the new secret of {} — shown only now; the previous one no longer works",
                    path.as_str()
                ),
                secret: &secret,
                back: "/admin/applications",
            },
        ),
        Err(e) => failed(&admin, e, "/admin/applications"),
    }
}

pub async fn set_enabled(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (id, what) = path.into_inner();
    let enabled = match what.as_str() {
        "enable" => true,
        "disable" => false,
        _ => {
            return message(
                StatusCode::NOT_FOUND,
                Some(&admin),
                "Not found",
                "no such action",
                "/admin/applications",
            );
        }
    };
    match b
        .set_client_enabled(&format!("admin:{}", admin.username), &id, enabled)
        .await
    {
        Ok(()) => redirect("/admin/applications"),
        Err(e) => failed(&admin, e, "/admin/applications"),
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage<'a> {
    admin: Option<&'a Admin>,
    tokens: &'a [ApiTokenInfo],
}

pub async fn tokens(req: HttpRequest, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b.api_tokens().await {
        Ok(t) => render(
            StatusCode::OK,
            &TokensPage {
                admin: Some(&admin),
                tokens: &t,
            },
        ),
        Err(e) => internal(e),
    }
}

pub async fn create_token(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let name = f
        .get("name")
        .map(|n| n.trim().to_string())
        .unwrap_or_default();
    match b
        .create_api_token(&format!("admin:{}", admin.username), &name)
        .await
    {
        Ok((_, token)) => render(
            StatusCode::OK,
            &SecretPage {
                admin: Some(&admin),
                title: "API token created",
                what: &format!(
                    "the API token \"{name}\" — shown only now; send it as Authorization: Bearer"
                ),
                secret: &token,
                back: "/admin/tokens",
            },
        ),
        Err(e) => failed(&admin, e, "/admin/tokens"),
    }
}

pub async fn revoke_token(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b
        .revoke_api_token(&format!("admin:{}", admin.username), &path)
        .await
    {
        Ok(()) => redirect("/admin/tokens"),
        Err(e) => failed(&admin, e, "/admin/tokens"),
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    admin: Option<&'a Admin>,
    entries: &'a [AuditEntry],
}

pub async fn audit(req: HttpRequest, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b.audit_log(200, 0).await {
        Ok((entries, _)) => render(
            StatusCode::OK,
            &AuditPage {
                admin: Some(&admin),
                entries: &entries,
            },
        ),
        Err(e) => internal(e),
    }
}

/// JSON, indented, for display.
pub fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersPage<'a> {
    admin: Option<&'a Admin>,
    providers: &'a [ProviderInfo],
    draft: &'a str,
}

pub async fn providers(req: HttpRequest, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b.providers().await {
        Ok(p) => render(
            StatusCode::OK,
            &ProvidersPage {
                admin: Some(&admin),
                providers: &p,
                draft: "",
            },
        ),
        Err(e) => internal(e),
    }
}

#[derive(Template)]
#[template(path = "provider.html")]
struct ProviderPage<'a> {
    admin: Option<&'a Admin>,
    d: &'a ProviderDetail,
    sample: &'a str,
    preview: Option<&'a RolePreview>,
    preview_error: Option<&'a str>,
}

pub async fn provider(req: HttpRequest, path: web::Path<String>, b: Backend) -> HttpResponse {
    let admin = match current_admin(&req, &b).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match b.provider(&path).await {
        Ok(d) => {
            let sample = d
                .last_login
                .as_ref()
                .map(|l| pretty(&l.claims))
                .unwrap_or_else(|| "{}".into());
            render(
                StatusCode::OK,
                &ProviderPage {
                    admin: Some(&admin),
                    d: &d,
                    sample: &sample,
                    preview: None,
                    preview_error: None,
                },
            )
        }
        Err(e) => failed(&admin, e, "/admin/providers"),
    }
}

/// `POST /admin/providers` (create) and `POST /admin/providers/{id}` (update).
pub async fn save_provider(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let existing = req.match_info().get("id").map(str::to_string);
    let source = f.get("source").cloned().unwrap_or_default();
    let secret = f.get("client_secret").cloned();
    let back = existing
        .as_ref()
        .map(|id| format!("/admin/providers/{id}"))
        .unwrap_or_else(|| "/admin/providers".into());
    match b
        .save_provider(
            &format!("admin:{}", admin.username),
            existing.as_deref(),
            source,
            secret,
        )
        .await
    {
        Ok(p) => redirect(&format!("/admin/providers/{}", p.id)),
        Err(e) => failed(&admin, e, &back),
    }
}

pub async fn provider_action(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let f = form(&body).unwrap_or_default();
    let admin = match admin_for_post(&req, &b, f.get("csrf").map(String::as_str)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (id, action) = path.into_inner();
    let actor = format!("admin:{}", admin.username);
    let back = format!("/admin/providers/{id}");
    match action.as_str() {
        "enable" | "disable" => match b
            .set_provider_enabled(&actor, &id, action == "enable")
            .await
        {
            Ok(()) => redirect(&back),
            Err(e) => failed(&admin, e, &back),
        },
        "preview" => {
            let sample = f.get("claims").cloned().unwrap_or_default();
            let d = match b.provider(&id).await {
                Ok(d) => d,
                Err(e) => return failed(&admin, e, "/admin/providers"),
            };
            let parsed = serde_json::from_str::<serde_json::Value>(&sample)
                .map_err(|e| format!("not JSON: {e}"));
            let result = match parsed {
                Ok(v) => b.preview_roles(&id, v).await.map_err(|e| match e {
                    BackendError::Invalid(m) => m,
                    e => e.to_string(),
                }),
                Err(e) => Err(e),
            };
            let (preview, error) = match &result {
                Ok(p) => (Some(p), None),
                Err(e) => (None, Some(e.as_str())),
            };
            render(
                if error.is_some() {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                },
                &ProviderPage {
                    admin: Some(&admin),
                    d: &d,
                    sample: &sample,
                    preview,
                    preview_error: error,
                },
            )
        }
        _ => message(
            StatusCode::NOT_FOUND,
            Some(&admin),
            "Not found",
            "no such action",
            &back,
        ),
    }
}

pub async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../static/admin.css"))
}

pub async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../static/admin.js"))
}
