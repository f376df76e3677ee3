//! The STS as an OpenID Provider, driven over HTTP like a relying party would (the browser parts go
//! through the real upstream IdP, npm `oidc-provider`); every token is checked by PyJWT and jose.
//! The full browser run with two openid-client web components is in `sso_browser.rs`.

use std::collections::HashMap;
use std::net::TcpListener;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;
use sts_tests::verifiers::{jose, jose_typ, pyjwt};
use sts_tests::{AppOptions, Peer, TestApp, browser, follow, spawn_app_on, start_node_peer};

const UPSTREAM_SECRET: &str = "upstream-secret-for-tests";
const APP_CB: &str = "https://app.example.com/cb";
const APP_BYE: &str = "https://app.example.com/bye";

struct Setup {
    app: TestApp,
    idp: Peer,
    /// client id -> secret
    secrets: HashMap<String, String>,
}

fn clients_toml(extra: &str) -> String {
    format!(
        r#"
[[clients]]
id = "app"
name = "App"
type = "confidential"
redirect_uris = ["{APP_CB}", "https://app.example.com/cb?tenant=1"]
post_logout_redirect_uris = ["{APP_BYE}"]

[[clients]]
id = "other"
type = "confidential"
token_endpoint_auth_method = "client_secret_post"
redirect_uris = ["https://other.example.com/cb"]

[[clients]]
id = "native"
type = "public"
redirect_uris = ["http://127.0.0.1/callback"]

[[clients]]
id = "machine"
name = "Orders job"
type = "confidential"
grant_types = ["client_credentials"]
scopes = ["orders.read", "orders.write"]
audience = ["orders-api"]
roles = ["svc-orders-reader", "svc-orders-writer"]

[[clients]]
id = "short"
type = "confidential"
grant_types = ["client_credentials"]
access_token_lifetime_seconds = 2
{extra}
"#
    )
}

async fn setup(extra_clients: &str) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp_config = serde_json::json!({
        "clients": [{
            "client_id": "sts",
            "client_secret": UPSTREAM_SECRET,
            "redirect_uris": [format!("{sts}/sso/sso-openid/openid-login")],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }],
        "users": {
            "alice": {"sub": "alice", "email": "alice@example.com", "email_verified": true, "name": "Alice Liddell",
                      "preferred_username": "alice", "groups": ["staff", "sts-admins"]},
            "bob": {"sub": "bob", "email": "bob@example.com", "email_verified": true, "name": "Bob",
                    "preferred_username": "bob", "groups": ["staff"]},
        }
    });
    let idp = start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &idp_config.to_string()],
    )
    .await;
    let config = format!(
        r#"
[[providers]]
id = "corp"
type = "oidc"
issuer = "{0}"
client_id = "sts"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "email", "profile", "groups"]

[providers.roles]
claim = "groups"
default_roles = ["user"]
rules = [ {{ match = "sts-admins", roles = ["admin"] }}, {{ match = "staff", roles = ["employee"] }} ]

{1}"#,
        idp.issuer,
        clients_toml(&extra_clients.replace("ISSUER", &idp.issuer))
    );
    let opts = AppOptions::default()
        .with("CORP_SECRET", UPSTREAM_SECRET)
        .with("STS_KEY_RELOAD_INTERVAL", "1")
        .config(config);
    let app = spawn_app_on(listener, opts).await;
    let mut secrets = HashMap::new();
    for id in ["app", "other", "machine", "short"] {
        let out = app.cli(&["clients", "secret", id], &[]).await.ok();
        let secret = out.stdout.trim().to_string();
        assert!(
            secret.starts_with("stscs_") && secret.len() >= 49,
            "{secret}"
        );
        secrets.insert(id.to_string(), secret);
    }
    // The running server reloads clients every second here.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    Setup { app, idp, secrets }
}

fn pkce() -> (String, String) {
    let verifier = format!("{}{}", sts::sso::random_token(), "-._~x");
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn claims(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn header(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// GET /sso/authorize with `params` in `client`'s cookie jar; follows every redirect (through the upstream
/// IdP when there is no session) until one goes to `redirect_prefix`. Returns that URL and all visited.
async fn authorize(
    s: &Setup,
    client: &reqwest::Client,
    params: &[(&str, &str)],
    redirect_prefix: &str,
) -> (String, Vec<String>) {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let (res, visited) = follow(
        client,
        &format!("{}/sso/authorize?{q}", s.app.address),
        Some(redirect_prefix),
    )
    .await;
    assert!(
        res.status().is_redirection(),
        "authorize ended with {} at {}: {visited:?}",
        res.status(),
        res.url()
    );
    (visited.last().unwrap().clone(), visited)
}

struct CodeRun {
    code: String,
    verifier: String,
    nonce: String,
    visited: Vec<String>,
}

async fn code_for(s: &Setup, client: &reqwest::Client, user: &str) -> CodeRun {
    let (verifier, challenge) = pkce();
    let nonce = sts::sso::random_token();
    let (to, visited) = authorize(
        s,
        client,
        &[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("scope", "openid profile email roles"),
            ("state", "st-123"),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", user),
        ],
        APP_CB,
    )
    .await;
    let q = query_of(&to);
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"), "{to}");
    assert_eq!(q.get("iss"), Some(&s.app.address), "RFC 9207 iss: {to}");
    CodeRun {
        code: q
            .get("code")
            .unwrap_or_else(|| panic!("no code in {to}"))
            .clone(),
        verifier,
        nonce,
        visited,
    }
}

async fn token_request(
    s: &Setup,
    client_id: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let res = reqwest::Client::new()
        .post(format!("{}/sso/token", s.app.address))
        .basic_auth(client_id, Some(&s.secrets[client_id]))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (
        status,
        res.json().await.unwrap_or(serde_json::Value::Null),
        headers,
    )
}

async fn redeem(s: &Setup, run: &CodeRun) -> (u16, serde_json::Value) {
    let (st, body, h) = token_request(
        s,
        "app",
        &[
            ("grant_type", "authorization_code"),
            ("code", &run.code),
            ("redirect_uri", APP_CB),
            ("code_verifier", &run.verifier),
        ],
    )
    .await;
    if st == 200 {
        assert_eq!(h.get("cache-control").unwrap(), "no-store");
    }
    (st, body)
}

async fn introspect(s: &Setup, token: &str) -> serde_json::Value {
    introspect_as(s, "app", token).await
}

async fn introspect_as(s: &Setup, client: &str, token: &str) -> serde_json::Value {
    let res = reqwest::Client::new()
        .post(format!("{}/sso/introspect", s.app.address))
        .basic_auth(client, Some(&s.secrets[client]))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn userinfo(s: &Setup, access: &str) -> (u16, serde_json::Value, String) {
    let res = reqwest::Client::new()
        .get(format!("{}/sso/userinfo", s.app.address))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        res.json().await.unwrap_or(serde_json::Value::Null),
        www,
    )
}

#[tokio::test]
async fn code_flow_with_sso_userinfo_refresh_and_logout() {
    let s = setup("").await;
    let browser = browser();
    let run = code_for(&s, &browser, "alice").await;
    assert!(
        run.visited.iter().any(|u| u.starts_with(&s.idp.issuer)),
        "first login goes through the IdP: {:?}",
        run.visited
    );
    let (status, tokens) = redeem(&s, &run).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    // Independent verifiers: the access token for its audience, the ID token for the client.
    for v in [
        pyjwt(&s.app.jwks_url(), access, &s.app.address, "app"),
        jose(&s.app.jwks_url(), access, &s.app.address, "app"),
    ] {
        assert!(v.ok, "access token refused: {}", v.json);
    }
    for v in [
        pyjwt(&s.app.jwks_url(), id_token, &s.app.address, "app"),
        jose_typ(&s.app.jwks_url(), id_token, &s.app.address, "app", "JWT"),
    ] {
        assert!(v.ok, "ID token refused: {}", v.json);
    }
    assert_eq!(header(access)["typ"], "at+jwt");
    assert_eq!(header(id_token)["typ"], "JWT");
    let a = claims(access);
    assert_eq!(a["sub"], "corp|alice", "provider-qualified subject");
    assert_eq!(a["client_id"], "app");
    assert_eq!(a["scope"], "openid profile email roles");
    let mut roles: Vec<String> = serde_json::from_value(a["roles"].clone()).unwrap();
    roles.sort();
    assert_eq!(roles, ["admin", "employee", "user"]);
    let i = claims(id_token);
    assert_eq!(i["nonce"], run.nonce.as_str());
    assert_eq!(i["aud"], "app");
    assert_eq!(i["azp"], "app");
    assert_eq!(i["email"], "alice@example.com");
    assert_eq!(i["preferred_username"], "alice");
    assert!(i["auth_time"].as_i64().is_some() && i["sid"].as_str().is_some());
    assert_eq!(i["sid"], a["sid"]);
    let digest = sha2::Sha256::digest(access.as_bytes());
    assert_eq!(i["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    assert!(
        i.get("client_id").is_none(),
        "ID tokens carry azp, not client_id"
    );

    // Userinfo.
    let (st, info, _) = userinfo(&s, access).await;
    assert_eq!(st, 200, "{info}");
    assert_eq!(info["sub"], "corp|alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], true);
    assert!(info["roles"].as_array().unwrap().contains(&"admin".into()));

    // Single sign-on: a second authorization in the same browser does not visit the IdP.
    let run2 = code_for(&s, &browser, "alice").await;
    assert!(
        !run2.visited.iter().any(|u| u.starts_with(&s.idp.issuer)),
        "SSO must not visit the IdP: {:?}",
        run2.visited
    );
    let (status, tokens2) = redeem(&s, &run2).await;
    assert_eq!(status, 200, "{tokens2}");
    assert_eq!(
        claims(tokens2["id_token"].as_str().unwrap())["sid"],
        i["sid"]
    );

    // /sso/me lists the application.
    let me = browser
        .get(format!("{}/sso/me", s.app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        me.contains("id=\"apps\"") && me.contains("<code>app</code>"),
        "{me}"
    );

    // Refresh: rotation, then reuse of the old one revokes the whole family.
    assert_eq!(introspect(&s, &refresh).await["active"], true);
    let (st, r1, _) = token_request(
        &s,
        "app",
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(st, 200, "{r1}");
    let refresh2 = r1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh);
    let new_id = claims(r1["id_token"].as_str().unwrap());
    assert_eq!(new_id["sub"], "corp|alice");
    assert_eq!(
        new_id["auth_time"], i["auth_time"],
        "auth_time is the original login"
    );
    assert!(new_id.get("nonce").is_none());
    assert!(
        pyjwt(
            &s.app.jwks_url(),
            r1["access_token"].as_str().unwrap(),
            &s.app.address,
            "app"
        )
        .ok
    );
    let (st, reuse, _) = token_request(
        &s,
        "app",
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (st, reuse["error"].as_str()),
        (400, Some("invalid_grant")),
        "{reuse}"
    );
    let (st, after, _) = token_request(
        &s,
        "app",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ],
    )
    .await;
    assert_eq!(
        (st, after["error"].as_str()),
        (400, Some("invalid_grant")),
        "family revoked: {after}"
    );
    assert_eq!(introspect(&s, &refresh2).await["active"], false);
    assert_eq!(
        introspect(&s, r1["access_token"].as_str().unwrap()).await["active"],
        false,
        "the access token issued with a revoked refresh token is revoked too"
    );

    // The second grant's refresh token is alive until logout.
    let refresh3 = tokens2["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&s, refresh3).await["active"], true);
    let access2 = tokens2["access_token"].as_str().unwrap();
    let active = introspect(&s, access2).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], "corp|alice");
    assert_eq!(active["client_id"], "app");

    // RP-initiated logout with id_token_hint and a registered post_logout_redirect_uri.
    let hint = tokens2["id_token"].as_str().unwrap();
    let bad = browser
        .get(format!("{}/sso/logout?id_token_hint={hint}&post_logout_redirect_uri=https%3A%2F%2Fevil.example.com%2F", s.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "unregistered post_logout_redirect_uri");
    assert!(bad.headers().get("location").is_none());
    assert_eq!(
        introspect(&s, refresh3).await["active"],
        true,
        "a refused logout changes nothing"
    );
    let out = browser
        .get(format!(
            "{}/sso/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye-1",
            s.app.address,
            url::form_urlencoded::byte_serialize(APP_BYE.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        out.headers()["location"],
        format!("{APP_BYE}?state=bye-1").as_str()
    );
    assert_eq!(
        introspect(&s, refresh3).await["active"],
        false,
        "logout revokes refresh tokens"
    );
    assert_eq!(
        introspect(&s, access2).await["active"],
        false,
        "tokens of an ended session are inactive"
    );
    let (st, _, www) = userinfo(&s, access2).await;
    assert_eq!(st, 401);
    assert!(www.contains("invalid_token"), "{www}");
    let (st, after, _) = token_request(
        &s,
        "app",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh3)],
    )
    .await;
    assert_eq!((st, after["error"].as_str()), (400, Some("invalid_grant")));

    // No session any more: prompt=none answers login_required to the client.
    let (to, _) = authorize(
        &s,
        &browser,
        &[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("scope", "openid"),
            ("state", "s2"),
            ("prompt", "none"),
        ],
        APP_CB,
    )
    .await;
    let q = query_of(&to);
    assert_eq!(q["error"], "login_required", "{to}");
    assert_eq!(q["state"], "s2");
    assert_eq!(q["iss"], s.app.address);
}

#[tokio::test]
async fn codes_pkce_and_client_authentication_are_enforced() {
    let s = setup("").await;
    let browser = browser();

    // Code reuse: refused, and what the first redemption produced is revoked.
    let run = code_for(&s, &browser, "bob").await;
    let (st, first) = redeem(&s, &run).await;
    assert_eq!(st, 200, "{first}");
    let (st, again) = redeem(&s, &run).await;
    assert_eq!(
        (st, again["error"].as_str()),
        (400, Some("invalid_grant")),
        "{again}"
    );
    assert_eq!(
        introspect(&s, first["access_token"].as_str().unwrap()).await["active"],
        false
    );
    assert_eq!(
        introspect(&s, first["refresh_token"].as_str().unwrap()).await["active"],
        false
    );

    // PKCE verifier mismatch, missing verifier; the code is spent either way.
    let run = code_for(&s, &browser, "bob").await;
    let wrong = CodeRun {
        verifier: pkce().0,
        ..run
    };
    let (st, e) = redeem(&s, &wrong).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (st, e) = redeem(
        &s,
        &CodeRun {
            verifier: wrong.verifier.clone(),
            ..wrong
        },
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "spent: {e}"
    );
    let run = code_for(&s, &browser, "bob").await;
    let (st, e, _) = token_request(
        &s,
        "app",
        &[
            ("grant_type", "authorization_code"),
            ("code", &run.code),
            ("redirect_uri", APP_CB),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "no verifier: {e}"
    );

    // The redirect URI at the token endpoint must be the authorization request's.
    let run = code_for(&s, &browser, "bob").await;
    let (st, e, _) = token_request(
        &s,
        "app",
        &[
            ("grant_type", "authorization_code"),
            ("code", &run.code),
            ("redirect_uri", "https://app.example.com/cb?tenant=1"),
            ("code_verifier", &run.verifier),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );

    // A code is bound to its client.
    let run = code_for(&s, &browser, "bob").await;
    let res = reqwest::Client::new()
        .post(format!("{}/sso/token", s.app.address))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &run.code),
            ("redirect_uri", APP_CB),
            ("code_verifier", &run.verifier),
            ("client_id", "other"),
            ("client_secret", &s.secrets["other"]),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // Client authentication.
    let token_url = format!("{}/sso/token", s.app.address);
    let cc = [("grant_type", "client_credentials")];
    let res = reqwest::Client::new()
        .post(&token_url)
        .basic_auth("machine", Some("stscs_wrong"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let res = reqwest::Client::new()
        .post(&token_url)
        .basic_auth("nobody", Some("x"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = reqwest::Client::new()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "machine"),
            ("client_secret", &s.secrets["app"]),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "another client's secret");
    let res = reqwest::Client::new()
        .post(&token_url)
        .basic_auth("machine", Some(&s.secrets["machine"]))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", &s.secrets["machine"]),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "two authentication methods");
    let res = reqwest::Client::new()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "machine"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "a confidential client without credentials"
    );
    let res = reqwest::Client::new()
        .post(&token_url)
        .basic_auth("machine", Some(&s.secrets["machine"]))
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "duplicate parameter");
    let res = reqwest::Client::new()
        .post(&token_url)
        .basic_auth("machine", Some(&s.secrets["machine"]))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "JSON body");

    // A public client needs PKCE, and may vary only the loopback port of its redirect URI.
    let (to, _) = authorize(
        &s,
        &browser,
        &[
            ("response_type", "code"),
            ("client_id", "native"),
            ("redirect_uri", "http://127.0.0.1:43210/callback"),
            ("scope", "openid"),
            ("state", "n1"),
        ],
        "http://127.0.0.1:43210/callback",
    )
    .await;
    assert_eq!(query_of(&to)["error"], "invalid_request", "{to}");
    let (verifier, challenge) = pkce();
    let (to, _) = authorize(
        &s,
        &browser,
        &[
            ("response_type", "code"),
            ("client_id", "native"),
            ("redirect_uri", "http://127.0.0.1:43210/callback"),
            ("scope", "openid"),
            ("state", "n1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        "http://127.0.0.1:43210/callback",
    )
    .await;
    let code = query_of(&to)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("{to}"));
    let res = reqwest::Client::new()
        .post(&token_url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:43210/callback"),
            ("code_verifier", &verifier),
            ("client_id", "native"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // plain PKCE and unknown scopes are refused back to the client.
    for (params, error) in [
        (
            vec![
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        (vec![("scope", "openid admin")], "invalid_scope"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("max_age", "-1")], "invalid_request"),
    ] {
        let mut p: Vec<(&str, &str)> = vec![
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("state", "x"),
        ];
        for (k, v) in &params {
            p.push((k, v));
        }
        if !params.iter().any(|(k, _)| *k == "response_type") {
            p.push(("response_type", "code"));
        }
        if !params.iter().any(|(k, _)| *k == "scope") {
            p.push(("scope", "openid"));
        }
        let (to, _) = authorize(
            &s,
            &reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            &p,
            APP_CB,
        )
        .await;
        let q = query_of(&to);
        assert_eq!(
            q.get("error").map(String::as_str),
            Some(error),
            "{params:?}: {to}"
        );
        assert_eq!(q["state"], "x");
        assert_eq!(q["iss"], s.app.address);
    }
}

#[tokio::test]
async fn unregistered_redirect_uris_and_unknown_clients_get_a_page_not_a_redirect() {
    let s = setup("").await;
    let client = browser();
    for (client_id, redirect) in [
        ("app", "https://APP.example.com/cb"),
        ("app", "https://app.example.com/CB"),
        ("app", "https://app.example.com/cb/"),
        ("app", "https://app.example.com/cb/extra"),
        ("app", "https://app.example.com/cb?tenant=2"),
        ("app", "https://user@app.example.com/cb"),
        ("app", "https://app.example.com@evil.example.com/cb"),
        ("app", "https://app.example.com:443/cb"),
        ("app", "https://app.example.com/cb#frag"),
        ("app", "http://app.example.com/cb"),
        ("app", "https://evil.example.com/cb"),
        ("app", ""),
        ("native", "http://127.0.0.1:5555/callback/x"),
        ("native", "http://localhost:5555/callback"),
        ("nobody", APP_CB),
    ] {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect),
                ("scope", "openid"),
                ("state", "x"),
            ])
            .finish();
        let res = client
            .get(format!("{}/sso/authorize?{q}", s.app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{client_id} {redirect}");
        assert!(
            res.headers().get("location").is_none(),
            "{client_id} {redirect} redirected"
        );
        let html = res.text().await.unwrap();
        assert!(html.contains("refused"), "{html}");
    }
    // Missing redirect_uri, duplicated client_id: pages too.
    for q in [
        "response_type=code&client_id=app",
        "response_type=code&client_id=app&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb",
    ] {
        let res = client
            .get(format!("{}/sso/authorize?{q}", s.app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{q}");
        assert!(res.headers().get("location").is_none());
    }
    // POST /sso/authorize is answered as the same request by GET (the SameSite=Lax session cookie
    // only comes with the GET).
    let res = client
        .post(format!("{}/sso/authorize", s.app.address))
        .form(&[
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("state", "p"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let loc = res.headers()["location"].to_str().unwrap();
    assert!(
        loc.starts_with("/sso/authorize?")
            && loc.contains("client_id=app")
            && loc.contains("state=p"),
        "{loc}"
    );

    // A request waiting for a login can only be resumed by the browser that started it, once.
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("scope", "openid"),
            ("state", "w"),
        ])
        .finish();
    let res = client
        .get(format!("{}/sso/authorize?{q}", s.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let login = res
        .url()
        .join(res.headers()["location"].to_str().unwrap())
        .unwrap();
    assert_eq!(login.path(), "/sso/login");
    let return_to = login
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .unwrap()
        .1
        .into_owned();
    assert!(
        return_to.starts_with("/sso/authorize/resume?id="),
        "{return_to}"
    );
    let other = browser();
    let res = other
        .get(format!("{}{return_to}", s.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "another browser");
    assert!(res.headers().get("location").is_none());
    let res = client
        .get(format!("{}{return_to}", s.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "consumed by the first attempt");

    // response_mode=form_post answers with an auto-submitting form to the registered URI only.
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("scope", "openid"),
            ("state", "fp"),
            ("prompt", "none"),
            ("response_mode", "form_post"),
        ])
        .finish();
    let res = client
        .get(format!("{}/sso/authorize?{q}", s.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(
        html.contains(&format!("action=\"{APP_CB}\""))
            && html.contains("value=\"login_required\"")
            && html.contains("value=\"fp\""),
        "{html}"
    );
}

#[tokio::test]
async fn client_credentials_tokens_introspection_and_revocation() {
    let s = setup("").await;
    let (st, t, _) = token_request(
        &s,
        "machine",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "orders.read"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t}");
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(header(access)["alg"], "RS256");
    for v in [
        pyjwt(&s.app.jwks_url(), access, &s.app.address, "orders-api"),
        jose(&s.app.jwks_url(), access, &s.app.address, "orders-api"),
    ] {
        assert!(v.ok, "{}", v.json);
    }
    let c = claims(access);
    assert_eq!(c["sub"], "machine");
    assert_eq!(c["client_id"], "machine");
    assert_eq!(
        c["roles"],
        serde_json::json!(["svc-orders-reader", "svc-orders-writer"])
    );
    assert_eq!(c["scope"], "orders.read");
    assert!(t.get("refresh_token").is_none());
    assert!(
        !pyjwt(&s.app.jwks_url(), access, &s.app.address, "app").ok,
        "audience is enforced by verifiers"
    );

    let i = introspect_as(&s, "machine", access).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["client_id"], "machine");
    assert_eq!(i["aud"], "orders-api");
    // Another client (neither the token's client nor its audience) learns nothing.
    assert_eq!(
        introspect(&s, access).await,
        serde_json::json!({"active": false})
    );

    // Revocation by its client makes it inactive; revocation by another client changes nothing.
    let revoke = |id: &'static str, token: String| {
        let url = format!("{}/sso/revoke", s.app.address);
        let secret = s.secrets[id].clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(revoke("app", access.to_string()).await, 200);
    assert_eq!(introspect_as(&s, "machine", access).await["active"], true);
    assert_eq!(revoke("machine", access.to_string()).await, 200);
    assert_eq!(introspect_as(&s, "machine", access).await["active"], false);
    assert_eq!(revoke("machine", "no-such-token".into()).await, 200);

    // Expiry.
    let (st, short, _) = token_request(&s, "short", &[("grant_type", "client_credentials")]).await;
    assert_eq!(st, 200);
    assert_eq!(short["expires_in"], 2);
    let token = short["access_token"].as_str().unwrap();
    assert_eq!(introspect_as(&s, "short", token).await["active"], true);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(introspect_as(&s, "short", token).await["active"], false);

    // What the client may not do.
    for (id, form, error) in [
        (
            "machine",
            vec![
                ("grant_type", "client_credentials"),
                ("scope", "orders.delete"),
            ],
            "invalid_scope",
        ),
        (
            "machine",
            vec![("grant_type", "client_credentials"), ("scope", "openid")],
            "invalid_scope",
        ),
        (
            "app",
            vec![("grant_type", "client_credentials")],
            "unauthorized_client",
        ),
        (
            "machine",
            vec![
                ("grant_type", "password"),
                ("username", "a"),
                ("password", "b"),
            ],
            "unsupported_grant_type",
        ),
        (
            "machine",
            vec![("grant_type", "refresh_token"), ("refresh_token", "x")],
            "unauthorized_client",
        ),
    ] {
        let (st, e, _) = token_request(&s, id, &form).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (400, Some(error)),
            "{form:?}: {e}"
        );
    }
    // Introspection needs a confidential client.
    let res = reqwest::Client::new()
        .post(format!("{}/sso/introspect", s.app.address))
        .form(&[("token", access), ("client_id", "native")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = reqwest::Client::new()
        .post(format!("{}/sso/introspect", s.app.address))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn private_key_jwt_client_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client.pem");
    let out = sts_tests::tool(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            key.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success());
    let pem = std::fs::read_to_string(&key).unwrap();
    let (public, pkcs1) = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let k = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        (
            (
                URL_SAFE_NO_PAD.encode(k.n().to_bytes_be()),
                URL_SAFE_NO_PAD.encode(k.e().to_bytes_be()),
            ),
            k.to_pkcs1_der().unwrap().as_bytes().to_vec(),
        )
    };
    let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": public.0, "e": public.1}]});
    let s = setup(&format!(
        r#"
[[clients]]
id = "signer"
type = "confidential"
token_endpoint_auth_method = "private_key_jwt"
grant_types = ["client_credentials"]
roles = ["svc"]
jwks = '{jwks}'
"#
    ))
    .await;
    let enc = jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token_url = format!("{}/sso/token", s.app.address);
    let assertion = |aud: &str, exp: i64, jti: &str| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &serde_json::json!({"iss": "signer", "sub": "signer", "aud": aud, "exp": exp, "iat": now, "jti": jti}), &enc).unwrap()
    };
    let post = |a: String| {
        let url = token_url.clone();
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", a.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (
                res.status().as_u16(),
                res.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let good = assertion(&token_url, now + 60, "j1");
    let (st, t) = post(good.clone()).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(
        claims(t["access_token"].as_str().unwrap())["roles"],
        serde_json::json!(["svc"])
    );
    let (st, e) = post(good).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (401, Some("invalid_client")),
        "replayed jti: {e}"
    );
    for (a, why) in [
        (assertion("https://elsewhere.example.com/token", now + 60, "j2"), "audience"),
        (assertion(&token_url, now - 120, "j3"), "expired"),
        (assertion(&token_url, now + 3600, "j4"), "too long-lived"),
        (
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &serde_json::json!({"iss": "signer", "sub": "signer", "aud": token_url, "exp": now + 60, "jti": "j5"}),
                &jsonwebtoken::EncodingKey::from_secret(public.0.as_bytes()),
            )
            .unwrap(),
            "HS256 with the public key",
        ),
        (format!("{}.", good_unsigned(&token_url, now)), "alg none"),
    ] {
        let (st, e) = post(a).await;
        assert_eq!((st, e["error"].as_str()), (401, Some("invalid_client")), "{why}: {e}");
    }
}

fn good_unsigned(aud: &str, now: i64) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let c = URL_SAFE_NO_PAD.encode(serde_json::json!({"iss": "signer", "sub": "signer", "aud": aud, "exp": now + 60, "jti": "j6"}).to_string());
    format!("{h}.{c}")
}

#[tokio::test]
async fn discovery_lists_what_exists() {
    let s = setup("").await;
    let d: serde_json::Value = s
        .app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], s.app.address);
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    for (k, method) in [
        ("authorization_endpoint", "GET"),
        ("token_endpoint", "POST"),
        ("userinfo_endpoint", "GET"),
        ("introspection_endpoint", "POST"),
        ("revocation_endpoint", "POST"),
        ("end_session_endpoint", "GET"),
        ("jwks_uri", "GET"),
    ] {
        let url = d[k].as_str().unwrap_or_else(|| panic!("{k} missing"));
        assert!(url.starts_with(&s.app.address), "{k}: {url}");
        let res = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        assert_ne!(res.status(), 404, "{k} {url}");
        assert_ne!(res.status(), 405, "{k} {url}");
    }
}

#[tokio::test]
async fn prompt_login_max_age_and_provider_restrictions_force_a_new_login() {
    // A second provider (same upstream IdP) and an application that accepts only it.
    let s = setup(
        r#"
[[providers]]
id = "corp2"
type = "oidc"
issuer = "ISSUER"
client_id = "sts"
client_secret_env = "CORP_SECRET"

[providers.roles]
claim = "groups"

[[clients]]
id = "only-corp2"
type = "confidential"
redirect_uris = ["https://strict.example.com/cb"]
providers = ["corp2"]
"#,
    )
    .await;
    let browser = browser();
    // Two providers: without a session the user would get a chooser page; sign in with `corp` first.
    let (res, _) = follow(
        &browser,
        &format!(
            "{}/sso/login?provider=corp&login_hint=alice&return_to=%2Fsso%2Fme",
            s.app.address
        ),
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let first = code_for(&s, &browser, "alice").await;
    let (_, t1) = redeem(&s, &first).await;
    let auth_time_1 = claims(t1["id_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let base = |extra: &[(&'static str, &'static str)]| {
        let mut p: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("scope", "openid"),
            ("login_hint", "alice"),
        ];
        p.extend_from_slice(extra);
        p
    };
    // prompt=login: through the IdP again, and auth_time moves.
    let (to, visited) = authorize(&s, &browser, &base(&[("prompt", "login")]), APP_CB).await;
    assert!(
        visited.iter().any(|u| u.starts_with(&s.idp.issuer)),
        "prompt=login re-authenticates: {visited:?}"
    );
    let code = query_of(&to)["code"].clone();
    let (st, t2, _) = token_request(
        &s,
        "app",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", APP_CB),
        ],
    )
    .await;
    assert_eq!(st, 200, "{t2}");
    let auth_time_2 = claims(t2["id_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .unwrap();
    assert!(auth_time_2 > auth_time_1, "{auth_time_1} -> {auth_time_2}");
    // Signing in again as the same user keeps the session id and the other grants.
    assert_eq!(
        claims(t2["id_token"].as_str().unwrap())["sid"],
        claims(t1["id_token"].as_str().unwrap())["sid"]
    );
    assert_eq!(
        introspect(&s, t1["refresh_token"].as_str().unwrap()).await["active"],
        true
    );

    // max_age: a recent enough login is reused; max_age=0 needs a new one; with prompt=none that is an error.
    let (_, visited) = authorize(&s, &browser, &base(&[("max_age", "3600")]), APP_CB).await;
    assert!(
        !visited.iter().any(|u| u.starts_with(&s.idp.issuer)),
        "{visited:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (to, _) = authorize(
        &s,
        &browser,
        &base(&[("max_age", "0"), ("prompt", "none")]),
        APP_CB,
    )
    .await;
    assert_eq!(query_of(&to)["error"], "login_required", "{to}");
    let (to, visited) = authorize(&s, &browser, &base(&[("max_age", "0")]), APP_CB).await;
    assert!(
        visited.iter().any(|u| u.starts_with(&s.idp.issuer)),
        "max_age=0 re-authenticates: {visited:?}"
    );
    assert!(query_of(&to).contains_key("code"), "{to}");

    // The session came from provider `corp`: an application that accepts only `corp2` gets a new login there.
    let strict = "https://strict.example.com/cb";
    let p = |prompt: Option<&'static str>| {
        let mut p: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", "only-corp2"),
            ("redirect_uri", strict),
            ("scope", "openid"),
            ("login_hint", "alice"),
        ];
        if let Some(x) = prompt {
            p.push(("prompt", x));
        }
        p
    };
    let (to, _) = authorize(&s, &browser, &p(Some("none")), strict).await;
    assert_eq!(query_of(&to)["error"], "login_required", "{to}");
    let (to, visited) = authorize(&s, &browser, &p(None), strict).await;
    assert!(
        visited
            .iter()
            .any(|u| u.contains("/sso/login?") && u.contains("provider=corp2")),
        "{visited:?}"
    );
    let code = query_of(&to)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("{to}"));
    let secret = s
        .app
        .cli(&["clients", "secret", "only-corp2"], &[])
        .await
        .ok()
        .stdout
        .trim()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let res: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/sso/token", s.app.address))
        .basic_auth("only-corp2", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", strict),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims(res["id_token"].as_str().unwrap_or_else(|| panic!("{res}")))["idp"],
        "corp2"
    );

    // `sts clients list` shows the registered applications.
    let list: serde_json::Value = serde_json::from_str(
        &s.app
            .cli(&["clients", "list", "--json"], &[])
            .await
            .ok()
            .stdout,
    )
    .unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"machine") && ids.contains(&"only-corp2"),
        "{ids:?}"
    );
    let machine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "machine")
        .unwrap();
    assert_eq!(machine["secret_set"], true);
    let out = s.app.cli(&["clients", "secret", "native"], &[]).await;
    assert_ne!(out.status, 0, "a public client has no secret");
    let out = s.app.cli(&["clients", "secret", "nobody"], &[]).await;
    assert_ne!(out.status, 0);
}

/// Class: a client secret set while the server runs. Before the first secret, the token endpoint says how
/// to set one; a secret set by `sts clients secret` works at once (not only after the next reload), and
/// the command says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_set_while_the_server_runs_is_accepted_at_once() {
    let app = sts_tests::spawn_app_with(
        AppOptions::default()
            .with("STS_KEY_RELOAD_INTERVAL", "3600")
            .config(
                "[[clients]]\nid = \"late\"\ntype = \"confidential\"\ngrant_types = [\"client_credentials\"]\n",
            ),
    )
    .await;
    let token = |secret: String| {
        let c = app.client.clone();
        let url = format!("{}/sso/token", app.address);
        async move {
            let res = c
                .post(url)
                .basic_auth("late", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = token("stscs_guess".into()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let said = body["error_description"].as_str().unwrap();
    assert!(
        said.contains("no secret yet") && said.contains("sts clients secret"),
        "{said}"
    );

    let out = app.cli(&["clients", "secret", "late"], &[]).await.ok();
    let secret = out.stdout.trim().to_string();
    assert!(
        out.stderr.contains("accepts the new secret at once"),
        "{}",
        out.stderr
    );
    let (status, body) = token(secret.clone()).await;
    assert_eq!(
        status, 200,
        "the new secret works before the next reload: {body}"
    );
    assert!(body["access_token"].as_str().is_some());
    // A wrong secret is still refused, and does not say "no secret yet".
    let (status, body) = token(format!("{secret}x")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error_description"], "unknown client or wrong secret");
}
