//! `sts migrate` and `sts backup` on a populated installation: SQLite → a real PostgreSQL (the suite's
//! own cluster) and back. The migrated STS serves the same keys, applications and providers, its users'
//! refresh tokens keep working, and new logins work; a non-empty target or another master key is refused
//! with nothing written.

use std::collections::BTreeSet;
use std::path::Path;

use sts_tests::process::{self, ServerProcess};
use sts_tests::{browser, pkce, postgres, run_cli, start_node_peer, walk};

const UPSTREAM_SECRET: &str = "upstream-secret-for-tests";
const APP_CB: &str = "https://app.example.com/cb";

fn config(idp: &str) -> String {
    format!(
        r#"
[[providers]]
id = "corp"
type = "oidc"
issuer = "{idp}"
client_id = "sts"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "profile"]

[[clients]]
id = "app"
type = "confidential"
redirect_uris = ["{APP_CB}"]
"#
    )
}

async fn api(server: &ServerProcess, token: &str, path: &str) -> serde_json::Value {
    let res = reqwest::Client::new()
        .get(format!("{}/admin/api/v1{path}", server.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

fn ids(list: &serde_json::Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn kids(server: &ServerProcess) -> BTreeSet<String> {
    sts_tests::jwks_kids_at(&server.address)
        .await
        .into_iter()
        .collect()
}

/// A code-flow login of alice through `provider` at `server` (the public URL routed to it): the token
/// response.
async fn login(
    server: &ServerProcess,
    public: &str,
    secret: &str,
    provider: &str,
) -> serde_json::Value {
    // Log in through the provider first (two are configured, so /sso/authorize alone would ask which).
    let client = browser();
    let (st, _, visited) = walk(
        &client,
        public,
        &server.address,
        &format!("{public}/sso/login?provider={provider}&login_hint=alice"),
        "http://never.example",
    )
    .await;
    assert_eq!(st, 200, "{visited:?}");
    let (verifier, challenge) = pkce();
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let (_, to, visited) = walk(
        &client,
        public,
        &server.address,
        &format!("{public}/sso/authorize?{q}"),
        APP_CB,
    )
    .await;
    let code = url::Url::parse(&to)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| panic!("no code: {visited:?}"));
    let res = reqwest::Client::new()
        .post(format!("{}/sso/token", server.address))
        .basic_auth("app", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP_CB),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn refresh(server: &ServerProcess, secret: &str, rt: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/sso/token", server.address))
        .basic_auth("app", Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn pg_count(database_url: &str, sql: &str) -> String {
    let db = database_url.rsplit('/').next().unwrap();
    postgres::cluster().sql(db, sql).trim().to_string()
}

async fn cli(
    dir: &Path,
    env: &std::collections::BTreeMap<String, String>,
    args: &[&str],
    extra: &[(&str, &str)],
) -> sts_tests::CliOutput {
    run_cli(dir, env, args, extra).await
}

#[tokio::test]
async fn a_populated_sqlite_installation_moves_to_postgresql_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = sts_tests::saml_idp::free_port();
    let public = format!("http://127.0.0.1:{port}");
    let idp_config = serde_json::json!({
        "clients": [{
            "client_id": "sts", "client_secret": UPSTREAM_SECRET,
            "redirect_uris": [format!("{public}/sso/sso-openid/openid-login")],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"], "response_types": ["code"],
        }],
        "users": {"alice": {"sub": "alice", "name": "Alice", "preferred_username": "alice"}}
    });
    let idp = start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &idp_config.to_string()],
    )
    .await;
    std::fs::write(dir.path().join("sts.toml"), config(&idp.issuer)).unwrap();
    let sqlite = format!("sqlite://{}/data/sts.db", dir.path().display());
    let config_path = dir.path().join("sts.toml").display().to_string();
    let env: Vec<(&str, &str)> = vec![
        ("STS_DATABASE_URL", sqlite.as_str()),
        ("STS_PUBLIC_URL", public.as_str()),
        ("STS_CONFIG", config_path.as_str()),
        ("CORP_SECRET", UPSTREAM_SECRET),
    ];

    // A populated installation on SQLite: two signing keys, a console provider with its sealed secret,
    // a console application, an administrator and an API token, and a user's SSO session and refresh token.
    let old = process::start_on(dir.path(), port, &env).await;
    let secret = cli(dir.path(), &old.env, &["clients", "secret", "app"], &[])
        .await
        .ok()
        .stdout
        .trim()
        .to_string();
    process::create_admin_with(dir.path(), &old.env).await;
    let token = process::api_token_at(&old.address).await;
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/admin/api/v1/keys/regenerate", old.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let source = format!(
        "id = \"corp2\"\ntype = \"oidc\"\nissuer = \"{}\"\nclient_id = \"sts\"\nscopes = [\"openid\"]\n",
        idp.issuer
    );
    let res = http
        .post(format!("{}/admin/api/v1/providers", old.address))
        .bearer_auth(&token)
        .json(&serde_json::json!({"source": source, "client_secret": UPSTREAM_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = http
        .post(format!("{}/admin/api/v1/applications", old.address))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": "console-app", "type": "public", "redirect_uris": ["http://127.0.0.1/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(5500)).await; // the secret reaches the registry
    let tokens = login(&old, &public, &secret, "corp").await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_string();
    let (old_kids, old_apps, old_providers) = (
        kids(&old).await,
        ids(&api(&old, &token, "/applications").await),
        ids(&api(&old, &token, "/providers").await),
    );
    assert_eq!(old_kids.len(), 2);

    // An online backup while it runs: a new 0600 file that serves the same keys.
    let backup = dir.path().join("backup.db");
    let out = cli(
        dir.path(),
        &old.env,
        &["backup", "--out", backup.to_str().unwrap()],
        &[],
    )
    .await
    .ok();
    assert!(out.stderr.contains("backed up"), "{}", out.stderr);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = cli(
        dir.path(),
        &old.env,
        &["backup", "--out", backup.to_str().unwrap()],
        &[],
    )
    .await;
    assert_ne!(again.status, 0, "never over an existing file");
    let listed = cli(
        dir.path(),
        &old.env,
        &["keys", "list"],
        &[(
            "STS_DATABASE_URL",
            &format!("sqlite://{}", backup.display()),
        )],
    )
    .await
    .ok();
    for k in &old_kids {
        assert!(listed.stdout.contains(k.as_str()), "{}", listed.stdout);
    }
    old.terminate();

    // Into PostgreSQL (the URL with its password from the environment).
    let target = postgres::cluster().create_database();
    let out = cli(
        dir.path(),
        &old.env,
        &["migrate", "--from", &sqlite, "--to", "env:TARGET"],
        &[("TARGET", &target)],
    )
    .await
    .ok();
    assert!(
        out.stderr.contains("open under master key"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(target.split('@').next().unwrap()),
        "no password in the output"
    );
    assert_eq!(pg_count(&target, "SELECT COUNT(*) FROM signing_keys"), "2");

    // The migrated STS: same keys, applications and providers; alice's refresh token still rotates; a
    // new login through the console provider works.
    let dir2 = tempfile::tempdir().unwrap();
    let master = old.env["STS_MASTER_KEY_FILE"].clone();
    let new = process::start(
        dir2.path(),
        &[
            ("STS_DATABASE_URL", target.as_str()),
            ("STS_MASTER_KEY_FILE", master.as_str()),
            ("STS_PUBLIC_URL", public.as_str()),
            ("STS_CONFIG", config_path.as_str()),
            ("CORP_SECRET", UPSTREAM_SECRET),
        ],
    )
    .await;
    assert_eq!(kids(&new).await, old_kids);
    assert_eq!(ids(&api(&new, &token, "/applications").await), old_apps);
    assert_eq!(ids(&api(&new, &token, "/providers").await), old_providers);
    assert_eq!(refresh(&new, &secret, &rt).await, 200);
    let t = login(&new, &public, &secret, "corp2").await;
    assert!(t["id_token"].is_string());

    // A second run into the same (now populated) target is refused and writes nothing.
    let before = pg_count(&target, "SELECT COUNT(*) FROM audit_log");
    let out = cli(
        dir.path(),
        &old.env,
        &["migrate", "--from", &sqlite, "--to", &target],
        &[],
    )
    .await;
    assert_ne!(out.status, 0);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(pg_count(&target, "SELECT COUNT(*) FROM audit_log"), before);

    // Another master key: refused before anything is written.
    let other = postgres::cluster().create_database();
    let out = cli(
        dir.path(),
        &old.env,
        &["migrate", "--from", &sqlite, "--to", &other],
        &[(
            "STS_MASTER_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )],
    )
    .await;
    assert_ne!(out.status, 0, "{}", out.stderr);
    assert!(out.stderr.contains("master key"), "{}", out.stderr);
    assert_eq!(
        pg_count(
            &other,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ),
        "0",
        "the target was not touched"
    );

    // And back: PostgreSQL → a new SQLite file, with the same keys.
    drop(new);
    let back = format!("sqlite://{}/back.db", dir2.path().display());
    cli(
        dir.path(),
        &old.env,
        &["migrate", "--from", &target, "--to", &back],
        &[],
    )
    .await
    .ok();
    let listed = cli(
        dir.path(),
        &old.env,
        &["keys", "list"],
        &[("STS_DATABASE_URL", &back)],
    )
    .await
    .ok();
    for k in &old_kids {
        assert!(listed.stdout.contains(k.as_str()), "{}", listed.stdout);
    }
}
