//! The verifier crate (`sts-client`) against the real STS: good and bad tokens, key rotation with a
//! coalesced refetch, and the faults a verifying service meets (STS down, slow, oversized key set,
//! alternative source URL); plus its actix-web extractor and role guard.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sts_client::{Error, Verifier};
use sts_tests::{AppOptions, TestApp, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn app() -> TestApp {
    spawn_app_with(AppOptions::default().with("STS_KEY_RELOAD_INTERVAL", "1")).await
}

fn verifier(app: &TestApp) -> sts_client::VerifierBuilder {
    Verifier::builder(app.address.clone())
        .audience("orders-api")
        .leeway(0)
}

fn tamper(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["roles"] = serde_json::json!(["admin", "superuser"]);
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts.join(".")
}

#[tokio::test]
async fn good_tokens_pass_and_bad_ones_are_refused() {
    let app = app().await;
    let v = verifier(&app).build().unwrap();
    let token = app
        .issue_token(&[
            "--sub",
            "alice",
            "--roles",
            "admin,dev",
            "--aud",
            "orders-api",
        ])
        .await;
    let c = v.verify(&token).await.expect("a good token");
    assert_eq!(c.subject, "alice");
    assert_eq!(c.roles, ["admin", "dev"]);
    assert_eq!(c.client_id.as_deref(), Some("sts-cli"));
    assert_eq!(c.issuer, app.address);
    assert!(c.has_role("admin") && !c.has_role("root"));
    assert!(c.raw.contains_key("jti"));

    // Wrong audience, wrong issuer, tampered.
    let other = app
        .issue_token(&["--sub", "alice", "--aud", "billing"])
        .await;
    assert!(matches!(v.verify(&other).await, Err(Error::Invalid(_))));
    let elsewhere = Verifier::builder("http://sts.example.com")
        .jwks_url(app.jwks_url())
        .trusted_hostnames(["127.0.0.1"])
        .audience("orders-api")
        .build()
        .unwrap();
    assert!(
        matches!(elsewhere.verify(&token).await, Err(Error::Invalid(_))),
        "wrong issuer"
    );
    assert!(matches!(
        v.verify(&tamper(&token)).await,
        Err(Error::Invalid(_))
    ));
    // Expired (no leeway here).
    let short = app
        .issue_token(&["--sub", "alice", "--aud", "orders-api", "--ttl", "1"])
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        matches!(v.verify(&short).await, Err(Error::Invalid(_))),
        "expired"
    );
    // alg none, and HS256 signed with the public key as the secret.
    let parts: Vec<&str> = token.split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let kid = header["kid"].as_str().unwrap();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}"}}"#)),
        parts[1]
    );
    assert!(v.verify(&none).await.is_err(), "alg none");
    let jwks = app.jwks().await;
    let n = jwks["keys"][0]["n"].as_str().unwrap();
    let hs_header =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#));
    let input = format!("{hs_header}.{}", parts[1]);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, n.as_bytes());
    let hs = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()))
    );
    assert!(
        matches!(v.verify(&hs).await, Err(Error::Algorithm(_))),
        "HS256 with the public key"
    );
    // A kid that is not in the set, and a wrong typ.
    let bad_kid = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"at+jwt","kid":"nope"}"#),
        parts[1],
        parts[2]
    );
    assert!(matches!(
        v.verify(&bad_kid).await,
        Err(Error::UnknownKey(_))
    ));
    let id_typ = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#)),
        parts[1],
        parts[2]
    );
    assert!(matches!(v.verify(&id_typ).await, Err(Error::Type { .. })));
    assert!(matches!(
        v.verify("not a token").await,
        Err(Error::Malformed(_))
    ));
    assert_eq!(
        v.stats().fetches,
        2,
        "one fetch, then one refetch for the unknown kid: {:?}",
        v.stats()
    );
    // Configuration mistakes are refused at build time.
    assert!(
        Verifier::builder(app.address.clone()).build().is_err(),
        "audience required"
    );
    assert!(
        verifier(&app)
            .algorithms(&[jsonwebtoken::Algorithm::HS256])
            .build()
            .is_err()
    );
    assert!(
        verifier(&app)
            .source_url("http://10.0.0.1/jwks.json")
            .build()
            .is_err(),
        "untrusted source host"
    );
}

#[tokio::test]
async fn after_a_rotation_one_refetch_serves_a_thousand_concurrent_verifications() {
    let app = app().await;
    let v = verifier(&app).build().unwrap();
    let old = app
        .issue_token(&["--sub", "alice", "--aud", "orders-api"])
        .await;
    v.verify(&old).await.unwrap();
    assert_eq!(v.stats().fetches, 1);
    let before = app.jwks_kids().await;
    app.cli(&["keys", "regenerate"], &[]).await.ok();
    let new = app
        .issue_token(&["--sub", "alice", "--aud", "orders-api"])
        .await;
    // The server publishes the new key within its reload interval (1 s here).
    app.wait_for_kids(10, "the new key published", |kids| {
        kids.len() > before.len()
    })
    .await;
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (v, t) = (v.clone(), new.clone());
        tasks.push(tokio::spawn(async move {
            v.verify(&t).await.map(|c| c.subject)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().expect("the new key's token"), "alice");
    }
    assert_eq!(
        v.stats().fetches,
        2,
        "exactly one refetch for 1000 verifications: {:?}",
        v.stats()
    );
    assert_eq!(
        v.verify(&old).await.unwrap().subject,
        "alice",
        "the previous key is still published"
    );
}

/// A TCP server that accepts connections and `answer`s them (or never answers).
async fn fake_server(answer: Option<Vec<u8>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                match answer {
                    Some(a) => {
                        let _ = s.write_all(&a).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    format!("http://{addr}/jwks.json")
}

#[tokio::test]
async fn faults_of_the_sts_are_survived_within_bounds() {
    // Down at the first fetch: a clear error, quickly, no panic.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Verifier::builder(format!("http://127.0.0.1:{free}"))
        .audience("a")
        .build()
        .unwrap();
    let t0 = Instant::now();
    let e = down.verify(&fake_token("k1")).await.unwrap_err();
    assert!(matches!(e, Error::KeysUnavailable(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));

    // Slower than the read timeout: fails within the timeout.
    let slow = fake_server(None).await;
    let v = Verifier::builder("http://127.0.0.1")
        .jwks_url(slow)
        .audience("a")
        .read_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let e = v.verify(&fake_token("k1")).await.unwrap_err();
    assert!(
        matches!(e, Error::KeysUnavailable(ref m) if m.contains("timed out")),
        "{e}"
    );
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );

    // A key set larger than the size limit: refused.
    let big = format!("{{\"keys\":[],\"padding\":\"{}\"}}", "x".repeat(60_000));
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{big}",
        big.len()
    );
    let huge = fake_server(Some(answer.into_bytes())).await;
    let v = Verifier::builder("http://127.0.0.1")
        .jwks_url(huge)
        .audience("a")
        .build()
        .unwrap();
    let e = v.verify(&fake_token("k1")).await.unwrap_err();
    assert!(
        matches!(e, Error::KeysUnavailable(ref m) if m.contains("larger than 51200")),
        "{e}"
    );

    // Down after a good fetch: cached keys keep working through TTL + stale bound, then stop.
    let app = app().await;
    let token = app
        .issue_token(&["--sub", "alice", "--aud", "orders-api"])
        .await;
    let v = verifier(&app)
        .cache_ttl_seconds(1)
        .stale_bound(Duration::from_secs(3))
        .refetch_cooldown(Duration::from_millis(200))
        .build()
        .unwrap();
    v.verify(&token).await.unwrap();
    let _dir = app.stop().await;
    assert!(v.verify(&token).await.is_ok(), "fresh cache");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        v.verify(&token).await.is_ok(),
        "stale but within the bound while the STS is down"
    );
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let e = v.verify(&token).await.unwrap_err();
    assert!(
        matches!(e, Error::KeysUnavailable(_)),
        "past the stale bound: {e}"
    );
}

#[tokio::test]
async fn source_url_is_used_instead_of_the_issuer_host() {
    let app = app().await;
    let token = app
        .issue_token(&["--sub", "alice", "--aud", "orders-api"])
        .await;
    // The issuer's own JWKS URL cannot be reached from here (a name that does not resolve); the source URL
    // (the node's own address, as behind a load balancer) is what is fetched.
    let v = verifier(&app)
        .jwks_url("http://sts-behind-lb.invalid/sso/jwks.json")
        .source_url(app.jwks_url())
        .trusted_hostnames(["127.0.0.1"])
        .build()
        .unwrap();
    assert_eq!(v.verify(&token).await.unwrap().subject, "alice");
    let without = verifier(&app)
        .jwks_url("http://sts-behind-lb.invalid/sso/jwks.json")
        .build()
        .unwrap();
    assert!(matches!(
        without.verify(&token).await,
        Err(Error::KeysUnavailable(_))
    ));
}

#[tokio::test]
async fn actix_extractor_and_role_guard() {
    use actix_web::{App, test, web};
    use sts_client::actix::{Authenticated, RequireRole};
    let app = app().await;
    let v = verifier(&app).build().unwrap();
    let admin = app
        .issue_token(&["--sub", "alice", "--roles", "admin", "--aud", "orders-api"])
        .await;
    let user = app
        .issue_token(&["--sub", "bob", "--roles", "user", "--aud", "orders-api"])
        .await;
    let svc = test::init_service(
        App::new()
            .app_data(web::Data::new(v))
            .route(
                "/whoami",
                web::get().to(|u: Authenticated| async move { u.subject.clone() }),
            )
            .service(
                web::scope("/admin")
                    .wrap(RequireRole::new("admin"))
                    .route("/report", web::get().to(|| async { "report" })),
            ),
    )
    .await;
    let call = |path: &str, token: Option<&str>| {
        let mut req = test::TestRequest::get().uri(path);
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        req.to_request()
    };
    let res = test::call_service(&svc, call("/whoami", None)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"api\""
    );
    let res = test::call_service(&svc, call("/whoami", Some("garbage"))).await;
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let res = test::call_service(&svc, call("/whoami", Some(&user))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(test::read_body(res).await, "bob");
    let res = test::call_service(&svc, call("/admin/report", Some(&user))).await;
    assert_eq!(res.status(), 403);
    assert!(
        res.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let res = test::call_service(&svc, call("/admin/report", None)).await;
    assert_eq!(res.status(), 401);
    let res = test::call_service(&svc, call("/admin/report", Some(&admin))).await;
    assert_eq!(res.status(), 200);
}

/// A syntactically valid RS256 token (its signature is never reached in the fault tests).
fn fake_token(kid: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}"}}"#));
    let c = URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#);
    format!("{h}.{c}.c2ln")
}

/// The demo API (sts-client/examples/demo_api.rs, a service that uses the crate) as a separate process.
#[tokio::test]
async fn the_demo_api_uses_the_verifier() {
    use tokio::io::AsyncBufReadExt;
    let app = app().await;
    let exe = sts_tests::sts_bin()
        .parent()
        .unwrap()
        .join("examples/demo_api");
    assert!(
        exe.is_file(),
        "{} missing: scripts/test builds it (cargo build --workspace --examples)",
        exe.display()
    );
    let mut child = tokio::process::Command::new(&exe)
        .env("STS_ISSUER", &app.address)
        .env("STS_AUDIENCE", "demo-api")
        .env("DEMO_API_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start demo_api");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let base = line.strip_prefix("READY ").unwrap().to_string();
    let admin = app
        .issue_token(&["--sub", "alice", "--roles", "admin", "--aud", "demo-api"])
        .await;
    let user = app
        .issue_token(&["--sub", "bob", "--aud", "demo-api"])
        .await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/whoami"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let me: serde_json::Value = http
        .get(format!("{base}/whoami"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["sub"], "bob");
    assert_eq!(
        http.get(format!("{base}/admin/report"))
            .bearer_auth(&user)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        http.get(format!("{base}/admin/report"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// After its TTL the key set is revalidated with If-None-Match: the STS's ETag gives 304, no new body.
#[tokio::test]
async fn an_expired_cache_is_revalidated_with_the_etag() {
    let app = app().await;
    let token = app
        .issue_token(&["--sub", "alice", "--aud", "orders-api"])
        .await;
    let v = verifier(&app).cache_ttl_seconds(1).build().unwrap();
    v.verify(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    v.verify(&token).await.unwrap();
    let s = v.stats();
    assert_eq!((s.fetches, s.not_modified, s.failures), (2, 1, 0), "{s:?}");
}
