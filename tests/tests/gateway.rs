//! Trusted gateway headers (`type = "header"`): an authenticating gateway started by the suite
//! (tests/peers/gateway/gateway.py, oauth2-proxy's way: its own sign-in, identity headers and a shared
//! secret added, a client's own identity headers stripped) in front of the real server. The gateway's
//! connections leave from 127.0.0.2; direct requests from 127.0.0.1 (or from 127.0.0.2 without the
//! secret) carry forged headers.

use std::net::IpAddr;

use sts_tests::{AppOptions, Peer, TestApp, browser, process, spawn_app_on};

const SECRET: &str = "gateway-shared-secret-0123456789";
const GATEWAY_IP: &str = "127.0.0.2";

fn provider(extra: &str) -> String {
    format!(
        r#"[[providers]]
id = "gw"
type = "header"
display_name = "Corp gateway"
trusted_sources = ["{GATEWAY_IP}/32"]
user_header = "X-Forwarded-User"
email_header = "X-Forwarded-Email"
groups_header = "X-Forwarded-Groups"
shared_secret_header = "X-Gateway-Secret"
shared_secret_env = "GW_SECRET"
{extra}
[providers.roles]
claim = "groups"
rules = [ {{ match = "sts-admins", roles = ["admin"] }}, {{ match = "staff", roles = ["staff"] }} ]
default_roles = ["user"]
"#
    )
}

/// The STS behind the gateway: its public URL is the gateway's.
async fn behind_gateway(extra_config: &str) -> (TestApp, Peer) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sts_port = listener.local_addr().unwrap().port();
    let gateway = sts_tests::start_python_peer(
        "gateway/gateway.py",
        &[&sts_port.to_string(), GATEWAY_IP, SECRET],
    )
    .await;
    let app = spawn_app_on(
        listener,
        AppOptions::default()
            .config(format!("{extra_config}\n{}", provider("")))
            .with("GW_SECRET", SECRET)
            .with("STS_PUBLIC_URL", gateway.issuer.clone()),
    )
    .await;
    (app, gateway)
}

/// A client whose connections leave from `ip`.
fn from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn reason(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    let code = body
        .split("id=\"reason\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or("")
        .to_string();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_signs_users_in_and_me_works_behind_it() {
    let (_app, gw) = behind_gateway("").await;
    let client = browser();
    // Signed in at the gateway as alice; /sso/me through the gateway logs in from its headers.
    client
        .get(format!("{}/gw/sign_in?user=alice", gw.issuer))
        .send()
        .await
        .unwrap();
    let (res, visited) = sts_tests::follow(&client, &format!("{}/sso/me", gw.issuer), None).await;
    assert_eq!(res.status(), 200, "{visited:?}");
    let page = res.text().await.unwrap();
    assert!(page.contains("gw|alice"), "{page}");
    assert!(page.contains("alice@example.com"));
    assert!(
        page.contains("<li>admin</li>") && page.contains("<li>staff</li>"),
        "{page}"
    );
    // Headers a client sends itself are stripped by the gateway: bob stays bob.
    let client = browser();
    client
        .get(format!("{}/gw/sign_in?user=bob", gw.issuer))
        .send()
        .await
        .unwrap();
    let res = client
        .get(format!("{}/sso/login?provider=gw", gw.issuer))
        .header("X-Forwarded-User", "alice")
        .header("X-Forwarded-Groups", "sts-admins")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let page = client
        .get(format!("{}/sso/me", gw.issuer))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("gw|bob") && !page.contains("<li>admin</li>"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_headers_from_anywhere_else_or_without_the_secret_are_refused_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sts.toml"), provider("")).unwrap();
    let config = dir.path().join("sts.toml").display().to_string();
    let server = process::start(
        dir.path(),
        &[("STS_CONFIG", config.as_str()), ("GW_SECRET", SECRET)],
    )
    .await;
    let login = format!("{}/sso/login?provider=gw", server.address);
    let forged = |c: reqwest::Client, secret: Option<&str>| {
        let mut r = c
            .get(&login)
            .header("X-Forwarded-User", "root")
            .header("X-Forwarded-Groups", "sts-admins");
        if let Some(s) = secret {
            r = r.header("X-Gateway-Secret", s);
        }
        r.send()
    };
    // From 127.0.0.1, even with the secret.
    let (status, code) = reason(forged(from("127.0.0.1"), Some(SECRET)).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "gateway_untrusted_source"));
    // From the gateway's address without the secret, or with another one.
    let (status, code) = reason(forged(from(GATEWAY_IP), None).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "gateway_secret_mismatch"));
    let (status, code) = reason(
        forged(from(GATEWAY_IP), Some("gateway-shared-secret-0123456788"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (403, "gateway_secret_mismatch"));
    // The user header twice, or over its bound: refused; no user header: refused.
    let res = from(GATEWAY_IP)
        .get(&login)
        .header("X-Gateway-Secret", SECRET)
        .header("X-Forwarded-User", "alice")
        .header("X-Forwarded-User", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(reason(res).await, (400, "gateway_invalid_header".into()));
    let res = from(GATEWAY_IP)
        .get(&login)
        .header("X-Gateway-Secret", SECRET)
        .header("X-Forwarded-User", "a".repeat(2000))
        .send()
        .await
        .unwrap();
    assert_eq!(reason(res).await, (400, "gateway_invalid_header".into()));
    let res = from(GATEWAY_IP)
        .get(&login)
        .header("X-Gateway-Secret", SECRET)
        .header("X-Forwarded-Groups", "g,".repeat(2000))
        .header("X-Forwarded-User", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(reason(res).await, (400, "gateway_invalid_header".into()));
    let res = from(GATEWAY_IP)
        .get(&login)
        .header("X-Gateway-Secret", SECRET)
        .header(
            "X-Forwarded-User",
            reqwest::header::HeaderValue::from_bytes(b"al\xffice").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reason(res).await, (401, "gateway_no_user".into()));
    // None of these made a session; every refusal is logged with the address.
    let log = std::fs::read_to_string(&server.stderr_path).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("identity headers refused") && l.contains("127.0.0.1")),
        "{log}"
    );
    assert!(!log.contains("login succeeded"), "{log}");
    // The gateway itself, with the secret: signed in.
    let res = from(GATEWAY_IP)
        .get(&login)
        .header("X-Gateway-Secret", SECRET)
        .header("X-Forwarded-User", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

/// A gateway behind a load balancer listed in `server.trusted_proxies`: the address the balancer names
/// must be the gateway's; a caller that reaches the balancer directly is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_load_balancer_the_forwarded_address_must_be_the_gateway() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = spawn_app_on(
        listener,
        AppOptions::default()
            .config(format!(
                "[server]\ntrusted_proxies = [\"127.0.0.3\"]\n{}",
                provider("")
            ))
            .with("GW_SECRET", SECRET),
    )
    .await;
    let login = format!("{}/sso/login?provider=gw", app.address);
    let through_lb = |forwarded_for: &'static str| {
        from("127.0.0.3")
            .get(&login)
            .header("X-Forwarded-For", forwarded_for)
            .header("X-Gateway-Secret", SECRET)
            .header("X-Forwarded-User", "alice")
            .send()
    };
    assert_eq!(through_lb(GATEWAY_IP).await.unwrap().status(), 303);
    let (status, code) = reason(through_lb("10.9.9.9").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "gateway_untrusted_source"));
    // A client cannot put the gateway's address in front of its own: the balancer appends the real one.
    let (status, _) = reason(through_lb("127.0.0.2, 10.9.9.9").await.unwrap()).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_is_off_by_default_and_redacts_secrets_when_on() {
    let (app, gw) = behind_gateway("").await;
    let res = browser()
        .get(format!("{}/sso/echo", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    drop((app, gw));
    let (_app, gw) = behind_gateway("[server]\necho = true\n").await;
    let client = browser();
    client
        .get(format!("{}/gw/sign_in?user=alice", gw.issuer))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = client
        .get(format!("{}/sso/echo", gw.issuer))
        .header("Authorization", "Bearer top-secret-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = v.to_string();
    assert_eq!(v["peer"], GATEWAY_IP, "{v:#}");
    assert!(
        text.contains("x-forwarded-user") && text.contains("alice"),
        "{v:#}"
    );
    for secret in [SECRET, "top-secret-token", "gw_user=alice"] {
        assert!(!text.contains(secret), "{secret} shown: {v:#}");
    }
    assert!(text.contains("<redacted>"));
}

/// An application's code flow through the gateway, single sign-on to a second one, and a header
/// provider added in the console with its shared secret in the secret field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_sign_in_through_the_gateway_and_the_console_adds_one() {
    let clients =
        "[[clients]]\nid = \"web\"\ntype = \"public\"\nredirect_uris = [\"http://127.0.0.1/cb\"]\n";
    let (app, gw) = behind_gateway(clients).await;
    let client = browser();
    client
        .get(format!("{}/gw/sign_in?user=alice", gw.issuer))
        .send()
        .await
        .unwrap();
    let (_, challenge) = sts_tests::pkce();
    let authorize = format!(
        "{}/sso/authorize?response_type=code&client_id=web&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&scope=openid&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        gw.issuer
    );
    let (_, visited) = sts_tests::follow(&client, &authorize, Some("http://127.0.0.1/cb")).await;
    assert!(visited.last().unwrap().contains("code="), "{visited:?}");

    let token = sts_tests::admin::api_token(&app).await;
    let source = provider("")
        .replace("[[providers]]\n", "")
        .replace("id = \"gw\"", "id = \"gw2\"")
        .replace("shared_secret_env = \"GW_SECRET\"\n", "")
        .replace("[providers.roles]", "[roles]");
    let res = reqwest::Client::new()
        .post(format!("{}/admin/api/v1/providers", app.address))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source, "client_secret": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a shared secret under 16 characters");
    let res = reqwest::Client::new()
        .post(format!("{}/admin/api/v1/providers", app.address))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source, "client_secret": SECRET}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let res = from(GATEWAY_IP)
        .get(format!("{}/sso/login?provider=gw2", app.address))
        .header("X-Gateway-Secret", SECRET)
        .header("X-Forwarded-User", "carol")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}
