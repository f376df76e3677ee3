//! Single sign-on in a real headless browser (Debian Chromium via playwright-core) across two web
//! components (tests/peers/node/demo-app.mjs, built on npm `openid-client` and `jose`) that use the STS as
//! their OpenID Provider; the STS delegates to a real upstream IdP (npm `oidc-provider`).
//!
//! The STS runs over HTTPS (self-signed test certificate, trusted by the Node apps through
//! NODE_EXTRA_CA_CERTS): openid-client requires https and is used without any option relaxing that.
//! Screenshots go to target/screenshots/ (the ones in docs/screenshots/ come from this test).

use std::net::TcpListener;
use std::path::Path;

use sts_tests::{
    AppOptions, node_bin, repo_root, spawn_app_on, start_node_peer, start_node_peer_env, tool,
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A self-signed certificate for 127.0.0.1 (it is its own trust anchor for the Node apps).
fn tls_cert(dir: &Path) {
    let out = tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.pem",
            "-subj",
            "/CN=127.0.0.1",
            "-days",
            "2",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn two_web_components_share_one_login_and_one_logout() {
    let certs = tempfile::tempdir().unwrap();
    tls_cert(certs.path());
    let ca = certs.path().join("tls.pem").display().to_string();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (port_a, port_b) = (free_port(), free_port());
    let (app_a, app_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );

    let idp_config = serde_json::json!({
        "clients": [{
            "client_id": "sts",
            "client_secret": "upstream-secret",
            "redirect_uris": [format!("{sts}/sso/sso-openid/openid-login")],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }],
        "users": {
            "alice": {"sub": "alice", "email": "alice@example.com", "email_verified": true, "name": "Alice Liddell",
                      "preferred_username": "alice", "groups": ["staff", "sts-admins"]},
        }
    });
    let idp = start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &idp_config.to_string()],
    )
    .await;

    let config = format!(
        r#"
[[providers]]
id = "corp"
type = "oidc"
display_name = "Corp"
issuer = "{issuer}"
client_id = "sts"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "email", "profile", "groups"]

[providers.roles]
claim = "groups"
default_roles = ["user"]
rules = [ {{ match = "sts-admins", roles = ["admin"] }}, {{ match = "staff", roles = ["employee"] }} ]

[[clients]]
id = "app-a"
name = "Web component A"
type = "confidential"
token_endpoint_auth_method = "client_secret_basic"
redirect_uris = ["{app_a}/callback"]
post_logout_redirect_uris = ["{app_a}/logged-out"]

[[clients]]
id = "app-b"
name = "Web component B"
type = "confidential"
token_endpoint_auth_method = "client_secret_post"
redirect_uris = ["{app_b}/callback"]
post_logout_redirect_uris = ["{app_b}/logged-out"]
"#,
        issuer = idp.issuer
    );
    let opts = AppOptions::default()
        .with("CORP_SECRET", "upstream-secret")
        .with(
            "STS_TLS_CERT_FILE",
            certs.path().join("tls.pem").display().to_string(),
        )
        .with(
            "STS_TLS_KEY_FILE",
            certs.path().join("tls.key").display().to_string(),
        )
        .config(config);
    let app = spawn_app_on(listener, opts).await;
    assert_eq!(app.address, sts);

    let mut apps = Vec::new();
    for (id, port, name, auth) in [
        ("app-a", port_a, "App A", "basic"),
        ("app-b", port_b, "App B", "post"),
    ] {
        let secret = app
            .cli(&["clients", "secret", id], &[])
            .await
            .ok()
            .stdout
            .trim()
            .to_string();
        let file = certs.path().join(format!("{id}.secret"));
        std::fs::write(&file, &secret).unwrap();
        apps.push((id, port, name, auth, file));
    }
    // The CLI wrote the secrets to the database; the server reloads clients every reload interval (5 s).
    tokio::time::sleep(std::time::Duration::from_millis(5500)).await;
    let mut peers = Vec::new();
    for (id, port, name, auth, file) in &apps {
        peers.push(
            start_node_peer_env(
                "demo-app.mjs",
                &[
                    "--port",
                    &port.to_string(),
                    "--name",
                    name,
                    "--issuer",
                    &sts,
                    "--client-id",
                    id,
                    "--client-secret-file",
                    file.to_str().unwrap(),
                    "--auth",
                    auth,
                    "--login-hint",
                    "alice",
                    "--scope",
                    "openid profile email roles",
                ],
                &[("NODE_EXTRA_CA_CERTS", ca.as_str())],
            )
            .await,
        );
    }

    let out_dir = repo_root().join("target/screenshots");
    let out = tokio::process::Command::new(node_bin())
        .current_dir(repo_root().join("tests/peers/node"))
        .args([
            "sso-browser.mjs",
            "--app-a",
            &app_a,
            "--app-b",
            &app_b,
            "--sts",
            &sts,
            "--idp",
            &idp.issuer,
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .await
        .expect("run sso-browser.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| {
            panic!(
                "sso-browser.mjs printed no result:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(r["ok"], true, "browser run failed: {r:#}");
    assert!(out.status.success());

    // 1. App A: through the STS and the IdP, back as alice with her mapped roles (from the verified token).
    assert_eq!(r["aUser"], "corp|alice", "{r:#}");
    assert!(
        r["aVisitedIdp"].as_bool().unwrap(),
        "the first login goes through the IdP: {r:#}"
    );
    let mut roles: Vec<String> = serde_json::from_value(r["aRoles"].clone()).unwrap();
    roles.sort();
    assert_eq!(roles, ["admin", "employee", "user"]);
    // 2. App B: signed in without any IdP page or STS login.
    assert_eq!(r["bUser"], "corp|alice", "{r:#}");
    assert_eq!(
        r["bVisitedIdp"], false,
        "single sign-on must not visit the IdP: {r:#}"
    );
    assert_eq!(r["bReachedStsLogin"], false, "{r:#}");
    // 3. openid-client: refresh (rotated) and userinfo.
    assert_eq!(r["refreshStatus"], 200, "{r:#}");
    assert_eq!(r["refresh"]["ok"], true, "{r:#}");
    assert_eq!(r["refresh"]["accessTokenChanged"], true);
    assert_eq!(
        r["refresh"]["refreshTokenChanged"], true,
        "refresh tokens rotate"
    );
    assert_eq!(r["userinfoStatus"], 200, "{r:#}");
    assert_eq!(r["userinfo"]["sub"], "corp|alice");
    assert_eq!(r["userinfo"]["email"], "alice@example.com");
    // 4. RP-initiated logout from A, back to A's registered post-logout URI with its state.
    assert_eq!(r["stateOk"], true, "{r:#}");
    assert_eq!(r["logoutVisitedSts"], true);
    // 5./6. Both need a login again: at least the STS sends them to sign in.
    for x in ["bAfterLogout", "aAfterLogout"] {
        assert_eq!(r[format!("{x}StillSignedIn")], false, "{x}: {r:#}");
        assert!(
            r[format!("{x}VisitedIdp")] == true || r[format!("{x}ReachedStsLogin")] == true,
            "{x} must go back to the STS login: {r:#}"
        );
    }
    assert_eq!(r["pageErrors"], serde_json::json!([]), "{r:#}");
    for shot in ["sso-app-a.png", "sso-app-b.png", "sso-logged-out.png"] {
        assert!(out_dir.join(shot).is_file(), "{shot}");
    }
    drop(peers);
}
