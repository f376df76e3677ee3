//! The SSO session: an opaque random id in an HttpOnly cookie, stored hashed with idle and absolute
//! timeouts. A new id is issued at every login (the previous session, if any, is ended).

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::store;
use crate::web::AppState;

pub const SESSION_COOKIE: &str = "sts_session";
/// Binds login flows to the browser that started them.
pub const BROWSER_COOKIE: &str = "sts_browser";

pub use crate::sso::logout_confirmation_token;

pub use crate::sso::login::{SessionIdentity, SessionUser};

pub fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    secure: bool,
    max_age: Option<u64>,
) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(secure)
        // The browser-binding cookie must reach the SAML ACS, a cross-site POST: SameSite=None (only
        // allowed with Secure). It carries no authority by itself. The session cookie stays Lax.
        .same_site(if name == BROWSER_COOKIE && secure {
            SameSite::None
        } else {
            SameSite::Lax
        })
        .finish();
    if let Some(s) = max_age {
        c.set_max_age(CookieDuration::seconds(s as i64));
    }
    c
}

pub fn removal(name: &'static str, path: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(name, String::new(), path, secure, Some(0));
    c.make_removal();
    c
}

/// The live session of this request, if any (its idle deadline is extended).
pub async fn current(req: &HttpRequest, st: &AppState) -> Result<Option<SessionUser>, sqlx::Error> {
    let Some(c) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let now = st.clock.now();
    let row = store::login::touch_session(
        &st.pool,
        &crate::sso::hash(c.value()),
        now,
        now + st.web.login.session_idle as i64,
    )
    .await?;
    Ok(row.and_then(|r| {
        Some(SessionUser {
            identity: serde_json::from_str(&r.identity).ok()?,
            roles: serde_json::from_str(&r.roles).ok()?,
            sid: r.sid?,
            acr: r.acr,
            amr: r.amr.and_then(|a| serde_json::from_str(&a).ok()),
            subject: r.subject,
            provider_id: r.provider_id,
            auth_time: r.auth_time.unwrap_or(r.created_at),
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }))
}
