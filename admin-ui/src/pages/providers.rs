//! Console identity providers: list, show, save (TOML and secret), enable or disable, role preview.

use super::*;

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersPage<'a> {
    admin: Option<&'a Admin>,
    providers: &'a [ProviderInfo],
    draft: &'a str,
    presets: &'a [crate::presets::Preset],
}

/// `GET /admin/providers[?preset=ID]`: the list, and the "Add a provider" form, started from a preset
/// when one is named (an unknown id starts empty).
pub async fn providers(req: HttpRequest, SignedIn(admin): SignedIn, b: Backend) -> HttpResponse {
    let draft = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "preset")
        .and_then(|(_, v)| crate::presets::preset(&v))
        .map(|p| p.toml)
        .unwrap_or("");
    match b.providers().await {
        Ok(p) => render(
            StatusCode::OK,
            &ProvidersPage {
                admin: Some(&admin),
                providers: &p,
                draft,
                presets: crate::presets::PRESETS,
            },
        ),
        Err(e) => internal(e),
    }
}

#[derive(Template)]
#[template(path = "provider.html")]
struct ProviderPage<'a> {
    admin: Option<&'a Admin>,
    d: &'a ProviderDetail,
    sample: &'a str,
    preview: Option<&'a RolePreview>,
    preview_error: Option<&'a str>,
}

pub async fn provider(
    SignedIn(admin): SignedIn,
    path: web::Path<String>,
    b: Backend,
) -> HttpResponse {
    match b.provider(&path).await {
        Ok(d) => {
            let sample = d
                .last_login
                .as_ref()
                .map(|l| pretty(&l.claims))
                .unwrap_or_else(|| "{}".into());
            render(
                StatusCode::OK,
                &ProviderPage {
                    admin: Some(&admin),
                    d: &d,
                    sample: &sample,
                    preview: None,
                    preview_error: None,
                },
            )
        }
        Err(e) => failed(&admin, e, "/admin/providers"),
    }
}

/// `POST /admin/providers` (create) and `POST /admin/providers/{id}` (update).
pub async fn save_provider(
    req: HttpRequest,
    AdminPost { admin, form: f }: AdminPost,
    b: Backend,
) -> HttpResponse {
    let existing = req.match_info().get("id").map(str::to_string);
    let source = f.get("source").cloned().unwrap_or_default();
    let secret = f.get("client_secret").cloned();
    let back = existing
        .as_ref()
        .map(|id| format!("/admin/providers/{id}"))
        .unwrap_or_else(|| "/admin/providers".into());
    match b
        .save_provider(
            &format!("admin:{}", admin.username),
            existing.as_deref(),
            source,
            secret,
        )
        .await
    {
        Ok(p) => redirect(&format!("/admin/providers/{}", p.id)),
        Err(e) => failed(&admin, e, &back),
    }
}

pub async fn provider_action(
    path: web::Path<(String, String)>,
    AdminPost { admin, form: f }: AdminPost,
    b: Backend,
) -> HttpResponse {
    let (id, action) = path.into_inner();
    let actor = format!("admin:{}", admin.username);
    let back = format!("/admin/providers/{id}");
    match action.as_str() {
        "enable" | "disable" => match b
            .set_provider_enabled(&actor, &id, action == "enable")
            .await
        {
            Ok(()) => redirect(&back),
            Err(e) => failed(&admin, e, &back),
        },
        "preview" => {
            let sample = f.get("claims").cloned().unwrap_or_default();
            let d = match b.provider(&id).await {
                Ok(d) => d,
                Err(e) => return failed(&admin, e, "/admin/providers"),
            };
            let parsed = serde_json::from_str::<serde_json::Value>(&sample)
                .map_err(|e| format!("not JSON: {e}"));
            let result = match parsed {
                Ok(v) => b.preview_roles(&id, v).await.map_err(|e| match e {
                    BackendError::Invalid(m) => m,
                    e => e.to_string(),
                }),
                Err(e) => Err(e),
            };
            let (preview, error) = match &result {
                Ok(p) => (Some(p), None),
                Err(e) => (None, Some(e.as_str())),
            };
            render(
                if error.is_some() {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                },
                &ProviderPage {
                    admin: Some(&admin),
                    d: &d,
                    sample: &sample,
                    preview,
                    preview_error: error,
                },
            )
        }
        _ => message(
            StatusCode::NOT_FOUND,
            Some(&admin),
            "Not found",
            "no such action",
            &back,
        ),
    }
}
