//! Applications edited in the console and the API: validation, and nothing half saved.

use super::*;

#[tokio::test]
async fn applications_are_edited_with_validation_and_nothing_is_half_saved() {
    let app = sts_tests::spawn_app_with(sts_tests::AppOptions::default().config(
        "[[clients]]\nid = \"from-file\"\ntype = \"confidential\"\nredirect_uris = [\"https://f.example.com/cb\"]\n",
    ))
    .await;
    create_user(&app, "root").await;
    let (client, csrf) = signed_in_root(&app).await;
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
    let token = named_api_token(&app, &client, &csrf, "t").await;
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
