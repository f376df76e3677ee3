//! Public, unauthenticated endpoints: JWKS, discovery, liveness and readiness.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;

/// `GET /sso/jwks.json` and `/.well-known/jwks.json` (RFC 7517): public keys only, built once per key
/// change; `Cache-Control` and a strong `ETag`, 304 on a matching `If-None-Match`.
pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let snap = state.keys.current();
    let jwks = &snap.jwks;
    let cache = format!("public, max-age={}", jwks.max_age);
    if if_none_match(&req, &jwks.etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, jwks.etag.clone()))
            .insert_header((header::CACHE_CONTROL, cache))
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .finish();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, jwks.etag.clone()))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(jwks.body.to_vec())
}

/// RFC 9110 weak comparison over a comma-separated list, `*` included.
fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .map(str::trim)
                .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == bare)
        })
}

/// `GET /.well-known/openid-configuration`: what exists today, truthfully (it grows with later work).
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    let max_age = state.keys.current().jwks.max_age;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(serde_json::json!({
            "issuer": state.issuer,
            "jwks_uri": state.jwks_uri,
        }))
}

/// `GET /health`: the process is up.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"status": "ok"}))
}

/// `GET /ready`: the database answers and an active signing key is loaded.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let db = state.keys.database_ok().await;
    let active = state.keys.current().active.as_ref().map(|k| k.kid.clone());
    let body = serde_json::json!({
        "status": if db && active.is_some() { "ready" } else { "not_ready" },
        "database": if db { "ok" } else { "unreachable" },
        "active_kid": active,
    });
    let mut res = if db && active.is_some() {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}
