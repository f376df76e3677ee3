//! `POST /sso/token`: the form read, the client authenticated, then the grant (`oauth::grants`).

use actix_web::{HttpRequest, HttpResponse, web};

use super::client_auth::authenticate;
use super::{OAuthError, form_body, json_no_store, op};
use crate::web::AppState;

pub async fn token(req: HttpRequest, body: web::Bytes, st: web::Data<AppState>) -> HttpResponse {
    match handle(&req, &body, &st).await {
        Ok(r) => r,
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], st: &AppState) -> Result<HttpResponse, OAuthError> {
    let p = form_body(req, body)?;
    let grant = p
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    let client = authenticate(req, &p, st).await?;
    Ok(json_no_store(op(st).grant(grant, &p, &client).await?))
}
