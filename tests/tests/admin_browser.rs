//! The admin console in a real headless browser (Debian Chromium via playwright-core,
//! tests/peers/node/admin-browser.mjs): first admin sign-in, dashboard, registering an application (then
//! used in a login), keystore upload (wrong password, then right: the new kid is in the JWKS), regenerate,
//! revoking a user's SSO session, an API token, the audit log. Screenshots go to target/screenshots/admin
//! (the ones in docs/screenshots come from this test).

use std::collections::HashMap;
use std::net::TcpListener;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;
use sts_tests::{AppOptions, browser, follow, node_bin, repo_root, spawn_app_on, start_node_peer};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn console_in_a_browser() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp_config = serde_json::json!({
        "clients": [{
            "client_id": "sts", "client_secret": "upstream-secret",
            "redirect_uris": [format!("{sts}/sso/sso-openid/openid-login")],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"], "response_types": ["code"],
        }],
        "users": {"alice": {"sub": "alice", "email": "alice@example.com", "email_verified": true,
                            "preferred_username": "alice", "groups": ["staff", "sts-admins"]}}
    });
    let idp = start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &idp_config.to_string()],
    )
    .await;
    // SimpleSAMLphp, with our SP registered as its admin would before the STS runs.
    let saml_idp =
        sts_tests::saml_idp::start_idp(&sts_tests::saml_idp::bootstrap_sp_metadata(&sts), &[])
            .await;
    // No provider in the configuration: the browser adds them in the console.
    let app = spawn_app_on(listener, AppOptions::default()).await;
    app.cli(
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
    .await
    .ok();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sts_tests::pkcs12_fixture(d, "console", "keystore-pw");
    let out_dir = repo_root().join("target/screenshots/admin");
    let out = tokio::process::Command::new(node_bin())
        .current_dir(repo_root().join("tests/peers/node"))
        .args([
            "admin-browser.mjs",
            "--sts",
            &sts,
            "--user",
            "root",
            "--password",
            PASSWORD,
            "--keystore-password",
            "keystore-pw",
            "--sso-session-user",
            "alice",
            "--oidc-issuer",
            &idp.issuer,
            "--oidc-secret",
            "upstream-secret",
            "--login-user",
            "alice",
            "--saml-metadata-url",
            &saml_idp.metadata_url,
            "--keystore",
        ])
        .arg(d.join("ks.p12"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .await
        .expect("run admin-browser.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| {
            panic!(
                "admin-browser.mjs printed no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(r["ok"], true, "{r:#}");

    // Dashboard: the active key is the published one.
    let kids_at_start = r["keysBefore"].as_array().unwrap().len();
    assert!(kids_at_start >= 1);
    assert_eq!(r["dashboard"]["sessions"], 0, "{r:#}");
    // The OIDC provider added in the browser: a missing secret is refused with a reason; saved, it is live
    // at once; its test login shows the claims received, the values at the role claim and the roles.
    assert!(
        r["providerNoSecret"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{r:#}"))
            .contains("client secret"),
        "{r:#}"
    );
    assert_eq!(r["providerCreated"]["nameEscaped"], true, "{r:#}");
    assert_eq!(
        r["providerCreated"]["callbackUrl"],
        format!("{sts}/sso/sso-openid/openid-login")
    );
    assert_eq!(r["providerLogin"]["outcome"], "ok", "{r:#}");
    assert_eq!(r["providerLogin"]["roles"], "admin, user");
    assert_eq!(r["providerLogin"]["claimsHaveEmail"], true);
    assert_eq!(r["providerPreview"]["roles"], "admin, user");
    // The SAML provider added from SimpleSAMLphp's metadata URL: enabled, our ACS and SP metadata shown.
    assert_eq!(
        r["samlProvider"]["callbackUrl"],
        format!("{sts}/sso/sso-saml/acs"),
        "{r:#}"
    );
    assert_eq!(r["samlProvider"]["metadataOk"], true, "{r:#}");
    assert_eq!(r["samlProvider"]["state"], "saml, enabled");
    // The application's name is shown literally, its secret once.
    assert_eq!(r["appNameEscaped"], true, "{r:#}");
    assert_eq!(r["appSecretPrefixOk"], true);
    // Keystore: the wrong password is refused with a message, the right one gives a published active key.
    assert_eq!(r["importWrong"]["status"], 400, "{r:#}");
    assert!(
        r["importWrong"]["message"]
            .as_str()
            .unwrap()
            .contains("password"),
        "{r:#}"
    );
    let imported = r["importRight"]["kid"].as_str().unwrap().to_string();
    let regenerated = r["regenerate"]["kid"].as_str().unwrap().to_string();
    let kids = app.jwks_kids().await;
    assert!(
        kids.contains(&imported) && kids.contains(&regenerated),
        "{kids:?}"
    );
    // The session was revoked: alice must sign in again.
    assert_eq!(r["sessionsBefore"], 1);
    assert_eq!(r["sessionsAfter"], 0);
    // Another browser signs in through the console's provider (live without a restart).
    let alice = browser();
    let (res, visited) = follow(
        &alice,
        &format!("{sts}/sso/login?provider=corp&login_hint=alice"),
        None,
    )
    .await;
    assert_eq!(res.status(), 200, "{visited:?}");
    assert_eq!(r["afterLogoutPath"], "/admin/login");
    assert_eq!(r["pageErrors"], serde_json::json!([]), "{r:#}");
    assert_eq!(
        r["consoleErrors"],
        serde_json::json!([]),
        "CSP violations show up here: {r:#}"
    );
    let actions = r["auditActions"].to_string();
    for a in [
        "key.regenerate",
        "key.import",
        "session.revoke",
        "application.create",
        "api_token.create",
    ] {
        assert!(actions.contains(a), "{a} in {actions}");
    }

    // The application registered in the browser works in a login: its secret via the API token the
    // browser created (rotation returns a fresh one), then the authorization code flow.
    let token = r["apiToken"].as_str().unwrap();
    let res = reqwest::Client::new()
        .post(format!("{sts}/admin/api/v1/applications/web-a/secret"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let secret = res.json::<serde_json::Value>().await.unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_string();
    let verifier = format!("{}-v", sts::sso::random_token());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let cb = "https://web-a.example.com/cb";
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "web-a"),
            ("redirect_uri", cb),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", "alice"),
        ])
        .finish();
    let (_, visited) = follow(&alice, &format!("{sts}/sso/authorize?{q}"), Some(cb)).await;
    let to = visited.last().unwrap();
    let params: HashMap<String, String> = url::Url::parse(to)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let code = params.get("code").unwrap_or_else(|| panic!("{visited:?}"));
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{sts}/sso/token"))
        .basic_auth("web-a", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", cb),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{tokens}"));
    let v = sts_tests::verifiers::pyjwt(&app.jwks_url(), id_token, &sts, "web-a");
    assert!(v.ok, "{}", v.json);
    assert_eq!(
        v.json["header"]["kid"],
        regenerated.as_str(),
        "signed with the key regenerated in the console"
    );

    for shot in [
        "admin-dashboard.png",
        "admin-applications.png",
        "admin-keys.png",
        "admin-sessions.png",
        "admin-audit.png",
    ] {
        assert!(out_dir.join(shot).is_file(), "{shot}");
    }
}
