//! `GET|POST /sso/authorize` and `GET /sso/authorize/resume`: the request read, `oauth::authorize`
//! asked, and its outcome answered (a redirect, a form post, a login, or an error page).
//!
//! Order of checks: parameters well-formed (no duplicates) → client known and enabled → `redirect_uri`
//! registered (exact string; loopback port only for public clients). Until here every failure is an error
//! page. From here failures go back to the client's redirect URI with `error`, `state` and `iss`:
//! `request`/`request_uri` unsupported → `response_type=code` → grant allowed → scopes allowed → PKCE
//! (S256 only; required for public clients) → `prompt`, `max_age`, `nonce`, `login_hint` → session.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{op, parse_params, with_params};
use crate::oauth::authorize::{AuthRequest, Outcome, Refusal, ResponseMode, Target};
use crate::oauth::clients::Client;
use crate::web::AppState;
use crate::web::sso::session::{self, BROWSER_COOKIE};

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
        Err(e) => page(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn handle(req: &HttpRequest, st: &AppState, raw: &[u8]) -> HttpResponse {
    let result = match parse_params(raw) {
        Ok(p) => match op(st).check_authorize(&p) {
            Ok((client, ar)) => decide(req, st, &client, ar, None).await,
            Err(f) => Err(f),
        },
        Err(e) => Err(Refusal::Page(e.to_string())),
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
    let browser = req.cookie(BROWSER_COOKIE);
    let browser = browser.as_ref().map(|c| c.value());
    let result = match op(&st).resume_authorize(&q.id, browser).await {
        Ok((client, ar, at)) => decide(&req, &st, &client, ar, Some(at)).await,
        Err(r) => Err(r),
    };
    result.unwrap_or_else(|r| fail(&st, r))
}

/// The decision for this browser's session, answered.
async fn decide(
    req: &HttpRequest,
    st: &AppState,
    client: &Client,
    ar: AuthRequest,
    resumed_at: Option<i64>,
) -> Result<HttpResponse, Refusal> {
    let user = session::current(req, st).await.map_err(|e| {
        tracing::error!(error = %e, "database error in /sso/authorize");
        Refusal::Internal
    })?;
    let browser = req.cookie(BROWSER_COOKIE);
    let outcome = op(st)
        .decide(
            client,
            ar,
            user.as_ref(),
            browser.as_ref().map(|c| c.value()),
            resumed_at,
        )
        .await?;
    Ok(match outcome {
        Outcome::Respond(t, params) => {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            respond(&t, &params)
        }
        Outcome::Login {
            location,
            new_browser,
        } => {
            let mut resp = redirect(&location);
            if let Some(browser_id) = new_browser {
                let _ = resp.add_cookie(&session::cookie(
                    BROWSER_COOKIE,
                    browser_id,
                    "/sso",
                    st.web.secure_cookies,
                    None,
                ));
            }
            resp
        }
    })
}

fn respond(t: &Target, params: &[(&str, &str)]) -> HttpResponse {
    match t.mode {
        ResponseMode::Query => redirect(&with_params(&t.redirect_uri, params)),
        ResponseMode::FormPost => form_post(&t.redirect_uri, params),
    }
}

pub(super) fn fail(st: &AppState, f: Refusal) -> HttpResponse {
    match f {
        Refusal::Page(message) => {
            tracing::info!(reason = ?message, "authorization request refused");
            page(StatusCode::BAD_REQUEST, &message)
        }
        Refusal::Internal => page(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        Refusal::Redirect(t, error, description) => {
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
