//! LDAP / Active Directory logins (`type = "ldap"`) against a real OpenLDAP `slapd` started by the suite
//! (tests/peers/ldap/directory.sh: a test CA, LDAPS and StartTLS, the memberOf overlay, a service
//! account). slapd's own stats log is read to prove what reached the directory: which DNs were bound, and
//! that nothing was bound at all when it must not be.

use std::time::{Duration, Instant};

use sts_tests::ldap::{self, SERVICE_DN, SERVICE_PASSWORD, directory, user_dn};
use sts_tests::{AppOptions, TestApp, browser, form, spawn_app_with};

const ROLES: &str = r#"
[providers.roles]
claim = "groups"
rules = [
  { match = "sts-admins", roles = ["admin"] },
  { match = "staff", roles = ["staff"] },
  { match = "R,D, core", roles = ["rd"] },
]
default_roles = ["user"]
"#;

/// Direct bind over LDAPS with the test CA; groups from memberOf.
fn direct(id: &str, extra: &str) -> String {
    let d = directory();
    format!(
        "[[providers]]\nid = \"{id}\"\ntype = \"ldap\"\ndisplay_name = \"Corp directory\"\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn_template = \"uid={{username}},{}\"\n{extra}\n{ROLES}",
        d.ldaps_url,
        d.ca_file.display(),
        ldap::PEOPLE
    )
}

/// Search-then-bind over LDAPS with the service account; groups by a group search.
fn search(id: &str, extra: &str) -> String {
    let d = directory();
    format!(
        "[[providers]]\nid = \"{id}\"\ntype = \"ldap\"\nurl = \"{}\"\nca_file = \"{}\"\nuser_base_dn = \"{}\"\nbind_dn = \"{SERVICE_DN}\"\nbind_password_env = \"LDAP_READER_PW\"\ngroup_base_dn = \"ou=groups,{}\"\n{extra}\n{ROLES}",
        d.ldaps_url,
        d.ca_file.display(),
        ldap::PEOPLE,
        ldap::BASE
    )
}

/// The directory is shared by the tests of this process, which run at the same time. A test that counts
/// slapd's binds holds this exclusively (no other test binds meanwhile); every other test holds it shared.
static DIRECTORY_LOG: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn app(config: String) -> TestApp {
    spawn_app_with(
        AppOptions::default()
            .config(config)
            .with("LDAP_READER_PW", SERVICE_PASSWORD),
    )
    .await
}

fn state_of(html: &str) -> String {
    form::state_of(html)
}

async fn open_form(app: &TestApp, client: &reqwest::Client, provider: &str) -> String {
    form::open(&app.address, client, provider).await
}

async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    state: &str,
    username: &str,
    password: &str,
) -> (u16, String, Option<String>) {
    form::post(&app.address, client, state, username, password, None).await
}

async fn post_from(
    app: &TestApp,
    client: &reqwest::Client,
    state: &str,
    username: &str,
    password: &str,
    from: Option<&str>,
) -> (u16, String, Option<String>) {
    form::post(&app.address, client, state, username, password, from).await
}

async fn form_login(
    app: &TestApp,
    provider: &str,
    username: &str,
    password: &str,
) -> (u16, String, Option<String>, reqwest::Client) {
    form::login(&app.address, provider, username, password).await
}

async fn me(app: &TestApp, client: &reqwest::Client) -> String {
    form::me(&app.address, client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_bind_over_ldaps_signs_in_and_maps_groups_to_roles() {
    let _log = DIRECTORY_LOG.read().await;
    let app = app(direct("corp", "")).await;
    let (status, _, location, client) = form_login(&app, "corp", "alice", "alice-pw-123").await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/sso/me"));
    let page = me(&app, &client).await;
    assert!(
        page.contains("corp|alice") || page.contains(">alice<"),
        "{page}"
    );
    for role in ["admin", "staff", "user"] {
        assert!(page.contains(&format!("<li>{role}</li>")), "{role}: {page}");
    }
    assert!(page.contains("alice@example.org"));
    // bob: a group whose name has escaped commas in its DN (cn=R\2CD\2C core) maps by its plain name.
    let (status, _, _, client) = form_login(&app, "corp", "bob", "bob-pw-123").await;
    assert_eq!(status, 303);
    let page = me(&app, &client).await;
    assert!(
        page.contains("<li>rd</li>") && !page.contains("<li>admin</li>"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_tls_and_search_then_bind_with_a_group_search() {
    let _log = DIRECTORY_LOG.read().await;
    let d = directory();
    let start_tls = format!(
        "[[providers]]\nid = \"tls\"\ntype = \"ldap\"\nurl = \"{}\"\nstart_tls = true\nca_file = \"{}\"\nbind_dn_template = \"uid={{username}},{}\"\n{ROLES}",
        d.ldap_url,
        d.ca_file.display(),
        ldap::PEOPLE
    );
    let app = app(format!("{start_tls}\n{}", search("corp", ""))).await;
    let (status, _, _, client) = form_login(&app, "tls", "alice", "alice-pw-123").await;
    assert_eq!(status, 303, "StartTLS");
    assert!(me(&app, &client).await.contains("<li>admin</li>"));

    // Search-then-bind: the subject is the directory's uid, whatever case was typed.
    let (status, body, _, client) = form_login(&app, "corp", "BOB", "bob-pw-123").await;
    assert_eq!(status, 303, "{body}");
    let page = me(&app, &client).await;
    assert!(page.contains("corp|bob"), "{page}");
    assert!(
        page.contains("<li>staff</li>") && page.contains("<li>rd</li>"),
        "{page}"
    );

    // A filter matching two entries is refused, never resolved to either.
    let twins = app_twins().await;
    let (status, body, _, _) = form_login(&twins, "corp", "twin@example.org", "twin-pw-123").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("ldap_ambiguous"), "{body}");
}

async fn app_twins() -> TestApp {
    app(search("corp", "user_filter = \"(mail={username})\"")).await
}

/// A certificate the configured CA did not sign is refused: LDAPS against the Mozilla roots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_certificate_is_verified() {
    let _log = DIRECTORY_LOG.write().await;
    let d = directory();
    let config = format!(
        "[[providers]]\nid = \"corp\"\ntype = \"ldap\"\nurl = \"{}\"\nbind_dn_template = \"uid={{username}},{}\"\n{ROLES}",
        d.ldaps_url,
        ldap::PEOPLE
    );
    let app = app(config).await;
    let before = d.binds_for(&user_dn("carol"));
    let (status, body, _, _) = form_login(&app, "corp", "carol", "carol-pw-123").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("ldap_unavailable") && body.contains("certificate"),
        "{body}"
    );
    assert_eq!(
        d.binds_for(&user_dn("carol")),
        before,
        "no password sent without a verified TLS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_get_one_answer_and_take_the_same_path() {
    let _log = DIRECTORY_LOG.write().await;
    let d = directory();
    for (mode, config) in [
        ("direct", direct("corp", "")),
        ("search", search("corp", "")),
    ] {
        let app = app(config).await;
        let alice_binds = d.binds_for(&user_dn("alice"));
        let all_binds = d.bind_lines().len();
        let (s1, wrong, _, _) = form_login(&app, "corp", "alice", "not-her-password").await;
        let after_wrong = d.bind_lines().len();
        let (s2, unknown, _, _) = form_login(&app, "corp", "nobody-here", "not-her-password").await;
        let after_unknown = d.bind_lines().len();
        assert_eq!((s1, s2), (401, 401), "{mode}");
        let msg = |b: &str| {
            b[b.find("id=\"form-error\"").unwrap()..]
                .split("</p>")
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(msg(&wrong), msg(&unknown), "{mode}: one answer for both");
        assert!(msg(&wrong).contains("Wrong username or password"));
        // The form comes back with a fresh state and the typed username.
        assert_ne!(state_of(&wrong), state_of(&unknown));
        assert!(wrong.contains("value=\"alice\""));
        assert_eq!(
            d.binds_for(&user_dn("alice")),
            alice_binds + 1,
            "{mode}: {:?}",
            &d.bind_lines()[all_binds..]
        );
        // The same binds for both: the service account's (when searching, none for a reused connection)
        // and exactly one with the typed password.
        let user_binds = |from: usize, to: usize| {
            d.bind_lines()[from..to]
                .iter()
                .filter(|l| !l.to_lowercase().contains(&SERVICE_DN.to_lowercase()))
                .count()
        };
        assert_eq!(user_binds(all_binds, after_wrong), 1, "{mode}");
        assert_eq!(
            user_binds(after_wrong, after_unknown),
            1,
            "{mode}: an unknown user also costs one bind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_password_is_refused_without_any_bind() {
    let _log = DIRECTORY_LOG.write().await;
    let d = directory();
    for config in [direct("corp", ""), search("corp", "")] {
        let app = app(config).await;
        // The service account may bind once, for the first search; the user never.
        let (status, _, _, _) = form_login(&app, "corp", "bob", "bob-pw-123").await;
        assert_eq!(status, 303);
        let before = d.bind_lines().len();
        for (user, pw) in [("alice", ""), ("", "alice-pw-123"), ("", "")] {
            let (status, body, _, _) = form_login(&app, "corp", user, pw).await;
            assert_eq!(status, 401, "{user:?}/{pw:?}: {body}");
            assert!(body.contains("Wrong username or password"));
        }
        assert_eq!(
            d.bind_lines()[before..].to_vec(),
            Vec::<String>::new(),
            "an empty password (an unauthenticated bind) must never reach the directory"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_in_the_username_never_signs_in_as_anyone() {
    let _log = DIRECTORY_LOG.write().await;
    let d = directory();
    let hostile = [
        "*",
        "al*",
        "a*e",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice)(|(objectClass=*)",
        "alice\\",
        "alice\\2a",
        "alice\u{0}",
        "alice\u{0}x",
        "alice\n",
        "alice,ou=people,dc=example,dc=org",
        "uid=alice,ou=people,dc=example,dc=org",
        "alice,cn=admin",
        ",cn=root,dc=example,dc=org",
        "x,uid=alice",
        "alice+cn=x",
        "#alice",
        "alice;",
        "\"alice\"",
        "alice<>",
    ];
    // Each attempt from its own address behind a trusted proxy: the per-address limit (tested below)
    // must not end this test early.
    let proxy = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n";
    // (The directory's own setup binds, anonymous and as its root, come before.)
    let first = d.bind_lines().len();
    let mut n = 0;
    for (mode, config) in [
        ("direct", direct("corp", "")),
        ("search", search("corp", "")),
    ] {
        let app = app(format!("{proxy}{config}")).await;
        for name in hostile {
            for pw in ["alice-pw-123", "root-pw"] {
                n += 1;
                let client = browser();
                let state = open_form(&app, &client, "corp").await;
                let from = format!("10.9.{}.{}", n / 250, n % 250 + 1);
                let (status, body, _) =
                    post_from(&app, &client, &state, name, pw, Some(&from)).await;
                assert_eq!(status, 401, "{mode}: {name:?} / {pw}: {body}");
            }
        }
        // Every bind that reached the directory named one RDN under ou=people (or the service account):
        // the typed text never became a second RDN or another branch of the tree.
        for line in &d.bind_lines()[first..] {
            let dn = line
                .split("dn=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches(|c| c != '"')
                .trim_end_matches('"')
                .to_lowercase();
            assert!(
                dn == SERVICE_DN.to_lowercase()
                    || dn.starts_with("cn=sts-no-such-user,")
                    || (dn.starts_with("uid=")
                        && dn.ends_with(",ou=people,dc=example,dc=org")
                        && !dn
                            .trim_end_matches(",ou=people,dc=example,dc=org")
                            .contains(",ou=")
                        && !dn.contains("cn=root")),
                "{mode}: a bind escaped the template: {line}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_down_or_hanging_gives_a_clear_error_within_the_timeout() {
    let _log = DIRECTORY_LOG.read().await;
    // Down: nothing listens.
    let port = sts_tests::saml_idp::free_port();
    let config = format!(
        "[[providers]]\nid = \"down\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:{port}\"\nbind_dn_template = \"uid={{username}},{}\"\n{ROLES}",
        ldap::PEOPLE
    );
    // Hanging: accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            keep.lock().await.push(sock);
        }
    });
    let hanging = format!(
        "[[providers]]\nid = \"hang\"\ntype = \"ldap\"\nurl = \"ldap://127.0.0.1:{hang_port}\"\ntimeout_ms = 1500\nconnect_timeout_ms = 500\nbind_dn_template = \"uid={{username}},{}\"\n{ROLES}",
        ldap::PEOPLE
    );
    let app = app(format!("{config}\n{hanging}")).await;
    let (status, body, _, _) = form_login(&app, "down", "alice", "alice-pw-123").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("ldap_unavailable"), "{body}");
    assert!(
        body.contains("The identity provider is not answering correctly"),
        "{body}"
    );

    let client = browser();
    let state = open_form(&app, &client, "hang").await;
    let t = Instant::now();
    let (status, body, _) = post(&app, &client, &state, "alice", "alice-pw-123").await;
    let took = t.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("ldap_timeout"), "{body}");
    // Bounded by timeout_ms (1.5 s), not by the directory: a generous margin for a loaded machine.
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        !held.lock().await.is_empty(),
        "the STS did connect to the hanging directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_limited_per_user_and_per_address() {
    let _log = DIRECTORY_LOG.write().await;
    let d = directory();
    let app = app(direct("corp", "")).await;
    for i in 0..10 {
        let (status, _, _, _) = form_login(&app, "corp", "dave", &format!("wrong-{i}")).await;
        assert_eq!(status, 401);
    }
    let before = d.binds_for(&user_dn("dave"));
    let client = browser();
    let state = open_form(&app, &client, "corp").await;
    let res = client
        .post(format!("{}/sso/login/form", app.address))
        .form(&[
            ("state", state.as_str()),
            ("username", "Dave"),
            ("password", "dave-pw-123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        429,
        "the 11th attempt, right password and another case"
    );
    let wait: i64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait));
    let body = res.text().await.unwrap();
    assert!(body.contains("Too many sign-in attempts"), "{body}");
    assert!(
        body.contains("name=\"state\""),
        "the form again, with a fresh state"
    );
    assert_eq!(
        d.binds_for(&user_dn("dave")),
        before,
        "a refused attempt never reaches the directory"
    );
    // Another user from the same address still signs in...
    let (status, _, _, _) = form_login(&app, "corp", "carol", "carol-pw-123").await;
    assert_eq!(status, 303);
    // ... until the address has used its 30 attempts (10 so far: dave's; carol's success gave hers back).
    let mut refused_at = None;
    for i in 0..25 {
        let (status, _, _, _) = form_login(&app, "corp", &format!("user{i}"), "x").await;
        if status == 429 {
            refused_at = Some(i);
            break;
        }
        assert_eq!(status, 401);
    }
    assert_eq!(
        refused_at,
        Some(20),
        "30 attempts per address within 15 minutes"
    );
}

/// The form's `state` is single use, bound to the browser, and is the form's CSRF token; a cross-origin
/// post is refused before anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_state_is_single_use_bound_to_the_browser_and_same_origin() {
    let _log = DIRECTORY_LOG.read().await;
    let app = app(direct("corp", "")).await;
    let client = browser();
    let state = open_form(&app, &client, "corp").await;
    // Another browser cannot use it, and trying spends it (the flow is consumed before any check), so
    // its owner starts again.
    let (status, body, _) = post(&app, &browser(), &state, "alice", "alice-pw-123").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("state_browser_mismatch"), "{body}");
    let (status, body, _) = post(&app, &client, &state, "alice", "alice-pw-123").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("state_unknown_or_used"), "{body}");
    // A fresh state works once.
    let state = open_form(&app, &client, "corp").await;
    let (status, _, _) = post(&app, &client, &state, "alice", "alice-pw-123").await;
    assert_eq!(status, 303);
    let (status, body, _) = post(&app, &client, &state, "alice", "alice-pw-123").await;
    assert_eq!(status, 400);
    assert!(body.contains("state_unknown_or_used"));
    // A cross-origin post.
    let state = open_form(&app, &client, "corp").await;
    let res = client
        .post(format!("{}/sso/login/form", app.address))
        .header("Origin", "https://evil.example")
        .form(&[
            ("state", state.as_str()),
            ("username", "alice"),
            ("password", "alice-pw-123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // An oversized body.
    let big = "x".repeat(64 * 1024);
    let res = client
        .post(format!("{}/sso/login/form", app.address))
        .form(&[
            ("state", state.as_str()),
            ("username", "alice"),
            ("password", big.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// An application's code flow signs in through the LDAP form, and single sign-on carries to a second
/// application without the form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_flow_of_an_application_signs_in_through_ldap_with_sso() {
    let _log = DIRECTORY_LOG.read().await;
    let clients = r#"
[[clients]]
id = "web-a"
type = "public"
redirect_uris = ["http://127.0.0.1/cb"]

[[clients]]
id = "web-b"
type = "public"
redirect_uris = ["http://127.0.0.1/cb"]
"#;
    let app = app(format!("{}\n{clients}", direct("corp", ""))).await;
    let client = browser();
    let authorize = |id: &str, challenge: &str| {
        format!(
            "{}/sso/authorize?response_type=code&client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&scope=openid&state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
            app.address
        )
    };
    let (verifier, challenge) = sts_tests::pkce();
    let (res, _) = sts_tests::follow(&client, &authorize("web-a", &challenge), None).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Sign in with Corp directory"), "{html}");
    let (status, _, location) =
        post(&app, &client, &state_of(&html), "alice", "alice-pw-123").await;
    assert_eq!(status, 303);
    let (res, visited) = sts_tests::follow(
        &client,
        &format!("{}{}", app.address, location.unwrap()),
        Some("http://127.0.0.1/cb"),
    )
    .await;
    let cb = visited.last().unwrap();
    assert!(
        cb.starts_with("http://127.0.0.1/cb?"),
        "{visited:?} {}",
        res.status()
    );
    let code = url::Url::parse(cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/sso/token", app.address))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("client_id", "web-a"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().expect("an access token");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "corp|alice");
    assert_eq!(
        claims["roles"],
        serde_json::json!(["admin", "staff", "user"])
    );
    // The second application: straight back with a code, no form.
    let (_, challenge) = sts_tests::pkce();
    let (_, visited) = sts_tests::follow(
        &client,
        &authorize("web-b", &challenge),
        Some("http://127.0.0.1/cb"),
    )
    .await;
    assert!(
        visited.last().unwrap().contains("code="),
        "SSO: {visited:?}"
    );
}

/// An LDAP provider added in the console (through the admin API, the same TOML and validation), its
/// service password in the secret field, sealed; `ca_file` refused there, `ca_pem` accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldap_provider_added_in_the_console_signs_users_in() {
    let _log = DIRECTORY_LOG.read().await;
    let d = directory();
    let app = app(String::new()).await;
    let token = sts_tests::admin::api_token(&app).await;
    let source_with = |ca: &str| {
        format!(
            "id = \"dir\"\ntype = \"ldap\"\nurl = \"{}\"\n{ca}\nuser_base_dn = \"{}\"\nbind_dn = \"{SERVICE_DN}\"\n{ROLES}",
            d.ldaps_url,
            ldap::PEOPLE
        )
        .replace("[providers.roles]", "[roles]")
    };
    let create = |source: String, secret: &str| {
        reqwest::Client::new()
            .post(format!("{}/admin/api/v1/providers", app.address))
            .bearer_auth(&token)
            .json(&serde_json::json!({"source": source, "client_secret": secret}))
            .send()
    };
    let res = create(
        source_with(&format!("ca_file = \"{}\"", d.ca_file.display())),
        SERVICE_PASSWORD,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("ca_pem"));
    let pem = std::fs::read_to_string(&d.ca_file).unwrap();
    let with_pem = source_with(&format!("ca_pem = '''\n{pem}'''"));
    let res = create(with_pem.clone(), "").await.unwrap();
    assert_eq!(res.status(), 400, "a service account needs its password");
    assert!(res.text().await.unwrap().contains("secret field"));
    let res = create(with_pem, SERVICE_PASSWORD).await.unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let (status, body, _, client) = form_login(&app, "dir", "alice", "alice-pw-123").await;
    assert_eq!(status, 303, "{body}");
    assert!(me(&app, &client).await.contains("dir|alice"));
    // The password is sealed: it appears nowhere in the API's view of the provider.
    let view = reqwest::Client::new()
        .get(format!("{}/admin/api/v1/providers/dir", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!view.contains(SERVICE_PASSWORD), "{view}");
}

/// The form in real headless Chromium: the page renders under its CSP, the password is typed, and the
/// user lands on /sso/me with the directory's roles. Screenshots: docs/screenshots/ldap-*.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_login_form_in_headless_chromium() {
    let _log = DIRECTORY_LOG.read().await;
    let app = app(direct("corp", "")).await;
    let out = tempfile::tempdir().unwrap();
    let (v, stdout) = sts_tests::browser_login(
        &[
            "--sts",
            &app.address,
            "--provider",
            "corp",
            "--user",
            "alice",
            "--form",
        ],
        &[("STS_TEST_PASSWORD", "alice-pw-123")],
        out.path(),
    )
    .await;
    assert_eq!(v["subject"], "alice");
    assert_eq!(v["email"], "alice@example.org");
    assert_eq!(v["roles"], serde_json::json!(["admin", "staff", "user"]));
    assert_eq!(v["consoleErrors"], serde_json::json!([]), "{v:#}");
    assert!(
        !stdout.contains("alice-pw-123"),
        "the password never leaves the browser's form"
    );
    let shots = sts_tests::repo_root().join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::copy(
        out.path().join("login-form.png"),
        shots.join("ldap-login-form.png"),
    )
    .unwrap();
    std::fs::copy(out.path().join("me.png"), shots.join("ldap-me.png")).unwrap();
}
