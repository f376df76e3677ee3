//! The server on its own: endpoints and headers, JWKS shape, restart and master-key behaviour, config
//! errors, defaults, TLS.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use sts_tests::{AppOptions, run_cli, spawn_app, spawn_app_with, tool, try_spawn_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_is_public_only_cacheable_and_keyed_by_thumbprint() {
    let app = spawn_app().await;
    let res = app.get("/sso/jwks.json").await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    let cache = res.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(
        cache.contains("public") && cache.contains("max-age=300"),
        "{cache}"
    );
    let jwks: serde_json::Value = res.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = keys[0].as_object().unwrap();
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["alg"], "RS256");
    assert_eq!(k["use"], "sig");
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        assert!(
            !k.contains_key(private),
            "private parameter {private} published"
        );
    }
    // kid = RFC 7638 thumbprint, recomputed here.
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        k["e"].as_str().unwrap(),
        k["n"].as_str().unwrap()
    );
    assert_eq!(
        k["kid"].as_str().unwrap(),
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(k["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256,
        "2048-bit default"
    );

    // 304 on If-None-Match (exact, in a list, weak form); 200 on a different tag.
    for inm in [
        etag.clone(),
        format!("\"other\", {etag}"),
        format!("W/{etag}"),
    ] {
        let res = app
            .client
            .get(app.jwks_url())
            .header("If-None-Match", inm.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304, "If-None-Match: {inm}");
        assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
    }
    let res = app
        .client
        .get(app.jwks_url())
        .header("If-None-Match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Same document at the well-known path.
    let wk: serde_json::Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wk, jwks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_health_ready_and_headers() {
    let app = spawn_app().await;
    let d: serde_json::Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], app.address.as_str());
    assert_eq!(d["jwks_uri"], format!("{}/sso/jwks.json", app.address));

    let res = app.get("/health").await;
    assert_eq!(res.status(), 200);
    for h in [
        "x-content-type-options",
        "referrer-policy",
        "content-security-policy",
        "x-request-id",
    ] {
        assert!(res.headers().contains_key(h), "missing {h}");
    }
    let id1 = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let id2 = app.get("/health").await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id1, id2, "one request id per request");

    let ready: serde_json::Value = app.get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["active_kid"], app.jwks_kids().await[0].as_str());

    let res = app.get("/no/such/path").await;
    assert_eq!(res.status(), 404);
    let res = app.client.post(app.jwks_url()).send().await.unwrap();
    assert_eq!(res.status(), 405, "POST on the JWKS is refused");
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    let res = app
        .client
        .head(format!("{}/health", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "load balancers may probe with HEAD");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_keys_and_a_wrong_or_missing_master_key_refuses_to_start() {
    let app = spawn_app().await;
    let kid = app.jwks_kids().await;
    let dir = app.stop().await;

    // Same database and master key: same kid.
    let app = try_spawn_in(dir, AppOptions::default())
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(app.jwks_kids().await, kid);
    let dir = app.stop().await;

    // A different master key: refused, never a silent new key.
    let key_file = dir.path().join("keys/master.key");
    let original = std::fs::read(&key_file).unwrap();
    std::fs::write(&key_file, format!("{}\n", STANDARD.encode([42u8; 32]))).unwrap();
    let (dir, err) = match try_spawn_in(dir, AppOptions::default()).await {
        Ok(_) => panic!("started with the wrong master key"),
        Err(pair) => pair,
    };
    assert!(err.to_string().contains("wrong master key"), "{err:#}");

    // The real binary says the same and exits non-zero.
    let mut env = std::collections::BTreeMap::new();
    env.insert("STS_LISTEN".to_string(), "127.0.0.1:0".to_string());
    env.insert(
        "STS_DATABASE_URL".into(),
        format!("sqlite://{}/data/sts.db", dir.path().display()),
    );
    env.insert("STS_MASTER_KEY_FILE".into(), key_file.display().to_string());
    let out = run_cli(dir.path(), &env, &["serve"], &[]).await;
    assert_ne!(out.status, 0);
    assert!(out.stderr.contains("wrong master key"), "{}", out.stderr);

    // Missing master key file with keys in the database: refused, and no new key file appears.
    std::fs::remove_file(&key_file).unwrap();
    let out = run_cli(dir.path(), &env, &["keys", "list"], &[]).await;
    assert_ne!(out.status, 0);
    assert!(
        out.stderr.contains("master key was not found"),
        "{}",
        out.stderr
    );
    assert!(!key_file.exists(), "a replacement master key was created");

    // The right key given inline (STS_MASTER_KEY) works, and the key is unchanged.
    let inline = String::from_utf8(original).unwrap();
    env.insert("STS_MASTER_KEY".into(), inline.trim().to_string());
    let out = run_cli(dir.path(), &env, &["keys", "list", "--json"], &[])
        .await
        .ok();
    assert!(out.stdout.contains(&kid[0]), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_defaults_create_database_and_private_master_key_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let env = std::collections::BTreeMap::new();
    let out = run_cli(dir.path(), &env, &["token", "issue", "--sub", "eve"], &[])
        .await
        .ok();
    assert_eq!(out.stdout.trim().split('.').count(), 3, "a compact JWS");
    assert!(dir.path().join("data/sts.db").is_file());
    let key = dir.path().join("keys/master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(out.stdout.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(out.stdout.trim().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "http://127.0.0.1:19090");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600,
        "10 minute default"
    );
    for c in ["sub", "aud", "nbf", "jti", "roles"] {
        assert!(claims.get(c).is_some(), "claim {c} missing: {claims}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.toml");
    let env = std::collections::BTreeMap::new();
    for (text, key) in [
        ("[server]\nlistn = \"127.0.0.1:1\"\n", "listn"),
        (
            "[tokens]\nlifetime_seconds = -5\n",
            "tokens.lifetime_seconds",
        ),
        ("[keys]\nrsa_bits = 1024\n", "keys.rsa_bits"),
    ] {
        std::fs::write(&conf, text).unwrap();
        let out = run_cli(
            dir.path(),
            &env,
            &["--config", conf.to_str().unwrap(), "keys", "list"],
            &[],
        )
        .await;
        assert_eq!(out.status, 2, "{text}");
        assert!(out.stderr.contains(key), "{text}: {}", out.stderr);
    }
    let out = run_cli(
        dir.path(),
        &env,
        &["keys", "list"],
        &[("STS_TOKEN_LIFE", "5")],
    )
    .await;
    assert_eq!(out.status, 2);
    assert!(out.stderr.contains("STS_TOKEN_LIFE"), "{}", out.stderr);
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_pem_or_pkcs12() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    // A test CA and a server certificate for 127.0.0.1 signed by it.
    tool(
        "openssl",
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
            "/CN=Test TLS CA",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
        d,
    );
    tool(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        d,
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    tool(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        d,
    );
    tool(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-inkey",
            "tls.key",
            "-in",
            "tls.pem",
            "-certfile",
            "ca.pem",
            "-out",
            "tls.p12",
            "-passout",
            "pass:tls-pw",
        ],
        d,
    );
    let root = reqwest::Certificate::from_pem(&std::fs::read(d.join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();

    let variants = [
        AppOptions::default()
            .with("STS_TLS_CERT_FILE", d.join("tls.pem").display().to_string())
            .with("STS_TLS_KEY_FILE", d.join("tls.key").display().to_string()),
        AppOptions::default()
            .with(
                "STS_TLS_PKCS12_FILE",
                d.join("tls.p12").display().to_string(),
            )
            .with("STS_TLS_PKCS12_PASSWORD", "tls-pw"),
    ];
    for opts in variants {
        let app = spawn_app_with(opts).await;
        assert!(app.address.starts_with("https://"));
        let res = client
            .get(format!("{}/health", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().contains_key("strict-transport-security"));
        let d: serde_json::Value = client
            .get(format!("{}/.well-known/openid-configuration", app.address))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(d["jwks_uri"], format!("{}/sso/jwks.json", app.address));
        // Plain HTTP on the TLS port does not get an answer.
        assert!(
            app.client
                .get(format!("http://127.0.0.1:{}/health", app.port))
                .send()
                .await
                .map(|r| !r.status().is_success())
                .unwrap_or(true)
        );
        app.stop().await;
    }
}

/// Class: commands that only read, run where there is no database (a wrong working directory, a wrong
/// `--config`, a typo in `database.url`). They must not create an empty database (or a master key) and
/// must say which path they looked for; `-v` and `sts serve` name the config file, database and master key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_never_create_a_database_and_every_command_can_name_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let db = root.join("data/sts.db");
    let master = root.join("keys/master.key");
    let env = std::collections::BTreeMap::new();
    for args in [
        &["-v", "export"][..],
        &["-v", "keys", "list"],
        &["clients", "list", "--verbose"],
    ] {
        let out = run_cli(dir.path(), &env, args, &[]).await;
        assert_ne!(out.status, 0, "{args:?} succeeded without a database");
        assert!(
            out.stderr
                .contains(&format!("no database at {}", db.display())),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("config file: none"), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!("database: {}", db.display())),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains(&format!("master key: {}", master.display())),
            "{}",
            out.stderr
        );
        assert!(
            !root.join("data").exists(),
            "{args:?} created the database directory"
        );
        assert!(!master.exists(), "{args:?} created a master key");
    }
    // Without -v, commands print nothing about their files.
    let out = run_cli(dir.path(), &env, &["keys", "list"], &[]).await;
    assert!(!out.stderr.contains("config file:"), "{}", out.stderr);
    // A command that writes creates them; then the read-only ones work.
    run_cli(dir.path(), &env, &["token", "issue", "--sub", "eve"], &[])
        .await
        .ok();
    assert!(db.is_file() && master.is_file());
    for args in [&["export"][..], &["keys", "list"], &["clients", "list"]] {
        run_cli(dir.path(), &env, args, &[]).await.ok();
    }
    // A config file given with --config is named.
    std::fs::write(root.join("my.toml"), "[tokens]\nlifetime_seconds = 300\n").unwrap();
    let out = run_cli(
        dir.path(),
        &env,
        &["--config", "my.toml", "-v", "keys", "list"],
        &[],
    )
    .await
    .ok();
    assert!(
        out.stderr
            .contains(&format!("config file: {}", root.join("my.toml").display())),
        "{}",
        out.stderr
    );
    // `sts serve` logs them at start.
    let server = sts_tests::process::start(dir.path(), &[]).await;
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("configuration"))
        .unwrap_or_else(|| panic!("no configuration line: {log}"));
    assert!(line.contains("config_file=none"), "{line}");
    // (the test harness names them by the temporary directory's path)
    let db = dir.path().join("data/sts.db");
    let master = dir.path().join("keys/master.key");
    assert!(
        line.contains(&format!("database={}", db.display())),
        "{line}"
    );
    assert!(
        line.contains(&format!("master_key={}", master.display())),
        "{line}"
    );
}
