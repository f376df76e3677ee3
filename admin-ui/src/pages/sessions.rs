//! Users' SSO sessions, API tokens and the audit log.

use super::*;

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage<'a> {
    admin: Option<&'a Admin>,
    sessions: &'a [SsoSessionInfo],
}

pub async fn sessions(SignedIn(admin): SignedIn, b: Backend) -> HttpResponse {
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
    path: web::Path<String>,
    AdminPost { admin, .. }: AdminPost,
    b: Backend,
) -> HttpResponse {
    match b
        .revoke_sso_session(&format!("admin:{}", admin.username), &path)
        .await
    {
        Ok(()) => redirect("/admin/sessions"),
        Err(e) => failed(&admin, e, "/admin/sessions"),
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage<'a> {
    admin: Option<&'a Admin>,
    tokens: &'a [ApiTokenInfo],
}

pub async fn tokens(SignedIn(admin): SignedIn, b: Backend) -> HttpResponse {
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

pub async fn create_token(AdminPost { admin, form: f }: AdminPost, b: Backend) -> HttpResponse {
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
    path: web::Path<String>,
    AdminPost { admin, .. }: AdminPost,
    b: Backend,
) -> HttpResponse {
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

pub async fn audit(SignedIn(admin): SignedIn, b: Backend) -> HttpResponse {
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
