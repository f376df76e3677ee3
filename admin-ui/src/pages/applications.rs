//! Registered applications: list, show, create, edit, rotate the secret, enable or disable.

use super::*;

#[derive(Template)]
#[template(path = "applications.html")]
struct ApplicationsPage<'a> {
    admin: Option<&'a Admin>,
    clients: &'a [ClientInfo],
}

pub async fn applications(SignedIn(admin): SignedIn, b: Backend) -> HttpResponse {
    match b.clients().await {
        Ok(c) => render(
            StatusCode::OK,
            &ApplicationsPage {
                admin: Some(&admin),
                clients: &c,
            },
        ),
        Err(e) => internal(e),
    }
}

pub(super) fn lines(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

pub(super) fn words(v: Option<&String>) -> Option<Vec<String>> {
    v.map(|s| {
        s.split([' ', ',', '\n'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    })
    .filter(|w| !w.is_empty())
}

#[derive(Template)]
#[template(path = "application.html")]
struct ApplicationPage<'a> {
    admin: Option<&'a Admin>,
    c: &'a ClientInfo,
}

pub async fn application(
    SignedIn(admin): SignedIn,
    path: web::Path<String>,
    b: Backend,
) -> HttpResponse {
    match b.clients().await {
        Ok(list) => match list
            .iter()
            .find(|c| c.id == *path && c.managed_by == "admin")
        {
            Some(c) => render(
                StatusCode::OK,
                &ApplicationPage {
                    admin: Some(&admin),
                    c,
                },
            ),
            None => message(
                StatusCode::NOT_FOUND,
                Some(&admin),
                "Not found",
                "no such application managed in the console",
                "/admin/applications",
            ),
        },
        Err(e) => internal(e),
    }
}

/// The application fields of a console form.
pub(super) fn client_form(f: &HashMap<String, String>) -> NewClient {
    NewClient {
        id: f.get("id").cloned().unwrap_or_default().trim().to_string(),
        name: f
            .get("name")
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        client_type: f.get("type").cloned().unwrap_or_default(),
        redirect_uris: lines(f.get("redirect_uris")),
        post_logout_redirect_uris: lines(f.get("post_logout_redirect_uris")),
        grant_types: words(f.get("grant_types")),
        scopes: words(f.get("scopes")),
        audience: words(f.get("audience")),
        roles: words(f.get("roles")).unwrap_or_default(),
        access_token_lifetime_seconds: seconds(f.get("access_token_lifetime_seconds")),
        refresh_token_lifetime_seconds: seconds(f.get("refresh_token_lifetime_seconds")),
        // On the edit page the field is always there: empty means any provider.
        providers: f
            .get("providers")
            .map(|_| words(f.get("providers")).unwrap_or_default()),
    }
}

/// A number of seconds from a form field: absent → None (keep or default); empty → Some(0) (back to the
/// default); anything that is not a positive number → Some(-1), which validation refuses with the field's
/// range.
fn seconds(v: Option<&String>) -> Option<i64> {
    let v = v?.trim();
    if v.is_empty() {
        return Some(0);
    }
    Some(v.parse::<i64>().ok().filter(|n| *n > 0).unwrap_or(-1))
}

pub async fn update_application(
    path: web::Path<String>,
    AdminPost { admin, form: f }: AdminPost,
    b: Backend,
) -> HttpResponse {
    let back = format!("/admin/applications/{}", path.as_str());
    match b
        .update_client(&format!("admin:{}", admin.username), &path, client_form(&f))
        .await
    {
        Ok(_) => redirect("/admin/applications"),
        Err(e) => failed(&admin, e, &back),
    }
}

pub async fn create_application(
    AdminPost { admin, form: f }: AdminPost,
    b: Backend,
) -> HttpResponse {
    let new = client_form(&f);
    match b
        .create_client(&format!("admin:{}", admin.username), new)
        .await
    {
        Ok((c, Some(secret))) => render(
            StatusCode::OK,
            &SecretPage {
                admin: Some(&admin),
                title: "Application registered",
                what: &format!(
                    "the client secret of {} — shown only now; copy it into the application's configuration",
                    c.id
                ),
                secret: &secret,
                back: "/admin/applications",
            },
        ),
        Ok((_, None)) => redirect("/admin/applications"),
        Err(e) => failed(&admin, e, "/admin/applications"),
    }
}

pub async fn rotate_secret(
    path: web::Path<String>,
    AdminPost { admin, .. }: AdminPost,
    b: Backend,
) -> HttpResponse {
    match b
        .rotate_client_secret(&format!("admin:{}", admin.username), &path)
        .await
    {
        Ok(secret) => render(
            StatusCode::OK,
            &SecretPage {
                admin: Some(&admin),
                title: "New client secret",
                what: &format!(
                    "the new secret of {} — shown only now; the previous one no longer works",
                    path.as_str()
                ),
                secret: &secret,
                back: "/admin/applications",
            },
        ),
        Err(e) => failed(&admin, e, "/admin/applications"),
    }
}

pub async fn set_enabled(
    path: web::Path<(String, String)>,
    AdminPost { admin, .. }: AdminPost,
    b: Backend,
) -> HttpResponse {
    let (id, what) = path.into_inner();
    let enabled = match what.as_str() {
        "enable" => true,
        "disable" => false,
        _ => {
            return message(
                StatusCode::NOT_FOUND,
                Some(&admin),
                "Not found",
                "no such action",
                "/admin/applications",
            );
        }
    };
    match b
        .set_client_enabled(&format!("admin:{}", admin.username), &id, enabled)
        .await
    {
        Ok(()) => redirect("/admin/applications"),
        Err(e) => failed(&admin, e, "/admin/applications"),
    }
}
