//! Hostile load measured from outside on the real `sts serve` binary: memory of unauthenticated sign-in
//! attempts (RSS from /proc), and kill -9 during concurrent admin writes (atomicity with the audit log).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sts_tests::process;

/// Class: unauthenticated work that allocates (argon2id, 19 MiB per check) must not grow the process,
/// whoever asks: unknown user names, a known one with wrong passwords, from many client addresses.
/// 200 failed sign-ins from 200 loopback addresses leave RSS under 80 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sign_in_memory_is_bounded_for_unknown_users_and_many_addresses() {
    let dir = tempfile::tempdir().unwrap();
    process::create_admin(dir.path()).await;
    let server = process::start(dir.path(), &[("STS_LOG", "warn")]).await;
    let idle = server.rss_kib();
    let address = server.address.clone();
    let mut tasks = vec![];
    // 4 workers, 50 attempts each, every attempt from its own address 127.0.0.<2..=201>.
    for w in 0..4u32 {
        let address = address.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = BTreeMap::new();
            for i in 0..50u32 {
                let n = w * 50 + i + 2;
                let local: std::net::IpAddr = format!("127.0.0.{n}").parse().unwrap();
                let client = reqwest::Client::builder()
                    .local_address(local)
                    .cookie_store(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                let page = client
                    .get(format!("{address}/admin/login"))
                    .send()
                    .await
                    .unwrap();
                let csrf = sts_tests::admin::csrf_of(&page.text().await.unwrap());
                let user = if n % 2 == 0 {
                    "root".to_string()
                } else {
                    format!("nobody-{n}")
                };
                let res = client
                    .post(format!("{address}/admin/login"))
                    .form(&[
                        ("username", user.as_str()),
                        ("password", "wrong password, long enough"),
                        ("csrf", &csrf),
                    ])
                    .send()
                    .await
                    .unwrap();
                *statuses.entry(res.status().as_u16()).or_insert(0u32) += 1;
            }
            statuses
        }));
    }
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    for t in tasks {
        for (s, n) in t.await.unwrap() {
            *statuses.entry(s).or_default() += n;
        }
    }
    let after = server.rss_kib();
    eprintln!("RSS idle {idle} KiB, after 200 failed sign-ins {after} KiB; answers {statuses:?}");
    assert!(
        statuses.keys().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    let verified = statuses.get(&401).copied().unwrap_or(0);
    assert!(
        verified >= 50,
        "the passwords were really checked: {statuses:?}"
    );
    assert!(
        statuses.get(&429).copied().unwrap_or(0) > 0,
        "the total limit holds across addresses and unknown names: {statuses:?}"
    );
    assert!(
        after < 80 * 1024,
        "RSS {after} KiB after 200 failed sign-ins (idle {idle} KiB)"
    );
    // Still usable by the real administrator afterwards? The total limit blocks password sign-in for
    // its window (documented); the server itself answers.
    let health = reqwest::get(format!("{address}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
}

/// Class: every admin write commits with its secret and its audit entry in one transaction. The server is
/// killed (SIGKILL) while 12 clients keep creating confidential applications, five times; after each
/// kill the database holds no application without its secret and no change without its audit entry,
/// and the server starts again on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_concurrent_admin_writes_leaves_no_half_saved_object() {
    let dir = tempfile::tempdir().unwrap();
    process::create_admin(dir.path()).await;
    let mut server = process::start(dir.path(), &[]).await;
    let token = process::api_token_at(&server.address).await;
    let mut created_total = 0;
    for round in 0..5u32 {
        let address = server.address.clone();
        let mut tasks = vec![];
        for w in 0..12u32 {
            let (address, token) = (address.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut ok = 0u32;
                for i in 0.. {
                    let id = format!("app-{round}-{w}-{i}");
                    let r = client
                        .post(format!("{address}/admin/api/v1/applications"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"id": id, "type": "confidential", "grant_types": ["client_credentials"], "audience": ["api"]}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 201 || r.status() == 200 => ok += 1,
                        Ok(r) => panic!("create answered {}: {}", r.status(), r.text().await.unwrap_or_default()),
                        Err(_) => break, // killed
                    }
                }
                ok
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + 150 * u64::from(round))).await;
        server.kill9();
        for t in tasks {
            created_total += t.await.unwrap();
        }
        check_atomic(dir.path()).await;
        server = process::start(dir.path(), &[]).await;
    }
    assert!(
        created_total > 20,
        "the load really ran: {created_total} creates answered"
    );
    drop(server);
}

async fn check_atomic(dir: &std::path::Path) {
    use sqlx::Row;
    let pool = sts_tests::open_db(dir).await;
    let apps =
        sqlx::query("SELECT client_id, secret_hash FROM oauth_clients WHERE managed_by = 'admin'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let audited: BTreeSet<String> = sqlx::query_scalar::<_, Option<String>>(
        "SELECT target FROM audit_log WHERE action = 'application.create'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .flatten()
    .collect();
    let ids: BTreeSet<String> = apps
        .iter()
        .map(|r| r.get::<String, _>("client_id"))
        .collect();
    for r in &apps {
        let id: String = r.get("client_id");
        let secret: Option<String> = r.get("secret_hash");
        // (the built-in public application sts-login has no secret)
        assert!(
            secret.is_some() || id == "sts-login",
            "application {id} was saved without its secret"
        );
        assert!(
            audited.contains(&id),
            "application {id} was saved without its audit entry"
        );
    }
    for id in &audited {
        assert!(
            ids.contains(id),
            "audit entry for {id}, which was never saved"
        );
    }
    pool.close().await;
}

/// Class: client-supplied text on its way into a log line or an error body (parameter names and values,
/// provider ids, client ids, headers): newlines, ANSI escapes, line separators never pass raw, and a secret
/// sent in an odd place (as a parameter name) is neither logged nor echoed. Text and JSON log formats,
/// debug level: every JSON line still parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_supplied_text_never_forges_a_log_line_or_leaks_a_secret() {
    for format in ["text", "json"] {
        hostile_text_in_logs(format).await;
    }
}

async fn hostile_text_in_logs(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = process::start(
        dir.path(),
        &[("STS_LOG", "debug"), ("STS_LOG_FORMAT", format)],
    )
    .await;
    let a = server.address.clone();
    let http = reqwest::Client::new();
    let secret = "S3CRET-VALUE-7f3a9";
    let bodies = [
        "x%0AFORGED ERROR line=1&x%0AFORGED ERROR line=2".to_string(),
        "%1B%5B31mRED%1B%5B0m=1&%1B%5B31mRED%1B%5B0m=2".to_string(),
        "a%E2%80%A8FORGED=1&a%E2%80%A8FORGED=2".to_string(),
        format!("grant_type=client_credentials&{secret}=1&{secret}=2"),
        format!("grant_type=client_credentials&client_id=x%0AFORGED&client_secret={secret}"),
        format!("grant_type=password%0AFORGED&username=u&password={secret}"),
        "grant_type=client_credentials&client_id=%1B%5B2J%0D%0AFORGED".to_string(),
    ];
    for b in &bodies {
        for path in ["/sso/token", "/sso/introspect", "/sso/revoke"] {
            let res = http
                .post(format!("{a}{path}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(b.clone())
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap();
            assert!((400..500).contains(&status), "{path} {b}: {status}");
            assert!(!text.contains(secret), "{path} echoed a secret: {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let d = v["error_description"].as_str().unwrap_or_default();
            assert!(
                !d.chars().any(|c| c.is_control() || c == '\u{2028}'),
                "{path}: {d:?}"
            );
        }
    }
    // A bearer token whose JWS header repeats a member named with a line separator and an escape: the
    // refusal's reason quotes the member name.
    {
        use base64::Engine;
        let header = "{\"alg\":\"RS256\",\"a\u{2028}\u{1b}[31m\u{202e}\":1,\"a\u{2028}\u{1b}[31m\u{202e}\":2}";
        let token = format!(
            "{}.e30.c2ln",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header)
        );
        let res = http
            .get(format!("{a}/sso/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    // Query parameters and a header on browser endpoints.
    for q in [
        "provider=%0AFORGED%20ERROR",
        "provider=%1B%5B31m",
        "client_id=%0AFORGED&response_type=code",
    ] {
        for path in ["/sso/login", "/sso/authorize"] {
            let res = http
                .get(format!("{a}{path}?{q}"))
                .header(
                    "User-Agent",
                    reqwest::header::HeaderValue::from_bytes(b"ua\xc2\x85\xe2\x80\xa8x").unwrap(),
                )
                .send()
                .await
                .unwrap();
            assert!(
                res.status().as_u16() < 500 || res.status() == 503,
                "{path}?{q}: {}",
                res.status()
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log();
    assert!(log.lines().count() > 10, "the server logged: {log}");
    for line in log.lines() {
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a JSON log line that does not parse ({e}): {line:?}"));
            assert!(v.get("level").is_some(), "{line}");
        } else {
            assert!(
                line.starts_with("20"),
                "a line that is not an event of the server: {line:?}"
            );
        }
        assert!(
            !line.trim_start().starts_with("FORGED"),
            "forged line: {line:?}"
        );
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{202e}'),
            "{line:?}"
        );
    }
    assert!(!log.contains('\u{1b}'), "an ANSI escape reached the log");
    assert!(
        !log.contains('\u{2028}') && !log.contains('\r'),
        "a line separator reached the log"
    );
    assert!(!log.contains(secret), "a secret reached the log");
}

/// Class: no lock held across network I/O in the admin backend either. A console save of a SAML provider
/// whose metadata URL hangs (it is fetched to be checked before saving) must not hold up another admin's
/// change to another provider; the hanging save ends with a clear refusal after its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_metadata_url_does_not_block_other_provider_changes() {
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = vec![];
        for c in hang.incoming().flatten() {
            held.push(c);
        }
    });
    let app = sts_tests::spawn_app().await;
    let token = sts_tests::admin::api_token(&app).await;
    let api = format!("{}/admin/api/v1", app.address);
    let http = reqwest::Client::new();
    let oidc = "id = \"corp\"\ntype = \"oidc\"\nissuer = \"https://login.example.com\"\nclient_id = \"sts\"\n";
    let res = http
        .post(format!("{api}/providers"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": oidc, "client_secret": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let saml = format!(
        "id = \"slow\"\ntype = \"saml\"\nidp_metadata_url = \"http://127.0.0.1:{hang_port}/md\"\ntimeout_ms = 3000\n"
    );
    let slow = {
        let (http, api, token) = (http.clone(), api.clone(), token.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = http
                .post(format!("{api}/providers"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"source": saml}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.text().await.unwrap(),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let res = http
        .put(format!("{api}/providers/corp/enabled"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the other change waited {:?} for the hanging fetch",
        started.elapsed()
    );
    let (status, body, took) = slow.await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Class: bytes the database cannot store or that no value may hold (NUL, which PostgreSQL's TEXT refuses,
/// other control characters, invalid UTF-8) in every parameter an unauthenticated caller sends, on every
/// engine (this test runs in the PostgreSQL pass too): a clear 4xx, never a 500, and nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_in_every_unauthenticated_parameter_never_give_a_server_error() {
    let config = r#"
[[clients]]
id = "app"
type = "confidential"
redirect_uris = ["https://app.example.com/cb"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]

[[providers]]
id = "dir"
type = "ldap"
url = "ldap://127.0.0.1:9"
bind_dn_template = "uid={username},ou=people,dc=example,dc=org"
[providers.roles]
claim = "groups"
"#;
    let app = sts_tests::spawn_app_with(sts_tests::AppOptions::default().config(config)).await;
    let secret = app
        .cli(&["clients", "secret", "app"], &[])
        .await
        .ok()
        .stdout
        .trim()
        .to_string();
    let base = &app.address;
    let client = sts_tests::browser();
    let mut failures = Vec::new();
    for bad in ["a%00b", "%00", "a%01b", "a%7Fb", "a%FFb", "%C0%80", "a%0Ab"] {
        let gets = [
            format!("/sso/login?provider={bad}"),
            format!("/sso/login?provider=dir&login_hint={bad}"),
            format!("/sso/login?return_to=%2F{bad}"),
            format!("/sso/sso-openid/openid-login?state={bad}&code={bad}&iss={bad}"),
            format!("/sso/sso-oauth/oauth-login?state={bad}&error={bad}"),
            format!("/sso/sso-saml/{bad}/metadata"),
            format!(
                "/sso/authorize?response_type=code&client_id={bad}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&scope=openid&state=s&code_challenge=x&code_challenge_method=S256"
            ),
            format!(
                "/sso/authorize?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&scope=openid%20{bad}&state={bad}&nonce={bad}&code_challenge={bad}&code_challenge_method=S256&prompt={bad}&max_age={bad}&login_hint={bad}&id_token_hint={bad}"
            ),
            format!(
                "/sso/logout?id_token_hint={bad}&post_logout_redirect_uri={bad}&state={bad}&client_id={bad}"
            ),
            format!("/sso/jwks.json?{bad}={bad}"),
        ];
        for path in &gets {
            let res = client.get(format!("{base}{path}")).send().await.unwrap();
            if res.status().is_server_error() {
                failures.push(format!("GET {path}: {}", res.status()));
            }
        }
        let userinfo = client
            .get(format!("{base}/sso/userinfo"))
            .header("Authorization", format!("Bearer x{}", bad.replace('%', "")))
            .send()
            .await
            .unwrap();
        if userinfo.status().is_server_error() {
            failures.push(format!("userinfo {bad}: {}", userinfo.status()));
        }
        let posts: Vec<(&str, String, bool)> = vec![
            (
                "/sso/token",
                format!(
                    "grant_type=authorization_code&code={bad}&redirect_uri={bad}&code_verifier={bad}"
                ),
                true,
            ),
            (
                "/sso/token",
                format!("grant_type=refresh_token&refresh_token={bad}"),
                true,
            ),
            (
                "/sso/token",
                format!("grant_type=client_credentials&scope={bad}"),
                true,
            ),
            ("/sso/token", format!("grant_type={bad}"), true),
            (
                "/sso/token",
                format!("grant_type=client_credentials&client_id={bad}&client_secret={bad}"),
                false,
            ),
            (
                "/sso/token",
                format!(
                    "grant_type=client_credentials&client_id=app&client_assertion_type={bad}&client_assertion={bad}"
                ),
                false,
            ),
            (
                "/sso/introspect",
                format!("token={bad}&token_type_hint={bad}"),
                true,
            ),
            (
                "/sso/revoke",
                format!("token={bad}&token_type_hint={bad}"),
                true,
            ),
            (
                "/sso/logout",
                format!("id_token_hint={bad}&state={bad}"),
                false,
            ),
            (
                "/sso/login/form",
                format!("state={bad}&username={bad}&password={bad}"),
                false,
            ),
            (
                "/sso/sso-saml/acs",
                format!("SAMLResponse={bad}&RelayState={bad}"),
                false,
            ),
        ];
        for (path, body, authenticated) in &posts {
            let mut req = client
                .post(format!("{base}{path}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body.clone());
            if *authenticated {
                req = req.basic_auth("app", Some(&secret));
            }
            let res = req.send().await.unwrap();
            if res.status().is_server_error() {
                failures.push(format!("POST {path} {body}: {}", res.status()));
            }
        }
        // The LDAP form with a real flow: the state is good, the username and password are not.
        let form = client
            .get(format!("{base}/sso/login?provider=dir"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = form.find("name=\"state\" value=\"").unwrap() + 20;
        let state = &form[at..at + form[at..].find('"').unwrap()];
        let res = client
            .post(format!("{base}/sso/login/form"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("state={state}&username={bad}&password=pw"))
            .send()
            .await
            .unwrap();
        // 401 (refused before the directory) or 502: the directory of this test is down, which is not
        // our server's error.
        if res.status() != 401 && res.status() != 502 {
            failures.push(format!("LDAP form username {bad}: {}", res.status()));
        }
        // Basic credentials with the bytes themselves.
        let raw = bad
            .replace("%00", "\0")
            .replace("%01", "\u{1}")
            .replace("%7F", "\u{7f}");
        let res = client
            .post(format!("{base}/sso/token"))
            .basic_auth(&raw, Some(&raw))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        if res.status().is_server_error() {
            failures.push(format!("basic auth {bad}: {}", res.status()));
        }
        // The admin console's sign-in (login CSRF cookie and token first).
        let page = client
            .get(format!("{base}/admin/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = sts_tests::admin::csrf_of(&page);
        let res = client
            .post(format!("{base}/admin/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&username={bad}&password={bad}"))
            .send()
            .await
            .unwrap();
        if res.status().is_server_error() {
            failures.push(format!("admin sign-in {bad}: {}", res.status()));
        }
        let res = client
            .get(format!("{base}/admin/api/v1/applications"))
            .header("Authorization", format!("Bearer x{}", bad.replace('%', "")))
            .send()
            .await
            .unwrap();
        if res.status().is_server_error() {
            failures.push(format!("admin API token {bad}: {}", res.status()));
        }
    }
    assert!(
        failures.is_empty(),
        "server errors:\n{}",
        failures.join("\n")
    );
}
