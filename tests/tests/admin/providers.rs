//! Identity providers managed in the console (validated live, kept across a restart), and
//! administrators who sign in through single sign-on.

use super::*;

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
    create_user(&app, "root").await;
    let (client, csrf) = signed_in_root(&app).await;
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
