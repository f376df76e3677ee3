//! The admin JSON API under `/admin/api/v1`, authenticated by admin API tokens (`Authorization: Bearer`).
//!
//! One table, [`ROUTES`], declares every operation (method, path, parameters, request and response
//! schemas). The routes are mounted from it and `/admin/api/openapi.json` is generated from it, so the
//! document cannot drift from what is served. Errors: `{"error": {"code", "message"}}`. Lists:
//! `{"items", "total", "limit", "offset"}` with `?limit=` (1..=200, default 50) and `?offset=`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth;
use crate::backend::{AdminBackend, BackendError, NewClient};

mod applications;
mod keys;
mod openapi;
mod providers;
mod sessions;
mod transfer;

use self::{applications::*, keys::*, openapi::openapi, providers::*, sessions::*, transfer::*};
pub use openapi::openapi_document;

type Backend = web::Data<dyn AdminBackend>;

/// Largest JSON body.
pub const JSON_LIMIT: usize = 512 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ListKeys,
    RegenerateKey,
    RotateKey,
    ImportKey,
    ListSessions,
    RevokeSession,
    ListApplications,
    CreateApplication,
    RotateSecret,
    UpdateApplication,
    SetApplicationEnabled,
    ListAudit,
    Export,
    Import,
    ListProviders,
    CreateProvider,
    UpdateProvider,
    SetProviderEnabled,
    PreviewRoles,
}

pub struct Route {
    pub op: Op,
    pub method: &'static str,
    /// Relative to `/admin/api/v1`, actix/OpenAPI style `{name}` parameters.
    pub path: &'static str,
    pub summary: &'static str,
    pub paged: bool,
    /// Component schema name of the JSON body, if any.
    pub request: Option<&'static str>,
    /// (status, component schema name or `None` for no body).
    pub response: (u16, Option<&'static str>),
}

pub const ROUTES: &[Route] = &[
    Route {
        op: Op::ListKeys,
        method: "GET",
        path: "/keys",
        summary: "List signing keys",
        paged: true,
        request: None,
        response: (200, Some("KeyPage")),
    },
    Route {
        op: Op::RegenerateKey,
        method: "POST",
        path: "/keys/regenerate",
        summary: "Generate a new active signing key",
        paged: false,
        request: None,
        response: (201, Some("KidResult")),
    },
    Route {
        op: Op::RotateKey,
        method: "POST",
        path: "/keys/rotate",
        summary: "Stage a new next key: published at once, active after the JWKS caches have turned over",
        paged: false,
        request: None,
        response: (201, Some("StagedKey")),
    },
    Route {
        op: Op::ImportKey,
        method: "POST",
        path: "/keys/import",
        summary: "Import a PKCS#12 keystore (exactly one RSA key pair)",
        paged: false,
        request: Some("KeystoreImport"),
        response: (201, Some("KidResult")),
    },
    Route {
        op: Op::ListSessions,
        method: "GET",
        path: "/sessions",
        summary: "List active SSO sessions",
        paged: true,
        request: None,
        response: (200, Some("SessionPage")),
    },
    Route {
        op: Op::RevokeSession,
        method: "DELETE",
        path: "/sessions/{sid}",
        summary: "End an SSO session and revoke its refresh tokens",
        paged: false,
        request: None,
        response: (204, None),
    },
    Route {
        op: Op::ListApplications,
        method: "GET",
        path: "/applications",
        summary: "List applications",
        paged: true,
        request: None,
        response: (200, Some("ApplicationPage")),
    },
    Route {
        op: Op::CreateApplication,
        method: "POST",
        path: "/applications",
        summary: "Register an application (the secret is returned once)",
        paged: false,
        request: Some("NewApplication"),
        response: (201, Some("CreatedApplication")),
    },
    Route {
        op: Op::UpdateApplication,
        method: "PUT",
        path: "/applications/{id}",
        summary: "Replace an application's settings (same id and type; validated like [[clients]]; the secret is kept)",
        paged: false,
        request: Some("NewApplication"),
        response: (200, Some("Application")),
    },
    Route {
        op: Op::RotateSecret,
        method: "POST",
        path: "/applications/{id}/secret",
        summary: "Replace an application's secret (returned once)",
        paged: false,
        request: None,
        response: (201, Some("SecretResult")),
    },
    Route {
        op: Op::SetApplicationEnabled,
        method: "PUT",
        path: "/applications/{id}/enabled",
        summary: "Enable or disable an application",
        paged: false,
        request: Some("Enabled"),
        response: (204, None),
    },
    Route {
        op: Op::ListAudit,
        method: "GET",
        path: "/audit",
        summary: "The audit log, newest first",
        paged: true,
        request: None,
        response: (200, Some("AuditPage")),
    },
    Route {
        op: Op::Export,
        method: "GET",
        path: "/export",
        summary: "The whole configuration as one versioned document (?with_secrets=true adds secret hashes)",
        paged: false,
        request: None,
        response: (200, Some("ExportDocument")),
    },
    Route {
        op: Op::Import,
        method: "POST",
        path: "/import",
        summary: "Validate a document completely, then apply it in one transaction",
        paged: false,
        request: Some("ExportDocument"),
        response: (200, Some("ImportSummary")),
    },
    Route {
        op: Op::ListProviders,
        method: "GET",
        path: "/providers",
        summary: "List identity providers",
        paged: true,
        request: None,
        response: (200, Some("ProviderPage")),
    },
    Route {
        op: Op::CreateProvider,
        method: "POST",
        path: "/providers",
        summary: "Add an identity provider (TOML settings as in [[providers]]; validated, active at once)",
        paged: false,
        request: Some("ProviderSource"),
        response: (201, Some("Provider")),
    },
    Route {
        op: Op::UpdateProvider,
        method: "PUT",
        path: "/providers/{id}",
        summary: "Replace a console provider's settings (an empty client_secret keeps the stored one)",
        paged: false,
        request: Some("ProviderSource"),
        response: (200, Some("Provider")),
    },
    Route {
        op: Op::SetProviderEnabled,
        method: "PUT",
        path: "/providers/{id}/enabled",
        summary: "Enable or disable a console provider",
        paged: false,
        request: Some("Enabled"),
        response: (204, None),
    },
    Route {
        op: Op::PreviewRoles,
        method: "POST",
        path: "/providers/{id}/preview",
        summary: "The roles a provider's mapping gives for sample claims (nothing is stored)",
        paged: false,
        request: Some("SampleClaims"),
        response: (200, Some("RolePreview")),
    },
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    // One resource per path (so a wrong method gets 405 with Allow), its routes from the table.
    let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
    paths.dedup();
    for path in paths {
        let allow: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.method)
            .collect();
        let allow = allow.join(", ");
        let mut res = web::resource(format!("/admin/api/v1{path}"))
            .app_data(web::PayloadConfig::new(JSON_LIMIT))
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move {
                    let mut r = error(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        "method not allowed here",
                    );
                    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allow) {
                        r.headers_mut().insert(actix_web::http::header::ALLOW, v);
                    }
                    r
                }
            }));
        for r in ROUTES.iter().filter(|r| r.path == path) {
            // ROUTES names methods as literals; one that does not parse is left out, and the unit test
            // `every_route_is_in_the_document_once` and the API tests (every documented operation is
            // served) would fail.
            let Ok(method) = r.method.parse() else {
                continue;
            };
            let m = web::method(method);
            res = res.route(match r.op {
                Op::ListKeys => m.to(list_keys),
                Op::RegenerateKey => m.to(regenerate_key),
                Op::RotateKey => m.to(rotate_key),
                Op::ImportKey => m.to(import_key),
                Op::ListSessions => m.to(list_sessions),
                Op::RevokeSession => m.to(revoke_session),
                Op::ListApplications => m.to(list_applications),
                Op::CreateApplication => m.to(create_application),
                Op::RotateSecret => m.to(rotate_secret),
                Op::UpdateApplication => m.to(update_application),
                Op::SetApplicationEnabled => m.to(set_enabled),
                Op::ListAudit => m.to(list_audit),
                Op::Export => m.to(export),
                Op::Import => m.to(import),
                Op::ListProviders => m.to(list_providers),
                Op::CreateProvider => m.to(create_provider),
                Op::UpdateProvider => m.to(update_provider),
                Op::SetProviderEnabled => m.to(set_provider_enabled),
                Op::PreviewRoles => m.to(preview_roles),
            });
        }
        cfg.service(res);
    }
    cfg.route("/admin/api/openapi.json", web::get().to(openapi))
        .service(web::scope("/admin/api").default_service(web::to(|| async {
            error(StatusCode::NOT_FOUND, "not_found", "no such API operation")
        })));
}

pub fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    r.insert_header((CACHE_CONTROL, "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        r.insert_header((WWW_AUTHENTICATE, "Bearer realm=\"sts-admin\""));
    }
    r.json(json!({"error": {"code": code, "message": message}}))
}

fn backend_error(e: BackendError) -> HttpResponse {
    match e {
        BackendError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid", &m),
        BackendError::NotFound => error(StatusCode::NOT_FOUND, "not_found", "no such resource"),
        BackendError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", &m),
        BackendError::Internal(m) => {
            tracing::error!(error = %m, "admin API: backend failure");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

/// The API token's actor name (`api:<token name>`), or the 401 answer.
async fn authenticate(req: &HttpRequest, b: &Backend) -> Result<String, HttpResponse> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim().to_string())
        })
        .filter(|t| !t.is_empty() && t.len() <= 256);
    let Some(token) = token else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an admin API token is required (Authorization: Bearer)",
        ));
    };
    match b.api_token(&auth::hash(&token)).await {
        Ok(Some(name)) => Ok(format!("api:{name}")),
        Ok(None) => Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API token is unknown or revoked",
        )),
        Err(e) => Err(backend_error(e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// A request refused before it reaches the backend; answered by [`error`].
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<Refusal> for HttpResponse {
    fn from(r: Refusal) -> Self {
        error(r.status, r.code, &r.message)
    }
}

fn paging(req: &HttpRequest) -> Result<(i64, i64), Refusal> {
    let p = web::Query::<Paging>::from_query(req.query_string())
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("query: {e}")))?;
    let limit = p.limit.unwrap_or(50);
    let offset = p.offset.unwrap_or(0);
    if !(1..=200).contains(&limit) || offset < 0 {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "limit must be 1..=200 and offset >= 0",
        ));
    }
    Ok((limit, offset))
}

fn page<T: serde::Serialize>(items: Vec<T>, limit: i64, offset: i64) -> HttpResponse {
    let total = items.len() as i64;
    let slice: Vec<T> = items
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    ok_json(
        StatusCode::OK,
        json!({"items": slice, "total": total, "limit": limit, "offset": offset}),
    )
}

fn ok_json(status: StatusCode, v: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(v)
}

fn json_body<T: serde::de::DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T, Refusal> {
    let ct = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be application/json",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "invalid", format!("body: {e}")))
}

/// A JSON request body: `application/json` (else `415`), parsed strictly into `T` (else `400`), as
/// `json_body` checks it.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for ApiJson<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let body = <web::Bytes as actix_web::FromRequest>::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await?;
            json_body(&req, &body).map(ApiJson).map_err(|r| {
                actix_web::error::InternalError::from_response(
                    "admin API refusal",
                    HttpResponse::from(r),
                )
                .into()
            })
        })
    }
}

/// The actor (`api:<token name>`) of a request with a valid admin API token; otherwise the request is
/// answered `401` before its body is read.
pub struct ApiActor(pub String);

impl actix_web::FromRequest for ApiActor {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let refusal = |r: HttpResponse| -> actix_web::Error {
                actix_web::error::InternalError::from_response("admin API refusal", r).into()
            };
            let b = req
                .app_data::<Backend>()
                .cloned()
                .ok_or_else(|| refusal(HttpResponse::InternalServerError().finish()))?;
            authenticate(&req, &b).await.map(ApiActor).map_err(refusal)
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Enabled {
    enabled: bool,
}
