//! `/metrics` on its own listener, read by Prometheus's `promtool check metrics` (the real parser and
//! linter): what happened is counted, label values come only from the configuration and fixed sets (a
//! made-up path, method or provider id never becomes a series), and nothing else is served there.

use sts_tests::process;

fn promtool() -> String {
    for p in ["/usr/bin/promtool", "/usr/local/bin/promtool"] {
        if std::path::Path::new(p).is_file() {
            return p.to_string();
        }
    }
    panic!("promtool missing: run scripts/install-deps --peers (Debian package prometheus)");
}

fn lines_with<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(name)).collect()
}

#[tokio::test]
async fn metrics_count_what_happened_and_promtool_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let dead = sts_tests::saml_idp::free_port();
    std::fs::write(
        dir.path().join("sts.toml"),
        format!(
            r#"
[[providers]]
id = "corp"
type = "oidc"
issuer = "http://127.0.0.1:{dead}"
client_id = "sts"
client_secret_env = "CORP_SECRET"

[[clients]]
id = "machine"
type = "confidential"
grant_types = ["client_credentials"]
"#
        ),
    )
    .unwrap();
    let metrics_port = sts_tests::saml_idp::free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let config = dir.path().join("sts.toml").display().to_string();
    let server = process::start(
        dir.path(),
        &[
            ("STS_CONFIG", config.as_str()),
            ("CORP_SECRET", "x"),
            ("STS_METRICS_LISTEN", metrics_addr.as_str()),
        ],
    )
    .await;
    let secret = sts_tests::run_cli(
        dir.path(),
        &server.env,
        &["clients", "secret", "machine"],
        &[],
    )
    .await
    .ok()
    .stdout
    .trim()
    .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(5500)).await; // the registry reloads the secret
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let r = http
            .post(format!("{}/sso/token", server.address))
            .basic_auth("machine", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Hostile label candidates: a made-up path, an extension method, a made-up provider id.
    http.get(format!("{}/no/such/path-4f7c2a", server.address))
        .send()
        .await
        .unwrap();
    http.request(
        reqwest::Method::from_bytes(b"BREW").unwrap(),
        format!("{}/health", server.address),
    )
    .send()
    .await
    .unwrap();
    http.get(format!(
        "{}/sso/login?provider=made-up-9d1e",
        server.address
    ))
    .send()
    .await
    .unwrap();
    // A real provider whose issuer does not answer: an upstream error.
    http.get(format!("{}/sso/login?provider=corp", server.address))
        .send()
        .await
        .unwrap();

    // Not on the main listener (metrics.on_main_listener is off), and only /metrics on its own.
    let main = http
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    let other = http
        .get(format!("http://{metrics_addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    let res = http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        res.headers()
    );
    let text = res.text().await.unwrap();

    // promtool parses and lints it.
    let out = sts_tests::run_with_stdin(
        std::process::Command::new(promtool()).args(["check", "metrics"]),
        text.as_bytes(),
    );
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let tokens = lines_with(&text, "sts_tokens_issued_total{");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(
        tokens[0].contains("grant=\"client_credentials\"")
            && tokens[0].contains("client=\"machine\"")
    );
    assert!(tokens[0].ends_with(" 3"), "{tokens:?}");
    let requests = lines_with(&text, "sts_http_requests_total{");
    assert!(
        requests.iter().any(|l| l.contains("route=\"/sso/token\"")
            && l.contains("method=\"POST\"")
            && l.contains("status=\"200\"")
            && l.ends_with(" 3")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains("route=\"unmatched\"") && l.contains("status=\"404\"")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|l| l.contains("method=\"other\"")),
        "{requests:?}"
    );
    assert!(lines_with(&text, "sts_http_request_duration_seconds_bucket{").len() > 10);
    assert!(
        !text.contains("4f7c2a") && !text.contains("BREW") && !text.contains("made-up-9d1e"),
        "no request data in labels"
    );
    let logins = lines_with(&text, "sts_logins_total{");
    assert!(
        logins.iter().any(|l| l.contains("provider=\"-\"")),
        "a made-up provider counts as `-`: {logins:?}"
    );
    let upstream = lines_with(&text, "sts_upstream_errors_total{");
    assert!(
        upstream
            .iter()
            .any(|l| l.contains("provider=\"corp\"") && l.contains("call=\"discovery\"")),
        "{upstream:?}\n{text}"
    );
    assert!(
        text.contains("sts_signing_keys{state=\"active\"} 1"),
        "{text}"
    );
    assert!(lines_with(&text, "sts_active_key_age_seconds ").len() == 1);
    assert!(lines_with(&text, "sts_db_connections_max ").len() == 1);
    assert!(text.contains("# HELP sts_logins_total"));
}
