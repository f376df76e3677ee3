//! Storage engines side by side, in one run: `client_credentials` tokens/s on SQLite and on PostgreSQL
//! (the suite's own real cluster), and with two replicas on one PostgreSQL; authorization-code logins/s
//! (authorize with an existing SSO session, code redemption, refresh) on both engines. Real HTTP/1.1
//! keep-alive connections against servers started in-process.
//!
//! Run: `cargo bench -p sts-tests --bench engines` (optionally `-- --seconds 10`). Targets, checked (exit 1
//! when missed): PostgreSQL within 10 % of SQLite for `client_credentials` (which must not touch the
//! database), and at least 1,000 code-flow logins/s on each engine. The RSA-2048 ceiling of this machine
//! (`openssl speed`, one core) is measured in the same run and printed beside them. Without `--bench`
//! (`cargo test --all-targets`) it is a one-second smoke run of each scenario: every request must succeed.
//! Results: docs/performance.md.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CC_TARGET: f64 = 0.90;
const LOGINS_TARGET: f64 = 1000.0;
const APP_CB: &str = "https://app.example.com/cb";
const CONFIG: &str = r#"
[[providers]]
id = "corp"
type = "oauth2"
authorization_endpoint = "https://idp.example.com/authorize"
token_endpoint = "https://idp.example.com/token"
userinfo_endpoint = "https://idp.example.com/userinfo"
client_id = "sts"
client_secret_env = "CORP_SECRET"

[[clients]]
id = "machine"
type = "confidential"
grant_types = ["client_credentials"]
audience = ["orders-api"]
roles = ["svc-orders-reader"]

[[clients]]
id = "web"
type = "confidential"
redirect_uris = ["https://app.example.com/cb"]
"#;

struct Installation {
    _dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    /// The `sts_session` cookie of a live SSO session.
    session: String,
}

/// A database with the configuration's clients, their secrets and one SSO session of alice.
async fn install(database_url: String) -> Installation {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("sts.toml");
    std::fs::write(&conf, CONFIG).unwrap();
    let mut env = BTreeMap::new();
    env.insert("STS_CONFIG".to_string(), conf.display().to_string());
    env.insert("STS_DATABASE_URL".to_string(), database_url);
    env.insert(
        "STS_MASTER_KEY_FILE".to_string(),
        dir.path().join("master.key").display().to_string(),
    );
    env.insert("STS_LOG".to_string(), "error".to_string());
    env.insert("CORP_SECRET".to_string(), "x".to_string());
    env.insert("STS_PUBLIC_URL".to_string(), "http://sts.bench".to_string());
    let config = sts::Config::load_from(None, &env, &[]).expect("config");
    let pool = sts::store::connect(&config).await.expect("database");
    let service = sts::keys::KeyService::open(pool.clone(), &config, sts::clock::system(), "bench")
        .await
        .expect("keys");
    service.ensure_active().await.expect("signing key");
    let declared = sts::declared::Declared::from_config(&config).expect("declared");
    sts::startup::sync_clients(&pool, &declared, service.now(), false)
        .await
        .expect("clients");
    let hasher = sts::oauth::clients::SecretHasher::new(&service);
    let mut secrets = BTreeMap::new();
    for id in ["machine", "web"] {
        let secret = sts::oauth::clients::generate_secret();
        sts::store::oauth::set_client_secret(
            &pool,
            id,
            &hasher.hash(&secret),
            hasher.key_id(),
            service.now(),
        )
        .await
        .expect("secret");
        secrets.insert(id.to_string(), secret.to_string());
    }
    let session = sts::sso::random_token();
    let now = service.now();
    sts::store::login::insert_session(
        &pool,
        &sts::store::login::NewSession {
            id_hash: &sts::sso::hash(&session),
            subject: "alice",
            provider_id: "corp",
            identity: r#"{"username":"alice","email":null,"email_verified":null,"display_name":"Alice","groups":[]}"#,
            roles: r#"["user"]"#,
            sid: &sts::sso::random_token(),
            acr: None,
            amr: None,
            auth_time: now,
            now,
            idle_expires_at: now + 86_400,
            expires_at: now + 86_400,
        },
    )
    .await
    .expect("session");
    pool.close().await;
    Installation {
        _dir: dir,
        env,
        secrets,
        session,
    }
}

/// A server on `inst`'s database with `workers` HTTP workers; its address and a stop handle.
async fn serve(inst: &Installation, workers: usize) -> (String, actix_web::dev::ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut env = inst.env.clone();
    env.insert("STS_WORKERS".to_string(), workers.to_string());
    let config = sts::Config::load_from(None, &env, &[]).expect("config");
    let app = sts::Application::build_on(config, sts::clock::system(), listener)
        .await
        .expect("server");
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    (format!("http://127.0.0.1:{port}"), handle)
}

/// Run `step` on `connections` tasks for `seconds` (after a warm-up); successes per second and errors.
async fn drive<F, Fut>(seconds: f64, connections: usize, step: F) -> (f64, u64)
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let step = step.clone();
        let (counting, stop, ok, errors) =
            (counting.clone(), stop.clone(), ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let good = step(c).await;
                if counting.load(Ordering::Relaxed) {
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64((seconds / 5.0).clamp(0.2, 2.0))).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        errors.load(Ordering::Relaxed),
    )
}

fn http(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `client_credentials` over `connections`, spread over `servers` in turn.
async fn client_credentials(inst: &Installation, servers: &[String], seconds: f64) -> (f64, u64) {
    let client = http(8);
    let secret = inst.secrets["machine"].clone();
    let servers: Arc<Vec<String>> = Arc::new(servers.to_vec());
    drive(seconds, 8, move |c| {
        let (client, secret, servers) = (client.clone(), secret.clone(), servers.clone());
        async move {
            let url = format!("{}/sso/token", servers[c % servers.len()]);
            match client
                .post(url)
                .basic_auth("machine", Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await
}

/// One code-flow login: authorize with the SSO session (a code), redeem it, refresh once.
async fn code_flow(client: &reqwest::Client, server: &str, secret: &str, session: &str) -> bool {
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"; // RFC 7636's example pair
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let url = format!(
        "{server}/sso/authorize?response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb\
         &scope=openid&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256"
    );
    let Ok(r) = client
        .get(url)
        .header("Cookie", format!("sts_session={session}"))
        .send()
        .await
    else {
        return false;
    };
    let Some(code) = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .filter(|l| l.starts_with(APP_CB))
        .and_then(|l| url::Url::parse(l).ok())
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        })
    else {
        return false;
    };
    let token = |form: Vec<(&'static str, String)>| {
        client
            .post(format!("{server}/sso/token"))
            .basic_auth("web", Some(secret))
            .form(&form)
            .send()
    };
    let Ok(r) = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", APP_CB.into()),
        ("code_verifier", verifier.into()),
    ])
    .await
    else {
        return false;
    };
    let Ok(tokens) = r.json::<serde_json::Value>().await else {
        return false;
    };
    let Some(rt) = tokens["refresh_token"].as_str() else {
        return false;
    };
    matches!(
        token(vec![("grant_type", "refresh_token".into()), ("refresh_token", rt.into())]).await,
        Ok(r) if r.status().is_success()
    )
}

async fn logins(inst: &Installation, server: &str, seconds: f64) -> (f64, u64) {
    let client = http(8);
    let (server, secret, session) = (
        server.to_string(),
        inst.secrets["web"].clone(),
        inst.session.clone(),
    );
    drive(seconds, 8, move |_| {
        let (client, server, secret, session) = (
            client.clone(),
            server.clone(),
            secret.clone(),
            session.clone(),
        );
        async move { code_flow(&client, &server, &secret, &session).await }
    })
    .await
}

/// One core's RSA-2048 sign/s from `openssl speed`.
fn openssl_sign_per_second() -> f64 {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "3", "rsa2048"])
        .output()
        .expect("openssl is needed for the ceiling (scripts/install-deps --peers installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| {
            l.trim_start().starts_with("rsa 2048 bits")
                || l.trim_start().starts_with("rsa  2048 bits")
        })
        .unwrap_or_else(|| panic!("no `rsa 2048 bits` line in openssl speed output:\n{text}"));
    let n: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match n.as_slice() {
        [_, .., sign, _verify] => *sign,
        _ => panic!("unexpected openssl speed line: {line}"),
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut seconds = 8.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            seconds = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--seconds N");
        }
    }
    if !measuring {
        seconds = 1.0;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let failed = rt.block_on(async {
        let lite = install(format!(
            "sqlite://{}/sts.db",
            tempfile::tempdir().unwrap().keep().display()
        ))
        .await;
        let pg = install(sts_tests::postgres::cluster().create_database()).await;

        // client_credentials: one server worker per replica (as the token_endpoint benchmark).
        let (a, stop_lite) = serve(&lite, 1).await;
        let (cc_lite, e1) = client_credentials(&lite, std::slice::from_ref(&a), seconds).await;
        stop_lite.stop(true).await;
        let (pa, stop_pa) = serve(&pg, 1).await;
        let (cc_pg, e2) = client_credentials(&pg, std::slice::from_ref(&pa), seconds).await;
        let (pb, stop_pb) = serve(&pg, 1).await;
        let (cc_pg2, e3) = client_credentials(&pg, &[pa.clone(), pb.clone()], seconds).await;
        stop_pa.stop(true).await;
        stop_pb.stop(true).await;

        // Code-flow logins: one server with a worker per core.
        let (a, stop_lite) = serve(&lite, 2).await;
        let (login_lite, e4) = logins(&lite, &a, seconds).await;
        stop_lite.stop(true).await;
        let (p, stop_p) = serve(&pg, 2).await;
        let (login_pg, e5) = logins(&pg, &p, seconds).await;
        stop_p.stop(true).await;

        let errors = e1 + e2 + e3 + e4 + e5;
        if !measuring {
            println!(
                "engines smoke run (not measuring; use cargo bench): cc {cc_lite:.0}/{cc_pg:.0}/{cc_pg2:.0} tokens/s, logins {login_lite:.0}/{login_pg:.0}/s, {errors} errors"
            );
            return errors > 0 || [cc_lite, cc_pg, cc_pg2, login_lite, login_pg].contains(&0.0);
        }
        let ceiling = openssl_sign_per_second();
        let cc_ratio = cc_pg / cc_lite;
        println!("engines ({seconds} s per scenario, 8 keep-alive connections, errors: {errors})");
        println!("  openssl speed rsa2048 sign/s (1 core):          {ceiling:.0}");
        println!("  client_credentials tokens/s, 1 worker, SQLite:  {cc_lite:.0}");
        println!("  client_credentials tokens/s, 1 worker, PostgreSQL: {cc_pg:.0} ({:.0} % of SQLite, target >= {:.0} %)", cc_ratio * 100.0, CC_TARGET * 100.0);
        println!("  client_credentials tokens/s, 2 replicas x 1 worker, PostgreSQL: {cc_pg2:.0} ({:.2}x one replica)", cc_pg2 / cc_pg);
        println!("  code-flow logins/s (authorize + redeem + refresh), 2 workers, SQLite:     {login_lite:.0} (target >= {LOGINS_TARGET:.0})");
        println!("  code-flow logins/s (authorize + redeem + refresh), 2 workers, PostgreSQL: {login_pg:.0} (target >= {LOGINS_TARGET:.0})");
        let pass = errors == 0 && cc_ratio >= CC_TARGET && login_lite >= LOGINS_TARGET && login_pg >= LOGINS_TARGET;
        println!("  {}", if pass { "PASS" } else { "FAIL" });
        !pass
    });
    if failed {
        std::process::exit(1);
    }
}
