//! PKCS#12 import with real keystores made by `openssl pkcs12 -export` (default AES and `-legacy`) and
//! Java `keytool`; refusals leave the keys unchanged; private key bytes never reach the database files.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use sha2::{Digest, Sha256};
use sts_tests::verifiers::pyjwt;
use sts_tests::{AppOptions, TestApp, spawn_app_with, tool};

const PW: &str = "s3cret-keystore-pw";

struct Fixtures {
    dir: tempfile::TempDir,
}

impl Fixtures {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    tool("openssl", args, dir);
}

/// Make every keystore the tests need with the real tools.
fn make_fixtures() -> Fixtures {
    let f = Fixtures {
        dir: tempfile::tempdir().unwrap(),
    };
    let d = f.dir.path();
    let pass = format!("pass:{PW}");
    // A CA and a leaf signed by it: the leaf key is the signing key, the chain goes to x5c.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Test CA",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=sts-signing",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
        ],
    );
    openssl(
        d,
        &[
            "x509", "-in", "leaf.pem", "-outform", "DER", "-out", "leaf.der",
        ],
    );
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "leaf.key",
            "-outform",
            "DER",
            "-out",
            "leaf.pkcs8.der",
        ],
    );
    openssl(
        d,
        &[
            "rsa",
            "-in",
            "leaf.key",
            "-outform",
            "DER",
            "-traditional",
            "-out",
            "leaf.pkcs1.der",
        ],
    );
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "leaf.key",
            "-in",
            "leaf.pem",
            "-certfile",
            "ca.pem",
            "-name",
            "sts",
            "-out",
            "aes.p12",
            "-passout",
            &pass,
        ],
    );
    // Legacy format (3DES / RC2-40, SHA-1 MAC) with another key.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:3072",
            "-nodes",
            "-keyout",
            "legacy.key",
            "-out",
            "legacy.pem",
            "-subj",
            "/CN=legacy",
            "-days",
            "2",
        ],
    );
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-legacy",
            "-inkey",
            "legacy.key",
            "-in",
            "legacy.pem",
            "-out",
            "legacy.p12",
            "-passout",
            &pass,
        ],
    );
    // Java keytool.
    let keytool = |args: &[&str]| tool("keytool", args, d);
    keytool(&[
        "-genkeypair",
        "-alias",
        "sts",
        "-keyalg",
        "RSA",
        "-keysize",
        "2048",
        "-storetype",
        "PKCS12",
        "-keystore",
        "keytool.p12",
        "-storepass",
        PW,
        "-keypass",
        PW,
        "-dname",
        "CN=sts-keytool",
        "-validity",
        "2",
    ]);
    std::fs::copy(d.join("keytool.p12"), d.join("two-keys.p12")).unwrap();
    keytool(&[
        "-genkeypair",
        "-alias",
        "second",
        "-keyalg",
        "RSA",
        "-keysize",
        "2048",
        "-storetype",
        "PKCS12",
        "-keystore",
        "two-keys.p12",
        "-storepass",
        PW,
        "-keypass",
        PW,
        "-dname",
        "CN=second",
        "-validity",
        "2",
    ]);
    // EC only.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ec.key",
            "-out",
            "ec.pem",
            "-subj",
            "/CN=ec",
            "-days",
            "2",
        ],
    );
    openssl(
        d,
        &[
            "pkcs12", "-export", "-inkey", "ec.key", "-in", "ec.pem", "-out", "ec.p12", "-passout",
            &pass,
        ],
    );
    // Certificates only, no key.
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-nokeys",
            "-in",
            "leaf.pem",
            "-out",
            "nokey.p12",
            "-passout",
            &pass,
        ],
    );
    // No MAC and no encryption: "protected" by nothing.
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-nomac",
            "-keypbe",
            "NONE",
            "-certpbe",
            "NONE",
            "-inkey",
            "leaf.key",
            "-in",
            "leaf.pem",
            "-out",
            "nomac.p12",
            "-passout",
            &pass,
        ],
    );
    // RSA 1024 (too small).
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "small.key",
            "-out",
            "small.pem",
            "-subj",
            "/CN=small",
            "-days",
            "2",
        ],
    );
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "small.key",
            "-in",
            "small.pem",
            "-out",
            "small.p12",
            "-passout",
            &pass,
        ],
    );
    // Truncated.
    let full = std::fs::read(d.join("aes.p12")).unwrap();
    std::fs::write(d.join("truncated.p12"), &full[..full.len() / 2]).unwrap();
    std::fs::write(d.join("pw.txt"), format!("{PW}\n")).unwrap();
    std::fs::write(d.join("empty-pw.txt"), "").unwrap();
    f
}

/// RFC 7638 thumbprint computed independently of the server code.
fn thumbprint(n: &[u8], e: &[u8]) -> String {
    let json = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(n)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes()))
}

async fn import(
    app: &TestApp,
    keystore: &str,
    via_file: Option<&str>,
    env_pw: &str,
) -> sts_tests::CliOutput {
    match via_file {
        Some(file) => {
            app.cli(
                &[
                    "keys",
                    "import",
                    "--keystore",
                    keystore,
                    "--password-file",
                    file,
                ],
                &[],
            )
            .await
        }
        None => {
            app.cli(
                &[
                    "keys",
                    "import",
                    "--keystore",
                    keystore,
                    "--password-env",
                    "KEYSTORE_PASSWORD",
                ],
                &[("KEYSTORE_PASSWORD", env_pw)],
            )
            .await
        }
    }
}

async fn key_list(app: &TestApp) -> serde_json::Value {
    serde_json::from_str(&app.cli(&["keys", "list", "--json"], &[]).await.ok().stdout).unwrap()
}

fn active_kid(list: &serde_json::Value) -> String {
    list.as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_and_keytool_keystores_import_and_publish_their_chain() {
    let f = make_fixtures();
    let app = spawn_app_with(AppOptions::default().with("STS_KEY_RELOAD_INTERVAL", "1")).await;
    let first = app.jwks_kids().await;

    // OpenSSL default format (AES-256-CBC, PBKDF2, SHA-256 MAC), with a CA in the chain.
    let out = import(&app, &f.p("aes.p12"), None, PW).await.ok();
    assert!(out.stdout.contains("imported key"), "{}", out.stdout);
    let leaf =
        rsa::RsaPrivateKey::from_pkcs8_der(&std::fs::read(f.path("leaf.pkcs8.der")).unwrap())
            .unwrap();
    let expected_kid = thumbprint(&leaf.n().to_bytes_be(), &leaf.e().to_bytes_be());
    let kids = app
        .wait_for_kids(8, "the imported key to be published", |k| {
            k.first() == Some(&expected_kid)
        })
        .await;
    assert_eq!(
        kids,
        vec![expected_kid.clone(), first[0].clone()],
        "previous key stays published"
    );
    let jwks = app.jwks().await;
    let jwk = &jwks["keys"][0];
    let leaf_der = std::fs::read(f.path("leaf.der")).unwrap();
    assert_eq!(jwk["x5c"].as_array().unwrap().len(), 2, "leaf + CA");
    assert_eq!(jwk["x5c"][0], STANDARD.encode(&leaf_der));
    assert_eq!(
        jwk["x5t#S256"],
        URL_SAFE_NO_PAD.encode(Sha256::digest(&leaf_der))
    );
    assert_eq!(jwk["n"], URL_SAFE_NO_PAD.encode(leaf.n().to_bytes_be()));

    // Tokens are now signed by the imported key and verify independently.
    let token = app.issue_token(&["--sub", "dave", "--aud", "api"]).await;
    let v = pyjwt(&app.jwks_url(), &token, &app.address, "api");
    assert!(v.ok, "{}", v.json);
    assert_eq!(v.json["kid"], expected_kid.as_str());

    // The private key never appears in the database files, in any encoding.
    assert_private_key_absent(&app.dir.path().join("data"), &f, &leaf);

    // OpenSSL -legacy format, password from a file.
    let out = import(&app, &f.p("legacy.p12"), Some(&f.p("pw.txt")), "")
        .await
        .ok();
    assert!(out.stdout.contains("imported key"), "{}", out.stdout);
    let legacy =
        rsa::RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(f.path("legacy.key")).unwrap())
            .unwrap();
    assert_eq!(
        active_kid(&key_list(&app).await),
        thumbprint(&legacy.n().to_bytes_be(), &legacy.e().to_bytes_be())
    );

    // Java keytool PKCS12.
    let out = import(&app, &f.p("keytool.p12"), None, PW).await.ok();
    assert!(out.stdout.contains("1 certificate"), "{}", out.stdout);
    let list = key_list(&app).await;
    let active = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["state"] == "active")
        .unwrap();
    assert_eq!(active["source"], "imported");
    assert_eq!(list.as_array().unwrap().len(), 4);

    // Importing the same key again is refused (it is already in the store).
    let again = import(&app, &f.p("keytool.p12"), None, PW).await;
    assert_eq!(again.status, 1);
    assert!(
        again.stderr.contains("already in the key store"),
        "{}",
        again.stderr
    );
}

fn assert_private_key_absent(data_dir: &Path, f: &Fixtures, key: &rsa::RsaPrivateKey) {
    let mut blobs = Vec::new();
    for entry in std::fs::read_dir(data_dir).unwrap() {
        blobs.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let all: Vec<u8> = blobs.concat();
    let contains = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    // Positive control: the public modulus *is* there (public_jwk), so the scan sees the data.
    assert!(
        contains(URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()).as_bytes()),
        "scan does not see the key rows"
    );
    let pkcs8 = std::fs::read(f.path("leaf.pkcs8.der")).unwrap();
    let pkcs1 = std::fs::read(f.path("leaf.pkcs1.der")).unwrap();
    let d = key.d().to_bytes_be();
    let p = key.primes()[0].to_bytes_be();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("PKCS#8 DER", pkcs8[..64].to_vec()),
        ("PKCS#8 DER tail", pkcs8[pkcs8.len() - 64..].to_vec()),
        ("PKCS#1 DER", pkcs1[pkcs1.len() - 64..].to_vec()),
        ("d", d[..32].to_vec()),
        ("p", p[..32].to_vec()),
        (
            "d base64url",
            URL_SAFE_NO_PAD.encode(&d).as_bytes()[..40].to_vec(),
        ),
        (
            "PKCS#8 base64",
            STANDARD.encode(&pkcs8).as_bytes()[40..100].to_vec(),
        ),
        ("PEM marker", b"PRIVATE KEY".to_vec()),
    ];
    for (what, needle) in needles {
        assert!(
            !contains(&needle),
            "private key material ({what}) found in plain text in {}",
            data_dir.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keystores_are_refused_with_their_own_message_and_change_nothing() {
    let f = make_fixtures();
    let app = spawn_app_with(AppOptions::default()).await;
    let before = key_list(&app).await;
    let jwks_before = app.jwks().await;

    let cases: Vec<(&str, Option<String>, &str, &str)> = vec![
        ("two-keys.p12", None, PW, "holds 2 private keys"),
        ("ec.p12", None, PW, "is EC (ECDSA)"),
        (
            "aes.p12",
            None,
            "not-the-password",
            "wrong keystore password",
        ),
        (
            "legacy.p12",
            None,
            "not-the-password",
            "wrong keystore password",
        ),
        ("truncated.p12", None, PW, "truncated"),
        ("nokey.p12", None, PW, "holds no private key"),
        ("small.p12", None, PW, "at least 2048"),
        ("nomac.p12", None, "any-password", "no integrity MAC"),
        (
            "aes.p12",
            Some(f.p("empty-pw.txt")),
            "",
            "password is empty",
        ),
        ("does-not-exist.p12", None, PW, "does-not-exist.p12"),
    ];
    for (file, pw_file, pw, message) in cases {
        let out = import(&app, &f.p(file), pw_file.as_deref(), pw).await;
        assert_eq!(out.status, 1, "{file} should be refused: {}", out.stdout);
        assert!(
            out.stderr.contains(message),
            "{file}: expected `{message}` in: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains(PW),
            "the password must never be printed"
        );
        assert_eq!(key_list(&app).await, before, "{file}: keys changed");
    }
    // The password variable must exist.
    let out = app
        .cli(
            &[
                "keys",
                "import",
                "--keystore",
                &f.p("aes.p12"),
                "--password-env",
                "NO_SUCH_VAR",
            ],
            &[],
        )
        .await;
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.contains("NO_SUCH_VAR is not set"),
        "{}",
        out.stderr
    );
    // There is no way to pass the password itself on the command line.
    let out = app
        .cli(
            &[
                "keys",
                "import",
                "--keystore",
                &f.p("aes.p12"),
                "--password",
                PW,
            ],
            &[],
        )
        .await;
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert_eq!(key_list(&app).await, before);
    assert_eq!(app.jwks().await, jwks_before);
}
