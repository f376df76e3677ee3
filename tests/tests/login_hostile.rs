//! ID tokens and IdP behaviours that must be refused, produced by a deliberately misbehaving OIDC provider
//! (tests/peers/node/hostile-idp.mjs, signing with npm `jose` / node:crypto). Each refusal is an error page
//! with its reason code and leaves no session. The same IdP in `good` mode logs in, so every refusal is
//! caused by the one thing the mode changes.

use std::time::{Duration, Instant};

use sts_tests::{AppOptions, Peer, TestApp, browser, follow, spawn_app_with, start_node_peer};

const SECRET: &str = "hostile-client-secret";

async fn setup(mode: &str, extra_provider_toml: &str, state_file: Option<&str>) -> (TestApp, Peer) {
    let mut args = vec![
        "--port",
        "0",
        "--mode",
        mode,
        "--client-id",
        "sts",
        "--client-secret",
        SECRET,
    ];
    if let Some(f) = state_file {
        args.extend(["--state-file", f]);
    }
    let idp = start_node_peer("hostile-idp.mjs", &args).await;
    let toml = format!(
        r#"
[[providers]]
id = "hostile"
type = "oidc"
issuer = "{}"
client_id = "sts"
client_secret_env = "HOSTILE_SECRET"
{extra_provider_toml}
"#,
        idp.issuer
    );
    let app = spawn_app_with(
        AppOptions::default()
            .with("HOSTILE_SECRET", SECRET)
            .config(toml),
    )
    .await;
    (app, idp)
}

/// (status, reason code, message) of a login attempt's final page.
async fn attempt_with_message(app: &TestApp) -> (u16, String, String) {
    let (res, _) = follow(
        &browser(),
        &format!("{}/sso/login?provider=hostile", app.address),
        None,
    )
    .await;
    let status = res.status().as_u16();
    let html = res.text().await.unwrap();
    let code = html
        .split("id=\"reason\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or("")
        .to_string();
    let message = html
        .split("class=\"message\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or("")
        .to_string();
    (status, code, message)
}

async fn attempt(app: &TestApp) -> (u16, String) {
    let (status, code, _) = attempt_with_message(app).await;
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_mode_logs_in() {
    let (app, _idp) = setup("good", "", None).await;
    let (status, code) = attempt(&app).await;
    assert_eq!(
        (status, code.as_str()),
        (200, ""),
        "the hostile IdP in good mode must work"
    );
    assert_eq!(app.session_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_id_tokens_and_responses_are_refused_without_a_session() {
    // (mode, reason code, what the message must name: the check that refused it)
    let cases = [
        ("wrong-aud", "id_token_invalid", "InvalidAudience"),
        ("wrong-iss", "id_token_invalid", "InvalidIssuer"),
        ("expired", "id_token_invalid", "ExpiredSignature"),
        ("bad-signature", "id_token_invalid", "InvalidSignature"),
        ("alg-none", "id_token_invalid", "unsupported header"),
        ("wrong-nonce", "id_token_invalid", "nonce` does not match"),
        ("missing-nonce", "id_token_invalid", "nonce` is missing"),
        (
            "hs256-with-public-key",
            "id_token_invalid",
            "HS256 is not allowed",
        ),
        (
            "hs256-with-public-jwk",
            "id_token_invalid",
            "HS256 is not allowed",
        ),
        ("azp-multi-aud", "id_token_invalid", "no `azp`"),
        // RFC 7515 4.1.11: critical extensions we do not implement; a repeated header member.
        ("crit-exp", "id_token_invalid", "crit"),
        ("crit-b64", "id_token_invalid", "crit"),
        ("crit-empty", "id_token_invalid", "crit"),
        ("crit-unknown", "id_token_invalid", "crit"),
        ("duplicate-alg", "id_token_invalid", "appears twice"),
        ("wrong-redirect-iss", "iss_mismatch", "another issuer"),
    ];
    for (mode, expected, because) in cases {
        let (app, _idp) = setup(mode, "", None).await;
        let (status, code, message) = attempt_with_message(&app).await;
        assert_eq!(
            (status, code.as_str()),
            (401, expected),
            "mode {mode}: {message}"
        );
        assert!(
            message.contains(because),
            "mode {mode}: refused for another reason: {message}"
        );
        assert_eq!(app.session_count().await, 0, "mode {mode} left a session");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_triggers_one_jwks_refetch() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("requests.jsonl");
    let (app, _idp) = setup("unknown-kid-then-rotate", "", Some(state.to_str().unwrap())).await;
    let (status, code) = attempt(&app).await;
    assert_eq!(
        (status, code.as_str()),
        (200, ""),
        "a rotated IdP key is found after one refetch"
    );
    let fetches = std::fs::read_to_string(&state)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"/jwks\""))
        .count();
    assert_eq!(fetches, 2, "one fetch, one refetch for the unknown kid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_or_unreachable_idp_gives_an_error_page_within_the_timeout() {
    // Token endpoint that answers after 30 s; the provider's total timeout is 1.5 s.
    let (app, _idp) = setup(
        "hang-token",
        "timeout_ms = 1500\nconnect_timeout_ms = 1000",
        None,
    )
    .await;
    let started = Instant::now();
    let (status, code) = attempt(&app).await;
    assert_eq!((status, code.as_str()), (504, "idp_timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the timeout bounds the wait: {:?}",
        started.elapsed()
    );
    assert_eq!(app.session_count().await, 0);

    // Nothing listens at the issuer: discovery fails at once with a page, not a hang.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let toml = format!(
        "[[providers]]\nid = \"hostile\"\ntype = \"oidc\"\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"sts\"\nclient_secret_env = \"HOSTILE_SECRET\"\nconnect_timeout_ms = 1000\ntimeout_ms = 1500\n"
    );
    let app = spawn_app_with(
        AppOptions::default()
            .with("HOSTILE_SECRET", SECRET)
            .config(toml),
    )
    .await;
    let (status, code) = attempt(&app).await;
    assert_eq!((status, code.as_str()), (502, "idp_unreachable"));
}

/// Class: a hanging IdP must not queue its own logins one after another (no lock held across network I/O).
/// A discovery endpoint that accepts connections and never answers: 20 concurrent logins all end within
/// the provider's timeout + 1 s, share one request (single-flight), and a login right after is answered
/// at once from the remembered failure without a new request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_discovery_costs_each_concurrent_login_one_timeout_at_most() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            let mut held = vec![];
            for conn in hang.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(conn); // read nothing, answer nothing
            }
        });
    }
    let timeout_ms = 2000;
    let toml = format!(
        "[[providers]]\nid = \"hostile\"\ntype = \"oidc\"\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"sts\"\nclient_secret_env = \"HOSTILE_SECRET\"\nconnect_timeout_ms = 1000\ntimeout_ms = {timeout_ms}\n"
    );
    let app = Arc::new(
        spawn_app_with(
            AppOptions::default()
                .with("HOSTILE_SECRET", SECRET)
                .config(toml),
        )
        .await,
    );
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let r = attempt(&app).await;
            (r, started.elapsed())
        }));
    }
    let limit = Duration::from_millis(timeout_ms + 1000);
    for t in tasks {
        let ((status, code), took) = t.await.unwrap();
        assert_eq!((status, code.as_str()), (504, "idp_timeout"));
        assert!(
            took < limit,
            "a login ended after {took:?} (limit {limit:?})"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one shared discovery request"
    );
    let again = Instant::now();
    let (status, _) = attempt(&app).await;
    assert_eq!(status, 504);
    assert!(
        again.elapsed() < Duration::from_millis(500),
        "the failure is remembered briefly"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(app.session_count().await, 0);
}
