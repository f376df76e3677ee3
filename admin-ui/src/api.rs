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

type Backend = web::Data<dyn AdminBackend>;

/// Largest JSON body.
pub const JSON_LIMIT: usize = 512 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    ListKeys,
    RegenerateKey,
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
            let m = web::method(r.method.parse().expect("valid method"));
            res = res.route(match r.op {
                Op::ListKeys => m.to(list_keys),
                Op::RegenerateKey => m.to(regenerate_key),
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

macro_rules! auth_or_return {
    ($req:expr, $b:expr) => {
        match authenticate(&$req, &$b).await {
            Ok(a) => a,
            Err(r) => return r,
        }
    };
}

async fn list_keys(req: HttpRequest, b: Backend) -> HttpResponse {
    auth_or_return!(req, b);
    let (limit, offset) = match paging(&req) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b.keys().await {
        Ok(k) => page(k, limit, offset),
        Err(e) => backend_error(e),
    }
}

async fn regenerate_key(req: HttpRequest, b: Backend) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    match b.regenerate_key(&actor).await {
        Ok(kid) => ok_json(StatusCode::CREATED, json!({"kid": kid})),
        Err(e) => backend_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeystoreImport {
    keystore_base64: String,
    password: String,
}

async fn import_key(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    let k: KeystoreImport = match json_body(&req, &body) {
        Ok(k) => k,
        Err(r) => return r.into(),
    };
    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(k.keystore_base64.trim())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "keystore_base64 is not base64",
        );
    };
    match b.import_keystore(&actor, data, k.password).await {
        Ok(kid) => ok_json(StatusCode::CREATED, json!({"kid": kid})),
        Err(e) => backend_error(e),
    }
}

async fn list_sessions(req: HttpRequest, b: Backend) -> HttpResponse {
    auth_or_return!(req, b);
    let (limit, offset) = match paging(&req) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b.sso_sessions().await {
        Ok(s) => page(s, limit, offset),
        Err(e) => backend_error(e),
    }
}

async fn revoke_session(req: HttpRequest, path: web::Path<String>, b: Backend) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    match b.revoke_sso_session(&actor, &path).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => backend_error(e),
    }
}

async fn list_applications(req: HttpRequest, b: Backend) -> HttpResponse {
    auth_or_return!(req, b);
    let (limit, offset) = match paging(&req) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b.clients().await {
        Ok(c) => page(c, limit, offset),
        Err(e) => backend_error(e),
    }
}

async fn create_application(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    let c: NewClient = match json_body(&req, &body) {
        Ok(c) => c,
        Err(r) => return r.into(),
    };
    match b.create_client(&actor, c).await {
        Ok((info, secret)) => ok_json(
            StatusCode::CREATED,
            json!({"application": info, "client_secret": secret}),
        ),
        Err(e) => backend_error(e),
    }
}

async fn update_application(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    let c: NewClient = match json_body(&req, &body) {
        Ok(c) => c,
        Err(r) => return r.into(),
    };
    match b.update_client(&actor, &path, c).await {
        Ok(info) => ok_json(
            StatusCode::OK,
            serde_json::to_value(info).unwrap_or_default(),
        ),
        Err(e) => backend_error(e),
    }
}

async fn rotate_secret(req: HttpRequest, path: web::Path<String>, b: Backend) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    match b.rotate_client_secret(&actor, &path).await {
        Ok(secret) => ok_json(StatusCode::CREATED, json!({"client_secret": secret})),
        Err(e) => backend_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    enabled: bool,
}

async fn set_enabled(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    let e: Enabled = match json_body(&req, &body) {
        Ok(e) => e,
        Err(r) => return r.into(),
    };
    match b.set_client_enabled(&actor, &path, e.enabled).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => backend_error(e),
    }
}

async fn list_audit(req: HttpRequest, b: Backend) -> HttpResponse {
    auth_or_return!(req, b);
    let (limit, offset) = match paging(&req) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b.audit_log(limit, offset).await {
        Ok((items, total)) => ok_json(
            StatusCode::OK,
            json!({"items": items, "total": total, "limit": limit, "offset": offset}),
        ),
        Err(e) => backend_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    with_secrets: Option<bool>,
}

async fn export(req: HttpRequest, b: Backend) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    let q = match web::Query::<ExportQuery>::from_query(req.query_string()) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid", &format!("query: {e}")),
    };
    match b.export(&actor, q.with_secrets.unwrap_or(false)).await {
        Ok(doc) => ok_json(StatusCode::OK, doc),
        Err(e) => backend_error(e),
    }
}

async fn import(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    let doc: Value = match json_body(&req, &body) {
        Ok(d) => d,
        Err(r) => return r.into(),
    };
    match b.import(&actor, doc).await {
        Ok(summary) => ok_json(StatusCode::OK, summary),
        Err(e) => backend_error(e),
    }
}

async fn list_providers(req: HttpRequest, b: Backend) -> HttpResponse {
    auth_or_return!(req, b);
    let (limit, offset) = match paging(&req) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b.providers().await {
        Ok(p) => page(p, limit, offset),
        Err(e) => backend_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSource {
    source: String,
    client_secret: Option<String>,
}

async fn create_provider(req: HttpRequest, body: web::Bytes, b: Backend) -> HttpResponse {
    save_provider(req, None, body, b, StatusCode::CREATED).await
}

async fn update_provider(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    save_provider(req, Some(path.into_inner()), body, b, StatusCode::OK).await
}

/// Create (`existing` None) or replace a console provider from a `ProviderSource` body.
async fn save_provider(
    req: HttpRequest,
    existing: Option<String>,
    body: web::Bytes,
    b: Backend,
    ok: StatusCode,
) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    let p: ProviderSource = match json_body(&req, &body) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b
        .save_provider(&actor, existing.as_deref(), p.source, p.client_secret)
        .await
    {
        Ok(info) => ok_json(ok, serde_json::to_value(info).unwrap_or_default()),
        Err(e) => backend_error(e),
    }
}

async fn set_provider_enabled(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    let actor = auth_or_return!(req, b);
    let e: Enabled = match json_body(&req, &body) {
        Ok(e) => e,
        Err(r) => return r.into(),
    };
    match b.set_provider_enabled(&actor, &path, e.enabled).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => backend_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleClaims {
    claims: Value,
}

async fn preview_roles(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    b: Backend,
) -> HttpResponse {
    auth_or_return!(req, b);
    let s: SampleClaims = match json_body(&req, &body) {
        Ok(s) => s,
        Err(r) => return r.into(),
    };
    match b.preview_roles(&path, s.claims).await {
        Ok(p) => ok_json(StatusCode::OK, serde_json::to_value(p).unwrap_or_default()),
        Err(e) => backend_error(e),
    }
}

// ---------------------------------------------------------------------------------------------- OpenAPI

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn paged(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "additionalProperties": false,
        "properties": {
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": 200},
            "offset": {"type": "integer", "minimum": 0}
        }
    })
}

fn schemas() -> Value {
    let application = json!({
        "type": "object",
        "required": ["id", "name", "type", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "audience", "roles", "auth_method", "enabled", "secret_set", "managed_by"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "type": {"type": "string", "enum": ["confidential", "public"]},
            "redirect_uris": strings(), "post_logout_redirect_uris": strings(), "grant_types": strings(), "scopes": strings(),
            "audience": strings(), "roles": strings(), "auth_method": {"type": "string"}, "enabled": {"type": "boolean"},
            "secret_set": {"type": "boolean"}, "managed_by": {"type": "string", "enum": ["config", "admin"]}
        }
    });
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
        "Key": {"type": "object", "required": ["kid", "algorithm", "source", "state", "created_at", "retire_at"], "additionalProperties": false, "properties": {
            "kid": {"type": "string"}, "algorithm": {"type": "string"}, "source": {"type": "string"}, "state": {"type": "string", "enum": ["active", "published", "retired"]},
            "created_at": {"type": "integer"}, "retire_at": {"type": ["integer", "null"]}}},
        "KeyPage": paged("Key"),
        "KidResult": {"type": "object", "required": ["kid"], "additionalProperties": false, "properties": {"kid": {"type": "string"}}},
        "KeystoreImport": {"type": "object", "required": ["keystore_base64", "password"], "additionalProperties": false, "properties": {
            "keystore_base64": {"type": "string", "description": "the PKCS#12 file, base64"}, "password": {"type": "string", "minLength": 1}}},
        "Session": {"type": "object", "required": ["sid", "subject", "provider", "username", "created_at", "expires_at", "applications"], "additionalProperties": false, "properties": {
            "sid": {"type": "string"}, "subject": {"type": "string"}, "provider": {"type": "string"}, "username": {"type": "string"},
            "created_at": {"type": "integer"}, "expires_at": {"type": "integer"}, "applications": strings()}},
        "SessionPage": paged("Session"),
        "Application": application,
        "ApplicationPage": paged("Application"),
        "NewApplication": {"type":"object","required":["id","type"],"additionalProperties":false,"properties":{"id":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,64}$"},"name":{"type":["string","null"],"minLength":1,"maxLength":128,"pattern":"^[^\\x00-\\x1f\\x7f-\\x9f]*$"},"type":{"type":"string","enum":["confidential","public"]},"redirect_uris":{"type":"array","items":{"type":"string","pattern":"^https://[a-z]+(\\.[a-z]+)*(/[A-Za-z0-9._~-]*)*$"}},"post_logout_redirect_uris":{"type":"array","items":{"type":"string","pattern":"^https://[a-z]+(\\.[a-z]+)*(/[A-Za-z0-9._~-]*)*$"}},"grant_types":{"type":["array","null"],"minItems":1,"items":{"type":"string","enum":["authorization_code","refresh_token","client_credentials"]}},"scopes":{"type":["array","null"],"items":{"type":"string","pattern":"^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,128}$"}},"audience":{"type":["array","null"],"minItems":1,"items":{"type":"string","minLength":1,"maxLength":512,"pattern":"^[^\\x00-\\x1f\\x7f-\\x9f]*$"}},"roles":{"type":"array","items":{"type":"string","minLength":1,"maxLength":256,"pattern":"^[^\\x00-\\x1f\\x7f-\\x9f]*$"}}},"allOf":[{"if":{"required":["type"],"properties":{"type":{"const":"public"}}},"then":{"properties":{"grant_types":{"type":["array","null"],"items":{"enum":["authorization_code","refresh_token"]}}}}},{"if":{"required":["grant_types"],"properties":{"grant_types":{"type":"array","contains":{"const":"refresh_token"}}}},"then":{"properties":{"grant_types":{"contains":{"const":"authorization_code"}}}}},{"if":{"anyOf":[{"not":{"required":["grant_types"]}},{"properties":{"grant_types":{"type":"null"}}},{"properties":{"grant_types":{"type":"array","contains":{"const":"authorization_code"}}}}]},"then":{"required":["redirect_uris"],"properties":{"redirect_uris":{"minItems":1}}}},{"if":{"required":["roles"],"properties":{"roles":{"minItems":1}}},"then":{"required":["grant_types"],"properties":{"grant_types":{"type":"array","contains":{"const":"client_credentials"}}}}}]},
        "CreatedApplication": {"type": "object", "required": ["application", "client_secret"], "additionalProperties": false, "properties": {
            "application": {"$ref": "#/components/schemas/Application"}, "client_secret": {"type": ["string", "null"]}}},
        "SecretResult": {"type": "object", "required": ["client_secret"], "additionalProperties": false, "properties": {"client_secret": {"type": "string"}}},
        "Enabled": {"type": "object", "required": ["enabled"], "additionalProperties": false, "properties": {"enabled": {"type": "boolean"}}},
        "AuditEntry": {"type": "object", "required": ["at", "actor", "action", "target", "details"], "additionalProperties": false, "properties": {
            "at": {"type": "integer"}, "actor": {"type": "string"}, "action": {"type": "string"}, "target": {"type": ["string", "null"]}, "details": {}}},
        "AuditPage": paged("AuditEntry"),
        "ExportDocument": {"type": "object", "required": ["format", "version"], "properties": {
            "format": {"const": "sts-export"}, "version": {"const": 1}, "exported_at": {},
            "providers": {"type": ["array", "null"], "items": {}},
            "applications": {"type": ["array", "null"], "items": {"type": "object", "required": ["settings", "managed_by", "enabled"], "properties": {
                "settings": {"type": "object"}, "managed_by": {"type": "string", "enum": ["config", "admin"]}, "enabled": {"type": "boolean"},
                "secret_hash": {"type": "string"}, "secret_key_id": {"type": "string"}}}},
            "keys": {"type": ["array", "null"], "items": {}}}},
        "ImportSummary": {"type": "object", "required": ["applications", "applications_skipped", "providers", "providers_skipped", "keys_skipped"], "additionalProperties": false, "properties": {
            "applications": {"type": "integer"}, "applications_skipped": {"type": "integer"}, "providers": {"type": "integer"}, "providers_skipped": {"type": "integer"}, "keys_skipped": {"type": "integer"}}},
        "Provider": {"type": "object", "required": ["id", "type", "display_name", "enabled", "managed_by", "source", "callback_url", "sp_metadata_url", "last_outcome", "last_at"], "additionalProperties": false, "properties": {
            "id": {"type": "string"}, "type": {"type": "string", "enum": ["oidc", "oauth2", "saml"]}, "display_name": {"type": "string"},
            "enabled": {"type": "boolean"}, "managed_by": {"type": "string", "enum": ["config", "admin"]}, "source": {"type": ["string", "null"]},
            "callback_url": {"type": "string"}, "sp_metadata_url": {"type": ["string", "null"]}, "last_outcome": {"type": ["string", "null"]}, "last_at": {"type": ["integer", "null"]}}},
        "ProviderPage": paged("Provider"),
        "ProviderSource": {"type": "object", "required": ["source"], "additionalProperties": false, "properties": {
            "source": {"type": "string", "description": "TOML: the keys of a [[providers]] entry"}, "client_secret": {"type": ["string", "null"]}}},
        "SampleClaims": {"type": "object", "required": ["claims"], "additionalProperties": false, "properties": {"claims": {"type": "object"}}},
        "RolePreview": {"type": "object", "required": ["external_values", "roles"], "additionalProperties": false, "properties": {
            "external_values": strings(), "roles": strings()}}
    })
}

/// The OpenAPI 3.1 document, generated from [`ROUTES`].
pub fn openapi_document() -> Value {
    let err = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut params = Vec::new();
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        if r.op == Op::Export {
            params.push(json!({"name": "with_secrets", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}}));
        }
        if r.paged {
            params.push(json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}));
            params.push(json!({"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0}}));
        }
        let mut responses = serde_json::Map::new();
        let (status, schema) = r.response;
        responses.insert(
            status.to_string(),
            match schema {
                Some(s) => json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}}),
                None => json!({"description": "success, no content"}),
            },
        );
        responses.insert("400".into(), err("invalid request"));
        responses.insert("401".into(), err("missing, unknown or revoked API token"));
        if r.path.contains('{') {
            responses.insert("404".into(), err("no such resource"));
        }
        if r.request.is_some() {
            responses.insert("415".into(), err("the body must be application/json"));
        }
        if matches!(
            r.op,
            Op::CreateApplication
                | Op::UpdateApplication
                | Op::RotateSecret
                | Op::SetApplicationEnabled
                | Op::CreateProvider
                | Op::UpdateProvider
                | Op::SetProviderEnabled
        ) {
            responses.insert("409".into(), err("conflicts with the current state (an id that exists, a configuration-file entry, no secret)"));
        }
        let mut op = json!({
            "operationId": format!("{:?}", r.op),
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
            "security": [{"bearer": []}],
        });
        if let Some(s) = r.request {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}});
        }
        let entry = paths
            .entry(format!("/admin/api/v1{}", r.path))
            .or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "STS admin API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an admin API token (Admin console → API tokens)"}}
        }
    })
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(openapi_document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_once() {
        let doc = openapi_document();
        let mut n = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                n += 1;
                assert!(
                    ROUTES
                        .iter()
                        .any(|r| format!("/admin/api/v1{}", r.path) == *path
                            && r.method.eq_ignore_ascii_case(method)),
                    "{method} {path}"
                );
                for (_, resp) in op["responses"].as_object().unwrap() {
                    if let Some(s) = resp
                        .pointer("/content/application~1json/schema/$ref")
                        .and_then(Value::as_str)
                    {
                        let name = s.trim_start_matches("#/components/schemas/");
                        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
                    }
                }
            }
        }
        assert_eq!(n, ROUTES.len());
    }
}
