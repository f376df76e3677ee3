//! Export and import: a round trip into an empty database, and refusals that change nothing.

use super::*;

#[tokio::test]
async fn export_then_import_into_an_empty_database_reproduces_the_configuration() {
    let config = r#"
[[clients]]
id = "from-config"
type = "confidential"
redirect_uris = ["https://c.example.com/cb"]
"#;
    let app = sts_tests::spawn_app_with(sts_tests::AppOptions::default().config(config)).await;
    create_user(&app, "root").await;
    let (client, csrf) = signed_in_root(&app).await;
    let token = named_api_token(&app, &client, &csrf, "export").await;
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
        out.stdout.contains("\"applications\":4")
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
    create_user(&twin, "root").await;
    let (c, csrf) = signed_in_root(&twin).await;
    let twin_token = named_api_token(&twin, &c, &csrf, "t").await;
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
        4,
        "the configuration-file application is only counted (the 4th is the built-in sts-login)"
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
