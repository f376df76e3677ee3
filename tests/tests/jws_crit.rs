//! Class: JWS headers with `crit` (RFC 7515 section 4.1.11: critical extensions we do not implement, in
//! every form: unknown names, registered names such as `exp`, `b64`, an empty list) or a repeated member
//! are refused in every place the STS verifies a JWS: its own tokens (introspection, userinfo via the same
//! check), `private_key_jwt` client assertions, and the `sts-client` verifier. Upstream ID tokens are
//! covered in login_hostile.rs (hostile-idp modes crit-*, duplicate-alg).
//!
//! To sign its own tokens with a header of its choice, the test imports a PKCS#12 keystore whose private
//! key it knows; the STS then signs with that key, and the test re-signs a real token's payload under
//! each header. The unchanged header re-signed the same way is accepted, so each refusal is the header's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sts_tests::{AppOptions, pkcs12_fixture, spawn_app_with, tool};

fn resign(token_payload: &str, header: &str, key: &jsonwebtoken::EncodingKey) -> String {
    let input = format!("{}.{token_payload}", URL_SAFE_NO_PAD.encode(header));
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), key, jsonwebtoken::Algorithm::RS256).unwrap();
    format!("{input}.{sig}")
}

/// An RSA private key in PKCS#8 PEM: its jsonwebtoken signing key and its public JWK parameters (n, e).
fn rsa_key(pem: &str) -> (jsonwebtoken::EncodingKey, String, String) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let k = rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap();
    (
        jsonwebtoken::EncodingKey::from_rsa_der(k.to_pkcs1_der().unwrap().as_bytes()),
        URL_SAFE_NO_PAD.encode(k.n().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(k.e().to_bytes_be()),
    )
}

fn bad_headers(kid: &str, typ: &str) -> Vec<String> {
    vec![
        format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"{kid}","crit":["exp"],"exp":4102444800}}"#),
        format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"{kid}","crit":["b64"],"b64":false}}"#),
        format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"{kid}","crit":["b64"],"b64":true}}"#),
        format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"{kid}","crit":[]}}"#),
        format!(
            r#"{{"alg":"RS256","typ":"{typ}","kid":"{kid}","crit":["urn:example:x"],"urn:example:x":1}}"#
        ),
        format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"{kid}","crit":"exp"}}"#),
        format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"{kid}","kid":"other"}}"#),
        format!(r#"{{"alg":"RS256","typ":"{typ}","typ":"JWT","kid":"{kid}"}}"#),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jws_crit_and_repeated_header_members_are_refused_everywhere() {
    // A client key for private_key_jwt.
    let dir = tempfile::tempdir().unwrap();
    let client_pem = dir.path().join("client.pem");
    assert!(
        tool(
            "openssl",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                client_pem.to_str().unwrap()
            ],
            dir.path()
        )
        .status
        .success()
    );
    let (client_key, n, e) = rsa_key(&std::fs::read_to_string(&client_pem).unwrap());
    let client_jwk = serde_json::json!({"keys": [{"kty": "RSA", "kid": "c1", "alg": "RS256", "use": "sig", "n": n, "e": e}]});
    let config = format!(
        r#"
[[clients]]
id = "machine"
type = "confidential"
grant_types = ["client_credentials"]
audience = ["orders-api"]

[[clients]]
id = "signer"
type = "confidential"
token_endpoint_auth_method = "private_key_jwt"
grant_types = ["client_credentials"]
jwks = '{client_jwk}'
"#
    );
    let app = spawn_app_with(
        AppOptions::default()
            .with("STS_KEY_RELOAD_INTERVAL", "1")
            .config(config),
    )
    .await;
    let secret = app
        .cli(&["clients", "secret", "machine"], &[])
        .await
        .ok()
        .stdout
        .trim()
        .to_string();

    // The STS's signing key becomes one the test knows.
    let p12 = pkcs12_fixture(dir.path(), "crit-test", "ks-pw");
    let before = app.jwks_kids().await;
    app.cli(
        &[
            "keys",
            "import",
            "--keystore",
            p12.to_str().unwrap(),
            "--password-env",
            "KSPW",
        ],
        &[("KSPW", "ks-pw")],
    )
    .await
    .ok();
    let kids = app
        .wait_for_kids(15, "the imported key", |k| k.len() > before.len())
        .await;
    let kid = kids.iter().find(|k| !before.contains(k)).unwrap().clone();
    let out = tool(
        "openssl",
        &[
            "pkcs12",
            "-in",
            p12.to_str().unwrap(),
            "-nocerts",
            "-nodes",
            "-passin",
            "pass:ks-pw",
        ],
        dir.path(),
    );
    assert!(out.status.success());
    let pem = String::from_utf8(out.stdout).unwrap();
    let pem = &pem[pem.find("-----BEGIN").unwrap()..];
    let (sts_key, _, _) = rsa_key(pem);

    let http = reqwest::Client::new();
    let token_url = format!("{}/sso/token", app.address);
    // A real access token, signed by the imported key once the server has reloaded it.
    let mut access = String::new();
    for _ in 0..50 {
        let t: serde_json::Value = http
            .post(&token_url)
            .basic_auth("machine", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        access = t["access_token"].as_str().unwrap().to_string();
        let h: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(access.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        if h["kid"] == kid.as_str() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let payload = access.split('.').nth(1).unwrap().to_string();
    let introspect = |token: String| {
        let (http, url, secret) = (
            http.clone(),
            format!("{}/sso/introspect", app.address),
            secret.clone(),
        );
        async move {
            let v: serde_json::Value = http
                .post(url)
                .basic_auth("machine", Some(&secret))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["active"] == true
        }
    };
    let verifier = sts_client::Verifier::builder(app.address.as_str())
        .audience("orders-api")
        .build()
        .unwrap();

    // Baseline: the same header re-signed by the test is accepted by both.
    let same = resign(
        &payload,
        &format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}"}}"#),
        &sts_key,
    );
    assert!(introspect(same.clone()).await, "re-signing works");
    verifier
        .verify(&same)
        .await
        .expect("the verifier accepts the re-signed token");

    for header in bad_headers(&kid, "at+jwt") {
        let t = resign(&payload, &header, &sts_key);
        assert!(
            !introspect(t.clone()).await,
            "introspection accepted {header}"
        );
        let r = verifier.verify(&t).await;
        assert!(r.is_err(), "sts-client accepted {header}");
        let res = http
            .get(format!("{}/sso/userinfo", app.address))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "userinfo: {header}");
    }

    // private_key_jwt: the same class in client assertions.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let assertion = |header: &str, jti: &str| {
        let claims = serde_json::json!({"iss": "signer", "sub": "signer", "aud": token_url, "exp": now + 60, "iat": now, "jti": jti});
        resign(
            &URL_SAFE_NO_PAD.encode(claims.to_string()),
            header,
            &client_key,
        )
    };
    let post = |a: String| {
        let (http, url) = (http.clone(), token_url.clone());
        async move {
            http.post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "signer"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", a.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post(assertion(
            r#"{"alg":"RS256","typ":"JWT","kid":"c1"}"#,
            "ok-1"
        ))
        .await,
        200
    );
    for (i, header) in bad_headers("c1", "JWT").into_iter().enumerate() {
        assert_eq!(
            post(assertion(&header, &format!("bad-{i}"))).await,
            401,
            "client assertion accepted: {header}"
        );
    }
}
