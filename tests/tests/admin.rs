//! The admin console and admin API over HTTP: sign-in (argon2id, rate limit), sessions and CSRF on every
//! state-changing route, escaping, API tokens, signing credentials, applications, SSO sessions, audit.

use std::collections::HashMap;

use base64::Engine;
use sts_tests::{TestApp, browser, spawn_app};

const PASSWORD: &str = "correct horse battery staple";

/// `name="csrf" value="..."` of a page.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no csrf field in:\n{html}"))
        .to_string()
}

fn pre(html: &str, id: &str) -> String {
    html.split(&format!("id=\"{id}\">"))
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_else(|| panic!("no #{id} in:\n{html}"))
        .to_string()
}

async fn create_admin(app: &TestApp, user: &str) {
    app.cli(
        &[
            "admin",
            "create",
            "--username",
            user,
            "--password-env",
            "ADMIN_PW",
        ],
        &[("ADMIN_PW", PASSWORD)],
    )
    .await
    .ok();
}

/// Sign in; returns the client (cookies) and the status of the sign-in POST.
async fn sign_in(app: &TestApp, user: &str, password: &str) -> (reqwest::Client, u16, String) {
    let client = browser();
    let page = client
        .get(format!("{}/admin/login", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap());
    let res = client
        .post(format!("{}/admin/login", app.address))
        .form(&[("username", user), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    (client, status, body)
}

async fn admin(app: &TestApp) -> (reqwest::Client, String) {
    let (client, status, body) = sign_in(app, "root", PASSWORD).await;
    assert_eq!(status, 303, "{body}");
    let dash = client
        .get(format!("{}/admin", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&dash);
    (client, csrf)
}

async fn post_form(client: &reqwest::Client, url: String, form: &[(&str, &str)]) -> (u16, String) {
    let res = client.post(url).form(form).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn api_token(app: &TestApp, client: &reqwest::Client, csrf: &str, name: &str) -> String {
    let (st, html) = post_form(
        client,
        format!("{}/admin/tokens", app.address),
        &[("csrf", csrf), ("name", name)],
    )
    .await;
    assert_eq!(st, 200, "{html}");
    let token = pre(&html, "secret");
    assert!(token.starts_with("stsadm_"), "{token}");
    token
}

#[tokio::test]
async fn sign_in_needs_the_right_password_and_is_rate_limited() {
    let app = spawn_app().await;
    create_admin(&app, "root").await;
    create_admin(&app, "ops").await;
    // The CLI refuses a short password and a second create.
    let out = app
        .cli(
            &[
                "admin",
                "create",
                "--username",
                "x",
                "--password-env",
                "ADMIN_PW",
            ],
            &[("ADMIN_PW", "short")],
        )
        .await;
    assert_ne!(out.status, 0);
    assert!(out.stderr.contains("12 characters"), "{}", out.stderr);
    let out = app
        .cli(
            &[
                "admin",
                "create",
                "--username",
                "root",
                "--password-env",
                "ADMIN_PW",
            ],
            &[("ADMIN_PW", PASSWORD)],
        )
        .await;
    assert_ne!(out.status, 0, "exists already");

    // Not signed in: every page sends to the sign-in page.
    let res = browser()
        .get(format!("{}/admin/keys", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/admin/login");

    // Wrong password, unknown user: the same answer.
    let (_, st, body) = sign_in(&app, "root", "not the password at all").await;
    assert_eq!(st, 401);
    assert!(body.contains("wrong user name or password"));
    let (_, st, body2) = sign_in(&app, "nobody", "not the password at all").await;
    assert_eq!(st, 401);
    assert!(body2.contains("wrong user name or password"));

    // The sign-in form's own CSRF token (double submit) is required.
    let res = browser()
        .post(format!("{}/admin/login", app.address))
        .form(&[
            ("username", "root"),
            ("password", PASSWORD),
            ("csrf", "forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Five failures lock the account for a while, even with the right password.
    for _ in 0..4 {
        let (_, st, _) = sign_in(&app, "ops", "wrong password, again").await;
        assert_eq!(st, 401);
    }
    let (_, st, _) = sign_in(&app, "ops", "wrong password, again").await;
    assert_eq!(st, 401);
    let (_, st, body) = sign_in(&app, "ops", PASSWORD).await;
    assert_eq!(st, 429, "{body}");
    assert!(body.contains("too many failed sign-ins"), "{body}");

    // The other account still signs in; the cookie is HttpOnly, SameSite=Strict, scoped to /admin.
    let client = browser();
    let page = client
        .get(format!("{}/admin/login", app.address))
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let res = client
        .post(format!("{}/admin/login", app.address))
        .form(&[
            ("username", "ROOT"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sts_admin="))
        .expect("session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let dash = client
        .get(format!("{}/admin", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(dash.status(), 200);
    let csp = dash.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(dash.headers()["referrer-policy"], "no-referrer");
    let html = dash.text().await.unwrap();
    let kid = app.jwks_kids().await[0].clone();
    assert!(html.contains(&kid), "the dashboard shows the active kid");

    // Signing out ends the session.
    let csrf = csrf_of(&html);
    let (st, _) = post_form(
        &client,
        format!("{}/admin/logout", app.address),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(st, 303);
    let res = client
        .get(format!("{}/admin", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn every_state_changing_route_needs_a_session_and_its_csrf_token() {
    let app = spawn_app().await;
    create_admin(&app, "root").await;
    let (client, csrf) = admin(&app).await;
    // Something to act on: an application and an API token.
    let (st, html) = post_form(
        &client,
        format!("{}/admin/applications", app.address),
        &[
            ("csrf", &csrf),
            ("id", "app-1"),
            ("type", "confidential"),
            ("redirect_uris", "https://a.example.com/cb"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{html}");
    let token = api_token(&app, &client, &csrf, "t1").await;
    let tokens_page = client
        .get(format!("{}/admin/tokens", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token_id = tokens_page
        .split("/admin/tokens/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();

    let kids = app.jwks_kids().await;
    let audit_before = audit_total(&app, &token).await;
    let anonymous = browser();
    for pattern in admin_ui::STATE_CHANGING_PAGES {
        let path = pattern
            .replace("{sid}", "some-session")
            .replace("{provider}", "corp")
            .replace(
                "{id}",
                if pattern.contains("tokens") {
                    &token_id
                } else {
                    "app-1"
                },
            );
        let url = format!("{}{path}", app.address);
        // No session at all.
        let res = anonymous
            .post(&url)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path} without a session");
        // A session, but no or a wrong token.
        let res = client.post(&url).form(&[("x", "1")]).send().await.unwrap();
        assert_eq!(res.status(), 403, "{path} without a CSRF token");
        let res = client
            .post(&url)
            .form(&[("csrf", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path} with a wrong CSRF token");
    }
    // Multipart upload without the token.
    let form = reqwest::multipart::Form::new().text("password", "x").part(
        "keystore",
        reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("k.p12"),
    );
    let res = client
        .post(format!("{}/admin/keys/import", app.address))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Nothing changed: same keys, the token still works, the application is still enabled.
    assert_eq!(app.jwks_kids().await, kids);
    assert_eq!(
        audit_total(&app, &token).await,
        audit_before,
        "no change was audited"
    );
    let apps = api_get(&app, &token, "/applications").await;
    assert_eq!(apps["items"][0]["enabled"], true);
    // Still signed in afterwards (the refused logout did not end the session).
    assert_eq!(
        client
            .get(format!("{}/admin", app.address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn audit_total(app: &TestApp, token: &str) -> i64 {
    api_get(app, token, "/audit").await["total"]
        .as_i64()
        .unwrap()
}

async fn api_get(app: &TestApp, token: &str, path: &str) -> serde_json::Value {
    let res = reqwest::Client::new()
        .get(format!("{}/admin/api/v1{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

#[tokio::test]
async fn names_are_escaped_in_every_page() {
    let app = spawn_app().await;
    create_admin(&app, "root").await;
    let (client, csrf) = admin(&app).await;
    let xss = "<script>alert(1)</script>";
    let (st, html) = post_form(
        &client,
        format!("{}/admin/applications", app.address),
        &[
            ("csrf", &csrf),
            ("id", "xss"),
            ("name", xss),
            ("type", "confidential"),
            (
                "redirect_uris",
                "https://a.example.com/cb?x=\"><img src=x onerror=alert(1)>",
            ),
        ],
    )
    .await;
    // The redirect URI is refused (whitespace/quotes are fine for URL parsing? then it is stored escaped).
    let page = client
        .get(format!("{}/admin/applications", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains(xss), "raw payload in the page");
    assert!(!page.contains("<img src=x"), "raw payload in the page");
    if st == 200 {
        assert!(
            page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{page}"
        );
    } else {
        assert!(!html.contains("<img src=x"), "{html}");
    }
    let (st, html) = post_form(
        &client,
        format!("{}/admin/tokens", app.address),
        &[("csrf", &csrf), ("name", "<b onmouseover=alert(1)>t</b>")],
    )
    .await;
    assert_eq!(st, 200);
    assert!(!html.contains("<b onmouseover"), "{html}");
    let page = client
        .get(format!("{}/admin/tokens", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("<b onmouseover") && page.contains("&#60;b onmouseover"),
        "{page}"
    );
    let audit = client
        .get(format!("{}/admin/audit", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !audit.contains("<b onmouseover") && !audit.contains(xss),
        "{audit}"
    );
}

#[tokio::test]
async fn api_tokens_keys_and_applications() {
    let app = spawn_app().await;
    create_admin(&app, "root").await;
    let (client, csrf) = admin(&app).await;
    let api = format!("{}/admin/api/v1", app.address);
    let http = reqwest::Client::new();

    // Without a token, with a wrong one: 401 with a JSON error and a Bearer challenge.
    for auth in [None, Some("stsadm_wrong")] {
        let mut req = http.get(format!("{api}/keys"));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let token = api_token(&app, &client, &csrf, "automation").await;

    // Keys: list (paged), regenerate, import with a wrong then the right password.
    let keys = api_get(&app, &token, "/keys?limit=1").await;
    assert_eq!(keys["limit"], 1);
    assert_eq!(keys["items"].as_array().unwrap().len(), 1);
    let res = http
        .post(format!("{api}/keys/regenerate"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let kid: String = res.json::<serde_json::Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .into();
    assert!(
        app.jwks_kids().await.contains(&kid),
        "a new key is published at once"
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sts_tests::pkcs12_fixture(d, "imported", "keystore-pw");
    let p12 =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(d.join("ks.p12")).unwrap());
    let before = app.jwks_kids().await;
    let res = http
        .post(format!("{api}/keys/import"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"keystore_base64": p12, "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{body}"
    );
    assert_eq!(
        app.jwks_kids().await,
        before,
        "a refused import changes nothing"
    );
    let res = http
        .post(format!("{api}/keys/import"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"keystore_base64": p12, "password": "keystore-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let imported: String = res.json::<serde_json::Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .into();
    assert!(app.jwks_kids().await.contains(&imported));
    let keys = api_get(&app, &token, "/keys").await;
    let active: Vec<&serde_json::Value> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["kid"], imported.as_str());
    assert_eq!(active[0]["source"], "imported");
    // Wrong content type, unknown field: 4xx with a JSON error.
    let res = http
        .post(format!("{api}/keys/import"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = http
        .post(format!("{api}/applications"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": "m", "type": "confidential", "nonsense": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // Applications: a machine client created by the API gets tokens with its secret; rotation replaces it.
    let res = http
        .post(format!("{api}/applications"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": "batch", "type": "confidential", "grant_types": ["client_credentials"], "roles": ["svc"], "audience": ["orders"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: serde_json::Value = res.json().await.unwrap();
    let secret = created["client_secret"].as_str().unwrap().to_string();
    let cc = |secret: String| {
        let url = format!("{}/sso/token", app.address);
        async move {
            reqwest::Client::new()
                .post(url)
                .basic_auth("batch", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(cc(secret.clone()).await, 200);
    let res = http
        .post(format!("{api}/applications/batch/secret"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let secret2 = res.json::<serde_json::Value>().await.unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        cc(secret.clone()).await,
        401,
        "the old secret stops working"
    );
    assert_eq!(cc(secret2.clone()).await, 200);
    let res = http
        .put(format!("{api}/applications/batch/enabled"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        cc(secret2).await,
        401,
        "a disabled application gets no tokens"
    );
    let res = http
        .post(format!("{api}/applications"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": "bad", "type": "confidential", "redirect_uris": ["http://evil.example.com/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "validated like [[clients]]");
    let res = http
        .delete(format!("{api}/sessions/nope"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = http
        .patch(format!("{api}/keys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    // The audit log names who did what, without secrets.
    let audit = api_get(&app, &token, "/audit?limit=200").await;
    let text = audit.to_string();
    for action in [
        "key.regenerate",
        "key.import",
        "key.import_refused",
        "application.create",
        "application.rotate_secret",
        "application.disable",
        "api_token.create",
        "admin.login",
    ] {
        assert!(text.contains(action), "{action} missing from {text}");
    }
    assert!(text.contains("api:automation") && text.contains("admin:root"));
    assert!(!text.contains(&secret) && !text.contains("keystore-pw") && !text.contains(&token));

    // The OpenAPI document lists exactly what is served.
    let doc: serde_json::Value = http
        .get(format!("{}/admin/api/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            seen.entry(path.clone()).or_default().push(method.clone());
            let url = format!(
                "{}{}",
                app.address,
                path.replace("{sid}", "x").replace("{id}", "batch")
            );
            let res = http
                .request(method.to_uppercase().parse().unwrap(), &url)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                401,
                "{method} {path} exists and needs a token"
            );
        }
    }
    assert_eq!(
        seen.values().map(Vec::len).sum::<usize>(),
        admin_ui::api::ROUTES.len()
    );

    // A revoked token is refused.
    let page = client
        .get(format!("{}/admin/tokens", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let id = page
        .split("/admin/tokens/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_string();
    let (st, _) = post_form(
        &client,
        format!("{}/admin/tokens/{id}/revoke", app.address),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(st, 303);
    let res = http
        .get(format!("{api}/keys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn keystore_upload_and_regenerate_in_the_console() {
    let app = spawn_app().await;
    create_admin(&app, "root").await;
    let (client, csrf) = admin(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sts_tests::pkcs12_fixture(d, "imported", "keystore-pw");
    let p12 = std::fs::read(d.join("ks.p12")).unwrap();
    let upload = |password: &str| {
        reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .text("password", password.to_string())
            .part(
                "keystore",
                reqwest::multipart::Part::bytes(p12.clone()).file_name("ks.p12"),
            )
    };
    let before = app.jwks_kids().await;
    let res = client
        .post(format!("{}/admin/keys/import", app.address))
        .multipart(upload("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("password"), "{html}");
    assert_eq!(app.jwks_kids().await, before);
    let res = client
        .post(format!("{}/admin/keys/import", app.address))
        .multipart(upload("keystore-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let kid = html
        .split("the new active key is ")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .trim()
        .to_string();
    assert!(app.jwks_kids().await.contains(&kid), "{kid}");
    let page = client
        .get(format!("{}/admin/keys", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&kid) && page.contains("imported"));
    let (st, html) = post_form(
        &client,
        format!("{}/admin/keys/regenerate", app.address),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(st, 200);
    let new = html
        .split("the new active key is ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .trim()
        .to_string();
    let kids = app.jwks_kids().await;
    assert!(
        kids.contains(&new) && kids.contains(&kid),
        "the previous key stays published: {kids:?}"
    );
    // The SAML SP key and certificate, likewise: wrong password refused, right one shown by fingerprint.
    let page = client
        .get(format!("{}/admin/keys", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"no-saml-sp\""), "{page}");
    let res = client
        .post(format!("{}/admin/keys/saml-import", app.address))
        .multipart(upload("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = client
        .post(format!("{}/admin/keys/saml-import", app.address))
        .multipart(upload("keystore-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    let fp = html
        .split("the SAML SP certificate is now ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_string();
    assert_eq!(fp.len(), 64, "{html}");
    let page = client
        .get(format!("{}/admin/keys", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&fp) && page.contains("CN=imported"), "{page}");
}

#[tokio::test]
async fn export_then_import_into_an_empty_database_reproduces_the_configuration() {
    let config = r#"
[[clients]]
id = "from-config"
type = "confidential"
redirect_uris = ["https://c.example.com/cb"]
"#;
    let app = sts_tests::spawn_app_with(sts_tests::AppOptions::default().config(config)).await;
    create_admin(&app, "root").await;
    let (client, csrf) = admin(&app).await;
    let token = api_token(&app, &client, &csrf, "export").await;
    let http = reqwest::Client::new();
    let api = format!("{}/admin/api/v1", app.address);
    for body in [
        serde_json::json!({"id": "web", "name": "Web", "type": "confidential", "redirect_uris": ["https://w.example.com/cb"], "post_logout_redirect_uris": ["https://w.example.com/bye"]}),
        serde_json::json!({"id": "job", "type": "confidential", "grant_types": ["client_credentials"], "roles": ["svc"], "audience": ["api"], "scopes": ["api.read"]}),
        serde_json::json!({"id": "cli", "type": "public", "redirect_uris": ["http://127.0.0.1/cb"]}),
    ] {
        let res = http
            .post(format!("{api}/applications"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    // A provider added in the console (its client secret is carried only with --with-secrets).
    let source = "id = \"corp\"\ntype = \"oidc\"\nissuer = \"https://login.example.com\"\nclient_id = \"sts\"\n\n[roles]\nclaim = \"groups\"\nrules = [ { match = \"x\", roles = [\"y\"] } ]\n";
    let res = http
        .post(format!("{api}/providers"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source, "client_secret": "provider-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = http
        .put(format!("{api}/applications/cli/enabled"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // CLI export to a file (0600), without secrets by default.
    let file = app.dir.path().join("export.json");
    app.cli(&["export", "--out", file.to_str().unwrap()], &[])
        .await
        .ok();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["format"], "sts-export");
    assert_eq!(doc["version"], 1);
    assert!(!doc.to_string().contains("secret_hash"));
    assert!(!doc.to_string().contains("PRIVATE") && !doc.to_string().contains("sealed"));
    assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
    // The API gives the same applications.
    let via_api: serde_json::Value = http
        .get(format!("{api}/export"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(via_api["applications"], doc["applications"]);

    // Import into an empty database (a second STS with the same configuration file: the file's
    // applications come from it, the document's copies of them are only counted).
    let empty = sts_tests::spawn_app_with(sts_tests::AppOptions::default().config(config)).await;
    let target = empty.dir.path().join("in.json");
    std::fs::copy(&file, &target).unwrap();
    // The console provider comes without its client secret: the whole import is refused, with the reason.
    let out = empty.cli(&["import", target.to_str().unwrap()], &[]).await;
    assert_ne!(out.status, 0);
    assert!(
        out.stderr.contains("providers[0]") && out.stderr.contains("--with-secrets"),
        "{}",
        out.stderr
    );
    // Without it, the applications import.
    let mut apps_only = doc.clone();
    apps_only["providers"] = serde_json::json!([]);
    std::fs::write(&target, apps_only.to_string()).unwrap();
    let out = empty
        .cli(&["import", target.to_str().unwrap()], &[])
        .await
        .ok();
    assert!(
        out.stdout.contains("\"applications\":3")
            && out.stdout.contains("\"applications_skipped\":1"),
        "{}",
        out.stdout
    );
    let again = empty.dir.path().join("again.json");
    empty
        .cli(&["export", "--out", again.to_str().unwrap()], &[])
        .await
        .ok();
    let doc2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&again).unwrap()).unwrap();
    assert_eq!(
        doc2["applications"], doc["applications"],
        "the applications round-trip exactly"
    );

    // A document with one bad entry changes nothing.
    let mut bad = doc.clone();
    bad["applications"][0]["settings"]["id"] = "new-one".into();
    bad["applications"][2]["settings"]["redirect_uris"] =
        serde_json::json!(["http://evil.example.com/cb"]);
    let bad_file = empty.dir.path().join("bad.json");
    std::fs::write(&bad_file, bad.to_string()).unwrap();
    let out = empty
        .cli(&["import", bad_file.to_str().unwrap()], &[])
        .await;
    assert_ne!(out.status, 0);
    assert!(
        out.stderr.contains("applications[2]") && out.stderr.contains("nothing changed"),
        "{}",
        out.stderr
    );
    let after = empty.dir.path().join("after.json");
    empty
        .cli(&["export", "--out", after.to_str().unwrap()], &[])
        .await
        .ok();
    let doc3: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&after).unwrap()).unwrap();
    assert_eq!(
        doc3["applications"], doc["applications"],
        "nothing was half-applied"
    );
    // With --with-secrets, into a database under the same master key: the provider round-trips too.
    let secrets_file = app.dir.path().join("with-secrets.json");
    app.cli(
        &[
            "export",
            "--with-secrets",
            "--out",
            secrets_file.to_str().unwrap(),
        ],
        &[],
    )
    .await
    .ok();
    let with: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&secrets_file).unwrap()).unwrap();
    assert!(with["providers"][0]["secret_sealed"].is_string());
    assert!(
        !with.to_string().contains("provider-secret"),
        "the secret itself never appears"
    );
    let twin_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(twin_dir.path().join("keys")).unwrap();
    std::fs::copy(
        app.dir.path().join("keys/master.key"),
        twin_dir.path().join("keys/master.key"),
    )
    .unwrap();
    let twin = sts_tests::try_spawn_in(twin_dir, sts_tests::AppOptions::default())
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    create_admin(&twin, "root").await;
    let (c, csrf) = admin(&twin).await;
    let twin_token = api_token(&twin, &c, &csrf, "t").await;
    let res = http
        .post(format!("{}/admin/api/v1/import", twin.address))
        .bearer_auth(&twin_token)
        .json(&with)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let again: serde_json::Value = http
        .get(format!("{}/admin/api/v1/export", twin.address))
        .bearer_auth(&twin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["providers"][0]["source"],
        with["providers"][0]["source"]
    );
    assert_eq!(
        again["providers"][0]["settings"], with["providers"][0]["settings"],
        "the provider round-trips"
    );
    assert_eq!(
        again["applications"].as_array().unwrap().len(),
        3,
        "the configuration-file application is only counted"
    );
    let live: serde_json::Value = http
        .get(format!("{}/admin/api/v1/providers", twin.address))
        .bearer_auth(&twin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["items"][0]["id"], "corp", "registered at once");
    // Under another master key the sealed secret cannot be opened: refused, nothing applied.
    let other_file = empty.dir.path().join("w.json");
    std::fs::write(&other_file, with.to_string()).unwrap();
    let out = empty
        .cli(&["import", other_file.to_str().unwrap()], &[])
        .await;
    assert_ne!(out.status, 0);
    assert!(out.stderr.contains("same one"), "{}", out.stderr);

    // An import cannot take over or rewrite an application of the configuration file.
    let from_config = doc["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["settings"]["id"] == "from-config")
        .unwrap()
        .clone();
    let mut evil = from_config.clone();
    evil["settings"]["redirect_uris"] = serde_json::json!(["https://evil.example.com/cb"]);
    for managed_by in ["admin", "config"] {
        evil["managed_by"] = managed_by.into();
        let doc_evil = serde_json::json!({"format": "sts-export", "version": 1, "applications": [evil.clone()]});
        let res = http
            .post(format!("{api}/import"))
            .bearer_auth(&token)
            .json(&doc_evil)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        if managed_by == "admin" {
            assert_eq!(status, 400, "{body}");
            assert!(body.contains("configuration file"), "{body}");
        } else {
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("\"applications_skipped\":1"), "{body}");
        }
    }
    let now: serde_json::Value = http
        .get(format!("{api}/export"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kept = now["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["settings"]["id"] == "from-config")
        .unwrap()
        .clone();
    assert_eq!(
        kept, from_config,
        "the configuration file's application is unchanged"
    );

    let mut wrong = doc.clone();
    wrong["version"] = 2.into();
    let res = http
        .post(format!("{api}/import"))
        .bearer_auth(&token)
        .json(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn console_providers_are_validated_live_and_survive_a_restart() {
    use sts_tests::{Peer, follow, start_node_peer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sts = format!("http://127.0.0.1:{port}");
    let idp_config = serde_json::json!({
        "clients": [{"client_id": "sts", "client_secret": "upstream-secret",
            "redirect_uris": [format!("{sts}/sso/sso-openid/openid-login")],
            "token_endpoint_auth_method": "client_secret_basic", "grant_types": ["authorization_code"], "response_types": ["code"]}],
        "users": {"alice": {"sub": "alice", "email": "alice@example.com", "email_verified": true, "preferred_username": "alice", "groups": ["staff", "sts-admins"]}}
    });
    let idp: Peer = start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &idp_config.to_string()],
    )
    .await;
    let app = sts_tests::spawn_app_on(listener, sts_tests::AppOptions::default()).await;
    create_admin(&app, "root").await;
    let (client, csrf) = admin(&app).await;
    let source = format!(
        "id = \"corp\"\ntype = \"oidc\"\ndisplay_name = \"Corp <i>SSO</i>\"\nissuer = \"{}\"\nclient_id = \"sts\"\nscopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n\n[roles]\nclaim = \"groups\"\nrules = [ {{ match = \"sts-admins\", roles = [\"admin\"] }} ]\ndefault_roles = [\"user\"]\n",
        idp.issuer
    );

    // Refused with a precise message, nothing saved: no secret, a file reference, an http issuer.
    for (src, secret, why) in [
        (source.clone(), "", "client secret"),
        (
            source.replace("[roles]", "client_secret_file = \"/etc/shadow\"\n\n[roles]"),
            "x",
            "cannot be used",
        ),
        (
            source.replace("http://127.0.0.1", "http://idp.example.com"),
            "x",
            "https",
        ),
    ] {
        let (st, html) = post_form(
            &client,
            format!("{}/admin/providers", app.address),
            &[("csrf", &csrf), ("source", &src), ("client_secret", secret)],
        )
        .await;
        assert_eq!(st, 400, "{why}: {html}");
        assert!(html.contains(why), "{why}: {html}");
    }
    let list = client
        .get(format!("{}/admin/providers", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("id=\"no-providers\""),
        "nothing was half-saved"
    );

    // Saved: live at once, without a restart; the name renders escaped.
    let (st, _) = post_form(
        &client,
        format!("{}/admin/providers", app.address),
        &[
            ("csrf", &csrf),
            ("source", &source),
            ("client_secret", "upstream-secret"),
        ],
    )
    .await;
    assert_eq!(st, 303);
    let page = client
        .get(format!("{}/admin/providers/corp", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Corp &#60;i&#62;SSO&#60;/i&#62;") && !page.contains("<i>SSO"),
        "{page}"
    );
    assert!(
        page.contains(&format!("{sts}/sso/sso-openid/openid-login")),
        "the redirect URI to register is shown"
    );
    assert!(
        !page.contains("upstream-secret"),
        "the secret is never shown"
    );
    let user = browser();
    let (res, visited) = follow(
        &user,
        &format!("{sts}/sso/login?provider=corp&login_hint=alice"),
        None,
    )
    .await;
    assert_eq!(res.status(), 200, "{visited:?}");
    // The provider page shows the last login: raw claims, values at the role claim, roles.
    let page = client
        .get(format!("{}/admin/providers/corp", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"last-outcome\">ok<"), "{page}");
    assert!(
        page.contains("id=\"last-roles\">admin, user<")
            || page.contains("id=\"last-roles\">user, admin<"),
        "{page}"
    );
    assert!(page.contains("sts-admins") && page.contains("alice@example.com"));
    // Role preview with sample claims; bad JSON is a precise error.
    let (st, html) = post_form(
        &client,
        format!("{}/admin/providers/corp/preview", app.address),
        &[
            ("csrf", &csrf),
            ("claims", r#"{"groups": ["sts-admins", "other"]}"#),
        ],
    )
    .await;
    assert_eq!(st, 200);
    assert!(html.contains("id=\"preview-roles\">admin, user<"), "{html}");
    let (st, html) = post_form(
        &client,
        format!("{}/admin/providers/corp/preview", app.address),
        &[("csrf", &csrf), ("claims", "{nope")],
    )
    .await;
    assert_eq!(st, 400);
    assert!(html.contains("not JSON"), "{html}");
    // Disable: no more logins; it stays disabled after a restart; enable: logins work again with the
    // secret unsealed from the database.
    let (st, _) = post_form(
        &client,
        format!("{}/admin/providers/corp/disable", app.address),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(st, 303);
    let res = browser()
        .get(format!("{sts}/sso/login?provider=corp"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let dir = app.stop().await;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let app = sts_tests::try_spawn_on(dir, sts_tests::AppOptions::default(), listener)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    let token = sts_tests::admin::api_token(&app).await;
    let providers = api_get(&app, &token, "/providers").await;
    assert_eq!(providers["items"][0]["id"], "corp");
    assert_eq!(providers["items"][0]["enabled"], false);
    assert_eq!(providers["items"][0]["managed_by"], "admin");
    let res = reqwest::Client::new()
        .put(format!("{sts}/admin/api/v1/providers/corp/enabled"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (res, visited) = follow(
        &browser(),
        &format!("{sts}/sso/login?provider=corp&login_hint=alice"),
        None,
    )
    .await;
    assert_eq!(res.status(), 200, "{visited:?}");
    // An edit without a secret keeps the stored one; the id cannot change.
    let res = reqwest::Client::new()
        .put(format!("{sts}/admin/api/v1/providers/corp"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source.replace("Corp <i>SSO</i>", "Corp"), "client_secret": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (res, _) = follow(
        &browser(),
        &format!("{sts}/sso/login?provider=corp&login_hint=alice"),
        None,
    )
    .await;
    assert_eq!(res.status(), 200, "the kept secret still works");
    // ... but not towards another issuer: the secret would go somewhere else.
    let res = reqwest::Client::new()
        .put(format!("{sts}/admin/api/v1/providers/corp"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source.replace("http://127.0.0.1", "http://localhost"), "client_secret": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("give the client secret again")
    );
    let res = reqwest::Client::new()
        .put(format!("{sts}/admin/api/v1/providers/corp"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source.replace("id = \"corp\"", "id = \"other\"")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let preview: serde_json::Value = reqwest::Client::new()
        .post(format!("{sts}/admin/api/v1/providers/corp/preview"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"claims": {"groups": ["nothing"]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preview["roles"], serde_json::json!(["user"]));
    drop(idp);
}

/// schemathesis (PyPI) against /admin/api/openapi.json with an admin token: no 5xx, no schema violations,
/// statuses and content types as documented (tests/peers/run-schemathesis.sh; bounded in time).
#[tokio::test]
async fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let app = spawn_app().await;
    create_admin(&app, "root").await;
    let token = sts_tests::admin::api_token(&app).await;
    // Something for the per-resource operations to act on.
    let http = reqwest::Client::new();
    for body in [
        serde_json::json!({"id": "seed-conf", "type": "confidential", "redirect_uris": ["https://seed.example.com/cb"]}),
        serde_json::json!({"id": "seed-pub", "type": "public", "redirect_uris": ["https://seed.example.com/cb"]}),
    ] {
        let res = http
            .post(format!("{}/admin/api/v1/applications", app.address))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    let script = sts_tests::repo_root().join("tests/peers/run-schemathesis.sh");
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .args([&app.address, &token])
        .env("ST_TIMEOUT", "300")
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    let summary = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        !summary.contains("failure") && !summary.contains("error"),
        "{summary}"
    );
    assert!(stdout.contains("SUMMARY"), "{stdout}");
}

#[tokio::test]
async fn holders_of_an_admin_role_sign_in_through_single_sign_on() {
    use sts_tests::{follow, start_node_peer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp_config = serde_json::json!({
        "clients": [{"client_id": "sts", "client_secret": "upstream-secret",
            "redirect_uris": [format!("{sts}/sso/sso-openid/openid-login")],
            "token_endpoint_auth_method": "client_secret_basic", "grant_types": ["authorization_code"], "response_types": ["code"]}],
        "users": {
            "alice": {"sub": "alice", "preferred_username": "alice", "groups": ["sts-admins"]},
            "bob": {"sub": "bob", "preferred_username": "bob", "groups": ["staff"]}
        }
    });
    let idp = start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &idp_config.to_string()],
    )
    .await;
    let config = format!(
        "[admin]\nsso_roles = [\"sts-admin\"]\n\n[[providers]]\nid = \"corp\"\ntype = \"oidc\"\nissuer = \"{}\"\nclient_id = \"sts\"\nclient_secret_env = \"CORP_SECRET\"\nscopes = [\"openid\", \"profile\", \"groups\"]\n\n[providers.roles]\nclaim = \"groups\"\nrules = [ {{ match = \"sts-admins\", roles = [\"sts-admin\"] }} ]\n",
        idp.issuer
    );
    let app = sts_tests::spawn_app_on(
        listener,
        sts_tests::AppOptions::default()
            .with("CORP_SECRET", "upstream-secret")
            .config(config),
    )
    .await;
    let login_page = browser()
        .get(format!("{sts}/admin/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login_page.contains("id=\"sso-sign-in\""), "{login_page}");
    for (user, admin_ok) in [("alice", true), ("bob", false)] {
        let client = browser();
        let (res, visited) = follow(
            &client,
            &format!("{sts}/sso/login?provider=corp&login_hint={user}&return_to=%2Fadmin%2Fsso"),
            None,
        )
        .await;
        let html = res.text().await.unwrap();
        if admin_ok {
            assert!(
                html.contains("http-equiv=\"refresh\""),
                "{visited:?} {html}"
            );
            let dash = client.get(format!("{sts}/admin")).send().await.unwrap();
            assert_eq!(dash.status(), 200);
            let dash = dash.text().await.unwrap();
            assert!(dash.contains("sso:corp|alice"), "{dash}");
        } else {
            assert!(html.contains("does not hold an admin role"), "{html}");
            let res = client.get(format!("{sts}/admin")).send().await.unwrap();
            assert_eq!(res.status(), 303, "no admin session for bob");
        }
    }
    // The dashboard lists recent sign-ins and failures with their reason codes: bob's refusal at the
    // console is not a login failure, so make one: a login cancelled at the IdP (a real flow of ours).
    let bob = browser();
    let res = bob
        .get(format!("{sts}/sso/login?provider=corp&login_hint=bob"))
        .send()
        .await
        .unwrap();
    let to_idp = res.headers()["location"].to_str().unwrap().to_string();
    let state = url::Url::parse(&to_idp)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let res = bob
        .get(format!(
            "{sts}/sso/sso-openid/openid-login?state={state}&error=access_denied"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Made-up states are not recorded (anyone could send them).
    let res = browser()
        .get(format!(
            "{sts}/sso/sso-openid/openid-login?state=forged&code=x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (admin_client, _) = sts_tests::admin::sign_in(&app).await;
    let dash = admin_client
        .get(format!("{sts}/admin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = dash
        .split("id=\"events\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{dash}"));
    assert!(events.contains("<code>login_cancelled</code>"), "{events}");
    assert!(
        !events.contains("state_unknown_or_used"),
        "made-up states are not recorded: {events}"
    );
    assert!(
        events.contains("<td>alice</td>") && events.contains("<code>ok</code>"),
        "{events}"
    );
    // Without an SSO session: the sign-in page with a reason.
    let res = browser()
        .get(format!("{sts}/admin/sso"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let token = sts_tests::admin::api_token(&app).await;
    let audit = api_get(&app, &token, "/audit?limit=200").await.to_string();
    assert!(
        audit.contains("admin:sso:corp|alice") && audit.contains("admin.login_refused"),
        "{audit}"
    );

    // A console session from single sign-on ends with its SSO session.
    let alice = browser();
    let (res, _) = follow(
        &alice,
        &format!("{sts}/sso/login?provider=corp&login_hint=alice&return_to=%2Fadmin%2Fsso"),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        alice
            .get(format!("{sts}/admin"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let sessions = api_get(&app, &token, "/sessions").await;
    let sids: Vec<String> = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["username"] == "alice")
        .map(|x| x["sid"].as_str().unwrap().to_string())
        .collect();
    assert!(!sids.is_empty(), "alice's SSO sessions");
    for sid in sids {
        let res = reqwest::Client::new()
            .delete(format!("{sts}/admin/api/v1/sessions/{sid}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let res = alice.get(format!("{sts}/admin")).send().await.unwrap();
    assert_eq!(
        res.status(),
        303,
        "the console session ended with the SSO session"
    );
    drop(idp);
}

#[tokio::test]
async fn applications_are_edited_with_validation_and_nothing_is_half_saved() {
    let app = sts_tests::spawn_app_with(sts_tests::AppOptions::default().config(
        "[[clients]]\nid = \"from-file\"\ntype = \"confidential\"\nredirect_uris = [\"https://f.example.com/cb\"]\n",
    ))
    .await;
    create_admin(&app, "root").await;
    let (client, csrf) = admin(&app).await;
    let (st, html) = post_form(
        &client,
        format!("{}/admin/applications", app.address),
        &[
            ("csrf", &csrf),
            ("id", "web"),
            ("type", "confidential"),
            ("redirect_uris", "https://w.example.com/cb"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{html}");
    let secret = pre(&html, "secret");
    // The edit page lists the redirect URIs one per line.
    let page = client
        .get(format!("{}/admin/applications/web", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(">https://w.example.com/cb</textarea>"),
        "{page}"
    );
    // A bad redirect URI in the list: refused with the reason, nothing changed.
    let (st, html) = post_form(
        &client,
        format!("{}/admin/applications/web", app.address),
        &[
            ("csrf", &csrf),
            ("id", "web"),
            ("type", "confidential"),
            (
                "redirect_uris",
                "https://w.example.com/cb\nhttp://evil.example.com/cb",
            ),
        ],
    )
    .await;
    assert_eq!(st, 400);
    assert!(html.contains("loopback"), "{html}");
    let token = api_token(&app, &client, &csrf, "t").await;
    let apps = api_get(&app, &token, "/applications").await;
    let web = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "web")
        .unwrap()
        .clone();
    assert_eq!(
        web["redirect_uris"],
        serde_json::json!(["https://w.example.com/cb"])
    );
    // A good list is saved; the secret is kept.
    let (st, _) = post_form(
        &client,
        format!("{}/admin/applications/web", app.address),
        &[
            ("csrf", &csrf),
            ("id", "web"),
            ("type", "confidential"),
            ("name", "Web"),
            (
                "redirect_uris",
                "https://w.example.com/cb\nhttps://w2.example.com/cb",
            ),
        ],
    )
    .await;
    assert_eq!(st, 303);
    let apps = api_get(&app, &token, "/applications").await;
    let web = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "web")
        .unwrap()
        .clone();
    assert_eq!(
        web["redirect_uris"],
        serde_json::json!(["https://w.example.com/cb", "https://w2.example.com/cb"])
    );
    assert_eq!(web["name"], "Web");
    assert_eq!(web["secret_set"], true);
    let res = reqwest::Client::new()
        .post(format!("{}/sso/introspect", app.address))
        .basic_auth("web", Some(&secret))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the secret still works");
    // The API: the type and id cannot change; configuration-file applications are read-only.
    let http = reqwest::Client::new();
    let put = |id: &str, body: serde_json::Value| {
        http.put(format!("{}/admin/api/v1/applications/{id}", app.address))
            .bearer_auth(&token)
            .json(&body)
    };
    let res = put("web", serde_json::json!({"id": "web", "type": "public", "redirect_uris": ["https://w.example.com/cb"]})).send().await.unwrap();
    assert_eq!(res.status(), 409);
    let res = put("web", serde_json::json!({"id": "other", "type": "confidential", "redirect_uris": ["https://w.example.com/cb"]})).send().await.unwrap();
    assert_eq!(res.status(), 409);
    let res = put("from-file", serde_json::json!({"id": "from-file", "type": "confidential", "redirect_uris": ["https://x.example.com/cb"]})).send().await.unwrap();
    assert_eq!(res.status(), 409);
    let res = put("nope", serde_json::json!({"id": "nope", "type": "confidential", "redirect_uris": ["https://x.example.com/cb"]})).send().await.unwrap();
    assert_eq!(res.status(), 404);
}
