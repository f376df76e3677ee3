//! `/keys`: list, regenerate, import a PKCS#12 keystore (base64 in JSON).

use super::*;

pub(super) async fn list_keys(_: ApiActor, req: HttpRequest, b: Backend) -> HttpResponse {
    let (limit, offset) = match paging(&req) {
        Ok(p) => p,
        Err(r) => return r.into(),
    };
    match b.keys().await {
        Ok(k) => page(k, limit, offset),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn regenerate_key(ApiActor(actor): ApiActor, b: Backend) -> HttpResponse {
    match b.regenerate_key(&actor).await {
        Ok(kid) => ok_json(StatusCode::CREATED, json!({"kid": kid})),
        Err(e) => backend_error(e),
    }
}

pub(super) async fn rotate_key(ApiActor(actor): ApiActor, b: Backend) -> HttpResponse {
    match b.stage_next_key(&actor).await {
        Ok((kid, activate_after)) => ok_json(
            StatusCode::CREATED,
            json!({"kid": kid, "state": "next", "activate_after": activate_after}),
        ),
        Err(e) => backend_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeystoreImport {
    keystore_base64: String,
    password: String,
}

pub(super) async fn import_key(
    ApiActor(actor): ApiActor,
    ApiJson(k): ApiJson<KeystoreImport>,
    b: Backend,
) -> HttpResponse {
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
