//! Delegated login against a real OpenID Provider (npm `oidc-provider`, started by the test), as an OIDC
//! provider and as a plain OAuth 2.0 provider; the token shown on `/sso/me` verifies with PyJWT.

use std::net::TcpListener;

use sts_tests::verifiers::pyjwt;
use sts_tests::{AppOptions, Peer, TestApp, browser, follow, spawn_app_on, start_node_peer};

const SECRET: &str = "oidc-client-secret-for-tests";

struct Setup {
    app: TestApp,
    _idp: Peer,
}

/// Start oidc-provider with our redirect URIs registered, then the STS configured against it.
async fn setup(providers_toml: impl Fn(&str) -> String) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp_config = serde_json::json!({
        "clients": [{
            "client_id": "sts",
            "client_secret": SECRET,
            "redirect_uris": [format!("{sts}/sso/sso-openid/openid-login"), format!("{sts}/sso/sso-oauth/oauth-login")],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }],
        "users": {
            "alice": {"sub": "alice", "email": "alice@example.com", "email_verified": true, "name": "Alice Liddell",
                      "preferred_username": "alice", "groups": ["staff", "sts-admins"], "org": {"roles": ["reader", "writer"]}},
            "bob": {"sub": "bob", "email": "bob@example.com", "email_verified": true, "name": "Bob",
                    "preferred_username": "bob", "groups": ["contractors"], "org": {"roles": ["reader"]}},
            "eve": {"sub": "eve", "email": "eve@elsewhere.org", "email_verified": true, "name": "Eve",
                    "preferred_username": "eve", "groups": ["staff"], "org": {"roles": []}},
        }
    });
    let idp = start_node_peer(
        "oidc-idp.mjs",
        &["--port", "0", "--config", &idp_config.to_string()],
    )
    .await;
    let opts = AppOptions::default()
        .with("CORP_SECRET", SECRET)
        .config(providers_toml(&idp.issuer));
    let app = spawn_app_on(listener, opts).await;
    Setup { app, _idp: idp }
}

fn oidc_provider(issuer: &str) -> String {
    format!(
        r#"
[[providers]]
id = "corp"
type = "oidc"
display_name = "Corp OIDC"
issuer = "{issuer}"
client_id = "sts"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "email", "profile", "groups"]
use_userinfo = true

[providers.roles]
claim = "groups"
default_roles = ["user"]
rules = [ {{ match = "sts-admins", roles = ["admin"] }}, {{ match = "staff", roles = ["employee"] }} ]

[providers.constraints]
allowed_email_domains = ["example.com"]
required_groups = ["staff"]
"#
    )
}

fn oauth_provider(issuer: &str) -> String {
    format!(
        r#"
[[providers]]
id = "corp-oauth"
type = "oauth2"
display_name = "Corp OAuth 2.0"
client_id = "sts"
client_secret_env = "CORP_SECRET"
client_auth = "client_secret_post"
authorization_endpoint = "{issuer}/auth"
token_endpoint = "{issuer}/token"
userinfo_endpoint = "{issuer}/me"
scopes = ["openid", "email", "profile", "groups"]
username_claim = "preferred_username"

[providers.roles]
claim = "org.roles"
rules = [ {{ match = "writer", roles = ["editor"] }}, {{ match = "read*", roles = ["viewer"] }} ]
"#
    )
}

/// The text of the element with `id` in a page (our templates put one value per element).
fn element(html: &str, id: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in page:\n{html}"))
        + id.len()
        + 6;
    let end = html[start..].find("</").unwrap() + start;
    html[start..end].to_string()
}

fn list_items(html: &str, id: &str) -> Vec<String> {
    let start = html.find(&format!("id=\"{id}\">")).unwrap();
    let end = html[start..].find("</ul>").unwrap() + start;
    html[start..end]
        .split("<li>")
        .skip(1)
        .map(|s| s.trim_end_matches("</li>").to_string())
        .collect()
}

/// Run a login as `user` from `/sso/login` to the end; returns the final response and the URLs visited.
async fn login(
    app: &TestApp,
    client: &reqwest::Client,
    provider: &str,
    user: &str,
) -> (reqwest::Response, Vec<String>) {
    let start = format!(
        "{}/sso/login?provider={provider}&login_hint={user}",
        app.address
    );
    follow(client, &start, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_login_ends_on_me_with_mapped_roles_and_a_verifiable_token() {
    let s = setup(oidc_provider).await;
    let app = &s.app;
    let client = browser();
    let (res, visited) = login(app, &client, "corp", "alice").await;
    assert_eq!(res.status(), 200, "visited {visited:#?}");
    assert!(res.url().as_str().ends_with("/sso/me"), "{}", res.url());
    let callback = visited
        .iter()
        .find(|u| u.contains("/sso/sso-openid/openid-login"))
        .expect("went through our callback");
    assert!(
        callback.contains("iss="),
        "oidc-provider sends RFC 9207 iss"
    );
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert_eq!(element(&html, "subject"), "alice");
    assert_eq!(element(&html, "email"), "alice@example.com");
    assert_eq!(element(&html, "display-name"), "Alice Liddell");
    assert_eq!(
        list_items(&html, "roles"),
        vec!["employee", "admin", "user"]
    );
    assert_eq!(app.session_count().await, 1);

    // The last login through the provider is recorded: raw claims, values at the role claim, roles.
    let db = sts_tests::open_db(app.dir.path()).await;
    let (outcome, claims, external, roles): (String, String, String, String) =
        sqlx::query_as("SELECT outcome, claims, external_values, roles FROM provider_last_logins WHERE provider_id = 'corp'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(outcome, "ok");
    assert!(
        claims.contains("\"nonce\"") && claims.contains("sts-admins"),
        "{claims}"
    );
    assert_eq!(external, r#"["staff","sts-admins"]"#);
    assert_eq!(roles, r#"["employee","admin","user"]"#);
    db.close().await;

    let token = element(&html, "access-token");
    let v = pyjwt(&app.jwks_url(), &token, &app.address, &app.address);
    assert!(v.ok, "{}", v.json);
    assert_eq!(
        v.json["claims"]["sub"], "corp|alice",
        "user subjects are qualified by their provider"
    );
    assert_eq!(
        v.json["claims"]["idp"], "corp",
        "the token names the IdP that authenticated the subject"
    );
    assert_eq!(
        v.json["claims"]["roles"],
        serde_json::json!(["employee", "admin", "user"])
    );

    // Single sign-on: a second visit to /sso/login goes to the IdP, which remembers alice, and back.
    let (res, _) = login(app, &client, "corp", "alice").await;
    assert_eq!(res.status(), 200);

    // A bare GET /sso/logout (a link anyone can send) only asks for confirmation.
    let res = client
        .get(format!("{}/sso/logout", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let confirm = res.text().await.unwrap();
    assert!(confirm.contains("id=\"confirm-logout\""), "{confirm}");
    let res = client
        .get(format!("{}/sso/me", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "still signed in");
    let me = res.text().await.unwrap();
    // A POST without the page's token is not a confirmation either.
    let res = client
        .post(format!("{}/sso/logout", app.address))
        .form(&[("confirm", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("confirm-logout"));
    // The Sign out form of /sso/me ends the session.
    let token = me
        .split("name=\"confirm\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("sign-out form on /sso/me")
        .to_string();
    let res = client
        .post(format!("{}/sso/logout", app.address))
        .form(&[("confirm", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("signed out"));
    let res = client
        .get(format!("{}/sso/me", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "no session after logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_login_maps_roles_from_a_nested_claim_path() {
    let s = setup(oauth_provider).await;
    let client = browser();
    let (res, visited) = login(&s.app, &client, "corp-oauth", "alice").await;
    assert_eq!(res.status(), 200, "visited {visited:#?}");
    assert!(
        visited
            .iter()
            .any(|u| u.contains("/sso/sso-oauth/oauth-login"))
    );
    let html = res.text().await.unwrap();
    assert_eq!(element(&html, "subject"), "alice");
    assert_eq!(element(&html, "username"), "alice");
    assert_eq!(list_items(&html, "roles"), vec!["viewer", "editor"]);
    let token = element(&html, "access-token");
    let v = pyjwt(&s.app.jwks_url(), &token, &s.app.address, &s.app.address);
    assert!(v.ok, "{}", v.json);
}

fn reason(html: &str) -> String {
    element(html, "reason")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_single_use_bound_to_the_browser_and_codes_cannot_be_replayed() {
    let s = setup(oidc_provider).await;
    let app = &s.app;
    let callback_prefix = format!("{}/sso/sso-openid/", app.address);

    // Stop at our callback to hold the URL (code + state).
    let client = browser();
    let start = format!("{}/sso/login?provider=corp&login_hint=alice", app.address);
    let (_, visited) = follow(&client, &start, Some(&callback_prefix)).await;
    let callback = visited.last().unwrap().clone();

    // Delivered in another browser: refused, and the attempt is burnt.
    let other = browser();
    let res = other.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(reason(&res.text().await.unwrap()), "state_browser_mismatch");
    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        reason(&res.text().await.unwrap()),
        "state_unknown_or_used",
        "state is single-use"
    );
    assert_eq!(app.session_count().await, 0);

    // A fresh attempt succeeds once; replaying the same callback URL fails.
    let (_, visited) = follow(&client, &start, Some(&callback_prefix)).await;
    let callback = visited.last().unwrap().clone();
    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(app.session_count().await, 1);
    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(reason(&res.text().await.unwrap()), "state_unknown_or_used");

    // The used code with a new, valid state of this browser: the IdP refuses the code.
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let fresh = browser();
    let (_, visited) = follow(&fresh, &start, Some(&callback_prefix)).await;
    let mut replay = url::Url::parse(visited.last().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = replay
        .query_pairs()
        .map(|(k, v)| {
            (
                k.to_string(),
                if k == "code" {
                    code.clone()
                } else {
                    v.to_string()
                },
            )
        })
        .collect();
    replay.query_pairs_mut().clear().extend_pairs(pairs);
    let res = fresh.get(replay.as_str()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(reason(&res.text().await.unwrap()), "token_endpoint_error");

    // Missing or made-up state.
    for q in ["code=x", "code=x&state=made-up-state"] {
        let res = client
            .get(format!("{callback_prefix}openid-login?{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{q}");
    }
    assert_eq!(
        app.session_count().await,
        1,
        "only the one good login made a session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_cancellation_and_return_to_are_enforced() {
    let s = setup(oidc_provider).await;
    let app = &s.app;
    for (user, code) in [
        ("eve", "email_domain_not_allowed"),
        ("bob", "not_in_required_groups"),
    ] {
        let (res, _) = login(app, &browser(), "corp", user).await;
        assert_eq!(res.status(), 403, "{user}");
        let html = res.text().await.unwrap();
        assert_eq!(reason(&html), code, "{user}");
    }
    // Unknown user at the IdP: it answers access_denied.
    let (res, _) = login(app, &browser(), "corp", "nobody").await;
    assert_eq!(res.status(), 401);
    assert_eq!(reason(&res.text().await.unwrap()), "login_cancelled");
    assert_eq!(app.session_count().await, 0, "no session for refused users");

    for bad in [
        "https://evil.example.com/",
        "//evil.example.com/x",
        "/\\evil.example.com",
        "javascript:alert(1)",
    ] {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/sso/login", app.address),
            &[("provider", "corp"), ("return_to", bad)],
        )
        .unwrap();
        let res = browser().get(url).send().await.unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        assert!(res.headers().get("location").is_none(), "never followed");
        assert_eq!(reason(&res.text().await.unwrap()), "return_to_refused");
    }
    // A same-origin return_to is honoured after login.
    let url = format!(
        "{}/sso/login?provider=corp&login_hint=alice&return_to=%2Fhealth",
        app.address
    );
    let (res, _) = follow(&browser(), &url, None).await;
    assert_eq!(res.url().path(), "/health");

    let res = browser()
        .get(format!("{}/sso/login?provider=nope", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_providers_get_a_chooser_page() {
    let s = setup(|issuer| format!("{}{}", oidc_provider(issuer), oauth_provider(issuer))).await;
    let res = browser()
        .get(format!("{}/sso/login?return_to=%2Fsso%2Fme", s.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Corp OIDC") && html.contains("Corp OAuth 2.0"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/sso/login?provider=corp&#38;return_to=%2Fsso%2Fme\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"/sso/login?provider=corp-oauth&#38;return_to=%2Fsso%2Fme\""),
        "{html}"
    );
}

/// The same login in real headless Chromium (Debian's, driven by playwright-core): the page renders under
/// its CSP without console errors, the copy button copies the token, logout shows its page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_in_headless_chromium() {
    let s = setup(oidc_provider).await;
    let out = tempfile::tempdir().unwrap();
    let (v, _) = sts_tests::browser_login(
        &[
            "--sts",
            &s.app.address,
            "--provider",
            "corp",
            "--user",
            "alice",
        ],
        &[],
        out.path(),
    )
    .await;
    assert_eq!(v["subject"], "alice");
    assert_eq!(v["email"], "alice@example.com");
    assert_eq!(v["roles"], serde_json::json!(["employee", "admin", "user"]));
    assert_eq!(v["clipboardMatches"], true, "copy button: {v:#}");
    assert_eq!(
        v["consoleErrors"],
        serde_json::json!([]),
        "CSP violations or script errors: {v:#}"
    );
    assert_eq!(v["pageErrors"], serde_json::json!([]), "{v:#}");
    let pv = pyjwt(
        &s.app.jwks_url(),
        v["token"].as_str().unwrap(),
        &s.app.address,
        &s.app.address,
    );
    assert!(pv.ok, "{}", pv.json);
    assert!(out.path().join("me.png").is_file(), "screenshot taken");
}

/// `userinfo_extra` (GitHub's organisations and teams): more JSON documents read with the access token,
/// from a real HTTP service shaped like GitHub's API that requires the token; `orgs.login` and
/// `teams.slug` step through arrays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_userinfo_extra_brings_organisations_and_teams_as_groups_and_roles() {
    let api = sts_tests::start_python_peer("proxy/upstream.py", &[]).await;
    let api_base = api.issuer.clone();
    let s = setup(move |issuer| {
        oauth_provider(issuer)
            .replace(
                "username_claim = \"preferred_username\"",
                &format!(
                    "username_claim = \"preferred_username\"\ngroups_claim = \"orgs.login\"\nuserinfo_extra = {{ orgs = \"{api_base}/github/user/orgs\", teams = \"{api_base}/github/user/teams\" }}"
                ),
            )
            .replace(
                "claim = \"org.roles\"\nrules = [ { match = \"writer\", roles = [\"editor\"] }, { match = \"read*\", roles = [\"viewer\"] } ]",
                "claim = \"teams.slug\"\nrules = [ { match = \"platform\", roles = [\"admin\"] } ]\n\n[providers.constraints]\nrequired_groups = [\"acme\"]",
            )
    })
    .await;
    let client = browser();
    let (res, visited) = login(&s.app, &client, "corp-oauth", "alice").await;
    assert_eq!(res.status(), 200, "visited {visited:#?}");
    let html = res.text().await.unwrap();
    assert_eq!(list_items(&html, "roles"), vec!["admin"]);
    assert_eq!(list_items(&html, "groups"), vec!["acme", "oss-club"]);
}
