//! Token-signing keys and the SAML SP key: the list, regenerate, PKCS#12 uploads.

use super::*;

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage<'a> {
    admin: Option<&'a Admin>,
    keys: &'a [KeyInfo],
    sp: Option<&'a SamlSpInfo>,
}

pub async fn keys(SignedIn(admin): SignedIn, b: Backend) -> HttpResponse {
    let sp = match b.saml_sp().await {
        Ok(sp) => sp,
        Err(e) => return internal(e),
    };
    match b.keys().await {
        Ok(keys) => render(
            StatusCode::OK,
            &KeysPage {
                admin: Some(&admin),
                keys: &keys,
                sp: sp.as_ref(),
            },
        ),
        Err(e) => internal(e),
    }
}

pub async fn rotate_key(AdminPost { admin, .. }: AdminPost, b: Backend) -> HttpResponse {
    match b.stage_next_key(&format!("admin:{}", admin.username)).await {
        Ok((kid, activate_after)) => message(
            StatusCode::OK,
            Some(&admin),
            "Next signing key staged",
            &format!(
                "{kid} is published now and becomes the active key at {}; the current key signs until then",
                super::time(activate_after)
            ),
            "/admin/keys",
        ),
        Err(e) => failed(&admin, e, "/admin/keys"),
    }
}

pub async fn regenerate_key(AdminPost { admin, .. }: AdminPost, b: Backend) -> HttpResponse {
    match b.regenerate_key(&format!("admin:{}", admin.username)).await {
        Ok(kid) => message(
            StatusCode::OK,
            Some(&admin),
            "New signing key",
            &format!(
                "the new active key is {kid}; the previous one stays published until its tokens have expired"
            ),
            "/admin/keys",
        ),
        Err(e) => failed(&admin, e, "/admin/keys"),
    }
}

/// `POST /admin/keys/import`: multipart with `csrf`, `password` and the `keystore` file.
pub(super) async fn import_upload(
    req: HttpRequest,
    payload: actix_multipart::Multipart,
    b: Backend,
    saml_sp: bool,
) -> HttpResponse {
    let fields = match crate::upload::read_fields(payload, UPLOAD_LIMIT).await {
        Ok(f) => f,
        Err(m) => {
            // Without a readable form there is no CSRF token either.
            tracing::info!(reason = ?m, "keystore upload unreadable");
            return match admin_for_post(&req, &b, None).await {
                // Not reached (no token given), but never a panic.
                Ok(a) => message(
                    StatusCode::FORBIDDEN,
                    Some(&a),
                    "Request refused",
                    &m.0,
                    "/admin/keys",
                ),
                Err(r) => r,
            };
        }
    };
    let text = |k: &str| {
        fields
            .get(k)
            .and_then(|v| String::from_utf8(v.clone()).ok())
    };
    let admin = match admin_for_post(&req, &b, text("csrf").as_deref()).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(data) = fields.get("keystore").filter(|d| !d.is_empty()).cloned() else {
        return message(
            StatusCode::BAD_REQUEST,
            Some(&admin),
            "Not imported",
            "choose a PKCS#12 file (.p12 / .pfx)",
            "/admin/keys",
        );
    };
    let password = text("password").unwrap_or_default();
    let actor = format!("admin:{}", admin.username);
    let result = if saml_sp {
        b.import_saml_sp(&actor, data, password).await.map(|f| {
            format!("the SAML SP certificate is now {f}; give IdP admins the new SP metadata")
        })
    } else {
        b.import_keystore(&actor, data, password)
            .await
            .map(|kid| format!("the new active key is {kid}"))
    };
    match result {
        Ok(msg) => message(
            StatusCode::OK,
            Some(&admin),
            "Keystore imported",
            &msg,
            "/admin/keys",
        ),
        Err(e) => failed(&admin, e, "/admin/keys"),
    }
}

pub async fn import_key(
    req: HttpRequest,
    payload: actix_multipart::Multipart,
    b: Backend,
) -> HttpResponse {
    import_upload(req, payload, b, false).await
}

pub async fn import_saml_key(
    req: HttpRequest,
    payload: actix_multipart::Multipart,
    b: Backend,
) -> HttpResponse {
    import_upload(req, payload, b, true).await
}
