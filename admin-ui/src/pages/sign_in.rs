//! Signing in (password with its own CSRF cookie and the rate limits, or single sign-on) and out.

use super::*;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    admin: Option<&'a Admin>,
    csrf: &'a str,
    error: Option<&'a str>,
    username: &'a str,
    sso: bool,
}

pub(super) fn login_page(
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
    // Control characters (NUL, which PostgreSQL's TEXT cannot hold, included) are never part of a name.
    if username.is_empty()
        || username.len() > 64
        || username.chars().any(char::is_control)
        || password.is_empty()
        || password.len() > 1024
    {
        return login_page(
            StatusCode::BAD_REQUEST,
            &b,
            Some("enter your user name and password"),
            &username,
        );
    }
    // The address the server resolved (behind a trusted proxy, the client's), else the TCP peer.
    let ip = actix_web::HttpMessage::extensions(&req)
        .get::<crate::ClientAddr>()
        .map(|c| c.0)
        .or_else(|| req.peer_addr().map(|a| a.ip()))
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let now = b.now();
    let counted = match b
        .record_sign_in_attempt(RateLimiter::limits(&username, &ip), now)
        .await
    {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    if let Err(wait) = counted {
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
    let (forget, give_back) = RateLimiter::success_keys(&username);
    if let Err(e) = b.sign_in_succeeded(forget, give_back).await {
        return internal(e);
    }
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

pub async fn logout(AdminPost { admin, .. }: AdminPost, b: Backend) -> HttpResponse {
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
