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

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0, RFC 8414): exactly what the
/// endpoints implement.
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    let max_age = state.keys.current().jwks.max_age;
    let base = &state.issuer;
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ];
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(serde_json::json!({
            "issuer": base,
            "jwks_uri": state.jwks_uri,
            "authorization_endpoint": format!("{base}/sso/authorize"),
            "token_endpoint": format!("{base}/sso/token"),
            "userinfo_endpoint": format!("{base}/sso/userinfo"),
            "introspection_endpoint": format!("{base}/sso/introspect"),
            "revocation_endpoint": format!("{base}/sso/revoke"),
            "end_session_endpoint": format!("{base}/sso/logout"),
            "device_authorization_endpoint": format!("{base}/sso/device_authorization"),
            // The encrypted token redirect for programs on the user's machine (not a registered name).
            "sts_token_redirect_endpoint": format!("{base}/sso/flow/redirect/token"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "grant_types_supported": [
                "authorization_code", "refresh_token", "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
            "introspection_endpoint_auth_methods_supported": &auth_methods[..3],
            "introspection_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": crate::oauth::clients::STANDARD_SCOPES,
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "acr", "amr", "azp", "at_hash",
                "sid", "idp", "name", "preferred_username", "email", "email_verified", "roles"
            ],
            // consent and select_account are accepted (no consent screen: applications are registered by
            // an admin; select_account acts as login) but not advertised as implemented.
            "prompt_values_supported": ["none", "login"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "claims_parameter_supported": false,
            "frontchannel_logout_supported": false,
            "backchannel_logout_supported": false,
        }))
}

/// `GET /health`: the process is up.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"status": "ok"}))
}

/// `GET /ready`: the database takes a write (probed at most once a second) and an active signing key is
/// loaded. `database` is `ok`, `unreachable` or `not_writable`.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        // Shutting down: a load balancer takes this replica out; requests are still served meanwhile.
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({"status": "shutting_down"}));
    }
    let database = state.keys.database_state().await;
    let db = database == "ok";
    let active = state.keys.current().active.as_ref().map(|k| k.kid.clone());
    let body = serde_json::json!({
        "status": if db && active.is_some() { "ready" } else { "not_ready" },
        "database": database,
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
