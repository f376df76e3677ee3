//! The admin API: tokens, keys and applications, and its OpenAPI document checked by schemathesis.

use super::*;

#[tokio::test]
async fn api_tokens_keys_and_applications() {
    let app = spawn_app().await;
    create_user(&app, "root").await;
    let (client, csrf) = signed_in_root(&app).await;
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
    let token = named_api_token(&app, &client, &csrf, "automation").await;

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
    // Rotate: a next key, published but not signing; a second one is refused while it waits.
    let res = http
        .post(format!("{api}/keys/rotate"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let staged: serde_json::Value = res.json().await.unwrap();
    assert_eq!(staged["state"], "next");
    assert!(staged["activate_after"].as_i64().unwrap() > 0);
    let next_kid = staged["kid"].as_str().unwrap().to_string();
    app.wait_for_kids(10, "the next key in the JWKS", |kids| {
        kids.contains(&next_kid)
    })
    .await;
    let listed = api_get(&app, &token, "/keys").await;
    let states: Vec<(String, String)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().into(),
                k["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        states.contains(&(next_kid.clone(), "next".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&(kid.clone(), "active".into())),
        "{states:?}"
    );
    let res = http
        .post(format!("{api}/keys/rotate"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);

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

/// schemathesis (PyPI) against /admin/api/openapi.json with an admin token: no 5xx, no schema violations,
/// statuses and content types as documented (tests/peers/run-schemathesis.sh; bounded in time).
#[tokio::test]
async fn schemathesis_finds_no_server_errors_or_schema_violations() {
    let app = spawn_app().await;
    create_user(&app, "root").await;
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
