//! `GET|POST /sso/logout`: end the SSO session (OpenID Connect RP-Initiated Logout 1.0).
//!
//! Ending the session revokes its refresh tokens, so every application that uses them must sign in again.
//! It happens at once only when the request proves it comes from the user's own application or page:
//! - an `id_token_hint` this STS issued (it may have expired) whose `sid` is this browser's session, or
//! - a POST carrying the confirmation token of this session (the form on `/sso/me` and on the
//!   confirmation page; a cross-site page cannot know it).
//!
//! Anything else (a bare link, a foreign or unverifiable hint) gets a confirmation page, so a cross-site
//! link cannot sign the user out of everything. A POST without a confirmation token (an application's
//! form post) is answered with a redirect to the same request as a GET, which carries the session cookie.
//!
//! Afterwards: the signed-out page, or a redirect to a registered `post_logout_redirect_uri` with `state`.
//! A redirect needs the client, from a valid `id_token_hint` or `client_id` (they must agree). An
//! unregistered `post_logout_redirect_uri` gets an error page and the session is kept.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{parse_params, verify_own, with_params};
use crate::crypto::constant_time_eq;
use crate::sso::hash;
use crate::store;
use crate::web::AppState;
use crate::web::sso::session::{self, SESSION_COOKIE};

pub async fn get(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    handle(&req, &st, req.query_string().as_bytes(), false).await
}

pub async fn post(req: HttpRequest, body: web::Bytes, st: web::Data<AppState>) -> HttpResponse {
    handle(&req, &st, &body, true).await
}

fn refuse(message: &str) -> HttpResponse {
    tracing::info!(reason = ?message, "logout request refused");
    crate::web::sso::error_page(
        StatusCode::BAD_REQUEST,
        "Sign-out request refused",
        message,
        "invalid_logout_request",
    )
}

fn internal(e: sqlx::Error) -> HttpResponse {
    tracing::error!(error = %e, "ending the session failed");
    crate::web::sso::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Sign-out failed",
        "internal error",
        "internal_error",
    )
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage<'a> {
    fields: Vec<(&'a str, &'a str)>,
}

async fn handle(req: &HttpRequest, st: &AppState, raw: &[u8], is_post: bool) -> HttpResponse {
    let p = match parse_params(raw) {
        Ok(p) => p,
        Err(e) => return refuse(&e.to_string()),
    };
    if is_post && !p.contains_key("confirm") {
        // An application's form post: cross-site, so without our SameSite=Lax cookie. Same request as GET.
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(p.iter())
            .finish();
        return HttpResponse::SeeOther()
            .insert_header((LOCATION, format!("/sso/logout?{q}")))
            .insert_header((CACHE_CONTROL, "no-store"))
            .finish();
    }
    let mut client_id = p.get("client_id").cloned();
    // A hint that does not verify is ignored (no redirect on its account, and a confirmation is asked).
    let hint = p
        .get("id_token_hint")
        .and_then(|h| verify_own(st, h, "JWT", true).ok());
    let hint_sid = hint
        .as_ref()
        .and_then(|c| c["sid"].as_str().map(str::to_string));
    if let Some(claims) = &hint {
        let aud = match &claims["aud"] {
            serde_json::Value::String(a) => Some(a.clone()),
            serde_json::Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_string),
            _ => None,
        };
        match (&client_id, aud) {
            (Some(c), Some(a)) if *c != a => {
                return refuse("client_id does not match id_token_hint");
            }
            (_, Some(a)) => client_id = Some(a),
            (_, None) => return refuse("id_token_hint has no single audience"),
        }
    }
    let redirect = match p.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client) = client_id.as_deref().and_then(|c| st.clients.get(c)) else {
                return refuse(
                    "post_logout_redirect_uri needs a valid id_token_hint or the client_id of a known client",
                );
            };
            if !client
                .settings
                .post_logout_redirect_uris
                .iter()
                .any(|r| r == uri)
            {
                return refuse("post_logout_redirect_uri is not registered for this client");
            }
            Some(uri.clone())
        }
    };
    let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let current = match session::current(req, st).await {
        Ok(u) => u,
        Err(e) => return internal(e),
    };
    if let (Some(user), Some(cookie)) = (&current, &cookie) {
        let by_hint = hint_sid.as_deref() == Some(user.sid.as_str());
        let by_form = is_post
            && p.get("confirm").is_some_and(|c| {
                constant_time_eq(
                    c.as_bytes(),
                    session::logout_confirmation_token(cookie).as_bytes(),
                )
            });
        if !by_hint && !by_form {
            let token = session::logout_confirmation_token(cookie);
            let mut fields: Vec<(&str, &str)> = vec![("confirm", &token)];
            if let Some(r) = &redirect {
                fields.push(("post_logout_redirect_uri", r));
                if let Some(c) = &client_id {
                    fields.push(("client_id", c));
                }
                if let Some(s) = p.get("state") {
                    fields.push(("state", s));
                }
            }
            return crate::web::sso::render_page(StatusCode::OK, &ConfirmPage { fields });
        }
        match store::login::delete_session(&st.pool, &hash(cookie)).await {
            Ok(Some(ended)) => {
                if let Some(sid) = ended.sid
                    && let Err(e) =
                        store::oauth::revoke_session_tokens(&st.pool, &sid, st.clock.now()).await
                {
                    return internal(e);
                }
                tracing::info!(client = ?client_id.as_deref().unwrap_or("-"), "signed out");
            }
            Ok(None) => {}
            Err(e) => return internal(e),
        }
    }
    let removal = session::removal(SESSION_COOKIE, "/", st.web.secure_cookies);
    match redirect {
        Some(uri) => {
            let mut params: Vec<(&str, &str)> = Vec::new();
            if let Some(s) = p.get("state") {
                params.push(("state", s));
            }
            HttpResponse::SeeOther()
                .insert_header((LOCATION, with_params(&uri, &params)))
                .insert_header((CACHE_CONTROL, "no-store"))
                .cookie(removal)
                .finish()
        }
        None => {
            let mut resp = crate::web::sso::logged_out_page();
            let _ = resp.add_cookie(&removal);
            resp
        }
    }
}
