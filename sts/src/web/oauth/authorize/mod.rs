//! `GET|POST /sso/authorize` and `GET /sso/authorize/resume`.
//!
//! Order of checks: parameters well-formed (no duplicates) → client known and enabled → `redirect_uri`
//! registered (exact string; loopback port only for public clients). Until here every failure is an error
//! page. From here failures go back to the client's redirect URI with `error`, `state` and `iss`:
//! `request`/`request_uri` unsupported → `response_type=code` → grant allowed → scopes allowed → PKCE
//! (S256 only; required for public clients) → `prompt`, `max_age`, `nonce`, `login_hint` → session.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::{CODE_TTL, GrantData, parse_params, with_params};
use crate::crypto::constant_time_eq;
use crate::oauth::clients::{Client, ClientType, GrantType, redirect_uri_matches};
use crate::sso::{hash, random_token};
use crate::store;
use crate::web::AppState;
use crate::web::sso::session::{self, BROWSER_COOKIE, SessionUser};

mod validate;
use validate::validate;

/// A pending request waits this long for the user to log in (seconds).
const PENDING_TTL: i64 = 900;

/// A validated authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    response_mode: ResponseMode,
    scope: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: Vec<String>,
    max_age: Option<i64>,
    login_hint: Option<String>,
    /// `sub` of a valid `id_token_hint` ("" when the hint did not verify: it matches nobody).
    #[serde(default)]
    hint_sub: Option<String>,
    /// Set while the request waits for a login: the browser that must come back with it.
    #[serde(default)]
    browser_hash: Option<String>,
    /// Set while the request waits for a login: that login must be a fresh authentication.
    #[serde(default)]
    fresh: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ResponseMode {
    Query,
    FormPost,
}

/// Where an error goes: a page (no trustworthy redirect URI yet) or back to the client.
enum Failure {
    Page(StatusCode, String),
    Redirect(Box<Target>, &'static str, String),
}

struct Target {
    redirect_uri: String,
    state: Option<String>,
    mode: ResponseMode,
}

pub async fn get(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    handle(&req, &st, req.query_string().as_bytes()).await
}

pub async fn post(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form_ok = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form_ok {
        return page(
            StatusCode::BAD_REQUEST,
            "the body must be application/x-www-form-urlencoded",
        );
    }
    // The session cookie is SameSite=Lax: a cross-site POST does not carry it, the GET it is redirected
    // to does. So a POSTed request is answered as the same request by GET.
    match parse_params(&body) {
        Ok(p) => {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(p.iter())
                .finish();
            redirect(&format!("/sso/authorize?{q}"))
        }
        Err(e) => page(StatusCode::BAD_REQUEST, &e),
    }
}

async fn handle(req: &HttpRequest, st: &AppState, raw: &[u8]) -> HttpResponse {
    let result = match parse_params(raw) {
        Ok(p) => match validate(st, &p) {
            Ok((client, ar)) => decide(req, st, &client, ar, None).await,
            Err(f) => Err(f),
        },
        Err(e) => Err(Failure::Page(StatusCode::BAD_REQUEST, e)),
    };
    result.unwrap_or_else(|f| fail(st, f))
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    id: String,
}

/// `GET /sso/authorize/resume?id=...`: back from the login the request was waiting for.
pub async fn resume(
    req: HttpRequest,
    q: web::Query<ResumeQuery>,
    st: web::Data<AppState>,
) -> HttpResponse {
    let now = st.clock.now();
    let pending = match store::oauth::consume_authorize_request(&st.pool, &hash(&q.id), now).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "this sign-in request is unknown, was already used or has expired; go back to the application and start again",
            );
        }
        Err(e) => return fail(&st, db(e)),
    };
    let Ok(mut ar) = serde_json::from_str::<AuthRequest>(&pending.0) else {
        return page(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    // Only the browser that started the request may finish it.
    let browser = req
        .cookie(BROWSER_COOKIE)
        .map(|c| hash(c.value()))
        .unwrap_or_default();
    if !ar
        .browser_hash
        .take()
        .is_some_and(|h| constant_time_eq(h.as_bytes(), browser.as_bytes()))
    {
        return page(
            StatusCode::BAD_REQUEST,
            "this sign-in request was started in another browser; go back to the application and start again",
        );
    }
    // The client may have changed meanwhile: check it again.
    let Some(client) = st.clients.get(&ar.client_id) else {
        return page(StatusCode::BAD_REQUEST, "unknown or disabled client");
    };
    if !redirect_uri_matches(&client.settings, &ar.redirect_uri) {
        return page(
            StatusCode::BAD_REQUEST,
            "redirect_uri is not registered for this client",
        );
    }
    decide(&req, &st, &client, ar, Some(pending.1))
        .await
        .unwrap_or_else(|f| fail(&st, f))
}

fn internal(e: serde_json::Error) -> Failure {
    tracing::error!(error = %e, "could not serialise an authorization request");
    Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

fn db(e: sqlx::Error) -> Failure {
    tracing::error!(error = %e, "database error in /sso/authorize");
    Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

fn clone_target(t: &Target) -> Target {
    Target {
        redirect_uri: t.redirect_uri.clone(),
        state: t.state.clone(),
        mode: t.mode,
    }
}

fn target_of(ar: &AuthRequest) -> Box<Target> {
    Box::new(Target {
        redirect_uri: ar.redirect_uri.clone(),
        state: ar.state.clone(),
        mode: ar.response_mode,
    })
}

/// With a suitable session: a code at once. Otherwise a login, then `resume`. `resumed_at`: set on resume
/// (when the pending request was made); if the request demanded a fresh authentication (prompt=login,
/// max_age), the session's `auth_time` must be from after it, else the client gets `login_required`.
async fn decide(
    req: &HttpRequest,
    st: &AppState,
    client: &Client,
    mut ar: AuthRequest,
    resumed_at: Option<i64>,
) -> Result<HttpResponse, Failure> {
    let now = st.clock.now();
    let user = session::current(req, st).await.map_err(db)?;
    let s = &client.settings;
    let prompt = |x: &str| ar.prompt.iter().any(|p| p == x);
    let prompt_login = prompt("login") || prompt("select_account");
    let prompt_none = prompt("none");
    let provider_ok =
        |u: &SessionUser| s.providers.is_empty() || s.providers.contains(&u.provider_id);
    let hint_ok = |u: &SessionUser| {
        ar.hint_sub
            .as_deref()
            .is_none_or(|h| h == public_subject(&u.provider_id, &u.subject))
    };
    let fresh_enough = |u: &SessionUser| match resumed_at {
        // A few seconds of slack for the upstream IdP's clock.
        Some(t) => !ar.fresh || u.auth_time >= t - 5,
        None => !prompt_login && ar.max_age.is_none_or(|m| now - u.auth_time <= m),
    };
    let back = |e: &'static str, d: &str| Failure::Redirect(target_of(&ar), e, d.to_string());
    match &user {
        Some(u) if fresh_enough(u) && provider_ok(u) && hint_ok(u) => {
            return issue_code(st, client, &ar, u, now).await;
        }
        Some(u) if prompt_none => {
            return Err(back(
                "login_required",
                if !provider_ok(u) {
                    "this application does not accept the provider of the current session"
                } else if !hint_ok(u) {
                    "the current session is not the user of id_token_hint"
                } else {
                    "a new authentication is required (max_age)"
                },
            ));
        }
        Some(u) if resumed_at.is_some() => {
            return Err(if !provider_ok(u) {
                back(
                    "access_denied",
                    "this application does not accept the identity provider used",
                )
            } else {
                back(
                    "login_required",
                    "the identity provider did not authenticate the user again",
                )
            });
        }
        None if resumed_at.is_some() => {
            return Err(back("login_required", "the sign-in did not complete"));
        }
        None if prompt_none => {
            return Err(back(
                "login_required",
                "no single sign-on session (prompt=none)",
            ));
        }
        _ => {}
    }
    // A fresh authentication is needed when asked for, or when the session is too old for max_age.
    ar.fresh = prompt_login
        || user
            .as_ref()
            .is_some_and(|u| ar.max_age.is_some_and(|m| now - u.auth_time > m));
    // Re-authenticating a user goes back to the provider they used, when this application accepts it.
    let provider = match client.settings.providers.as_slice() {
        [only] => Some(only.clone()),
        _ => user
            .as_ref()
            .filter(|u| provider_ok(u))
            .map(|u| u.provider_id.clone()),
    };
    start_login(req, st, ar, now, provider).await
}

/// The `sub` of user tokens: the provider id and the provider's subject, so that two providers can never
/// issue the same `sub` (a subject is only unique within its IdP).
pub fn public_subject(provider_id: &str, subject: &str) -> String {
    crate::tokens::public_subject(provider_id, subject)
}

async fn start_login(
    req: &HttpRequest,
    st: &AppState,
    mut ar: AuthRequest,
    now: i64,
    provider: Option<String>,
) -> Result<HttpResponse, Failure> {
    let (browser_id, new_browser) = match req.cookie(BROWSER_COOKIE) {
        Some(c) if c.value().len() == 43 => (c.value().to_string(), false),
        _ => (random_token(), true),
    };
    ar.browser_hash = Some(hash(&browser_id));
    let id = random_token();
    let params = serde_json::to_string(&ar).map_err(internal)?;
    store::oauth::insert_authorize_request(&st.pool, &hash(&id), &params, now, now + PENDING_TTL)
        .await
        .map_err(db)?;
    let return_to = format!("/sso/authorize/resume?id={id}");
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("return_to", &return_to);
    if let Some(p) = &provider {
        q.append_pair("provider", p);
    }
    if let Some(h) = &ar.login_hint {
        q.append_pair("login_hint", h);
    }
    if ar.fresh {
        q.append_pair("force", "1");
    }
    let mut resp = redirect(&format!("/sso/login?{}", q.finish()));
    if new_browser {
        let _ = resp.add_cookie(&session::cookie(
            BROWSER_COOKIE,
            browser_id,
            "/sso",
            st.web.secure_cookies,
            None,
        ));
    }
    Ok(resp)
}

async fn issue_code(
    st: &AppState,
    client: &Client,
    ar: &AuthRequest,
    u: &SessionUser,
    now: i64,
) -> Result<HttpResponse, Failure> {
    let code = random_token();
    let grant = GrantData {
        redirect_uri: ar.redirect_uri.clone(),
        scope: ar.scope.clone(),
        nonce: ar.nonce.clone(),
        code_challenge: ar.code_challenge.clone(),
        subject: public_subject(&u.provider_id, &u.subject),
        idp: u.provider_id.clone(),
        roles: u.roles.clone(),
        identity: u.identity.clone(),
        auth_time: u.auth_time,
        acr: u.acr.clone(),
        amr: u.amr.clone(),
        sid: u.sid.clone(),
    };
    store::oauth::insert_code(
        &st.pool,
        &hash(&code),
        &client.settings.id,
        &u.sid,
        &serde_json::to_string(&grant).map_err(internal)?,
        now,
        now + CODE_TTL,
    )
    .await
    .map_err(db)?;
    store::oauth::touch_session_client(&st.pool, &u.sid, &client.settings.id, now)
        .await
        .map_err(db)?;
    tracing::info!(client = %client.settings.id, subject = ?u.subject, "authorization code issued");
    let mut params: Vec<(&str, &str)> = vec![("code", &code)];
    if let Some(s) = &ar.state {
        params.push(("state", s));
    }
    params.push(("iss", &st.issuer));
    Ok(respond(&target_of(ar), &params))
}

fn respond(t: &Target, params: &[(&str, &str)]) -> HttpResponse {
    match t.mode {
        ResponseMode::Query => redirect(&with_params(&t.redirect_uri, params)),
        ResponseMode::FormPost => form_post(&t.redirect_uri, params),
    }
}

fn fail(st: &AppState, f: Failure) -> HttpResponse {
    match f {
        Failure::Page(status, message) => {
            tracing::info!(reason = ?message, "authorization request refused");
            page(status, &message)
        }
        Failure::Redirect(t, error, description) => {
            tracing::info!(error, reason = ?description, "authorization request answered with an error");
            let mut params: Vec<(&str, &str)> =
                vec![("error", error), ("error_description", &description)];
            if let Some(s) = &t.state {
                params.push(("state", s));
            }
            params.push(("iss", &st.issuer));
            respond(&t, &params)
        }
    }
}

fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location.to_string()))
        .insert_header((CACHE_CONTROL, "no-store"))
        .finish()
}

fn page(status: StatusCode, message: &str) -> HttpResponse {
    crate::web::sso::error_page(
        status,
        "This application's sign-in request was refused",
        message,
        "invalid_authorization_request",
    )
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    action: &'a str,
    fields: Vec<(&'a str, &'a str)>,
}

/// OAuth 2.0 Form Post Response Mode: an auto-submitting form (same-origin script, no inline code).
fn form_post(action: &str, params: &[(&str, &str)]) -> HttpResponse {
    let html = match (FormPostPage {
        action,
        fields: params.to_vec(),
    })
    .render()
    {
        Ok(h) => h,
        Err(_) => return HttpResponse::InternalServerError().body("internal error"),
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // No form-action: browsers apply it to the redirects after the POST too, which would break
        // applications whose callback redirects elsewhere; the action is the registered URI anyway.
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(html)
}

pub async fn form_post_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body("document.addEventListener('DOMContentLoaded',function(){document.forms[0].submit();});\n")
}
