//! `GET|POST /sso/userinfo` (OIDC Core 5.3), `POST /sso/introspect` (RFC 7662), `POST /sso/revoke` (RFC 7009).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse, web};

use super::client_auth::authenticate;
use crate::oauth::grants::user_claims;
use actix_web::ResponseError;

use super::{OAuthError, form_body, json_no_store, verify_own};
use crate::oauth::clients::ClientType;
use crate::sso::hash;
use crate::store;
use crate::web::AppState;
use crate::web::sso::session::SessionIdentity;

// ------------------------------------------------------------------------------------------ userinfo

pub async fn userinfo_get(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    userinfo(&req, &st, None).await
}

pub async fn userinfo_post(
    req: HttpRequest,
    body: web::Bytes,
    st: web::Data<AppState>,
) -> HttpResponse {
    // RFC 6750 2.2: the token may come in a form body instead of the header (never both).
    let form = if body.is_empty() {
        None
    } else {
        match form_body(&req, &body) {
            Ok(f) => f.get("access_token").cloned(),
            Err(_) => {
                return bearer_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "unreadable body",
                );
            }
        }
    };
    userinfo(&req, &st, form).await
}

fn bearer_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let challenge = if error.is_empty() {
        "Bearer realm=\"sts\"".to_string()
    } else {
        format!(
            "Bearer realm=\"sts\", error=\"{error}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        )
    };
    let mut r = HttpResponse::build(status);
    r.insert_header((WWW_AUTHENTICATE, challenge))
        .insert_header((CACHE_CONTROL, "no-store"));
    if error.is_empty() {
        r.finish()
    } else {
        r.json(serde_json::json!({"error": error, "error_description": description}))
    }
}

async fn userinfo(req: &HttpRequest, st: &AppState, form_token: Option<String>) -> HttpResponse {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim().to_string())
        });
    let token = match (header, form_token) {
        (Some(_), Some(_)) => {
            return bearer_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the token is given twice",
            );
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return bearer_error(StatusCode::UNAUTHORIZED, "", ""),
    };
    let claims = match access_token_claims(st, &token).await {
        Ok(c) => c,
        Err(Inactive::Db(e)) => return OAuthError::from(e).error_response(),
        Err(Inactive::Reason(r)) => {
            tracing::info!(reason = ?r, "userinfo: token refused");
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is invalid, expired or revoked",
            );
        }
    };
    let scope: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if !scope.iter().any(|s| s == "openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the token was not granted the openid scope",
        );
    }
    let Some(sid) = claims["sid"].as_str() else {
        return bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the token does not represent a user",
        );
    };
    let row = match store::oauth::session_by_sid(&st.pool, sid, st.clock.now()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the single sign-on session has ended",
            );
        }
        Err(e) => return OAuthError::from(e).error_response(),
    };
    let (provider_id, subject, identity, roles) = row;
    let identity: SessionIdentity = match serde_json::from_str(&identity) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "a stored session is unreadable");
            return OAuthError::internal().error_response();
        }
    };
    let mut body = user_claims(&scope, &identity);
    body.insert(
        "sub".into(),
        crate::tokens::public_subject(&provider_id, &subject).into(),
    );
    if scope.iter().any(|s| s == "roles") {
        let roles: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
        body.insert("roles".into(), roles.into());
    }
    json_no_store(serde_json::Value::Object(body))
}

enum Inactive {
    Reason(String),
    Db(sqlx::Error),
}

/// An access token this STS issued that is still good: signature, type, issuer, expiry, not revoked, and
/// its SSO session (if it has one) still alive.
async fn access_token_claims(st: &AppState, token: &str) -> Result<serde_json::Value, Inactive> {
    let claims =
        verify_own(st, token, "at+jwt", false).map_err(|e| Inactive::Reason(e.to_string()))?;
    if let Some(jti) = claims["jti"].as_str()
        && store::oauth::is_revoked(&st.pool, jti)
            .await
            .map_err(Inactive::Db)?
    {
        return Err(Inactive::Reason("the token was revoked".into()));
    }
    if let Some(sid) = claims["sid"].as_str()
        && !store::oauth::session_alive(&st.pool, sid, st.clock.now())
            .await
            .map_err(Inactive::Db)?
    {
        return Err(Inactive::Reason(
            "the single sign-on session has ended".into(),
        ));
    }
    Ok(claims)
}

// ------------------------------------------------------------------------------------------ introspection

/// `POST /sso/introspect`: confidential clients only. Access tokens issued to the caller or naming it in
/// `aud` (a resource server registered as a client); refresh tokens only of the calling client. Anything
/// else is `{"active": false}`.
pub async fn introspect(
    req: HttpRequest,
    body: web::Bytes,
    st: web::Data<AppState>,
) -> HttpResponse {
    match do_introspect(&req, &body, &st).await {
        Ok(r) => r,
        Err(e) => e.error_response(),
    }
}

async fn do_introspect(
    req: &HttpRequest,
    body: &[u8],
    st: &AppState,
) -> Result<HttpResponse, OAuthError> {
    let p = form_body(req, body)?;
    let client = authenticate(req, &p, st).await?;
    if client.settings.client_type != ClientType::Confidential {
        return Err(OAuthError::invalid_client(
            "introspection is for confidential clients",
        ));
    }
    let token = token_param(&p)?;
    let inactive = || json_no_store(serde_json::json!({"active": false}));
    if token.matches('.').count() == 2 {
        return match access_token_claims(st, token).await {
            // Only the client it was issued to and the audiences it is for may learn about a token.
            Ok(c) if !token_concerns(&c, &client.settings.id) => Ok(inactive()),
            Ok(c) => {
                let mut out = serde_json::json!({"active": true, "token_type": "Bearer"});
                for k in [
                    "scope",
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "nbf",
                    "jti",
                    "roles",
                    "idp",
                    "sid",
                    "auth_time",
                ] {
                    if !c[k].is_null() {
                        out[k] = c[k].clone();
                    }
                }
                Ok(json_no_store(out))
            }
            Err(Inactive::Db(e)) => Err(e.into()),
            Err(Inactive::Reason(_)) => Ok(inactive()),
        };
    }
    let now = st.clock.now();
    let Some(row) = store::oauth::find_refresh(&st.pool, &hash(token)).await? else {
        return Ok(inactive());
    };
    if row.client_id != client.settings.id
        || row.used_at.is_some()
        || row.revoked_at.is_some()
        || row.expires_at <= now
        || !store::oauth::session_alive(&st.pool, &row.sid, now).await?
    {
        return Ok(inactive());
    }
    let grant: super::GrantData = serde_json::from_str(&row.grant_data).map_err(|e| {
        tracing::error!(error = %e, "a stored grant is unreadable");
        OAuthError::new("server_error", "internal error")
    })?;
    Ok(json_no_store(serde_json::json!({
        "active": true,
        "token_type": "refresh_token",
        "client_id": row.client_id,
        "sub": grant.subject,
        "scope": grant.scope.join(" "),
        "iss": st.issuer,
        "iat": row.created_at,
        "exp": row.expires_at,
        "sid": grant.sid,
    })))
}

/// Is `client_id` the token's client or one of its audiences?
fn token_concerns(claims: &serde_json::Value, client_id: &str) -> bool {
    claims["client_id"].as_str() == Some(client_id)
        || match &claims["aud"] {
            serde_json::Value::String(a) => a == client_id,
            serde_json::Value::Array(a) => a.iter().any(|x| x.as_str() == Some(client_id)),
            _ => false,
        }
}

fn token_param(p: &HashMap<String, String>) -> Result<&str, OAuthError> {
    p.get("token")
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))
}

// ------------------------------------------------------------------------------------------ revocation

/// `POST /sso/revoke`: a client revokes its own tokens. A refresh token revokes its whole family; an access
/// token is remembered as revoked until it expires. Unknown tokens and tokens of other clients answer 200
/// and change nothing (RFC 7009 2.2).
pub async fn revoke(req: HttpRequest, body: web::Bytes, st: web::Data<AppState>) -> HttpResponse {
    match do_revoke(&req, &body, &st).await {
        Ok(r) => r,
        Err(e) => e.error_response(),
    }
}

async fn do_revoke(
    req: &HttpRequest,
    body: &[u8],
    st: &AppState,
) -> Result<HttpResponse, OAuthError> {
    let p = form_body(req, body)?;
    let client = authenticate(req, &p, st).await?;
    let token = token_param(&p)?;
    let now = st.clock.now();
    if token.matches('.').count() == 2 {
        if let Ok(c) = verify_own(st, token, "at+jwt", false)
            && c["client_id"].as_str() == Some(client.settings.id.as_str())
            && let (Some(jti), Some(exp)) = (c["jti"].as_str(), c["exp"].as_i64())
        {
            store::oauth::revoke_access(&st.pool, jti, exp).await?;
            tracing::info!(client = %client.settings.id, "access token revoked");
        }
    } else if let Some(row) = store::oauth::find_refresh(&st.pool, &hash(token)).await?
        && row.client_id == client.settings.id
    {
        store::oauth::revoke_family(&st.pool, &row.family_id, now).await?;
        tracing::info!(client = %client.settings.id, "refresh token revoked");
    }
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .finish())
}
