//! `/sessions` (users' SSO sessions) and `/audit`.

use super::*;

pub(super) async fn list_sessions(_: ApiActor, req: HttpRequest, b: Backend) -> HttpResponse {
    let (limit, offset) = match paging(&req) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b.sso_sessions().await {
        Ok(s) => page(s, limit, offset),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn revoke_session(
    ApiActor(actor): ApiActor,
    path: web::Path<String>,
    b: Backend,
) -> HttpResponse {
    match b.revoke_sso_session(&actor, &path).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn list_audit(_: ApiActor, req: HttpRequest, b: Backend) -> HttpResponse {
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
