//! `/providers`: list, create, replace (TOML source and secret), enable or disable, role preview.

use super::*;

pub(super) async fn list_providers(_: ApiActor, req: HttpRequest, b: Backend) -> HttpResponse {
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
pub(super) struct ProviderSource {
    source: String,
    client_secret: Option<String>,
}

pub(super) async fn create_provider(
    ApiActor(actor): ApiActor,
    ApiJson(p): ApiJson<ProviderSource>,
    b: Backend,
) -> HttpResponse {
    save_provider(actor, None, p, b, StatusCode::CREATED).await
}

pub(super) async fn update_provider(
    ApiActor(actor): ApiActor,
    path: web::Path<String>,
    ApiJson(p): ApiJson<ProviderSource>,
    b: Backend,
) -> HttpResponse {
    save_provider(actor, Some(path.into_inner()), p, b, StatusCode::OK).await
}

/// Create (`existing` None) or replace a console provider from a `ProviderSource` body.
pub(super) async fn save_provider(
    actor: String,
    existing: Option<String>,
    p: ProviderSource,
    b: Backend,
    ok: StatusCode,
) -> HttpResponse {
    match b
        .save_provider(&actor, existing.as_deref(), p.source, p.client_secret)
        .await
    {
        Ok(info) => ok_json(ok, serde_json::to_value(info).unwrap_or_default()),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn set_provider_enabled(
    ApiActor(actor): ApiActor,
    path: web::Path<String>,
    ApiJson(e): ApiJson<Enabled>,
    b: Backend,
) -> HttpResponse {
    match b.set_provider_enabled(&actor, &path, e.enabled).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => backend_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SampleClaims {
    claims: Value,
}

pub(super) async fn preview_roles(
    _: ApiActor,
    path: web::Path<String>,
    ApiJson(s): ApiJson<SampleClaims>,
    b: Backend,
) -> HttpResponse {
    match b.preview_roles(&path, s.claims).await {
        Ok(p) => ok_json(StatusCode::OK, serde_json::to_value(p).unwrap_or_default()),
        Err(e) => backend_error(e),
    }
}
