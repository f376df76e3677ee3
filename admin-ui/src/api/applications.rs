//! `/applications`: list, create, replace, rotate the secret, enable or disable.

use super::*;

pub(super) async fn list_applications(_: ApiActor, req: HttpRequest, b: Backend) -> HttpResponse {
    let (limit, offset) = match paging(&req) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b.clients().await {
        Ok(c) => page(c, limit, offset),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn create_application(
    ApiActor(actor): ApiActor,
    ApiJson(c): ApiJson<NewClient>,
    b: Backend,
) -> HttpResponse {
    match b.create_client(&actor, c).await {
        Ok((info, secret)) => ok_json(
            StatusCode::CREATED,
            json!({"application": info, "client_secret": secret}),
        ),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn update_application(
    ApiActor(actor): ApiActor,
    path: web::Path<String>,
    ApiJson(c): ApiJson<NewClient>,
    b: Backend,
) -> HttpResponse {
    match b.update_client(&actor, &path, c).await {
        Ok(info) => ok_json(
            StatusCode::OK,
            serde_json::to_value(info).unwrap_or_default(),
        ),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn rotate_secret(
    ApiActor(actor): ApiActor,
    path: web::Path<String>,
    b: Backend,
) -> HttpResponse {
    match b.rotate_client_secret(&actor, &path).await {
        Ok(secret) => ok_json(StatusCode::CREATED, json!({"client_secret": secret})),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn set_enabled(
    ApiActor(actor): ApiActor,
    path: web::Path<String>,
    ApiJson(e): ApiJson<Enabled>,
    b: Backend,
) -> HttpResponse {
    match b.set_client_enabled(&actor, &path, e.enabled).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => backend_error(e),
    }
}
