//! Token exchange (RFC 8693) on behalf of a user: a service that received a user's access token exchanges
//! it for one to call another service, with `act` naming the service. Against the real server with a real
//! upstream IdP (npm `oidc-provider`) for the user's login; every issued token is checked by PyJWT.

use std::collections::HashMap;
use std::net::TcpListener;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sts_tests::verifiers::pyjwt;
use sts_tests::{AppOptions, browser, follow, pkce, spawn_app_on};

const UPSTREAM_SECRET: &str = "upstream-secret-for-tests";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

/// (exchanging client, subject token, extra parameters, status, error)
type Case = (
    &'static str,
    String,
    Vec<(&'static str, &'static str)>,
    u16,
    &'static str,
);

#[tokio::test]
async fn a_service_exchanges_a_users_token_on_their_behalf_and_nothing_wider() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let idp = sts_tests::start_oidc_idp(
        &sts,
        UPSTREAM_SECRET,
        serde_json::json!({"alice": {"sub": "alice", "email": "alice@example.com", "email_verified": true,
                            "name": "Alice", "preferred_username": "alice", "groups": ["staff"]}}),
    )
    .await;
    let config = format!(
        r#"
[[providers]]
id = "corp"
type = "oidc"
issuer = "{}"
client_id = "sts"
client_secret_env = "CORP_SECRET"
scopes = ["openid", "email", "profile", "groups"]

[providers.roles]
claim = "groups"
rules = [ {{ match = "staff", roles = ["employee"] }} ]

# The web component the user signs in to; its access tokens are for the orders service.
[[clients]]
id = "web"
type = "confidential"
redirect_uris = ["https://web.example.com/cb"]
audience = ["orders-svc"]

# The orders service: it may exchange tokens meant for it, for the inventory or billing API.
[[clients]]
id = "orders-svc"
type = "confidential"
grant_types = ["client_credentials", "token_exchange"]
scopes = ["openid", "profile", "email", "roles"]
audience = ["inventory-api", "billing-api"]

# Another service allowed to exchange, but the user's token is not meant for it.
[[clients]]
id = "other-svc"
type = "confidential"
grant_types = ["token_exchange"]
audience = ["inventory-api"]

# A service without the grant.
[[clients]]
id = "plain"
type = "confidential"
grant_types = ["client_credentials"]
audience = ["orders-svc"]
"#,
        idp.issuer
    );
    let app = spawn_app_on(
        listener,
        AppOptions::default()
            .with("CORP_SECRET", UPSTREAM_SECRET)
            .config(config),
    )
    .await;
    let mut secrets = HashMap::new();
    for id in ["web", "orders-svc", "other-svc", "plain"] {
        let out = app.cli(&["clients", "secret", id], &[]).await.ok();
        secrets.insert(id, out.stdout.trim().to_string());
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    // alice signs in to the web component (code flow with PKCE through the upstream IdP).
    let c = browser();
    let (verifier, challenge) = pkce();
    let authorize = format!(
        "{sts}/sso/authorize?response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fweb.example.com%2Fcb\
         &scope=openid%20roles%20email&state=s1&code_challenge={challenge}&code_challenge_method=S256&login_hint=alice"
    );
    let (res, visited) = follow(&c, &authorize, Some("https://web.example.com/cb")).await;
    let cb = visited.last().unwrap().clone();
    assert!(
        cb.starts_with("https://web.example.com/cb?"),
        "{visited:?} {}",
        res.status()
    );
    let code: String = url::Url::parse(&cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token = |id: &'static str, form: Vec<(&'static str, String)>| {
        let (c, secret, sts) = (browser(), secrets[id].clone(), sts.clone());
        async move {
            let r = c
                .post(format!("{sts}/sso/token"))
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (st, user_tokens) = token(
        "web",
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code),
            ("redirect_uri", "https://web.example.com/cb".into()),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(st, 200, "{user_tokens}");
    let user_token = user_tokens["access_token"].as_str().unwrap().to_string();
    let user_claims = claims(&sts, &user_token, "orders-svc");

    let exchange = |id: &'static str, subject: &str, extra: Vec<(&'static str, &str)>| {
        let mut form: Vec<(&'static str, String)> = vec![
            ("grant_type", EXCHANGE.into()),
            ("subject_token", subject.into()),
            ("subject_token_type", ACCESS.into()),
        ];
        form.extend(extra.into_iter().map(|(k, v)| (k, v.to_string())));
        token(id, form)
    };

    // The orders service exchanges alice's token for the inventory API, with fewer scopes.
    let (st, v) = exchange(
        "orders-svc",
        &user_token,
        vec![("audience", "inventory-api"), ("scope", "roles")],
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["issued_token_type"], ACCESS);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "roles");
    let exchanged = v["access_token"].as_str().unwrap().to_string();
    let ex = claims(&sts, &exchanged, "inventory-api");
    assert_eq!(ex["aud"], "inventory-api");
    assert_eq!(ex["sub"], user_claims["sub"]);
    assert_eq!(ex["sub"], "corp|alice");
    assert_eq!(ex["act"], serde_json::json!({"sub": "orders-svc"}));
    assert_eq!(ex["client_id"], "orders-svc");
    assert_eq!(ex["roles"], user_claims["roles"]);
    assert_eq!(ex["sid"], user_claims["sid"]);
    assert!(
        ex["exp"].as_i64().unwrap() <= user_claims["exp"].as_i64().unwrap(),
        "never outlives the subject token"
    );
    // Without audience: the service's audiences; without scope: the subject token's.
    let (st, v) = exchange("orders-svc", &user_token, vec![]).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["scope"], user_claims["scope"]);

    // Refusals, each with its RFC 8693 / RFC 6749 error.
    let garbage = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.".to_string()
        + &URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"{sts}","sub":"corp|alice","aud":"orders-svc","exp":9999999999,"jti":"x"}}"#
        ))
        + ".";
    let id_token = user_tokens["id_token"].as_str().unwrap().to_string();
    let (_, machine) = token(
        "orders-svc",
        vec![("grant_type", "client_credentials".into())],
    )
    .await;
    let machine = machine["access_token"].as_str().unwrap().to_string();
    let cases: Vec<Case> = vec![
        (
            "other-svc",
            user_token.clone(),
            vec![],
            400,
            "invalid_grant",
        ), // not meant for it
        (
            "plain",
            user_token.clone(),
            vec![],
            400,
            "unauthorized_client",
        ),
        (
            "orders-svc",
            user_token.clone(),
            vec![("audience", "payroll")],
            400,
            "invalid_target",
        ),
        (
            "orders-svc",
            user_token.clone(),
            vec![("audience", "orders-svc")],
            400,
            "invalid_target",
        ),
        (
            "orders-svc",
            user_token.clone(),
            vec![("scope", "roles profile")],
            400,
            "invalid_scope",
        ),
        (
            "orders-svc",
            user_token.clone(),
            vec![("resource", "https://inventory.example.com")],
            400,
            "invalid_target",
        ),
        (
            "orders-svc",
            user_token.clone(),
            vec![("actor_token", "x"), ("actor_token_type", ACCESS)],
            400,
            "invalid_request",
        ),
        (
            "orders-svc",
            user_token.clone(),
            vec![(
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            )],
            400,
            "invalid_request",
        ),
        (
            "orders-svc",
            "not-a-token".into(),
            vec![],
            400,
            "invalid_grant",
        ),
        ("orders-svc", garbage, vec![], 400, "invalid_grant"), // alg none
        ("orders-svc", id_token, vec![], 400, "invalid_grant"), // an ID token (typ JWT)
        ("orders-svc", machine, vec![], 400, "invalid_grant"), // its own machine token: not for itself
        (
            "orders-svc",
            exchanged.clone(),
            vec![],
            400,
            "invalid_grant",
        ), // aud inventory-api
    ];
    for (client, subject, extra, status, error) in cases {
        let (st, v) = exchange(client, &subject, extra.clone()).await;
        assert_eq!(
            (st, v["error"].as_str()),
            (status, Some(error)),
            "{client} {extra:?}: {v}"
        );
    }
    // A wrong subject_token_type, and none.
    let (st, v) = token(
        "orders-svc",
        vec![
            ("grant_type", EXCHANGE.into()),
            ("subject_token", user_token.clone()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:saml2".into(),
            ),
        ],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let (st, v) = token(
        "orders-svc",
        vec![
            ("grant_type", EXCHANGE.into()),
            ("subject_token", user_token.clone()),
        ],
    )
    .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );

    // Every exchange is audited.
    let api = sts_tests::admin::api_token(&app).await;
    let audit = sts_tests::admin::api_get(&app, &api, "/audit?limit=50")
        .await
        .to_string();
    assert!(
        audit.contains("token.exchange") && audit.contains("client:orders-svc"),
        "{audit}"
    );

    // The web component revokes alice's token: it can no longer be exchanged.
    let r = browser()
        .post(format!("{sts}/sso/revoke"))
        .basic_auth("web", Some(&secrets["web"]))
        .form(&[("token", user_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, v) = exchange("orders-svc", &user_token, vec![]).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
}

fn claims(sts: &str, token: &str, audience: &str) -> serde_json::Value {
    let v = pyjwt(&format!("{sts}/sso/jwks.json"), token, sts, audience);
    assert!(v.ok, "PyJWT refused: {}", v.json);
    v.json["claims"].clone()
}
