//! Credential proxy logins (`type = "proxy"`): our form's username and password forwarded to a real HTTP
//! service started by the suite (tests/peers/proxy/upstream.py), whose answer decides by status, body
//! regex or JSON field. The upstream counts what reaches it; the server's own log is read for the password.

use std::time::{Duration, Instant};

use sts_tests::{AppOptions, Peer, TestApp, browser, form, process, spawn_app_with};

const ROLES: &str = r#"
[providers.roles]
claim = "groups"
rules = [ { match = "sts-admins", roles = ["admin"] }, { match = "staff", roles = ["staff"] } ]
default_roles = ["user"]
"#;

fn provider(id: &str, upstream: &Peer, extra: &str) -> String {
    format!(
        "[[providers]]\nid = \"{id}\"\ntype = \"proxy\"\ndisplay_name = \"Legacy login\"\nurl = \"{}/form\"\nusername_path = \"user.name\"\nemail_claim = \"user.email\"\nname_claim = \"user.display\"\ngroups_path = \"groups\"\n{extra}\n{ROLES}",
        upstream.issuer
    )
}

async fn upstream() -> Peer {
    sts_tests::start_python_peer("proxy/upstream.py", &[]).await
}

async fn count(upstream: &Peer) -> u64 {
    let v: serde_json::Value = reqwest::get(format!("{}/count", upstream.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"].as_u64().unwrap()
}

async fn me(app: &TestApp, client: &reqwest::Client) -> String {
    form::me(&app.address, client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_success_rule_signs_in_and_refuses_by_its_own_test() {
    let up = upstream().await;
    let u = &up.issuer;
    let config = [
        provider("form", &up, ""),
        format!(
            "[[providers]]\nid = \"json\"\ntype = \"proxy\"\nurl = \"{u}/json\"\nsend = \"json\"\nusername_field = \"login\"\npassword_field = \"secret\"\nusername_path = \"user.name\"\ngroups_path = \"groups\"\n{ROLES}"
        ),
        format!(
            "[[providers]]\nid = \"basic\"\ntype = \"proxy\"\nurl = \"{u}/basic\"\nsend = \"basic\"\ngroups_path = \"groups\"\n{ROLES}"
        ),
        format!(
            "[[providers]]\nid = \"field\"\ntype = \"proxy\"\nurl = \"{u}/always200\"\nsuccess_json_path = \"ok\"\nusername_path = \"user.name\"\n{ROLES}"
        ),
        format!(
            "[[providers]]\nid = \"text\"\ntype = \"proxy\"\nurl = \"{u}/text\"\nsuccess_body_regex = \"^WELCOME [a-z]+$\"\n{ROLES}"
        ),
    ]
    .join("\n");
    let app = spawn_app_with(AppOptions::default().config(config)).await;
    let a = &app.address;

    let (status, body, location, client) = form::login(a, "form", "alice", "alice-pw-123").await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location.as_deref(), Some("/sso/me"));
    let page = me(&app, &client).await;
    assert!(page.contains("form|alice"), "{page}");
    assert!(
        page.contains("alice@example.net") && page.contains("Alice A."),
        "{page}"
    );
    assert!(
        page.contains("<li>admin</li>") && page.contains("<li>staff</li>"),
        "{page}"
    );

    for id in ["json", "basic", "field", "text"] {
        let (status, body, _, client) = form::login(a, id, "bob", "bob-pw-123").await;
        assert_eq!(status, 303, "{id}: {body}");
        let page = me(&app, &client).await;
        assert!(page.contains(&format!("{id}|bob")), "{id}: {page}");
    }
    // Each rule refuses a wrong password with the one answer: 401 (the upstream's), 200 with ok=false,
    // 200 with a body the regex does not match.
    for id in ["form", "json", "basic", "field", "text"] {
        let (status, body, _, _) = form::login(a, id, "bob", "wrong-password").await;
        assert_eq!(status, 401, "{id}: {body}");
        assert!(body.contains("Wrong username or password."), "{id}");
        assert!(
            body.contains("value=\"bob\""),
            "{id}: the username comes back"
        );
        assert!(
            !body.contains("wrong-password"),
            "{id}: the password never does"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_down_failing_hanging_or_huge_gives_a_clear_error_within_the_timeout() {
    let up = upstream().await;
    let u = &up.issuer;
    let dead = sts_tests::saml_idp::free_port();
    let config = [
        format!("[[providers]]\nid = \"down\"\ntype = \"proxy\"\nurl = \"http://127.0.0.1:{dead}/form\"\n{ROLES}"),
        format!("[[providers]]\nid = \"error\"\ntype = \"proxy\"\nurl = \"{u}/error\"\n{ROLES}"),
        format!("[[providers]]\nid = \"big\"\ntype = \"proxy\"\nurl = \"{u}/big\"\n{ROLES}"),
        format!(
            "[[providers]]\nid = \"hang\"\ntype = \"proxy\"\nurl = \"{u}/hang\"\ntimeout_ms = 1500\n{ROLES}"
        ),
    ]
    .join("\n");
    let app = spawn_app_with(AppOptions::default().config(config)).await;
    for (id, status, code) in [
        ("down", 502, "proxy_unavailable"),
        ("error", 502, "proxy_unavailable"),
        ("big", 502, "proxy_unavailable"),
        ("hang", 504, "proxy_timeout"),
    ] {
        let t = Instant::now();
        let (s, body, _, _) = form::login(&app.address, id, "alice", "alice-pw-123").await;
        assert_eq!(s, status, "{id}: {body}");
        assert!(body.contains(code), "{id}: {body}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{id}: {:?}",
            t.elapsed()
        );
    }
}

/// The password goes to the upstream and nowhere else: not into the server's log (at debug level), not
/// into a page; an empty one is never sent; attempts beyond the limits never reach the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_never_logged_and_limits_hold_before_the_upstream() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sts.toml"), provider("legacy", &up, "")).unwrap();
    let config = dir.path().join("sts.toml").display().to_string();
    let server = process::start(
        dir.path(),
        &[("STS_CONFIG", config.as_str()), ("STS_LOG", "debug")],
    )
    .await;
    let base = &server.address;
    let (status, _, _, _) = form::login(base, "legacy", "alice", "alice-pw-123").await;
    assert_eq!(status, 303);
    let before = count(&up).await;
    let (status, _, _, _) = form::login(base, "legacy", "alice", "").await;
    assert_eq!(status, 401);
    assert_eq!(count(&up).await, before, "an empty password is never sent");
    for i in 0..10 {
        let (status, _, _, _) =
            form::login(base, "legacy", "bob", &format!("Secret-Guess-{i}")).await;
        assert_eq!(status, 401);
    }
    let before = count(&up).await;
    let (status, body, _, _) = form::login(base, "legacy", "bob", "bob-pw-123").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        count(&up).await,
        before,
        "a refused attempt never reaches the upstream"
    );
    let log = std::fs::read_to_string(&server.stderr_path).unwrap();
    for secret in ["alice-pw-123", "Secret-Guess-", "bob-pw-123"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(
        log.contains("wrong username or password"),
        "the refusals are logged"
    );
}

/// An application's code flow through the proxy's form, and a proxy provider added in the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_adds_a_proxy_provider_and_an_application_signs_in_through_it() {
    let up = upstream().await;
    let app = spawn_app_with(AppOptions::default().config(
        "[[clients]]\nid = \"web\"\ntype = \"public\"\nredirect_uris = [\"http://127.0.0.1/cb\"]\n",
    ))
    .await;
    let token = sts_tests::admin::api_token(&app).await;
    let source = provider("legacy", &up, "")
        .replace("[[providers]]\n", "")
        .replace("[providers.roles]", "[roles]");
    let res = reqwest::Client::new()
        .post(format!("{}/admin/api/v1/providers", app.address))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source, "client_secret": ""}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());

    let client = browser();
    let (_, challenge) = sts_tests::pkce();
    let authorize = format!(
        "{}/sso/authorize?response_type=code&client_id=web&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&scope=openid&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        app.address
    );
    let (res, _) = sts_tests::follow(&client, &authorize, None).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("Sign in with Legacy login"), "{html}");
    let state = form::state_of(&html);
    let (status, _, location) =
        form::post(&app.address, &client, &state, "alice", "alice-pw-123", None).await;
    assert_eq!(status, 303);
    let (_, visited) = sts_tests::follow(
        &client,
        &format!("{}{}", app.address, location.unwrap()),
        Some("http://127.0.0.1/cb"),
    )
    .await;
    assert!(visited.last().unwrap().contains("code="), "{visited:?}");
}
