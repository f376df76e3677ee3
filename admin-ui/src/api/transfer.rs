//! `/export` and `/import`.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    with_secrets: Option<bool>,
}

pub(super) async fn export(
    ApiActor(actor): ApiActor,
    req: HttpRequest,
    b: Backend,
) -> HttpResponse {
    let q = match web::Query::<ExportQuery>::from_query(req.query_string()) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid", &format!("query: {e}")),
    };
    match b.export(&actor, q.with_secrets.unwrap_or(false)).await {
        Ok(doc) => ok_json(StatusCode::OK, doc),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn import(
    ApiActor(actor): ApiActor,
    ApiJson(doc): ApiJson<Value>,
    b: Backend,
) -> HttpResponse {
    match b.import(&actor, doc).await {
        Ok(summary) => ok_json(StatusCode::OK, summary),
        Err(e) => backend_error(e),
    }
}
