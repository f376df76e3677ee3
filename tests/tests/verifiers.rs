//! Tokens from `sts token issue` verified by independent verifiers (PyJWT, jose) against the live JWKS,
//! and key rotation seen through those verifiers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sts_tests::verifiers::{jose, pyjwt};
use sts_tests::{AppOptions, spawn_app, spawn_app_with};

const AUD: &str = "api://orders";

fn tamper_payload(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "mallory".into();
    claims["roles"] = serde_json::json!(["admin"]);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{}.{}", parts[0], payload, parts[2])
}

fn tamper_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[10] ^= 0x01;
    format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_token_verifies_with_pyjwt_and_jose_and_tampering_is_caught() {
    let app = spawn_app().await;
    let token = app
        .issue_token(&[
            "--sub",
            "alice@example.com",
            "--roles",
            "admin,dev",
            "--aud",
            AUD,
            "--ttl",
            "300",
        ])
        .await;
    let jwks = app.jwks_url();
    let issuer = app.address.clone();

    for (name, verify) in [
        ("PyJWT", pyjwt as fn(&str, &str, &str, &str) -> _),
        ("jose", jose),
    ] {
        let good = verify(&jwks, &token, &issuer, AUD);
        assert!(good.ok, "{name} refused a valid token: {}", good.json);
        assert_eq!(good.json["claims"]["sub"], "alice@example.com", "{name}");
        assert_eq!(
            good.json["claims"]["roles"],
            serde_json::json!(["admin", "dev"]),
            "{name}"
        );
        assert_eq!(good.json["header"]["typ"], "at+jwt", "{name}");
        let kid = good.json["header"]["kid"].as_str().unwrap().to_string();
        assert_eq!(
            app.jwks_kids().await,
            vec![kid],
            "{name}: token signed by the published key"
        );

        for (what, bad_token, iss, aud) in [
            (
                "tampered payload",
                tamper_payload(&token),
                issuer.as_str(),
                AUD,
            ),
            (
                "tampered signature",
                tamper_signature(&token),
                issuer.as_str(),
                AUD,
            ),
            (
                "wrong audience",
                token.clone(),
                issuer.as_str(),
                "api://other",
            ),
            (
                "wrong issuer",
                token.clone(),
                "https://evil.example.com",
                AUD,
            ),
        ] {
            let v = verify(&jwks, &bad_token, iss, aud);
            assert!(!v.ok, "{name} accepted a token with {what}: {}", v.json);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_by_verifiers() {
    let app = spawn_app().await;
    let token = &app
        .issue_token(&["--sub", "bob", "--aud", AUD, "--ttl", "1"])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let v = pyjwt(&app.jwks_url(), token, &app.address, AUD);
    assert!(
        !v.ok && v.json["error"].as_str().unwrap().contains("Expired"),
        "{}",
        v.json
    );
    let v = jose(&app.jwks_url(), token, &app.address, AUD);
    assert!(
        !v.ok
            && v.json["error"]
                .as_str()
                .unwrap()
                .contains("ERR_JWT_EXPIRED"),
        "{}",
        v.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_refuses_a_ttl_beyond_the_maximum() {
    let app = spawn_app_with(AppOptions::default().with("STS_TOKEN_MAX_LIFETIME", "600")).await;
    let out = app
        .cli(&["token", "issue", "--sub", "bob", "--ttl", "601"], &[])
        .await;
    assert_ne!(out.status, 0);
    assert!(out.stderr.contains("ttl"), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

/// After `sts keys regenerate`, a token signed by the previous key keeps verifying (its key stays in the
/// JWKS) until the publication window passes; then the JWKS drops the old key and the token no longer
/// verifies. Short lifetimes make the window a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_tokens_valid_until_they_expire_then_drops_the_key() {
    let opts = AppOptions::default()
        .with("STS_TOKEN_LIFETIME", "6")
        .with("STS_TOKEN_MAX_LIFETIME", "6")
        .with("STS_CLOCK_SKEW", "0")
        .with("STS_KEY_RELOAD_INTERVAL", "1");
    let app = spawn_app_with(opts).await;
    let old_kids = app.jwks_kids().await;
    assert_eq!(old_kids.len(), 1);
    let old_token = app.issue_token(&["--sub", "carol", "--aud", AUD]).await;

    app.cli(&["keys", "regenerate"], &[]).await.ok();
    let kids = app
        .wait_for_kids(5, "the server to publish the new key", |k| k.len() == 2)
        .await;
    assert_eq!(
        kids[1], old_kids[0],
        "previous key still published, after the new active key"
    );
    let new_kid = kids[0].clone();

    let v = pyjwt(&app.jwks_url(), &old_token, &app.address, AUD);
    assert!(
        v.ok,
        "token signed before the rotation must still verify: {}",
        v.json
    );
    let v = jose(&app.jwks_url(), &old_token, &app.address, AUD);
    assert!(
        v.ok,
        "token signed before the rotation must still verify: {}",
        v.json
    );

    let new_token = app.issue_token(&["--sub", "carol", "--aud", AUD]).await;
    let v = pyjwt(&app.jwks_url(), &new_token, &app.address, AUD);
    assert!(v.ok, "{}", v.json);
    assert_eq!(
        v.json["kid"],
        new_kid.as_str(),
        "new tokens are signed by the new key"
    );

    // Window: max lifetime 6 s + skew 0 + reload interval 1 s; then the reloader retires the key.
    let kids = app
        .wait_for_kids(15, "the old key to leave the JWKS", |k| k.len() == 1)
        .await;
    assert_eq!(kids, vec![new_kid.clone()]);
    let v = pyjwt(&app.jwks_url(), &old_token, &app.address, AUD);
    assert!(!v.ok, "old key gone: {}", v.json);

    let list: serde_json::Value =
        serde_json::from_str(&app.cli(&["keys", "list", "--json"], &[]).await.ok().stdout).unwrap();
    let states: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_string(),
                k["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&(old_kids[0].clone(), "retired".into())),
        "{states:?}"
    );
    assert!(states.contains(&(new_kid, "active".into())), "{states:?}");
}
