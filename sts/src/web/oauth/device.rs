//! The device authorization grant's endpoints (`oauth::device`):
//! - `POST /sso/device_authorization`: a client (public: `client_id` alone) gets a device code and a user
//!   code; requests are limited per client address (an IPv6 address by its /64: 60 per 10 minutes),
//!   since each one stores a row. (No global cap: anyone could spend it and lock every device out.)
//! - `GET /sso/device[?user_code=…]`: needs an SSO session (else a login that comes back here); the code
//!   entry form, or with `user_code` (`verification_uri_complete`) the confirmation page at once.
//! - `POST /sso/device` (`csrf`, `user_code`, `action` = `lookup` | `approve` | `deny`), same origin only,
//!   with a CSRF token derived from the session cookie. Every wrong code entered counts against limits per
//!   session (20), per client address (50, an IPv6 /64) in 15 minutes and in all (1,000 a minute): a code
//!   is counted before it is looked up, and given back when it was right. Beyond the limits: 429, and
//!   the code is not looked at.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION, RETRY_AFTER};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use askama::Template;

use super::client_auth::authenticate;
use super::{OAuthError, form_body, json_no_store, op};
use crate::crypto::constant_time_eq;
use crate::oauth::device::{display_user_code, normalize_user_code};
use crate::sso::login::SessionUser;
use crate::web::AppState;
use crate::web::sso::session::{self, SESSION_COOKIE};

pub const MAX_CODES_PER_SESSION: i64 = 20;
pub const MAX_CODES_PER_ADDRESS: i64 = 50;
const CODE_WINDOW: i64 = 15 * 60;

/// The client address as rate limits count it (`client_addr::rate_key`).
pub(super) fn client_addr(req: &HttpRequest) -> String {
    req.extensions()
        .get::<admin_ui::ClientAddr>()
        .map(|c| crate::web::client_addr::rate_key(c.0))
        .unwrap_or_else(|| "-".into())
}

fn limit(key: String, max: i64, window: i64) -> admin_ui::backend::AttemptLimit {
    admin_ui::backend::AttemptLimit { key, max, window }
}

pub async fn authorization(
    req: HttpRequest,
    body: web::Bytes,
    st: web::Data<AppState>,
) -> HttpResponse {
    let result = async {
        let p = form_body(&req, &body)?;
        let client = authenticate(&req, &p, &st).await?;
        let limits = [limit(format!("devauth:ip:{}", client_addr(&req)), 60, 600)];
        if let Err(wait) = crate::store::attempts::record(&st.pool, &limits, st.clock.now()).await?
        {
            return Err(OAuthError::new(
                "slow_down",
                format!("too many device authorization requests; try again in {wait} seconds"),
            ));
        }
        op(&st)
            .device_authorization(&p, &client, st.web.device)
            .await
    }
    .await;
    match result {
        Ok(v) => json_no_store(v),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

struct Confirm {
    code: String,
    application: String,
    scopes: String,
    audience: String,
    reach: String,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    csrf: &'a str,
    user: &'a str,
    error: Option<&'a str>,
    confirm: Option<Confirm>,
    done: Option<&'a str>,
}

/// Proves a form came from a page rendered for this session: SHA-256 over the session cookie's value.
fn csrf_token(session_cookie: &str) -> String {
    crate::sso::hash(&format!("device-form:{session_cookie}"))
}

fn who(u: &SessionUser) -> String {
    let name = u
        .identity
        .display_name
        .clone()
        .unwrap_or_else(|| u.identity.username.clone());
    format!("{name} ({})", u.provider_id)
}

fn show(status: StatusCode, p: &DevicePage<'_>) -> HttpResponse {
    let mut resp = crate::web::sso::render_page(status, p);
    // The POST's Origin is checked: keep it (the site-wide policy is no-referrer).
    resp.headers_mut().insert(
        actix_web::http::header::REFERRER_POLICY,
        actix_web::http::header::HeaderValue::from_static("same-origin"),
    );
    resp
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    crate::web::sso::error_page(status, "Device sign-in", message, "device_refused")
}

fn internal(e: sqlx::Error) -> HttpResponse {
    tracing::error!(error = %e, "database error at /sso/device");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// The session of this request and its cookie value, or the login that comes back to `return_to`.
async fn signed_in(
    req: &HttpRequest,
    st: &AppState,
    return_to: &str,
) -> Result<(SessionUser, String), HttpResponse> {
    let user = session::current(req, st).await.map_err(internal)?;
    match (user, req.cookie(SESSION_COOKIE)) {
        (Some(u), Some(c)) => Ok((u, c.value().to_string())),
        _ => {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("return_to", return_to)
                .finish();
            Err(HttpResponse::SeeOther()
                .insert_header((LOCATION, format!("/sso/login?{q}")))
                .insert_header((CACHE_CONTROL, "no-store"))
                .finish())
        }
    }
}

fn code_limits(req: &HttpRequest, u: &SessionUser) -> [admin_ui::backend::AttemptLimit; 3] {
    [
        limit(
            format!("device:sid:{}", u.sid),
            MAX_CODES_PER_SESSION,
            CODE_WINDOW,
        ),
        limit(
            format!("device:ip:{}", client_addr(req)),
            MAX_CODES_PER_ADDRESS,
            CODE_WINDOW,
        ),
        limit("device:*".into(), 1000, 60),
    ]
}

/// A code that was right is not held against anyone.
async fn give_back(req: &HttpRequest, st: &AppState, u: &SessionUser) {
    let limits = code_limits(req, u);
    let keys: Vec<&str> = limits.iter().map(|l| l.key.as_str()).collect();
    if let Err(e) = crate::store::attempts::give_back(&st.pool, &keys).await {
        tracing::warn!(error = %e, "could not give back a device code attempt");
    }
}

/// Count one code entered; Err(the 429 page) beyond the limits.
async fn count(req: &HttpRequest, st: &AppState, u: &SessionUser) -> Result<(), HttpResponse> {
    let limits = code_limits(req, u);
    match crate::store::attempts::record(&st.pool, &limits, st.clock.now()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(wait)) => {
            tracing::warn!(
                reason = "device_code_limit",
                "too many device codes entered"
            );
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many codes entered; try again in {wait} seconds"),
            );
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(RETRY_AFTER, v);
            }
            Err(r)
        }
        Err(e) => Err(internal(e)),
    }
}

/// The confirmation page for a code, or the entry form with an error.
async fn look_up(
    req: &HttpRequest,
    st: &AppState,
    u: &SessionUser,
    csrf: &str,
    typed: &str,
) -> HttpResponse {
    if let Err(r) = count(req, st, u).await {
        return r;
    }
    let user = who(u);
    let found = op(st).device_lookup(typed).await;
    if let Ok(Some(_)) = &found {
        give_back(req, st, u).await;
    }
    match found {
        Ok(Some((client, request, code))) => show(
            StatusCode::OK,
            &DevicePage {
                csrf,
                user: &user,
                error: None,
                confirm: Some(Confirm {
                    code: display_user_code(&code),
                    application: format!("{} ({})", client.settings.name, client.settings.id),
                    scopes: request.scope.join(" "),
                    audience: request
                        .audience
                        .unwrap_or_else(|| client.settings.audience.clone())
                        .join(", "),
                    reach: client.settings.audience.join(", "),
                }),
                done: None,
            },
        ),
        Ok(None) => show(
            StatusCode::BAD_REQUEST,
            &DevicePage {
                csrf,
                user: &user,
                error: Some("This code is wrong, was already used or has expired."),
                confirm: None,
                done: None,
            },
        ),
        Err(e) => internal(e),
    }
}

fn user_code_param(q: &str) -> Option<String> {
    let p: HashMap<String, String> = super::parse_params(q.as_bytes()).ok()?;
    p.get("user_code").cloned()
}

/// `GET /sso/device[?user_code=…]`.
pub async fn get(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let typed = user_code_param(req.query_string());
    // Only a well-formed code is carried through the login (return_to stays plain).
    let return_to = match typed.as_deref().and_then(normalize_user_code) {
        Some(c) => format!("/sso/device?user_code={c}"),
        None => "/sso/device".into(),
    };
    let (u, cookie) = match signed_in(&req, &st, &return_to).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let csrf = csrf_token(&cookie);
    match typed {
        Some(t) => look_up(&req, &st, &u, &csrf, &t).await,
        None => show(
            StatusCode::OK,
            &DevicePage {
                csrf: &csrf,
                user: &who(&u),
                error: None,
                confirm: None,
                done: None,
            },
        ),
    }
}

#[derive(serde::Deserialize)]
pub struct DeviceForm {
    csrf: Option<String>,
    user_code: Option<String>,
    action: Option<String>,
}

/// `POST /sso/device`.
pub async fn post(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: Result<web::Form<DeviceForm>, actix_web::Error>,
) -> HttpResponse {
    if !super::same_origin(&req, &st) {
        return error(
            StatusCode::BAD_REQUEST,
            "this form was posted from another site",
        );
    }
    let Ok(form) = form.map(web::Form::into_inner) else {
        return error(StatusCode::BAD_REQUEST, "the form is malformed");
    };
    let (u, cookie) = match signed_in(&req, &st, "/sso/device").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let csrf = csrf_token(&cookie);
    if !form
        .csrf
        .as_deref()
        .is_some_and(|c| constant_time_eq(c.as_bytes(), csrf.as_bytes()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "this form is out of date; open the device page again",
        );
    }
    let typed = form.user_code.unwrap_or_default();
    let approve = match form.action.as_deref() {
        Some("lookup") => return look_up(&req, &st, &u, &csrf, &typed).await,
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "action must be lookup, approve or deny",
            );
        }
    };
    if let Err(r) = count(&req, &st, &u).await {
        return r;
    }
    let user = who(&u);
    let decided = op(&st).device_decide(&typed, &u, approve).await;
    if let Ok(Ok(())) = &decided {
        give_back(&req, &st, &u).await;
    }
    match decided {
        Ok(Ok(())) => show(
            StatusCode::OK,
            &DevicePage {
                csrf: &csrf,
                user: &user,
                error: None,
                confirm: None,
                done: Some(if approve {
                    "Your device is signed in"
                } else {
                    "The request was denied"
                }),
            },
        ),
        Ok(Err(message)) => show(
            StatusCode::BAD_REQUEST,
            &DevicePage {
                csrf: &csrf,
                user: &user,
                error: Some(message),
                confirm: None,
                done: None,
            },
        ),
        Err(e) => internal(e),
    }
}
