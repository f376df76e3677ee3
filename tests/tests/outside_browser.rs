//! Tokens for people outside the browser (issue 15), end to end against the real server, a real upstream
//! IdP (npm `oidc-provider`) and headless Chromium (tests/peers/node/cli-browser.mjs) playing the user:
//! the device authorization grant (RFC 8628), the encrypted token redirect (its JWE opened by npm `jose`
//! with a key jose generated), the `sts-login` CLI and the Python helper (clients/python, installed in the
//! peers' venv by install-deps). Tokens are checked by PyJWT. Screenshots go to target/screenshots/.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use sts_tests::verifiers::pyjwt;
use sts_tests::{
    AppOptions, Peer, TestApp, browser, follow, node_bin, repo_root, spawn_app_on, sts_login_bin,
};
use tokio::io::{AsyncBufReadExt, BufReader};

const UPSTREAM_SECRET: &str = "upstream-secret-for-tests";

struct Setup {
    app: TestApp,
    _idp: Peer,
    sts: String,
}

/// An STS with one OIDC provider (`corp`, users alice and bob) and `extra` configuration.
async fn setup(extra: &str) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = sts_tests::start_oidc_idp(
        &sts,
        UPSTREAM_SECRET,
        serde_json::json!({
            "alice": {"sub": "alice", "email": "alice@example.com", "email_verified": true,
                      "name": "Alice Liddell", "preferred_username": "alice", "groups": ["staff"]},
            "bob": {"sub": "bob", "email": "bob@example.com", "email_verified": true, "name": "Bob",
                    "preferred_username": "bob", "groups": []},
        }),
    )
    .await;
    let config = format!(
        r#"
[[providers]]
id = "corp"
type = "oidc"
issuer = "{}"
client_id = "sts"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "email", "profile", "groups"]

[providers.roles]
claim = "groups"
default_roles = ["user"]
rules = [ {{ match = "staff", roles = ["employee"] }} ]

{extra}
"#,
        idp.issuer
    );
    let opts = AppOptions::default()
        .with("CORP_SECRET", UPSTREAM_SECRET)
        .config(config);
    let app = spawn_app_on(listener, opts).await;
    Setup {
        app,
        _idp: idp,
        sts,
    }
}

/// A cookie-keeping client with an SSO session of `user`.
async fn signed_in(sts: &str, user: &str) -> reqwest::Client {
    let c = browser();
    let (res, visited) = follow(
        &c,
        &format!("{sts}/sso/login?provider=corp&login_hint={user}"),
        None,
    )
    .await;
    assert_eq!(res.status(), 200, "{visited:?}");
    assert!(res.url().path() == "/sso/me", "{visited:?}");
    c
}

async fn post(c: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let r = c.post(url).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn device_start(sts: &str, extra: &[(&str, &str)]) -> serde_json::Value {
    let mut form = vec![("client_id", "sts-login")];
    form.extend_from_slice(extra);
    let (s, v) = post(
        &browser(),
        &format!("{sts}/sso/device_authorization"),
        &form,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn poll(sts: &str, device_code: &str) -> (u16, serde_json::Value) {
    post(
        &browser(),
        &format!("{sts}/sso/token"),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", "sts-login"),
        ],
    )
    .await
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// cli-browser.mjs: Chromium signs in as `user` and does `mode` at `url`.
async fn chromium(
    sts: &str,
    user: &str,
    url: &str,
    mode: &str,
    extra: &[&str],
) -> serde_json::Value {
    let out_dir = repo_root().join("target/screenshots");
    let out = tokio::process::Command::new(node_bin())
        .current_dir(repo_root().join("tests/peers/node"))
        .args([
            "cli-browser.mjs",
            "--sts",
            sts,
            "--provider",
            "corp",
            "--user",
            user,
        ])
        .args(["--url", url, "--mode", mode, "--out"])
        .arg(&out_dir)
        .args(extra)
        .output()
        .await
        .expect("run cli-browser.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| {
            panic!(
                "no verdict: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["consoleErrors"], serde_json::json!([]), "{v:#}");
    v
}

fn claims_of(sts: &str, token: &str, audience: &str) -> serde_json::Value {
    let v = pyjwt(&format!("{sts}/sso/jwks.json"), token, sts, audience);
    assert!(v.ok, "PyJWT refused: {}", v.json);
    v.json["claims"].clone()
}

#[tokio::test]
async fn device_grant_in_chromium_with_its_refusals_and_limits() {
    let s = setup("[sessions]\ndevice_poll_interval_seconds = 2\n").await;
    let sts = &s.sts;
    let d = device_start(sts, &[("scope", "openid roles")]).await;
    let user_code = d["user_code"].as_str().unwrap().to_string();
    assert!(
        user_code.len() == 9
            && user_code.chars().enumerate().all(|(i, c)| if i == 4 {
                c == '-'
            } else {
                "BCDFGHJKLMNPQRSTVWXZ".contains(c)
            }),
        "{user_code}"
    );
    assert_eq!(d["verification_uri"], format!("{sts}/sso/device"));
    assert_eq!(d["interval"], 2);
    assert_eq!(d["expires_in"], 600);
    let device_code = d["device_code"].as_str().unwrap().to_string();
    // Discovery names the endpoint and the grant.
    let disc: serde_json::Value = s
        .app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        disc["device_authorization_endpoint"],
        format!("{sts}/sso/device_authorization")
    );
    assert!(
        disc["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "urn:ietf:params:oauth:grant-type:device_code")
    );

    // Not approved yet; polling again at once is too fast.
    let (st, v) = poll(sts, &device_code).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("authorization_pending")),
        "{v}"
    );
    let (st, v) = poll(sts, &device_code).await;
    assert_eq!((st, v["error"].as_str()), (400, Some("slow_down")), "{v}");

    // The user types the code at the verification URI in Chromium and allows.
    let v = chromium(
        sts,
        "alice",
        &format!("{sts}/sso/device"),
        "device",
        &["--code", &user_code.to_lowercase()],
    )
    .await;
    assert_eq!(v["shownCode"], user_code.as_str());
    assert!(
        v["application"].as_str().unwrap().contains("sts-login"),
        "{v}"
    );
    assert_eq!(v["scopes"], "openid roles");

    // The interval is now 7 s (slow_down added 5).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (st, tokens) = poll(sts, &device_code).await;
    assert_eq!(st, 200, "{tokens}");
    let claims = claims_of(sts, tokens["access_token"].as_str().unwrap(), "sts-login");
    assert_eq!(claims["sub"], "corp|alice");
    assert_eq!(claims["client_id"], "sts-login");
    assert_eq!(claims["roles"], serde_json::json!(["employee", "user"]));
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());
    // Handed out once (a final answer needs no pacing).
    let (st, v) = poll(sts, &device_code).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // The refresh token works for the built-in application.
    let (st, v) = post(
        &browser(),
        &format!("{sts}/sso/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "sts-login"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{v}");

    // Denied, through verification_uri_complete with a plain HTTP client.
    let bob = signed_in(sts, "bob").await;
    let d2 = device_start(sts, &[]).await;
    let page = bob
        .get(d2["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(d2["user_code"].as_str().unwrap()), "{html}");
    let csrf = hidden(&html, "csrf");
    let deny = [
        ("csrf", csrf.as_str()),
        ("user_code", d2["user_code"].as_str().unwrap()),
        ("action", "deny"),
    ];
    // A cross-site post and a missing CSRF token decide nothing.
    let r = bob
        .post(format!("{sts}/sso/device"))
        .header("Origin", "https://evil.example")
        .form(&deny)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = bob
        .post(format!("{sts}/sso/device"))
        .form(&[
            ("user_code", d2["user_code"].as_str().unwrap()),
            ("action", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = bob
        .post(format!("{sts}/sso/device"))
        .form(&deny)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, v) = poll(sts, d2["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("access_denied")),
        "{v}"
    );
    // A decided code cannot be approved afterwards.
    let approve = [
        ("csrf", csrf.as_str()),
        ("user_code", d2["user_code"].as_str().unwrap()),
        ("action", "approve"),
    ];
    let r = bob
        .post(format!("{sts}/sso/device"))
        .form(&approve)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Unknown device codes, other clients, unauthenticated pages.
    let (st, v) = poll(sts, "not-a-device-code").await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    for (form, status, error) in [
        (vec![("client_id", "nobody")], 401, "invalid_client"),
        (
            vec![("client_id", "sts-login"), ("scope", "admin")],
            400,
            "invalid_scope",
        ),
        (
            vec![("client_id", "sts-login"), ("audience", "payroll")],
            400,
            "invalid_target",
        ),
    ] {
        let url = format!("{sts}/sso/device_authorization");
        let (st, v) = post(&browser(), &url, &form).await;
        assert_eq!((st, v["error"].as_str()), (status, Some(error)), "{v}");
    }
    let r = browser()
        .get(format!("{sts}/sso/device?user_code=BCDF-GHJK"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/sso/login?return_to=%2Fsso%2Fdevice%3Fuser_code%3DBCDFGHJK")
    );

    // Wrong codes: 20 per session in 15 minutes, then 429 even for a right one.
    let d3 = device_start(sts, &[]).await;
    let carol = signed_in(sts, "alice").await;
    let html = carol
        .get(format!("{sts}/sso/device"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let mut statuses = Vec::new();
    for i in 0..20 {
        let wrong = format!("BCDF-{}", ["GHJK", "GHJL", "GHJM", "GHJN"][i % 4]);
        let wrong = if wrong == d3["user_code"].as_str().unwrap() {
            "ZZZZ-ZZZZ".to_string()
        } else {
            wrong
        };
        let r = carol
            .post(format!("{sts}/sso/device"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("user_code", wrong.as_str()),
                ("action", "lookup"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
    let r = carol
        .post(format!("{sts}/sso/device"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("user_code", d3["user_code"].as_str().unwrap()),
            ("action", "lookup"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let (_, v) = poll(sts, d3["device_code"].as_str().unwrap()).await;
    assert_eq!(v["error"], "authorization_pending");
}

#[tokio::test]
async fn device_grant_over_http_and_expiry() {
    // (No browser: this one also runs in the PostgreSQL pass of scripts/test.)
    let s =
        setup("[sessions]\ndevice_code_lifetime_seconds = 10\ndevice_poll_interval_seconds = 1\n")
            .await;
    let sts = &s.sts;
    let d = device_start(sts, &[]).await;
    assert_eq!(d["expires_in"], 10);
    // Another code, approved by a signed-in user with a plain HTTP client, picked up once.
    let d2 = device_start(sts, &[("audience", "sts-login")]).await;
    let c = signed_in(sts, "alice").await;
    let html = c
        .get(d2["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let code = d2["user_code"].as_str().unwrap();
    let approve = [
        ("csrf", hidden(&html, "csrf")),
        ("user_code", code.to_string()),
        ("action", "approve".to_string()),
    ];
    let r = c
        .post(format!("{sts}/sso/device"))
        .form(&approve)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let device_code = d2["device_code"].as_str().unwrap();
    let (st, tokens) = poll(sts, device_code).await;
    assert_eq!(st, 200, "{tokens}");
    let claims = claims_of(sts, tokens["access_token"].as_str().unwrap(), "sts-login");
    assert_eq!(claims["sub"], "corp|alice");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, v) = poll(sts, device_code).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // Approving it again finds nothing.
    let r = c
        .post(format!("{sts}/sso/device"))
        .form(&approve)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    tokio::time::sleep(Duration::from_secs(9)).await;
    let (st, v) = poll(sts, d["device_code"].as_str().unwrap()).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("expired_token")),
        "{v}"
    );
    // The user can no longer find it either.
    let r = c
        .get(d["verification_uri_complete"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// jwe-jose.mjs keygen: (public JWK, private JWK) made by npm jose.
fn jose_key(kind: &str) -> (serde_json::Value, serde_json::Value) {
    let out = std::process::Command::new(node_bin())
        .current_dir(repo_root().join("tests/peers/node"))
        .args(["jwe-jose.mjs", "keygen", kind])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["public"].clone(), v["private"].clone())
}

fn jose_decrypt(private: &serde_json::Value, jwe: &str) -> serde_json::Value {
    let input = serde_json::json!({"private": private, "jwe": jwe}).to_string();
    let out = sts_tests::run_with_stdin(
        std::process::Command::new(node_bin())
            .current_dir(repo_root().join("tests/peers/node"))
            .args(["jwe-jose.mjs", "decrypt"]),
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "jose could not decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn redirect_url(
    sts: &str,
    redirect_uri: &str,
    jwk: &str,
    state: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut u = url::Url::parse(&format!("{sts}/sso/flow/redirect/token")).unwrap();
    u.query_pairs_mut()
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("jwk", jwk)
        .append_pair("state", state);
    for (k, v) in extra {
        u.query_pairs_mut().append_pair(k, v);
    }
    u.to_string()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn query(u: &str) -> HashMap<String, String> {
    url::Url::parse(u)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The user's answer on the confirmation page (the form's POST, without an Origin header).
async fn answer(c: &reqwest::Client, sts: &str, id: &str, decision: &str) -> reqwest::Response {
    c.post(format!("{sts}/sso/flow/redirect/token"))
        .form(&[("request", id), ("decision", decision)])
        .send()
        .await
        .unwrap()
}

/// Start a redirect with `c`; the confirmation page's request id.
async fn confirmation(c: &reqwest::Client, sts: &str, url: &str) -> String {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let to = location(&r);
    assert!(to.starts_with("/sso/flow/redirect/token?request="), "{to}");
    let r = c.get(format!("{sts}{to}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = r.text().await.unwrap();
    hidden(&html, "request")
}

#[tokio::test]
async fn encrypted_token_redirect_refusals_and_jose_interop() {
    let s = setup("").await;
    let sts = &s.sts;
    let c = signed_in(sts, "alice").await;
    let (ec_pub, ec_priv) = jose_key("EC");
    let ec = ec_pub.to_string();
    let state = "st-\u{e9}t\u{e9} &=+/?x";

    // Redirect URIs that are not exactly loopback: an error page, never a redirect.
    for bad in [
        "http://localhost:8765/cb",
        "http://localhost.evil.example:8765/cb",
        "http://127.0.0.1.evil.example:8765/",
        "http://127.0.0.1@evil.example:8765/",
        "http://127.0.0.1:8765@evil.example/",
        "http://user@127.0.0.1:8765/",
        "http://127.1:8765/",
        "http://0x7f.0.0.1:8765/",
        "http://2130706433:8765/",
        "http://127.000.000.001:8765/",
        "http://0177.0.0.1:8765/",
        "http://[::ffff:127.0.0.1]:8765/",
        "http://127.0.0.2:8765/",
        "https://127.0.0.1:8765/",
        "http://127.0.0.1:8765/cb?x=1",
        "http://127.0.0.1:8765/cb#x",
        "http://127.0.0.1:8765/../x",
        "https://evil.example/cb",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:65536/",
        "javascript:alert(1)",
        "",
    ] {
        let r = c
            .get(redirect_url(sts, bad, &ec, state, &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(location(&r).is_empty(), "{bad}");
    }
    // Missing or weak keys, no state, scopes or audiences not allowed: an error page naming the problem,
    // never a redirect (before a confirmation the STS sends no browser to a loopback port).
    let rsa1024 = serde_json::json!({"kty": "RSA", "e": "AQAB", "n": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [0xc5u8; 128])}).to_string();
    let mut with_d = ec_pub.clone();
    with_d["d"] = ec_priv["d"].clone();
    let mut off_curve = ec_pub.clone();
    off_curve["y"] = ec_pub["x"].clone();
    let cb = "http://127.0.0.1:8765/callback";
    let no_key = format!(
        "{sts}/sso/flow/redirect/token?redirect_uri={}&state=s1",
        urlencode(cb)
    );
    let no_state = format!(
        "{sts}/sso/flow/redirect/token?redirect_uri={}&jwk={}",
        urlencode(cb),
        urlencode(&ec)
    );
    let long_state = redirect_url(sts, cb, &ec, &"s".repeat(513), &[]);
    let empty_n = serde_json::json!({"kty": "RSA", "n": "", "e": "AQAB"}).to_string();
    let oct = serde_json::json!({"kty": "oct", "k": "AAAA"}).to_string();
    let p521 = serde_json::json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}).to_string();
    for (url, why) in [
        (no_key, "jwk"),
        (no_state, "state is missing"),
        (long_state, "state must be"),
        (redirect_url(sts, cb, &rsa1024, "s1", &[]), "at least 2048"),
        (
            redirect_url(sts, cb, &empty_n, "s1", &[]),
            "must not be zero",
        ),
        (
            redirect_url(sts, cb, &with_d.to_string(), "s1", &[]),
            "private",
        ),
        (
            redirect_url(sts, cb, &off_curve.to_string(), "s1", &[]),
            "curve",
        ),
        (redirect_url(sts, cb, &oct, "s1", &[]), "private"),
        (redirect_url(sts, cb, &p521, "s1", &[]), "P-256"),
        (
            redirect_url(sts, cb, &ec, "s1", &[("scope", "openid admin")]),
            "invalid_scope",
        ),
        (
            redirect_url(sts, cb, &ec, "s1", &[("audience", "payroll")]),
            "invalid_target",
        ),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{url}");
        assert!(location(&r).is_empty(), "{url}");
        let page = r.text().await.unwrap();
        assert!(page.contains(why), "{url}: {page}");
    }
    // An id of another shape, or of the other flow, is just unknown.
    for id in ["x", "token-redirect%3Aabc", "%00", &"A".repeat(44)] {
        let r = c
            .get(format!("{sts}/sso/flow/redirect/token?request={id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{id}");
        let r = c
            .get(format!("{sts}/sso/authorize/resume?id={id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{id}");
    }

    // Nothing is issued without the click: the confirmation page holds no token, and a request id cannot
    // be confirmed from another browser, by GET, or twice.
    let id = confirmation(
        &c,
        sts,
        &redirect_url(sts, cb, &ec, state, &[("scope", "openid roles")]),
    )
    .await;
    let other = signed_in(sts, "bob").await;
    let r = answer(&other, sts, &id, "allow").await;
    assert_eq!(r.status(), 400);
    assert!(location(&r).is_empty());
    // (the other browser's attempt spent it: single use)
    let r = answer(&c, sts, &id, "allow").await;
    assert_eq!(r.status(), 400);
    // So far nothing was issued: no token.redirect entry in the audit log.
    let token = sts_tests::admin::api_token(&s.app).await;
    let audit = sts_tests::admin::api_get(&s.app, &token, "/audit?limit=50").await;
    assert!(!audit.to_string().contains("token.redirect"), "{audit:#}");

    let id = confirmation(
        &c,
        sts,
        &redirect_url(sts, cb, &ec, state, &[("scope", "openid roles")]),
    )
    .await;
    let r = c
        .post(format!("{sts}/sso/flow/redirect/token"))
        .header("Origin", "https://evil.example")
        .form(&[("request", id.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(format!("{sts}/sso/flow/redirect/token"))
        .header("Origin", sts.as_str())
        .form(&[("request", id.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = location(&r);
    assert!(to.starts_with("http://127.0.0.1:8765/callback?"), "{to}");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let q = query(&to);
    assert_eq!(q["state"], state, "state comes back unchanged");
    let opened = jose_decrypt(&ec_priv, &q["response"]);
    assert_eq!(opened["header"]["alg"], "ECDH-ES+A256KW");
    assert_eq!(opened["header"]["enc"], "A256GCM");
    let body = &opened["payload"];
    let claims = claims_of(sts, body["access_token"].as_str().unwrap(), "sts-login");
    assert_eq!(claims["sub"], "corp|alice");
    assert_eq!(claims["scope"], "openid roles");
    assert!(body["refresh_token"].is_string() && body["id_token"].is_string());
    // Used: gone.
    let r = answer(&c, sts, &id, "allow").await;
    assert_eq!(r.status(), 400);

    // RSA-OAEP-256 to a 2048-bit key jose made, on [::1].
    let (rsa_pub, rsa_priv) = jose_key("RSA");
    let id = confirmation(
        &c,
        sts,
        &redirect_url(sts, "http://[::1]:9000/cb", &rsa_pub.to_string(), "s2", &[]),
    )
    .await;
    let r = answer(&c, sts, &id, "allow").await;
    let q = query(&location(&r));
    let opened = jose_decrypt(&rsa_priv, &q["response"]);
    assert_eq!(opened["header"]["alg"], "RSA-OAEP-256");
    claims_of(
        sts,
        opened["payload"]["access_token"].as_str().unwrap(),
        "sts-login",
    );

    // Deny: the program hears access_denied with its state.
    let id = confirmation(&c, sts, &redirect_url(sts, cb, &ec, "s3", &[])).await;
    let r = answer(&c, sts, &id, "deny").await;
    let q = query(&location(&r));
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "s3")
    );
    assert!(!q.contains_key("response"));

    // Without a session: the login first, then back to the same request.
    let fresh = browser();
    let r = fresh
        .get(redirect_url(sts, cb, &ec, "s4", &[]))
        .send()
        .await
        .unwrap();
    let r = fresh
        .get(format!("{sts}{}", location(&r)))
        .send()
        .await
        .unwrap();
    assert!(
        location(&r)
            .starts_with("/sso/login?return_to=%2Fsso%2Fflow%2Fredirect%2Ftoken%3Frequest%3D"),
        "{}",
        location(&r)
    );

    // The audit log shows what was given to whom.
    let audit = sts_tests::admin::api_get(&s.app, &token, "/audit?limit=50").await;
    let text = audit.to_string();
    assert!(
        text.contains("token.redirect") && text.contains("user:corp|alice"),
        "{audit:#}"
    );

    // An admin limits the built-in application through the API: another audience, shorter tokens, one
    // provider (an unknown provider id is refused).
    let mut body = serde_json::json!({
        "id": "sts-login", "type": "public",
        "redirect_uris": ["http://127.0.0.1/callback", "http://[::1]/callback"],
        "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        "audience": ["orders-api"], "access_token_lifetime_seconds": 120, "providers": ["nope"],
    });
    let put = |b: serde_json::Value| {
        s.app
            .client
            .put(format!("{sts}/admin/api/v1/applications/sts-login"))
            .bearer_auth(&token)
            .json(&b)
            .send()
    };
    let r = put(body.clone()).await.unwrap();
    assert_eq!(r.status(), 400, "{}", r.text().await.unwrap());
    body["providers"] = serde_json::json!(["corp"]);
    let r = put(body.clone()).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let info: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (
            info["access_token_lifetime_seconds"].as_i64(),
            &info["providers"]
        ),
        (Some(120), &serde_json::json!(["corp"]))
    );
    let id = confirmation(
        &c,
        sts,
        &redirect_url(sts, cb, &ec, "s6", &[("audience", "orders-api")]),
    )
    .await;
    let r = answer(&c, sts, &id, "allow").await;
    let opened = jose_decrypt(&ec_priv, &query(&location(&r))["response"]);
    let claims = claims_of(
        sts,
        opened["payload"]["access_token"].as_str().unwrap(),
        "orders-api",
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
    let r = c
        .get(redirect_url(
            sts,
            cb,
            &ec,
            "s7",
            &[("audience", "sts-login")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_target"));
    // A refresh may ask for another of the application's audiences; once an admin takes an audience
    // away, a grant narrowed to it gives no more tokens.
    let rt = opened["payload"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = |rt: String, aud: Option<&'static str>| async move {
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", rt),
            ("client_id", "sts-login".to_string()),
        ];
        if let Some(a) = aud {
            form.push(("audience", a.to_string()));
        }
        let r = browser()
            .post(format!("{sts}/sso/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    };
    let (st, v) = refresh(rt, None).await;
    assert_eq!(st, 200, "{v}");
    body["audience"] = serde_json::json!(["sts-login"]);
    let r = put(body.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let (st, v) = refresh(v["refresh_token"].as_str().unwrap().to_string(), None).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );

    // An admin disables the built-in application: refused at once.
    let r = s
        .app
        .client
        .put(format!("{sts}/admin/api/v1/applications/sts-login/enabled"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .get(redirect_url(sts, cb, &ec, "s5", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("disabled"));
    let (st, _) = post(
        &browser(),
        &format!("{sts}/sso/device_authorization"),
        &[("client_id", "sts-login")],
    )
    .await;
    assert_eq!(st, 401);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Reads a child's stream until the line "Open this URL to sign in: URL"; the URL.
async fn url_line<R: tokio::io::AsyncRead + Unpin>(
    lines: &mut tokio::io::Lines<BufReader<R>>,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("no sign-in URL within 30 s")
            .unwrap()
            .expect("the program ended without printing a sign-in URL");
        if let Some(u) = line.strip_prefix("Open this URL to sign in: ") {
            return u.trim().to_string();
        }
    }
}

fn cli(home: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(sts_login_bin());
    c.env("STS_LOGIN_HOME", home)
        .env("STS_LOGIN_NO_BROWSER", "1")
        .env_remove("STS_URL");
    c.kill_on_drop(true);
    c
}

async fn cli_out(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = cli(home).args(args).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DECLARED_BUILTIN: &str = r#"
# The built-in application, declared in the file (the file wins over the console): short access tokens,
# and orders-api among its audiences.
[[clients]]
id = "sts-login"
type = "public"
redirect_uris = ["http://127.0.0.1/callback", "http://[::1]/callback"]
grant_types = ["authorization_code", "refresh_token", "device_code"]
audience = ["sts-login", "orders-api"]
access_token_lifetime_seconds = 36
"#;

#[tokio::test]
async fn sts_login_cli_login_token_refresh_and_logout() {
    let s = setup(DECLARED_BUILTIN).await;
    let sts = &s.sts;
    let home = tempfile::tempdir().unwrap();
    // login: the loopback code flow with PKCE, the user in Chromium.
    let mut child = cli(home.path())
        .args(["login", "--sts", sts, "--no-browser"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = url_line(&mut lines).await;
    assert!(
        url.starts_with(&format!("{sts}/sso/authorize?"))
            && url.contains("code_challenge_method=S256"),
        "{url}"
    );
    let v = chromium(sts, "alice", &url, "code", &["--prefix", "sts-login-code"]).await;
    assert!(v["bodyText"].as_str().unwrap().contains("Signed in"), "{v}");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());

    // The cache: 0600 in a 0700 directory, no token on stderr.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(home.path().join("tokens.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(home.path()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("tokens.json")).unwrap()).unwrap();
    let first_refresh = cache["sessions"][sts]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();

    let (ok, token, err) = cli_out(home.path(), &["token"]).await;
    assert!(ok, "{err}");
    let claims = claims_of(sts, &token, "orders-api");
    assert_eq!(claims["sub"], "corp|alice");
    assert_eq!(claims["client_id"], "sts-login");
    // Cached while valid.
    let (_, again, _) = cli_out(home.path(), &["token", "--sts", &format!("{sts}/")]).await;
    assert_eq!(again, token);
    // Another audience: a refresh narrowed to it.
    let (ok, orders, err) = cli_out(home.path(), &["token", "--aud", "orders-api"]).await;
    assert!(ok, "{err}");
    let c = claims_of(sts, &orders, "orders-api");
    assert_eq!(c["aud"], "orders-api");
    let (ok, _, err) = cli_out(home.path(), &["token", "--aud", "payroll"]).await;
    assert!(!ok && err.contains("invalid_target"), "{err}");
    // After expiry (36 s tokens, reused while > 30 s left): refreshed without a new login.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (ok, refreshed, err) = cli_out(home.path(), &["token"]).await;
    assert!(ok, "{err}");
    assert_ne!(refreshed, token);
    claims_of(sts, &refreshed, "sts-login");
    let cache: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("tokens.json")).unwrap()).unwrap();
    assert_ne!(
        cache["sessions"][sts]["refresh_token"].as_str().unwrap(),
        first_refresh,
        "rotated"
    );
    let (ok, out, _) = cli_out(home.path(), &["status"]).await;
    assert!(ok && out.contains("signed in as corp|alice"), "{out}");

    // logout revokes: the refresh token is refused, the access token no longer reads userinfo.
    let rt = cache["sessions"][sts]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, _, err) = cli_out(home.path(), &["logout"]).await;
    assert!(ok, "{err}");
    let (st, v) = post(
        &browser(),
        &format!("{sts}/sso/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", "sts-login"),
        ],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let r = browser()
        .get(format!("{sts}/sso/userinfo"))
        .bearer_auth(&refreshed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (ok, _, err) = cli_out(home.path(), &["token", "--sts", sts]).await;
    assert!(!ok && err.contains("not signed in"), "{err}");

    // login --device: the code shown in the terminal, allowed in Chromium.
    let mut child = cli(home.path())
        .args(["login", "--sts", sts, "--device"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = url_line(&mut lines).await;
    assert!(
        url.starts_with(&format!("{sts}/sso/device?user_code=")),
        "{url}"
    );
    let v = chromium(
        sts,
        "alice",
        &url,
        "device",
        &["--prefix", "sts-login-device"],
    )
    .await;
    assert!(v["shownCode"].as_str().unwrap().contains('-'));
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let (ok, token, err) = cli_out(home.path(), &["token"]).await;
    assert!(ok, "{err}");
    claims_of(sts, &token, "sts-login");
}

#[tokio::test]
async fn python_helper_gets_a_token_in_a_few_lines() {
    // Default token lifetime here: the second call must find the first token still valid.
    let s = setup(&DECLARED_BUILTIN.replace("access_token_lifetime_seconds = 36", "")).await;
    let sts = &s.sts;
    let home = tempfile::tempdir().unwrap();
    let python = repo_root().join("tests/peers/.venv/bin/python");
    // As a notebook cell would call it.
    let script = format!(
        "import sts_login\ntoken = sts_login.get_token({sts:?}, audience=\"orders-api\", method=\"redirect\", open_browser=False)\nprint(\"TOKEN\", token, flush=True)\n"
    );
    let run = || {
        let mut c = tokio::process::Command::new(&python);
        c.arg("-u")
            .arg("-c")
            .arg(&script)
            .env("STS_LOGIN_HOME", home.path())
            .kill_on_drop(true)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let mut child = run().spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = url_line(&mut lines).await;
    assert!(
        url.starts_with(&format!("{sts}/sso/flow/redirect/token?")),
        "{url}"
    );
    let v = chromium(
        sts,
        "alice",
        &url,
        "redirect",
        &["--prefix", "python-redirect"],
    )
    .await;
    assert!(v["program"].as_str().unwrap().contains("port"), "{v}");
    assert_eq!(v["audience"], "orders-api");
    let token = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the helper ended without a token");
            if let Some(t) = line.strip_prefix("TOKEN ") {
                return t.to_string();
            }
        }
    })
    .await
    .unwrap();
    assert!(child.wait().await.unwrap().success());
    let claims = claims_of(sts, &token, "orders-api");
    assert_eq!(claims["sub"], "corp|alice");
    // A second call in the same "notebook": from the cache, no browser.
    let out = run().output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("TOKEN {token}")), "{stdout}");
    // The CLI shares the cache.
    let (ok, t, err) = cli_out(home.path(), &["token", "--aud", "orders-api"]).await;
    assert!(ok, "{err}");
    assert_eq!(t, token);
}
