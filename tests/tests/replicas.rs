//! Two `sts serve` replicas on one PostgreSQL (always the suite's own real cluster, whatever
//! `STS_TEST_DATABASE` says), as behind a load balancer: both have the same public URL, master key,
//! configuration and database, and the test plays the load balancer by choosing which replica gets each
//! request. Nothing is shared but the database.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sts_tests::process::{self, ServerProcess};
use sts_tests::{Peer, admin, browser, pkce, postgres, run_cli, start_node_peer, walk};

const UPSTREAM_SECRET: &str = "upstream-secret-for-tests";
const APP_CB: &str = "https://app.example.com/cb";

struct Pair {
    a: Option<ServerProcess>,
    b: ServerProcess,
    /// The public URL both replicas have (A's address: the test routes each request itself).
    public: String,
    /// The PostgreSQL database both use.
    database: String,
    idp: Peer,
    secrets: HashMap<String, String>,
    dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn config(idp: &str) -> String {
    format!(
        r#"
[[providers]]
id = "corp"
type = "oidc"
issuer = "{idp}"
client_id = "sts"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "email", "profile", "groups"]

[providers.roles]
claim = "groups"
default_roles = ["user"]

[[clients]]
id = "app"
type = "confidential"
redirect_uris = ["{APP_CB}"]

[[clients]]
id = "machine"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["orders.read"]
audience = ["orders-api"]
"#
    )
}

async fn pair() -> Pair {
    pair_with(&[]).await
}

async fn pair_with(extra: &[(&str, &str)]) -> Pair {
    let url = postgres::cluster().create_database();
    let database = url.rsplit('/').next().unwrap().to_string();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port_a = sts_tests::saml_idp::free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let idp_config = serde_json::json!({
        "clients": [{
            "client_id": "sts",
            "client_secret": UPSTREAM_SECRET,
            "redirect_uris": [format!("{public}/sso/sso-openid/openid-login")],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }],
        "users": {
            "alice": {"sub": "alice", "email": "alice@example.com", "email_verified": true,
                      "name": "Alice", "preferred_username": "alice", "groups": ["staff"]},
        }
    });
    let idp = start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &idp_config.to_string()],
    )
    .await;
    let key = da.path().join("keys/master.key").display().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("STS_DATABASE_URL".into(), url),
        ("STS_MASTER_KEY_FILE".into(), key),
        ("STS_PUBLIC_URL".into(), public.clone()),
        ("CORP_SECRET".into(), UPSTREAM_SECRET.into()),
        ("STS_KEY_RELOAD_INTERVAL".into(), "1".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    for d in [da.path(), db.path()] {
        std::fs::write(d.join("sts.toml"), config(&idp.issuer)).unwrap();
    }
    let with_config = |env: &mut Vec<(String, String)>, d: &Path| {
        env.retain(|(k, _)| k != "STS_CONFIG");
        env.push((
            "STS_CONFIG".into(),
            d.join("sts.toml").display().to_string(),
        ));
    };
    with_config(&mut env, da.path());
    let a = process::start_on(da.path(), port_a, &refs(&env)).await;
    with_config(&mut env, db.path());
    let b = process::start(db.path(), &refs(&env)).await;
    let mut secrets = HashMap::new();
    for id in ["app", "machine"] {
        let out = run_cli(da.path(), &a.env, &["clients", "secret", id], &[])
            .await
            .ok();
        secrets.insert(id.to_string(), out.stdout.trim().to_string());
    }
    process::create_admin_with(da.path(), &a.env).await;
    // Both replicas reload applications every second here.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    Pair {
        a: Some(a),
        b,
        public,
        database,
        idp,
        secrets,
        dirs: (da, db),
    }
}

impl Pair {
    fn a(&self) -> &str {
        &self.a.as_ref().expect("replica A runs").address
    }
    fn b(&self) -> &str {
        &self.b.address
    }
}

fn refs(e: &[(String, String)]) -> Vec<(&str, &str)> {
    e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// An authorization code for `app` through `replica` (logging in at the IdP when the browser has no SSO
/// session yet): (code, PKCE verifier).
async fn code_via(p: &Pair, client: &reqwest::Client, replica: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("scope", "openid profile"),
            ("state", "s"),
            ("nonce", "n"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "alice"),
        ])
        .finish();
    let (_, to, visited) = walk(
        client,
        &p.public,
        replica,
        &format!("{}/sso/authorize?{q}", p.public),
        APP_CB,
    )
    .await;
    assert!(to.starts_with(APP_CB), "{visited:?}");
    let code = url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {to}"));
    (code, verifier)
}

async fn token_at(
    p: &Pair,
    replica: &str,
    client_id: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let res = reqwest::Client::new()
        .post(format!("{replica}/sso/token"))
        .basic_auth(client_id, Some(&p.secrets[client_id]))
        .form(form)
        .send()
        .await
        .unwrap();
    let st = res.status().as_u16();
    (st, res.json().await.unwrap_or(serde_json::Value::Null))
}

async fn redeem_at(
    p: &Pair,
    replica: &str,
    code: &str,
    verifier: &str,
) -> (u16, serde_json::Value) {
    token_at(
        p,
        replica,
        "app",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", APP_CB),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh_at(p: &Pair, replica: &str, rt: &str) -> (u16, serde_json::Value) {
    token_at(
        p,
        replica,
        "app",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

async fn active_at(p: &Pair, replica: &str, token: &str) -> bool {
    let res = reqwest::Client::new()
        .post(format!("{replica}/sso/introspect"))
        .basic_auth("app", Some(&p.secrets["app"]))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = res.json().await.unwrap();
    v["active"] == true
}

fn claims(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn a_login_at_one_replica_is_redeemed_refreshed_and_reused_across_both() {
    let p = pair().await;
    let client = browser();
    // Login through A; the code is redeemed at B; the refresh token rotates at A.
    let (code, verifier) = code_via(&p, &client, p.a()).await;
    let (st, t1) = redeem_at(&p, p.b(), &code, &verifier).await;
    assert_eq!(st, 200, "{t1}");
    assert_eq!(claims(t1["id_token"].as_str().unwrap())["iss"], p.public);
    let rt1 = t1["refresh_token"].as_str().unwrap().to_string();
    let (st, t2) = refresh_at(&p, p.a(), &rt1).await;
    assert_eq!(st, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert!(active_at(&p, p.b(), t2["access_token"].as_str().unwrap()).await);

    // The SSO session made at A serves B: a second application login needs no IdP visit.
    let (code2, verifier2) = code_via(&p, &client, p.b()).await;
    let (st, t3) = redeem_at(&p, p.a(), &code2, &verifier2).await;
    assert_eq!(st, 200, "{t3}");

    // Refresh-token reuse across replicas: the rotated rt1 presented at B revokes the family, so rt2
    // (current, at A) and its access token stop working on both.
    let (st, body) = refresh_at(&p, p.b(), &rt1).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (st, _) = refresh_at(&p, p.a(), &rt2).await;
    assert_eq!(st, 400, "the family is revoked for A too");
    assert!(!active_at(&p, p.a(), t2["access_token"].as_str().unwrap()).await);
    assert!(!active_at(&p, p.b(), t2["access_token"].as_str().unwrap()).await);
    // The other family (code2) is untouched.
    let (st, _) = refresh_at(&p, p.b(), t3["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn one_code_redeemed_at_both_replicas_at_once_has_one_winner_and_the_reuse_revokes_it() {
    let p = pair().await;
    let client = browser();
    for round in 0..8 {
        let (code, verifier) = code_via(&p, &client, p.a()).await;
        let (ra, rb) = tokio::join!(
            redeem_at(&p, p.a(), &code, &verifier),
            redeem_at(&p, p.b(), &code, &verifier)
        );
        // Never two sets of tokens; the second presentation revokes whatever the first issued. (When
        // it lands while the first is still issuing, the first answers invalid_grant too rather than
        // hand out tokens that are already revoked.)
        let winners: Vec<_> = [&ra, &rb].into_iter().filter(|r| r.0 == 200).collect();
        assert!(winners.len() <= 1, "round {round}: {ra:?} {rb:?}");
        for r in [&ra, &rb].into_iter().filter(|r| r.0 != 200) {
            assert_eq!(r.0, 400, "round {round}: {r:?}");
            assert_eq!(r.1["error"], "invalid_grant");
        }
        if let Some(won) = winners.first().map(|w| &w.1) {
            for replica in [p.a(), p.b()] {
                assert!(
                    !active_at(&p, replica, won["access_token"].as_str().unwrap()).await,
                    "round {round}: the winner's access token is revoked"
                );
            }
            let (st, _) = refresh_at(&p, p.b(), won["refresh_token"].as_str().unwrap()).await;
            assert_eq!(
                st, 400,
                "round {round}: the winner's refresh token is revoked"
            );
        }
    }
    // In the database: each code was marked used by exactly one redemption (the one that owned it), and
    // the other was recorded as its reuse.
    let counts = postgres::cluster().sql(
        &p.database,
        "SELECT COUNT(*), COUNT(used_at), COUNT(reused_at), COUNT(DISTINCT family_id) FROM authorization_codes",
    );
    assert_eq!(counts.trim(), "8|8|8|8");
}

#[tokio::test]
async fn a_provider_added_in_one_console_logs_users_in_through_the_other_without_restart() {
    let p = pair().await;
    let token = process::api_token_at(p.a()).await;
    let source = format!(
        "id = \"corp2\"\ntype = \"oidc\"\ndisplay_name = \"Corp two\"\nissuer = \"{}\"\nclient_id = \"sts\"\nscopes = [\"openid\", \"profile\"]\n",
        p.idp.issuer
    );
    let res = reqwest::Client::new()
        .post(format!("{}/admin/api/v1/providers", p.a()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source, "client_secret": UPSTREAM_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    // B picks it up within its reload interval (1 s here): a login through corp2, entirely at B.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let res = browser()
            .get(format!(
                "{}/sso/login?provider=corp2&login_hint=alice",
                p.b()
            ))
            .send()
            .await
            .unwrap();
        if res.status().is_redirection() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never saw the provider: {}",
            res.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let client = browser();
    let (status, at, visited) = walk(
        &client,
        &p.public,
        p.b(),
        &format!("{}/sso/login?provider=corp2&login_hint=alice", p.public),
        "http://never.example",
    )
    .await;
    assert_eq!(status, 200, "{visited:?}");
    assert!(at.starts_with(p.b()), "{visited:?}");
    assert!(
        visited.iter().any(|u| u.starts_with(&p.idp.issuer)),
        "through the IdP: {visited:?}"
    );
    assert!(
        visited
            .iter()
            .any(|u| u.starts_with(&format!("{}/sso/sso-openid/openid-login", p.b()))),
        "the callback came back to B: {visited:?}"
    );
    // The SSO session it made is corp2's, and A serves it too.
    let (code, verifier) = code_via(&p, &client, p.a()).await;
    let (st, t) = redeem_at(&p, p.a(), &code, &verifier).await;
    assert_eq!(st, 200, "{t}");
}

#[tokio::test]
async fn the_admin_sign_in_limit_holds_across_replicas() {
    let p = pair().await;
    let attempt = |replica: String, password: &'static str| async move {
        let client = browser();
        let page = client
            .get(format!("{replica}/admin/login"))
            .send()
            .await
            .unwrap();
        let csrf = admin::csrf_of(&page.text().await.unwrap());
        client
            .post(format!("{replica}/admin/login"))
            .form(&[
                ("username", "root"),
                ("password", password),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Five failures, alternating between the replicas...
    for i in 0..5 {
        let replica = if i % 2 == 0 { p.a() } else { p.b() };
        assert_eq!(
            attempt(replica.to_string(), "wrong password, again").await,
            401
        );
    }
    // ... lock the account on both, even with the right password.
    assert_eq!(attempt(p.a().to_string(), admin::PASSWORD).await, 429);
    assert_eq!(attempt(p.b().to_string(), admin::PASSWORD).await, 429);
}

#[tokio::test]
async fn kill_9_of_one_replica_under_load_loses_nothing_and_the_other_answers_everything() {
    let mut p = pair().await;
    let client = browser();
    // Families started before the crash, rotating at A while it dies.
    let mut current = Vec::new();
    for _ in 0..4 {
        let (code, verifier) = code_via(&p, &client, p.a()).await;
        let (st, t) = redeem_at(&p, p.a(), &code, &verifier).await;
        assert_eq!(st, 200);
        current.push(t["refresh_token"].as_str().unwrap().to_string());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let machine =
        |replica: String, stop: std::sync::Arc<std::sync::atomic::AtomicBool>, secret: String| {
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let (mut ok, mut failed) = (0u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http
                        .post(format!("{replica}/sso/token"))
                        .basic_auth("machine", Some(&secret))
                        .form(&[("grant_type", "client_credentials")])
                        .timeout(std::time::Duration::from_secs(10))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) => failed.push(r.status().to_string()),
                        Err(e) => {
                            failed.push(e.to_string());
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
                (ok, failed)
            })
        };
    let at_b: Vec<_> = (0..3)
        .map(|_| {
            machine(
                p.b().to_string(),
                stop.clone(),
                p.secrets["machine"].clone(),
            )
        })
        .collect();
    let at_a = machine(
        p.a().to_string(),
        stop.clone(),
        p.secrets["machine"].clone(),
    );
    // Refresh rotations at A until it dies: every rotation A answered is durable.
    let (a_addr, secret) = (p.a().to_string(), p.secrets["app"].clone());
    let rotations = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut current = current;
        for _ in 0..1000 {
            for (i, rt) in current.iter_mut().enumerate() {
                let r = http
                    .post(format!("{a_addr}/sso/token"))
                    .basic_auth("app", Some(&secret))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", rt.as_str()),
                    ])
                    .timeout(std::time::Duration::from_secs(5))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: serde_json::Value = r.json().await.unwrap();
                        *rt = v["refresh_token"].as_str().unwrap().to_string();
                    }
                    // A is gone: what it answered last is what must survive. The request in flight
                    // may or may not have rotated before the kill (its answer was lost): that one
                    // family is uncertain.
                    _ => return (current, Some(i)),
                }
            }
        }
        (current, None)
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    p.a.take().unwrap().kill9();
    let (current, uncertain) = rotations.await.unwrap();
    assert!(
        uncertain.is_some(),
        "the rotations were still running when A died"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (a_ok, _) = at_a.await.unwrap();
    assert!(a_ok > 0, "A answered before it was killed");
    for t in at_b {
        let (ok, failed) = t.await.unwrap();
        assert!(ok > 10, "B answered ({ok})");
        assert!(failed.is_empty(), "B failed requests: {failed:?}");
    }
    // No data lost: every refresh token A handed out last rotates at B.
    for (i, rt) in current.iter().enumerate() {
        if Some(i) == uncertain {
            continue;
        }
        let (st, body) = refresh_at(&p, p.b(), rt).await;
        assert_eq!(st, 200, "family {i}: {body}");
    }
}

fn kid_of(jwt: &str) -> String {
    let part = jwt.split('.').next().unwrap();
    let h: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap();
    h["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_key_rotated_at_one_replica_is_published_by_both_before_either_signs_with_it() {
    // JWKS cached for 2 s, keys reloaded every second, no leeway: the next key may sign 3 s after it
    // was staged.
    let p = pair_with(&[("STS_JWKS_MAX_AGE", "2"), ("STS_CLOCK_SKEW", "0")]).await;
    let before = sts_tests::jwks_kids_at(p.b()).await;
    assert_eq!(before.len(), 1);
    let old = before[0].clone();
    let a = p.a.as_ref().unwrap();
    let out = run_cli(p.dirs.0.path(), &a.env, &["keys", "rotate"], &[])
        .await
        .ok();
    assert!(out.stdout.contains("next key"), "{}", out.stdout);
    let staged_at = std::time::Instant::now();

    // A verifier that honours Cache-Control and never refetches on an unknown kid: every token either
    // replica issues must carry a kid of its cached copy. It refetches from A and B in turn.
    let http = reqwest::Client::new();
    let mut cache: (std::time::Instant, Vec<String>) = (std::time::Instant::now(), before.clone());
    let mut fetches = 0;
    let mut seen_new_at = [false, false];
    let mut b_published_next = None;
    let deadline = staged_at + std::time::Duration::from_secs(9);
    let mut round = 0usize;
    while std::time::Instant::now() < deadline {
        round += 1;
        for (i, replica) in [p.a(), p.b()].into_iter().enumerate() {
            if cache.0.elapsed() >= std::time::Duration::from_secs(2) {
                fetches += 1;
                let from = if fetches % 2 == 0 { p.a() } else { p.b() };
                cache = (
                    std::time::Instant::now(),
                    sts_tests::jwks_kids_at(from).await,
                );
            }
            let res = http
                .post(format!("{replica}/sso/token"))
                .basic_auth("machine", Some(&p.secrets["machine"]))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let body: serde_json::Value = res.json().await.unwrap();
            let kid = kid_of(body["access_token"].as_str().unwrap());
            assert!(
                cache.1.contains(&kid),
                "round {round}: {replica} signed with {kid}, unknown to a JWKS cached {:?} ago: {:?}",
                cache.0.elapsed(),
                cache.1
            );
            if kid != old {
                seen_new_at[i] = true;
            }
        }
        if b_published_next.is_none() && sts_tests::jwks_kids_at(p.b()).await.len() == 2 {
            b_published_next = Some(staged_at.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let published = b_published_next.expect("B published the next key");
    assert!(
        published < std::time::Duration::from_millis(2500),
        "B published it within its reload interval: {published:?}"
    );
    assert_eq!(
        seen_new_at,
        [true, true],
        "both replicas sign with the new key in the end"
    );
    assert!(fetches >= 3, "the verifier refetched ({fetches})");
    // Exactly one active key, the new one; the old one still published.
    let states = postgres::cluster().sql(
        &p.database,
        "SELECT state || ':' || CAST(COUNT(*) AS text) FROM signing_keys GROUP BY state ORDER BY state",
    );
    assert_eq!(
        states.split_whitespace().collect::<Vec<_>>(),
        vec!["active:1", "published:1"]
    );
    let after = sts_tests::jwks_kids_at(p.a()).await;
    assert!(after.contains(&old) && after.len() == 2, "{after:?}");
}
