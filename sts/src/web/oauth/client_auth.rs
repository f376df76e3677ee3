//! Client authentication at the token, introspection and revocation endpoints: the `Authorization`
//! header and the form handed to `oauth::client_auth` (exactly one method per request).

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::HttpRequest;

use super::{OAuthError, op};
use crate::oauth::clients::Client;
use crate::web::AppState;

/// The authenticated client of this request (see `Op::authenticate_client`).
pub async fn authenticate(
    req: &HttpRequest,
    p: &HashMap<String, String>,
    st: &AppState,
) -> Result<Arc<Client>, OAuthError> {
    let authorization = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    op(st).authenticate_client(authorization, p).await
}
