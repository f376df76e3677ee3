//! What an operator sees: every line on stderr is a log event (libxmlsec1 included), `/ready` turns 503
//! while the database cannot be written (a full disk), and start-up on a full or read-only disk says so,
//! naming the file, each cause once. Measured on the real `sts serve` binary; the disk is a real tmpfs
//! mounted by the test (it needs root, as the suite has: a failed mount fails the test).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sts_tests::process;

/// A tmpfs of `size` mounted on `dir`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs to fill a real disk (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Write zeros into `name` until the disk is full.
    fn fill(&self, name: &str) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join(name)).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

async fn ready(address: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{address}/ready")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn wait_ready(address: &str, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = ready(address).await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "/ready stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_on_a_full_disk_and_start_up_names_the_file_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("data"), "16m");
    let db = dir.path().join("data/sts.db");
    let server = process::start(dir.path(), &[]).await;
    let body = wait_ready(&server.address, 200).await;
    assert_eq!(body["database"], "ok");
    disk.fill("filler");
    let body = wait_ready(&server.address, 503).await;
    assert_eq!(body["database"], "not_writable", "{body}");
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    wait_ready(&server.address, 200).await;
    let log = server.log();
    assert!(log.contains("not ready"), "the cause is logged: {log}");
    drop(server);

    // Start-up on the full disk: exits, naming the file and the disk.
    disk.fill("filler");
    let env = process::start_env(dir.path());
    let out = sts_tests::run_cli(dir.path(), &env, &["serve"], &[]).await;
    assert_ne!(out.status, 0);
    let err = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains(&db.display().to_string()) && err.contains("disk"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(disk.0.join("filler")).unwrap();

    // A read-only filesystem: exits, naming the file and saying read-only.
    disk.remount("ro");
    let out = sts_tests::run_cli(dir.path(), &env, &["serve"], &[]).await;
    assert_ne!(out.status, 0);
    let err = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        err.contains(&db.display().to_string()) && err.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    disk.remount("rw");

    // No error line repeats its cause (`X: X`).
    for line in [err] {
        let parts: Vec<&str> = line.split(": ").collect();
        for w in parts.windows(2) {
            assert_ne!(w[0], w[1], "a cause repeated: {line}");
        }
    }
}

/// libxmlsec1 reports through our log (target `xmlsec`), never raw on stderr: at start-up with a SAML
/// provider, and when it refuses a forged signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stderr_line_is_a_log_event_including_libxmlsec1() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let out = sts_tests::tool(
        "openssl",
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "c.pem",
            "-days", "2", "-subj", "/CN=idp",
        ],
        p,
    );
    assert!(out.status.success());
    let cert: String = std::fs::read_to_string(p.join("c.pem"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    std::fs::write(
        p.join("idp.xml"),
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("sts.toml"),
        format!(
            "[[providers]]\nid = \"corp\"\ntype = \"saml\"\nidp_metadata_file = \"{}\"\nallow_idp_initiated = true\n",
            p.join("idp.xml").display()
        ),
    )
    .unwrap();
    let config = p.join("sts.toml").display().to_string();
    let server = process::start(
        p,
        &[
            ("STS_CONFIG", config.as_str()),
            ("STS_LOG", "info,xmlsec=debug"),
        ],
    )
    .await;
    // A response whose signature cannot verify (a one-byte digest): xmlsec complains.
    let forged = r##"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="r" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Assertion ID="a" Version="2.0" IssueInstant="2026-01-01T00:00:00Z"><saml:Issuer>https://idp.example.com</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#a"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature></saml:Assertion></samlp:Response>"##;
    use base64::Engine;
    let res = reqwest::Client::new()
        .post(format!("{}/sso/sso-saml/acs", server.address))
        .form(&[(
            "SAMLResponse",
            base64::engine::general_purpose::STANDARD.encode(forged),
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log();
    assert!(
        log.contains("xmlsec"),
        "xmlsec's complaint reached the log: {log}"
    );
    for line in log.lines() {
        assert!(line.starts_with("20"), "a raw line on stderr: {line:?}");
    }
}

/// SIGTERM: `/ready` answers 503 for `server.shutdown_grace_seconds` while requests are still served (a
/// load balancer takes the replica out); then the server stops accepting new connections, a request in
/// flight (its head sent before the signal, its body after the grace period) is still answered, and the
/// process exits 0.
#[tokio::test]
async fn sigterm_turns_readiness_off_first_then_finishes_the_requests_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sts.toml");
    std::fs::write(&config, "[server]\nshutdown_grace_seconds = 2\n").unwrap();
    let config = config.display().to_string();
    let mut server = process::start(dir.path(), &[("STS_CONFIG", config.as_str())]).await;
    let client = reqwest::Client::new();
    let ready = format!("{}/ready", server.address);
    assert_eq!(client.get(&ready).send().await.unwrap().status(), 200);

    let body = b"grant_type=client_credentials&client_id=nobody";
    let mut in_flight = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    in_flight
        .write_all(
            format!(
                "POST /sso/token HTTP/1.1\r\nHost: sts\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let signalled = Instant::now();
    server.terminate();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let draining = client.get(&ready).send().await.unwrap();
    assert_eq!(draining.status(), 503, "readiness during the grace period");
    assert_eq!(
        draining.json::<serde_json::Value>().await.unwrap()["status"],
        "shutting_down"
    );
    assert_eq!(
        client
            .get(format!("{}/health", server.address))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "requests are still served during the grace period"
    );
    assert!(server.wait_exit(Duration::from_millis(100)).await.is_none());

    // After the grace period: no new connections; the request in flight is answered.
    tokio::time::sleep(Duration::from_millis(3500).saturating_sub(signalled.elapsed())).await;
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        reqwest::Client::new().get(&ready).send(),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a new connection after the grace period is not served: {refused:?}"
    );
    in_flight.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), in_flight.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 401") || answer.starts_with("HTTP/1.1 400"),
        "the request in flight is answered: {answer:?}"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the process exits after draining");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert!(server.log().contains("shutting down"), "{}", server.log());
}
