//! `sts-login`: tokens from the STS in a shell, without a registered application per user and without a
//! long-lived secret on disk.
//!
//! - `sts-login login --sts URL`: the authorization code flow with PKCE for the STS's built-in public
//!   application `sts-login`, answered on a loopback port (RFC 8252); the browser is opened, and the URL
//!   is printed in any case. `--device` uses the device authorization grant (RFC 8628) instead, for hosts
//!   without a browser (over SSH).
//! - `sts-login token [--aud X]`: a valid access token on stdout, from the cache or refreshed (the
//!   refresh token rotates; another of the application's audiences may be asked for), so
//!   `curl -H "Authorization: Bearer $(sts-login token)"` just works.
//! - `sts-login status`, `sts-login logout` (revokes the refresh token and the cached access tokens).
//!
//! Tokens go to stdout only from `token`; nothing secret is written to stderr, logs or command lines.

mod cache;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT_ID: &str = "sts-login";
const DEFAULT_SCOPE: &str = "openid profile email roles";
/// An access token is reused while it has more than this many seconds left.
const MARGIN: i64 = 30;

#[derive(Parser)]
#[command(
    name = "sts-login",
    version,
    about = "Get tokens from the STS in a shell"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// The STS's base URL (default: $STS_URL, else the only STS in the cache).
    #[arg(long)]
    sts: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Sign in (browser on this machine, or --device).
    Login {
        #[command(flatten)]
        target: Target,
        /// Scopes to ask for.
        #[arg(long, default_value = DEFAULT_SCOPE)]
        scope: String,
        /// Use the device authorization grant: sign in on any other device.
        #[arg(long)]
        device: bool,
        /// Do not try to open a browser (the URL is printed anyway).
        #[arg(long)]
        no_browser: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Print a valid access token (refreshed when needed).
    Token {
        #[command(flatten)]
        target: Target,
        /// The audience the token is for (one the admin allowed for sts-login).
        #[arg(long)]
        aud: Option<String>,
    },
    /// Show who is signed in where, and until when.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke the tokens and forget them.
    Logout {
        #[command(flatten)]
        target: Target,
    },
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("system randomness");
    URL_SAFE_NO_PAD.encode(b)
}

/// The STS base URL as used for endpoints and as the cache key (same rules as the Python helper):
/// scheme and host lower case, no default port, no trailing slash; https unless the host is loopback.
fn normalise(sts: &str) -> Result<String, String> {
    let u = url::Url::parse(sts.trim()).map_err(|e| format!("invalid STS URL {sts:?}: {e}"))?;
    if !u.username().is_empty()
        || u.password().is_some()
        || u.query().is_some()
        || u.fragment().is_some()
    {
        return Err(format!(
            "invalid STS URL {sts:?}: no user info, query or fragment"
        ));
    }
    let host = u
        .host_str()
        .ok_or_else(|| format!("invalid STS URL {sts:?}: no host"))?;
    let loopback = matches!(host, "127.0.0.1" | "[::1]" | "localhost");
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "refusing {sts:?}: https is required (plain http only on loopback)"
            ));
        }
    }
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!(
        "{}://{host}{port}{}",
        u.scheme(),
        u.path().trim_end_matches('/')
    ))
}

fn choose_sts(t: &Target, cache: &Value) -> Result<String, String> {
    if let Some(s) = t
        .sts
        .clone()
        .or_else(|| std::env::var("STS_URL").ok().filter(|s| !s.is_empty()))
    {
        return normalise(&s);
    }
    let sessions = cache["sessions"].as_object().cloned().unwrap_or_default();
    match sessions.keys().collect::<Vec<_>>().as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err("not signed in anywhere: run `sts-login login --sts URL`".into()),
        _ => Err("signed in at several STSs: pick one with --sts or STS_URL".into()),
    }
}

fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())
}

/// A JSON answer (at most 1 MiB); an OAuth error answer as Err((error, description)).
async fn post_form(
    url: &str,
    form: &[(&str, &str)],
) -> Result<Result<Value, (String, String)>, String> {
    let resp = http()?
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = read_limited(resp).await?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| format!("{url}: answer {status} is not JSON"))?;
    if status.is_success() {
        Ok(Ok(v))
    } else {
        Ok(Err((
            v["error"].as_str().unwrap_or("error").to_string(),
            v["error_description"].as_str().unwrap_or("").to_string(),
        )))
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        out.extend_from_slice(&chunk);
        if out.len() > 1 << 20 {
            return Err("the STS's answer is too large".into());
        }
    }
    Ok(out)
}

async fn discovery(sts: &str) -> Result<Value, String> {
    let url = format!("{sts}/.well-known/openid-configuration");
    let resp = http()?
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: {}", resp.status()));
    }
    let v: Value =
        serde_json::from_slice(&read_limited(resp).await?).map_err(|e| format!("{url}: {e}"))?;
    for k in ["authorization_endpoint", "token_endpoint"] {
        v[k].as_str().ok_or_else(|| format!("{url}: no {k}"))?;
    }
    // Every endpoint we may send a token or a code to: https (or loopback) only.
    for k in [
        "authorization_endpoint",
        "token_endpoint",
        "device_authorization_endpoint",
        "revocation_endpoint",
    ] {
        if let Some(e) = v[k].as_str() {
            normalise(e).map_err(|e| format!("{url}: {k}: {e}"))?;
        }
    }
    Ok(v)
}

fn endpoint<'a>(d: &'a Value, k: &str) -> Result<&'a str, String> {
    d[k].as_str()
        .ok_or_else(|| format!("the STS does not publish {k}"))
}

/// The `sub` of a JWT, read without verification (for `status` only).
fn subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    v["sub"].as_str().map(str::to_string)
}

/// Store a token response for `sts` under `aud` ("" = the default audience).
fn store(
    cache: &mut Value,
    sts: &str,
    aud: &str,
    resp: &Value,
    new_login: bool,
) -> Result<String, String> {
    let access = resp["access_token"]
        .as_str()
        .ok_or("the STS sent no access_token")?
        .to_string();
    if resp["token_type"]
        .as_str()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err("the STS sent a token type other than Bearer".into());
    }
    // Bounded: a hostile answer cannot make the arithmetic overflow.
    let expires_in = resp["expires_in"].as_i64().unwrap_or(60).clamp(0, 86_400);
    let sessions = cache["sessions"].as_object_mut().ok_or("bad cache")?;
    let s = sessions.entry(sts.to_string()).or_insert_with(|| json!({}));
    if new_login || !s["tokens"].is_object() {
        s["tokens"] = json!({});
    }
    if let Some(r) = resp["refresh_token"].as_str() {
        s["refresh_token"] = r.into();
        s["refresh_expires_at"] = Value::Null;
    }
    if let Some(sub) = subject(&access) {
        s["subject"] = sub.into();
    }
    s["tokens"][aud] = json!({
        "access_token": access,
        "expires_at": now() + expires_in,
        "scope": resp["scope"].as_str().unwrap_or(""),
    });
    Ok(access)
}

fn open_browser(url: &str) {
    if std::env::var("STS_LOGIN_NO_BROWSER").is_ok_and(|v| v == "1") {
        return;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    // The URL carries no secret (a PKCE challenge and a state), so it may be on a command line.
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// What one connection to the loopback listener brought.
enum Callback {
    Code(String),
    Error(String),
}

/// One connection: its request head (8 KiB, 10 s), checked (Host, path, `state`) and answered. Some only for
/// our callback.
async fn one_connection(
    mut conn: tokio::net::TcpStream,
    port: u16,
    state: &str,
) -> Option<Callback> {
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    let head = tokio::time::timeout(Duration::from_secs(10), async {
        while n < buf.len() {
            let got = conn.read(&mut buf[n..]).await.ok()?;
            if got == 0 {
                break;
            }
            n += got;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Some(String::from_utf8_lossy(&buf[..n]).to_string())
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    let reply = |status: &str, text: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n<!doctype html><title>sts-login</title><p>{text}</p>"
        )
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let host_ok = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("host") && v.trim() == format!("127.0.0.1:{port}")
        })
    });
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let answer = |status: &'static str, text: &'static str| (status, text);
    let (outcome, (status, text)) = match url::Url::parse(&format!("http://127.0.0.1{target}")) {
        _ if method != "GET" || !host_ok => (None, answer("400 Bad Request", "Bad request.")),
        Err(_) => (None, answer("400 Bad Request", "Bad request.")),
        Ok(u) if u.path() != "/callback" => (None, answer("404 Not Found", "Not found.")),
        Ok(u) => {
            let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
            let get = |k: &str| {
                let mut it = q.iter().filter(|(n, _)| n == k);
                match (it.next(), it.next()) {
                    (Some((_, v)), None) => Some(v.clone()),
                    _ => None,
                }
            };
            if get("state").as_deref() != Some(state) {
                (
                    None,
                    answer("400 Bad Request", "This answer is not for this sign-in."),
                )
            } else if let Some(e) = get("error") {
                let d = get("error_description").unwrap_or_default();
                let d: String = d.chars().filter(|c| !c.is_control()).take(300).collect();
                (
                    Some(Callback::Error(format!("the STS answered {e}: {d}"))),
                    answer("200 OK", "Sign-in failed; see the terminal."),
                )
            } else if let Some(code) = get("code") {
                (
                    Some(Callback::Code(code)),
                    answer(
                        "200 OK",
                        "Signed in. You can close this tab and go back to the terminal.",
                    ),
                )
            } else {
                (None, answer("400 Bad Request", "No code."))
            }
        }
    };
    let _ = conn.write_all(reply(status, text).as_bytes()).await;
    outcome
}

/// Wait for `GET /callback?...` with our `state` on the listener; the code, or the error the STS sent.
/// Every connection is served by a task of its own, so idle connections cannot hold the real one up.
async fn callback(listener: tokio::net::TcpListener, state: &str) -> Result<String, String> {
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Callback>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (conn, _) = accepted.map_err(|e| e.to_string())?;
                let (tx, state) = (tx.clone(), state.to_string());
                tokio::spawn(async move {
                    if let Some(c) = one_connection(conn, port, &state).await {
                        let _ = tx.send(c).await;
                    }
                });
            }
            Some(c) = rx.recv() => {
                return match c {
                    Callback::Code(code) => Ok(code),
                    Callback::Error(e) => Err(e),
                };
            }
        }
    }
}

async fn login(
    sts: &str,
    scope: &str,
    device: bool,
    no_browser: bool,
    timeout: u64,
) -> Result<(), String> {
    let d = discovery(sts).await?;
    let token_ep = endpoint(&d, "token_endpoint")?.to_string();
    let resp = if device {
        let dev_ep = endpoint(&d, "device_authorization_endpoint")?;
        let start = match post_form(dev_ep, &[("client_id", CLIENT_ID), ("scope", scope)]).await? {
            Ok(v) => v,
            Err((e, m)) => return Err(format!("device authorization refused: {e}: {m}")),
        };
        let device_code = start["device_code"]
            .as_str()
            .ok_or("no device_code")?
            .to_string();
        let shown = start["verification_uri_complete"]
            .as_str()
            .or(start["verification_uri"].as_str())
            .ok_or("no verification_uri")?;
        eprintln!("Open this URL to sign in: {shown}");
        eprintln!(
            "and check that it shows the code {}",
            start["user_code"].as_str().unwrap_or("?")
        );
        let mut interval = start["interval"].as_u64().unwrap_or(5).max(1);
        let deadline = now()
            + start["expires_in"]
                .as_i64()
                .unwrap_or(600)
                .min(timeout as i64);
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            if now() > deadline {
                return Err("the sign-in was not completed in time".into());
            }
            match post_form(
                &token_ep,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", &device_code),
                    ("client_id", CLIENT_ID),
                ],
            )
            .await?
            {
                Ok(v) => break v,
                Err((e, _)) if e == "authorization_pending" => {}
                Err((e, _)) if e == "slow_down" => interval = (interval + 5).min(60),
                Err((e, m)) => return Err(format!("the sign-in ended: {e}: {m}")),
            }
        }
    } else {
        let auth_ep = endpoint(&d, "authorization_endpoint")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let redirect_uri = format!("http://127.0.0.1:{port}/callback");
        let state = random();
        let verifier = random();
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let mut u = url::Url::parse(auth_ep).map_err(|e| e.to_string())?;
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        eprintln!("Open this URL to sign in: {u}");
        if !no_browser {
            open_browser(u.as_str());
        }
        let code = tokio::time::timeout(Duration::from_secs(timeout), callback(listener, &state))
            .await
            .map_err(|_| "the sign-in was not completed in time".to_string())??;
        match post_form(
            &token_ep,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("client_id", CLIENT_ID),
                ("code_verifier", &verifier),
            ],
        )
        .await?
        {
            Ok(v) => v,
            Err((e, m)) => return Err(format!("the code was refused: {e}: {m}")),
        }
    };
    let _lock = cache::lock()?;
    let mut c = cache::read()?;
    store(&mut c, sts, "", &resp, true)?;
    cache::write(&c)?;
    eprintln!(
        "Signed in at {sts} as {}.",
        c["sessions"][sts]["subject"].as_str().unwrap_or("?")
    );
    Ok(())
}

async fn token(t: &Target, aud: Option<&str>) -> Result<String, String> {
    let _lock = cache::lock()?;
    let mut c = cache::read()?;
    let sts = choose_sts(t, &c)?;
    let key = aud.unwrap_or("");
    let s = &c["sessions"][&sts];
    if s.is_null() {
        return Err(format!(
            "not signed in at {sts}: run `sts-login login --sts {sts}`"
        ));
    }
    if let (Some(tok), Some(exp)) = (
        s["tokens"][key]["access_token"].as_str(),
        s["tokens"][key]["expires_at"].as_i64(),
    ) && exp - now() > MARGIN
    {
        return Ok(tok.to_string());
    }
    let refresh = s["refresh_token"]
        .as_str()
        .ok_or_else(|| format!("no refresh token for {sts}: run `sts-login login`"))?
        .to_string();
    let d = discovery(&sts).await?;
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", CLIENT_ID),
    ];
    if let Some(a) = aud {
        form.push(("audience", a));
    }
    match post_form(endpoint(&d, "token_endpoint")?, &form).await? {
        Ok(v) => {
            let tok = store(&mut c, &sts, key, &v, false)?;
            cache::write(&c)?;
            Ok(tok)
        }
        Err((e, m)) if e == "invalid_grant" => {
            if let Some(o) = c["sessions"].as_object_mut() {
                o.remove(&sts);
            }
            cache::write(&c)?;
            Err(format!(
                "the sign-in at {sts} has ended ({m}): run `sts-login login` again"
            ))
        }
        Err((e, m)) => Err(format!("refresh refused: {e}: {m}")),
    }
}

fn status(t: &Target) -> Result<(), String> {
    let c = cache::read()?;
    let sts = choose_sts(t, &c)?;
    let s = &c["sessions"][&sts];
    if s.is_null() {
        println!("{sts}: not signed in");
        return Ok(());
    }
    println!(
        "{sts}: signed in as {}",
        s["subject"].as_str().unwrap_or("?")
    );
    for (aud, tok) in s["tokens"].as_object().cloned().unwrap_or_default() {
        let left = tok["expires_at"].as_i64().unwrap_or(0) - now();
        let name = if aud.is_empty() {
            "(default audience)"
        } else {
            aud.as_str()
        };
        if left > 0 {
            println!("  {name}: access token valid for {left} s");
        } else {
            println!("  {name}: access token expired (refreshed on the next `sts-login token`)");
        }
    }
    Ok(())
}

async fn logout(t: &Target) -> Result<(), String> {
    let _lock = cache::lock()?;
    let mut c = cache::read()?;
    let sts = choose_sts(t, &c)?;
    let s = c["sessions"][&sts].clone();
    if s.is_null() {
        eprintln!("not signed in at {sts}");
        return Ok(());
    }
    // Forget first: whatever happens at the STS, nothing stays on disk.
    if let Some(o) = c["sessions"].as_object_mut() {
        o.remove(&sts);
    }
    cache::write(&c)?;
    let d = discovery(&sts).await?;
    let revoke = endpoint(&d, "revocation_endpoint")?;
    let mut failed = false;
    if let Some(r) = s["refresh_token"].as_str() {
        let form = [
            ("token", r),
            ("token_type_hint", "refresh_token"),
            ("client_id", CLIENT_ID),
        ];
        failed |= !matches!(post_form_status(revoke, &form).await, Ok(true));
    }
    for (_, tok) in s["tokens"].as_object().cloned().unwrap_or_default() {
        if let Some(a) = tok["access_token"].as_str() {
            let form = [
                ("token", a),
                ("token_type_hint", "access_token"),
                ("client_id", CLIENT_ID),
            ];
            failed |= !matches!(post_form_status(revoke, &form).await, Ok(true));
        }
    }
    if failed {
        return Err(format!(
            "signed out locally, but {sts} did not confirm the revocation"
        ));
    }
    eprintln!("Signed out of {sts}; its tokens are revoked.");
    Ok(())
}

async fn post_form_status(url: &str, form: &[(&str, &str)]) -> Result<bool, String> {
    let resp = http()?
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(resp.status().is_success())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let out = match cli.cmd {
        Cmd::Login {
            target,
            scope,
            device,
            no_browser,
            timeout,
        } => {
            let c = cache::read();
            match c.and_then(|c| choose_sts(&target, &c)) {
                Ok(sts) => login(&sts, &scope, device, no_browser, timeout).await,
                Err(e) => Err(e),
            }
        }
        Cmd::Token { target, aud } => token(&target, aud.as_deref())
            .await
            .map(|t| println!("{t}")),
        Cmd::Status { target } => status(&target),
        Cmd::Logout { target } => logout(&target).await,
    };
    match out {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sts-login: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn sts_urls_are_normalised_like_the_python_helper() {
        for (input, want) in [
            ("https://STS.Example.com/", "https://sts.example.com"),
            (
                "https://sts.example.com:443/base/",
                "https://sts.example.com/base",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:9/", "http://[::1]:9"),
        ] {
            assert_eq!(normalise(input).unwrap(), want);
        }
        for bad in [
            "http://sts.example.com",
            "ftp://x",
            "https://u:p@sts.example.com",
            "https://sts.example.com/?q",
            "nope",
        ] {
            assert!(normalise(bad).is_err(), "{bad}");
        }
    }
}
