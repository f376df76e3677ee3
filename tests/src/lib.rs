//! Black-box test harness: the real server on port 0 with a fresh temp database and master key
//! (`spawn_app`), the real `sts` binary for CLI commands, and the real peers (PyJWT, jose, openssl,
//! keytool) that `scripts/install-deps --peers` installs. A missing peer is a loud failure, never a skip.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use actix_web::dev::ServerHandle;
use tempfile::TempDir;

pub use sts;

/// Extra settings for a spawned app: `STS_*` variables (the same names an operator uses) and an optional
/// config file (e.g. `[[providers]]`).
#[derive(Default, Clone)]
pub struct AppOptions {
    pub env: Vec<(String, String)>,
    pub config_toml: Option<String>,
}

impl AppOptions {
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config_toml = Some(toml.into());
        self
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub dir: TempDir,
    pub client: reqwest::Client,
    env: BTreeMap<String, String>,
    handle: ServerHandle,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The environment that points a server or CLI at `dir`'s database and master key.
fn base_env(dir: &Path, port: u16, scheme: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("STS_LISTEN".into(), format!("127.0.0.1:{port}"));
    env.insert(
        "STS_PUBLIC_URL".into(),
        format!("{scheme}://127.0.0.1:{port}"),
    );
    env.insert("STS_DATABASE_URL".into(), postgres::database_url_for(dir));
    env.insert(
        "STS_MASTER_KEY_FILE".into(),
        dir.join("keys/master.key").display().to_string(),
    );
    env.insert("STS_LOG".into(), "error".into());
    env
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(opts: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    try_spawn_in(dir, opts)
        .await
        .unwrap_or_else(|(_, e)| panic!("spawn_app failed: {e:#}"))
}

/// Start the server on `dir` (which may hold an earlier run's database). On failure the dir is handed back.
pub async fn try_spawn_in(
    dir: TempDir,
    opts: AppOptions,
) -> Result<TestApp, (TempDir, anyhow::Error)> {
    try_spawn_on(
        dir,
        opts,
        TcpListener::bind("127.0.0.1:0").expect("bind port 0"),
    )
    .await
}

/// Start the app on a listener the test bound first (so an IdP can be told the redirect URI beforehand).
pub async fn spawn_app_on(listener: TcpListener, opts: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    try_spawn_on(dir, opts, listener)
        .await
        .unwrap_or_else(|(_, e)| panic!("spawn_app failed: {e:#}"))
}

pub async fn try_spawn_on(
    dir: TempDir,
    opts: AppOptions,
    listener: TcpListener,
) -> Result<TestApp, (TempDir, anyhow::Error)> {
    let port = listener.local_addr().unwrap().port();
    let tls = opts.env.iter().any(|(k, _)| k.starts_with("STS_TLS_"));
    let mut env = base_env(dir.path(), port, if tls { "https" } else { "http" });
    env.extend(opts.env.iter().cloned());
    if let Some(text) = &opts.config_toml {
        let path = dir.path().join("sts.toml");
        std::fs::write(&path, text).expect("write config");
        env.insert("STS_CONFIG".into(), path.display().to_string());
    }
    let config = match sts::Config::load_from(None, &env, &[]) {
        Ok(c) => c,
        Err(e) => return Err((dir, e.into())),
    };
    sts::telemetry::init(&config.log_filter, config.log_format);
    let app = match sts::Application::build_on(config, sts::clock::system(), listener).await {
        Ok(a) => a,
        Err(e) => return Err((dir, e.into())),
    };
    let handle = app.handle();
    let join = tokio::spawn(app.run_until_stopped());
    let client = browser();
    let scheme = if tls { "https" } else { "http" };
    Ok(TestApp {
        address: format!("{scheme}://127.0.0.1:{port}"),
        port,
        dir,
        client,
        env,
        handle,
        join,
    })
}

impl TestApp {
    /// Number of SSO sessions in the database.
    pub async fn session_count(&self) -> i64 {
        let pool = open_db(self.dir.path()).await;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sso_sessions")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/sso/jwks.json", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    pub async fn jwks(&self) -> serde_json::Value {
        let res = self.get("/sso/jwks.json").await;
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    pub async fn jwks_kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .expect("keys array")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_string())
            .collect()
    }

    /// Poll the JWKS until `pred` holds (the server reloads keys on an interval), or panic after `secs`.
    pub async fn wait_for_kids(
        &self,
        secs: u64,
        what: &str,
        pred: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let kids = self.jwks_kids().await;
            if pred(&kids) {
                return kids;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {secs}s waiting for: {what}; JWKS kids = {kids:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Run the real `sts` binary against this app's database and master key.
    pub async fn cli(&self, args: &[&str], extra_env: &[(&str, &str)]) -> CliOutput {
        run_cli(self.dir.path(), &self.env, args, extra_env).await
    }

    /// `sts token issue ARGS...` against this app; panics unless it succeeds. Returns the token.
    pub async fn issue_token(&self, args: &[&str]) -> String {
        let mut full = vec!["token", "issue"];
        full.extend_from_slice(args);
        self.cli(&full, &[]).await.ok().stdout.trim().to_string()
    }

    /// Stop the server and give back its directory (database and master key), e.g. to restart on it.
    pub async fn stop(self) -> TempDir {
        self.handle.stop(true).await;
        let _ = self.join.await;
        self.dir
    }
}

/// An HTTP client that keeps cookies and stops at redirects, like a browser driven step by step.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(40))
        .build()
        .unwrap()
}

/// Follow redirects by hand from `url` until a response that is not a redirect, or until the next
/// location starts with `stop_at` (returned, not fetched). Returns the last response and the URLs visited.
pub async fn follow(
    client: &reqwest::Client,
    url: &str,
    stop_at: Option<&str>,
) -> (reqwest::Response, Vec<String>) {
    let mut visited = vec![url.to_string()];
    let mut res = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    for _ in 0..15 {
        if !res.status().is_redirection() {
            return (res, visited);
        }
        let loc = res
            .headers()
            .get("location")
            .expect("redirect without Location")
            .to_str()
            .unwrap()
            .to_string();
        let next = res.url().join(&loc).unwrap().to_string();
        visited.push(next.clone());
        if stop_at.is_some_and(|p| next.starts_with(p)) {
            return (res, visited);
        }
        res = client
            .get(&next)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {next}: {e}"));
    }
    panic!("too many redirects: {visited:?}");
}

/// Follow redirects like a browser behind the load balancer: a URL on the public address goes to
/// `replica`. Stops at a redirect to `stop_at`, or at the first answer that is not a redirect: (status,
/// URL, every URL visited).
pub async fn walk(
    client: &reqwest::Client,
    public: &str,
    replica: &str,
    url: &str,
    stop_at: &str,
) -> (u16, String, Vec<String>) {
    let route = |u: &str| match u.strip_prefix(public) {
        Some(rest) => format!("{replica}{rest}"),
        None => u.to_string(),
    };
    let mut next = route(url);
    let mut visited = vec![next.clone()];
    for _ in 0..15 {
        let res = client
            .get(&next)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {next}: {e}"));
        if !res.status().is_redirection() {
            return (res.status().as_u16(), next, visited);
        }
        let loc = res.headers()["location"].to_str().unwrap().to_string();
        let to = res.url().join(&loc).unwrap().to_string();
        if to.starts_with(stop_at) {
            visited.push(to.clone());
            return (res.status().as_u16(), to, visited);
        }
        next = route(&to);
        visited.push(next.clone());
    }
    panic!("too many redirects: {visited:?}");
}

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let verifier = format!("{}-._~x", sts::sso::random_token());
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        <sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()),
    );
    (verifier, challenge)
}

/// The kids of the JWKS served at `address` (`/sso/jwks.json`), in its order.
pub async fn jwks_kids_at(address: &str) -> Vec<String> {
    let jwks: serde_json::Value = reqwest::get(format!("{address}/sso/jwks.json"))
        .await
        .expect("GET JWKS")
        .json()
        .await
        .expect("JWKS JSON");
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

/// A peer process (an IdP script) that is killed when dropped.
pub struct Peer {
    pub issuer: String,
    pub port: u16,
    _child: tokio::process::Child,
}

/// The node binary install-deps chose (tests/peers/node/.node-path).
pub fn node_bin() -> String {
    let path = repo_root().join("tests/peers/node/.node-path");
    let node = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} missing: run scripts/install-deps --peers",
            path.display()
        )
    });
    node.trim().to_string()
}

/// npm `oidc-provider` (peers/node/oidc-idp.mjs) as the upstream IdP of the STS at `sts`: one client `sts`
/// with `secret` and the STS's OIDC callback, and `users` (login_hint → claims).
pub async fn start_oidc_idp(sts: &str, secret: &str, users: serde_json::Value) -> Peer {
    let config = serde_json::json!({
        "clients": [{
            "client_id": "sts", "client_secret": secret,
            "redirect_uris": [format!("{sts}/sso/sso-openid/openid-login")],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"], "response_types": ["code"],
        }],
        "users": users,
    });
    start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &config.to_string()],
    )
    .await
}

/// Start `tests/peers/node/<script>` with `args` and wait for its `READY <issuer>` line.
pub async fn start_node_peer(script: &str, args: &[&str]) -> Peer {
    start_node_peer_env(script, args, &[]).await
}

/// [`start_node_peer`] with extra environment variables (e.g. NODE_EXTRA_CA_CERTS).
pub async fn start_node_peer_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> Peer {
    use tokio::io::AsyncBufReadExt;
    let dir = repo_root().join("tests/peers/node");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "oidc-provider peer missing: run scripts/install-deps --peers"
    );
    let mut child = tokio::process::Command::new(node_bin())
        .current_dir(&dir)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node {script}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(45), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script} did not become ready within 45 s"))
        .expect("read peer stdout")
        .unwrap_or_else(|| panic!("{script} exited before it was ready"));
    let issuer = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("{script}: unexpected first line {line:?}"))
        .trim()
        .to_string();
    let port = url::Url::parse(&issuer).unwrap().port().unwrap();
    Peer {
        issuer,
        port,
        _child: child,
    }
}

/// Start `tests/peers/<script>` (Python, standard library only) with the peers' venv Python on a free
/// port (its first argument, then `args`); waits for its `READY` line. The peer's base URL is
/// `http://127.0.0.1:PORT`.
pub async fn start_python_peer(script: &str, args: &[&str]) -> Peer {
    use tokio::io::AsyncBufReadExt;
    let python = repo_root().join("tests/peers/.venv/bin/python");
    assert!(
        python.is_file(),
        "{} missing: run scripts/install-deps --peers",
        python.display()
    );
    let port = saml_idp::free_port();
    let mut child = tokio::process::Command::new(&python)
        .arg(repo_root().join("tests/peers").join(script))
        .arg(port.to_string())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script} did not become ready within 30 s"))
        .expect("read peer stdout")
        .unwrap_or_else(|| panic!("{script} exited before it was ready"));
    assert_eq!(line.trim(), "READY", "{script}: unexpected first line");
    Peer {
        issuer: format!("http://127.0.0.1:{port}"),
        port,
        _child: child,
    }
}

/// Output of one CLI run.
pub struct CliOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.status, 0,
            "sts failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

pub async fn run_cli(
    dir: &Path,
    env: &BTreeMap<String, String>,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> CliOutput {
    let mut cmd = tokio::process::Command::new(sts_bin());
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STS_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env).envs(extra_env.iter().copied());
    let out: Output = cmd.output().await.expect("run sts binary");
    CliOutput {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `sts` binary next to this test executable (target/<profile>/sts). `scripts/test` builds it first.
pub fn sts_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("sts");
    assert!(
        bin.is_file(),
        "the sts binary is not built at {}: run `cargo build -p sts` (scripts/test does)",
        bin.display()
    );
    bin
}

/// The `sts-login` CLI binary next to the `sts` binary (`cargo build --workspace --bins` builds both).
pub fn sts_login_bin() -> PathBuf {
    let bin = sts_bin().with_file_name("sts-login");
    assert!(
        bin.is_file(),
        "the sts-login binary is not built at {}: run `cargo build -p sts-login` (scripts/test does)",
        bin.display()
    );
    bin
}

/// Repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Run an external tool; panics with its output when it cannot start or fails.
pub fn tool(program: &str, args: &[&str], cwd: &Path) -> Output {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is not available ({e}); scripts/install-deps --peers installs it")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `cmd` with `input` on its standard input; its output (stdout and stderr captured).
pub fn run_with_stdin(cmd: &mut std::process::Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not start ({e})"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Run tests/peers/node/browser-login.mjs (headless Chromium) with `args` (`--out` is added) and `env`;
/// its one-line JSON verdict, and its whole stdout (to check what it must never print).
pub async fn browser_login(
    args: &[&str],
    env: &[(&str, &str)],
    out: &Path,
) -> (serde_json::Value, String) {
    let script = repo_root().join("tests/peers/node/browser-login.mjs");
    let result = tokio::process::Command::new(node_bin())
        .arg(&script)
        .args(args)
        .arg("--out")
        .arg(out)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run browser-login.mjs");
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| {
            panic!(
                "no verdict from the browser script:\n{stdout}\n{}",
                String::from_utf8_lossy(&result.stderr)
            )
        });
    assert_eq!(v["ok"], true, "{v:#}");
    assert!(result.status.success());
    (v, stdout)
}

/// Independent verifiers of our tokens.
pub mod verifiers {
    use super::*;

    #[derive(Debug)]
    pub struct Verdict {
        pub ok: bool,
        pub json: serde_json::Value,
    }

    fn parse(name: &str, out: Output) -> Verdict {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| {
            panic!(
                "{name} printed no verdict (broken peer?):\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let ok = json["ok"].as_bool().expect("ok field");
        assert_eq!(
            ok,
            out.status.success(),
            "{name} exit status disagrees with its verdict: {json}"
        );
        Verdict { ok, json }
    }

    /// PyJWT + PyJWKClient, from the venv that install-deps makes.
    pub fn pyjwt(jwks_url: &str, token: &str, issuer: &str, audience: &str) -> Verdict {
        let root = repo_root();
        let python = root.join("tests/peers/.venv/bin/python");
        assert!(
            python.is_file(),
            "PyJWT peer missing at {}: run scripts/install-deps --peers",
            python.display()
        );
        let out = std::process::Command::new(python)
            .arg(root.join("tests/peers/verify_pyjwt.py"))
            .args([jwks_url, token, issuer, audience])
            .output()
            .expect("run PyJWT verifier");
        parse("PyJWT", out)
    }

    /// npm `jose` with createRemoteJWKSet, requiring `typ: at+jwt`.
    pub fn jose(jwks_url: &str, token: &str, issuer: &str, audience: &str) -> Verdict {
        jose_typ(jwks_url, token, issuer, audience, "at+jwt")
    }

    /// npm `jose` with createRemoteJWKSet, requiring the given `typ` header (ID tokens: `JWT`).
    pub fn jose_typ(
        jwks_url: &str,
        token: &str,
        issuer: &str,
        audience: &str,
        typ: &str,
    ) -> Verdict {
        let dir = repo_root().join("tests/peers/node");
        assert!(
            dir.join("node_modules/jose").is_dir(),
            "jose peer missing: run scripts/install-deps --peers"
        );
        let out = std::process::Command::new(node_bin())
            .current_dir(&dir)
            .arg("verify-jose.mjs")
            .args([jwks_url, token, issuer, audience, typ])
            .output()
            .expect("node is not available; scripts/install-deps --peers installs it");
        parse("jose", out)
    }
}

/// Admin console helpers: an administrator created with the CLI, signed in over HTTP.
pub mod admin {
    use super::*;

    pub const PASSWORD: &str = "correct horse battery staple";

    /// `name="csrf" value="..."` of a page.
    pub fn csrf_of(html: &str) -> String {
        html.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no csrf field in:\n{html}"))
            .to_string()
    }

    /// Create `root` (once per app), sign in; returns the client (cookies) and the session's CSRF token.
    pub async fn sign_in(app: &TestApp) -> (reqwest::Client, String) {
        // `root` may exist already (a test that created it first): that refusal is fine here.
        let _ = app
            .cli(
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
            .await;
        process::sign_in_at(&app.address).await
    }

    /// An admin API token (created through the console).
    pub async fn api_token(app: &TestApp) -> String {
        sign_in(app).await;
        process::api_token_at(&app.address).await
    }

    /// The text of the element `id="{id}"` of a page (a `<pre>` or `<code>` the console fills).
    pub fn pre(html: &str, id: &str) -> String {
        html.split(&format!("id=\"{id}\">"))
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or_else(|| panic!("no #{id} in:\n{html}"))
            .to_string()
    }

    /// Create the administrator `user` with [`PASSWORD`] by the CLI; panics unless it succeeds.
    pub async fn create_user(app: &TestApp, user: &str) {
        app.cli(
            &[
                "admin",
                "create",
                "--username",
                user,
                "--password-env",
                "ADMIN_PW",
            ],
            &[("ADMIN_PW", PASSWORD)],
        )
        .await
        .ok();
    }

    /// Sign in as `user` with `password`; returns the client (cookies), the status of the sign-in POST
    /// and its body.
    pub async fn sign_in_as(
        app: &TestApp,
        user: &str,
        password: &str,
    ) -> (reqwest::Client, u16, String) {
        let client = browser();
        let page = client
            .get(format!("{}/admin/login", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csrf = csrf_of(&page.text().await.unwrap());
        let res = client
            .post(format!("{}/admin/login", app.address))
            .form(&[("username", user), ("password", password), ("csrf", &csrf)])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        (client, status, body)
    }

    /// Sign in as `root` (created before); returns the client and the session's CSRF token.
    pub async fn signed_in_root(app: &TestApp) -> (reqwest::Client, String) {
        let (client, status, body) = sign_in_as(app, "root", PASSWORD).await;
        assert_eq!(status, 303, "{body}");
        let dash = client
            .get(format!("{}/admin", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = csrf_of(&dash);
        (client, csrf)
    }

    /// POST a form; the status and the body.
    pub async fn post_form(
        client: &reqwest::Client,
        url: String,
        form: &[(&str, &str)],
    ) -> (u16, String) {
        let res = client.post(url).form(form).send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// An admin API token named `name`, made in the console by a signed-in administrator.
    pub async fn named_api_token(
        app: &TestApp,
        client: &reqwest::Client,
        csrf: &str,
        name: &str,
    ) -> String {
        let (st, html) = post_form(
            client,
            format!("{}/admin/tokens", app.address),
            &[("csrf", csrf), ("name", name)],
        )
        .await;
        assert_eq!(st, 200, "{html}");
        let token = pre(&html, "secret");
        assert!(token.starts_with("stsadm_"), "{token}");
        token
    }

    /// GET an admin API path with a bearer token; the JSON of its `200` answer.
    pub async fn api_get(app: &TestApp, token: &str, path: &str) -> serde_json::Value {
        let res = reqwest::Client::new()
            .get(format!("{}/admin/api/v1{path}", app.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.unwrap()
    }

    /// How many entries the audit log has.
    pub async fn audit_total(app: &TestApp, token: &str) -> i64 {
        api_get(app, token, "/audit").await["total"]
            .as_i64()
            .unwrap()
    }
}

/// A PKCS#12 keystore made by OpenSSL (default format): one fresh RSA 2048 key with a self-signed
/// certificate for `cn`, protected by `password`. Returns its path inside `dir`.
pub fn pkcs12_fixture(dir: &Path, cn: &str, password: &str) -> PathBuf {
    let subject = format!("/CN={cn}");
    let out = tool(
        "openssl",
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
            "-subj", &subject, "-days", "2",
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pass = format!("pass:{password}");
    let out = tool(
        "openssl",
        &[
            "pkcs12", "-export", "-inkey", "k.pem", "-in", "c.pem", "-out", "ks.p12", "-passout",
            &pass,
        ],
        dir,
    );
    assert!(
        out.status.success(),
        "openssl pkcs12: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("ks.p12")
}

/// The SimpleSAMLphp IdP peer (tests/peers/saml/start-idp.py), shared by the SAML and admin tests.
pub mod saml_idp {
    use super::*;
    use std::net::TcpListener;

    /// A running SimpleSAMLphp; killed on drop.
    pub struct Idp {
        pub metadata_url: String,
        _child: tokio::process::Child,
        pub dir: tempfile::TempDir,
    }

    pub async fn start_idp(sp_metadata: &str, flags: &[&str]) -> Idp {
        start_idp_on(0, sp_metadata, flags).await
    }

    /// A free port on loopback (bound and released).
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    pub async fn start_idp_on(port: u16, sp_metadata: &str, flags: &[&str]) -> Idp {
        use tokio::io::AsyncBufReadExt;
        // A restart on the same port: the previous IdP was killed on drop, which does not wait for it
        // to let go of the port. Wait until the port is free (at most 10 s) instead of racing it.
        if port != 0 {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while TcpListener::bind(("127.0.0.1", port)).is_err()
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let sp_file = dir.path().join("sp.xml");
        std::fs::write(&sp_file, sp_metadata).unwrap();
        let script = repo_root().join("tests/peers/saml/start-idp.py");
        assert!(
            Path::new("/usr/share/simplesamlphp/www").is_dir(),
            "SimpleSAMLphp missing: run scripts/install-deps --peers"
        );
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .arg("--dir")
            .arg(dir.path().join("idp"))
            .args(["--port", &port.to_string(), "--sp-metadata"])
            .arg(&sp_file)
            .args(flags)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start SimpleSAMLphp");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("SimpleSAMLphp did not start within 30 s")
            .unwrap()
            .expect("start-idp.py exited before READY");
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"READY"), "{line}");
        Idp {
            metadata_url: parts[2].to_string(),
            _child: child,
            dir,
        }
    }

    /// Start a login at the STS with `provider`, authenticate at the IdP (login.py); returns the client and
    /// login.py's verdict. The AuthnRequest must be signed.
    pub async fn idp_login_via(
        app: &TestApp,
        provider: &str,
        user: &str,
        password: &str,
    ) -> (reqwest::Client, serde_json::Value) {
        let client = browser();
        let res = client
            .get(format!("{}/sso/login?provider={provider}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "login start");
        let authn_url = res.headers()["location"].to_str().unwrap().to_string();
        assert!(
            authn_url.contains("SAMLRequest=") && authn_url.contains("Signature="),
            "signed AuthnRequest: {authn_url}"
        );
        let v = run_login_py(&authn_url, user, password).await;
        (client, v)
    }

    /// tests/peers/saml/login.py against `authn_url`: its JSON verdict.
    pub async fn run_login_py(authn_url: &str, user: &str, password: &str) -> serde_json::Value {
        let out = tokio::process::Command::new("python3")
            .arg(repo_root().join("tests/peers/saml/login.py"))
            .args([
                "--authn-url",
                authn_url,
                "--user",
                user,
                "--password",
                password,
            ])
            .output()
            .await
            .expect("run login.py");
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|_| {
            panic!(
                "login.py printed no verdict: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Post what login.py got from the IdP (response, RelayState) to the ACS it names:
    /// (status, reason code, message).
    pub async fn post_verdict_msg(
        client: &reqwest::Client,
        v: &serde_json::Value,
    ) -> (u16, String, String) {
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("login.py verdict without {k}: {v}"))
                .to_string()
        };
        post_acs_msg(
            client,
            &field("acs_url"),
            &field("saml_response"),
            &field("relay_state"),
        )
        .await
    }

    /// (status, reason code, message) of posting a SAMLResponse to the ACS.
    pub async fn post_acs_msg(
        client: &reqwest::Client,
        acs: &str,
        saml_response: &str,
        relay_state: &str,
    ) -> (u16, String, String) {
        let res = client
            .post(acs)
            .form(&[("SAMLResponse", saml_response), ("RelayState", relay_state)])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let html = res.text().await.unwrap();
        let pick = |marker: &str| {
            html.split(marker)
                .nth(1)
                .and_then(|r| r.split('<').next())
                .unwrap_or("")
                .to_string()
        };
        (status, pick("id=\"reason\">"), pick("class=\"message\">"))
    }

    /// A base64 SAMLResponse as XML text.
    pub fn decode(saml_response: &str) -> String {
        use base64::Engine;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(saml_response)
                .unwrap(),
        )
        .unwrap()
    }

    /// XML text as a base64 SAMLResponse.
    pub fn encode(xml: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(xml.as_bytes())
    }

    /// SP metadata as an IdP admin would register it before the STS runs: entity ID and ACS only.
    pub fn bootstrap_sp_metadata(sts: &str) -> String {
        bootstrap_sp_metadata_acs(sts, &format!("{sts}/sso/sso-saml/acs"))
    }

    pub fn bootstrap_sp_metadata_acs(sts: &str, acs: &str) -> String {
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{sts}/sso/sso-saml/metadata">
      <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAssertionsSigned="true">
        <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0"/>
      </md:SPSSODescriptor>
    </md:EntityDescriptor>"#
        )
    }
}

/// The real `sts serve` binary as a child process (for what must be measured or broken from outside:
/// RSS from /proc, kill -9). The database and master key live in `dir`, which outlives restarts.
pub mod process {
    use super::*;

    pub struct ServerProcess {
        pub address: String,
        pub port: u16,
        pub env: BTreeMap<String, String>,
        child: std::process::Child,
        pub stderr_path: PathBuf,
    }

    /// The environment `start` gives the server (database and master key in `dir`), on port 0.
    pub fn start_env(dir: &Path) -> BTreeMap<String, String> {
        base_env(dir, 0, "http")
    }

    /// Start `sts serve` on a free port in `dir` (database `dir/data/sts.db`, master key `dir/keys/`)
    /// with `extra` variables; waits until `/health` answers (at most 30 s).
    pub async fn start(dir: &Path, extra: &[(&str, &str)]) -> ServerProcess {
        start_on(dir, saml_idp::free_port(), extra).await
    }

    /// [`start`] on a port chosen beforehand (e.g. the one a public URL names).
    pub async fn start_on(dir: &Path, port: u16, extra: &[(&str, &str)]) -> ServerProcess {
        let mut env = base_env(dir, port, "http");
        env.insert("STS_LOG".into(), "info".into());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let stderr_path = dir.join(format!("server-{port}.log"));
        let mut cmd = std::process::Command::new(sts_bin());
        cmd.current_dir(dir).arg("serve");
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STS_")) {
            cmd.env_remove(k);
        }
        cmd.envs(&env)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("server log"));
        let child = cmd.spawn().expect("start sts serve");
        let p = ServerProcess {
            address: format!("http://127.0.0.1:{port}"),
            port,
            env,
            child,
            stderr_path,
        };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/health", p.address)).send().await
                && r.status() == 200
            {
                return p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sts serve did not come up: {}",
                std::fs::read_to_string(&p.stderr_path).unwrap_or_default()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    impl ServerProcess {
        pub fn pid(&self) -> u32 {
            self.child.id()
        }

        /// Resident set size in KiB, from /proc/PID/status (VmRSS).
        pub fn rss_kib(&self) -> u64 {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
                .expect("the server process is running");
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("VmRSS in /proc/PID/status")
        }

        /// SIGTERM (what an orchestrator sends before it stops a replica).
        pub fn terminate(&self) {
            let out = std::process::Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .output()
                .expect("run kill");
            assert!(out.status.success(), "kill -TERM failed");
        }

        /// The exit status once the process has exited, waiting at most `within`; None if still running.
        pub async fn wait_exit(
            &mut self,
            within: std::time::Duration,
        ) -> Option<std::process::ExitStatus> {
            let deadline = std::time::Instant::now() + within;
            loop {
                if let Some(status) = self.child.try_wait().expect("wait for sts serve") {
                    return Some(status);
                }
                if std::time::Instant::now() >= deadline {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }

        /// SIGKILL, then reap.
        pub fn kill9(mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }

        pub fn log(&self) -> String {
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        }
    }

    impl Drop for ServerProcess {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Create the administrator `root` with [`admin::PASSWORD`] in `dir` by the CLI.
    pub async fn create_admin(dir: &Path) {
        create_admin_with(dir, &base_env(dir, 0, "http")).await
    }

    /// [`create_admin`] with the environment of a server (its database and master key).
    pub async fn create_admin_with(dir: &Path, env: &BTreeMap<String, String>) {
        run_cli(
            dir,
            env,
            &[
                "admin",
                "create",
                "--username",
                "root",
                "--password-env",
                "ADMIN_PW",
            ],
            &[("ADMIN_PW", admin::PASSWORD)],
        )
        .await
        .ok();
    }

    /// Sign in as `root` at `address`; returns the cookie-keeping client and the session's CSRF token.
    pub async fn sign_in_at(address: &str) -> (reqwest::Client, String) {
        let client = browser();
        let page = client
            .get(format!("{address}/admin/login"))
            .send()
            .await
            .unwrap();
        let csrf = admin::csrf_of(&page.text().await.unwrap());
        let res = client
            .post(format!("{address}/admin/login"))
            .form(&[
                ("username", "root"),
                ("password", admin::PASSWORD),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "admin sign-in");
        let dash = client.get(format!("{address}/admin")).send().await.unwrap();
        let csrf = admin::csrf_of(&dash.text().await.unwrap());
        (client, csrf)
    }

    /// An admin API token made through the console at `address`.
    pub async fn api_token_at(address: &str) -> String {
        let (client, csrf) = sign_in_at(address).await;
        let res = client
            .post(format!("{address}/admin/tokens"))
            .form(&[("csrf", csrf.as_str()), ("name", "tests")])
            .send()
            .await
            .unwrap();
        admin::pre(&res.text().await.unwrap(), "secret")
    }
}
pub mod architecture;
pub mod ldap;
pub mod postgres;

/// A pool on the database of the app in `dir` (SQLite or, with `STS_TEST_DATABASE=postgres`,
/// PostgreSQL), for what a test inspects directly.
pub async fn open_db(dir: &Path) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&postgres::database_url_for(dir))
        .await
        .expect("open test database")
}
pub mod saml_idp2;

/// Our own sign-in form (LDAP, credential proxy): open it, read its state, post it.
pub mod form {
    /// The hidden `state` of the form in `html`.
    pub fn state_of(html: &str) -> String {
        let at = html
            .find("name=\"state\" value=\"")
            .unwrap_or_else(|| panic!("no form state in:\n{html}"))
            + 20;
        html[at..at + html[at..].find('"').unwrap()].to_string()
    }

    /// Open the form of `provider` at `base` in `client`; its state. The page must carry the form CSP.
    pub async fn open(base: &str, client: &reqwest::Client, provider: &str) -> String {
        let res = client
            .get(format!("{base}/sso/login?provider={provider}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("form-action 'self'"), "{csp}");
        state_of(&res.text().await.unwrap())
    }

    /// Post the form, as a client behind the trusted proxy at 127.0.0.1 when `from` names its address
    /// (`X-Forwarded-For`): (status, body, Location).
    pub async fn post(
        base: &str,
        client: &reqwest::Client,
        state: &str,
        username: &str,
        password: &str,
        from: Option<&str>,
    ) -> (u16, String, Option<String>) {
        let mut req = client.post(format!("{base}/sso/login/form"));
        if let Some(ip) = from {
            req = req.header("X-Forwarded-For", ip);
        }
        let res = req
            .form(&[
                ("state", state),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status, res.text().await.unwrap(), location)
    }

    /// `/sso/me` in `client`, which must have a session: the page.
    pub async fn me(base: &str, client: &reqwest::Client) -> String {
        let res = client.get(format!("{base}/sso/me")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    /// A whole form login in a fresh browser: (status, body, Location, the browser).
    pub async fn login(
        base: &str,
        provider: &str,
        username: &str,
        password: &str,
    ) -> (u16, String, Option<String>, reqwest::Client) {
        let client = crate::browser();
        let state = open(base, &client, provider).await;
        let (s, b, l) = post(base, &client, &state, username, password, None).await;
        (s, b, l, client)
    }
}
