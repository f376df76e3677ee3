//! `GET|POST /sso/logout`: end the SSO session (OpenID Connect RP-Initiated Logout 1.0).
//!
//! Ends this browser's session, revokes the session's refresh tokens (so every application that uses them
//! must sign in again), then shows the signed-out page or redirects to a registered
//! `post_logout_redirect_uri` with `state`. A redirect needs the client: from `id_token_hint` (an ID token
//! this STS issued; it may have expired) or `client_id` (they must agree). An unregistered
//! `post_logout_redirect_uri` or a foreign `id_token_hint` gets an error page, and the session is kept.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{parse_params, verify_own, with_params};
use crate::http::AppState;
use crate::sso::hash;
use crate::sso::session::{self, SESSION_COOKIE};
use crate::store;

pub async fn get(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    handle(&req, &st, req.query_string().as_bytes()).await
}

pub async fn post(req: HttpRequest, body: web::Bytes, st: web::Data<AppState>) -> HttpResponse {
    handle(&req, &st, &body).await
}

fn refuse(message: &str) -> HttpResponse {
    tracing::info!(reason = %message, "logout request refused");
    crate::sso::error_page(
        StatusCode::BAD_REQUEST,
        "Sign-out request refused",
        message,
        "invalid_logout_request",
    )
}

async fn handle(req: &HttpRequest, st: &AppState, raw: &[u8]) -> HttpResponse {
    let p = match parse_params(raw) {
        Ok(p) => p,
        Err(e) => return refuse(&e),
    };
    let mut client_id = p.get("client_id").cloned();
    if let Some(hint) = p.get("id_token_hint") {
        let claims = match verify_own(st, hint, "JWT", true) {
            Ok(c) => c,
            Err(_) => return refuse("id_token_hint is not an ID token issued by this service"),
        };
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
                    "post_logout_redirect_uri needs id_token_hint or client_id of a known client",
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
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        match store::login::delete_session(&st.pool, &hash(c.value())).await {
            Ok(Some(sid)) => {
                if let Err(e) =
                    store::oauth::revoke_session_tokens(&st.pool, &sid, st.clock.now()).await
                {
                    tracing::error!(error = %e, "revoking the session's tokens failed");
                    return crate::sso::error_page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Sign-out failed",
                        "internal error",
                        "internal_error",
                    );
                }
                tracing::info!(client = client_id.as_deref().unwrap_or("-"), "signed out");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "ending the session failed");
                return crate::sso::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign-out failed",
                    "internal error",
                    "internal_error",
                );
            }
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
            let mut resp = crate::sso::logged_out_page();
            let _ = resp.add_cookie(&removal);
            resp
        }
    }
}
