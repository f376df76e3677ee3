//! Class: connections that hold the server without finishing a request. A client that never sends a byte,
//! sends its request head slowly, or its body one byte every 500 ms is disconnected within the configured
//! timeout (+1.5 s: the error answer, then the close); with the per-worker connection cap reached, further
//! connections wait and are served once the silent ones are gone. The same holds for every request on a
//! kept-alive connection, not only the first: a second request head sent slowly, or left half-sent in the
//! packet of the first request (pipelined), is cut off within the header timeout too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sts_tests::{AppOptions, spawn_app_with};

const CONFIG: &str = "[server]\nrequest_header_timeout_ms = 1500\nrequest_body_timeout_ms = 2000\nkeep_alive_seconds = 2\nworkers = 1\nmax_connections_per_worker = 16\n";

/// Seconds until the server closes `s` (read returns 0 or an error), writing `drip` bytes one per 500 ms.
fn time_to_close(s: TcpStream, drip: &[u8], limit: Duration) -> Duration {
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    drip_until_closed(s, drip, limit)
}

/// Like `time_to_close`, for any stream whose reads time out after 500 ms (a TLS stream included).
fn drip_until_closed<S: Read + Write>(mut s: S, drip: &[u8], limit: Duration) -> Duration {
    let started = Instant::now();
    let mut drip = drip.iter();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            started.elapsed() < limit,
            "still open after {:?}",
            started.elapsed()
        );
        if let Some(b) = drip.next()
            && s.write_all(&[*b]).is_err()
        {
            return started.elapsed();
        }
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {} // an answer (e.g. 408/400); keep reading until the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return started.elapsed(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_are_disconnected_within_the_timeouts() {
    let app = spawn_app_with(AppOptions::default().config(CONFIG)).await;
    let addr = format!("127.0.0.1:{}", app.port);
    let a = addr.clone();
    let results = tokio::task::spawn_blocking(move || {
        let limit = Duration::from_secs(6);
        // Never a byte.
        let silent = time_to_close(TcpStream::connect(&a).unwrap(), b"", limit);
        // A request head one byte every 500 ms (never complete).
        let slow_head = time_to_close(
            TcpStream::connect(&a).unwrap(),
            b"POST /sso/token HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            limit,
        );
        // A complete head, then the body one byte every 500 ms.
        let mut s = TcpStream::connect(&a).unwrap();
        s.write_all(b"POST /sso/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
            .unwrap();
        let slow_body = time_to_close(s, &[b'a'; 100], limit);
        (silent, slow_head, slow_body)
    })
    .await
    .unwrap();
    eprintln!(
        "closed after: silent {:?}, slow head {:?}, slow body {:?}",
        results.0, results.1, results.2
    );
    assert!(
        results.0 < Duration::from_millis(2500),
        "silent: {:?}",
        results.0
    );
    assert!(
        results.1 < Duration::from_millis(2500),
        "slow head: {:?}",
        results.1
    );
    assert!(
        results.2 < Duration::from_millis(3500),
        "slow body: {:?}",
        results.2
    );
    // The server still answers.
    assert_eq!(app.get("/health").await.status(), 200);
}

/// Reads one complete `/health` answer (a small body with Content-Length) from `s`.
fn read_one_answer(s: &mut impl Read) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed before the first answer");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("content-length");
            if got.len() >= end + 4 + len {
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_on_a_kept_alive_connection_has_the_header_timeout() {
    let app = spawn_app_with(AppOptions::default().config(CONFIG)).await;
    let addr = format!("127.0.0.1:{}", app.port);
    let a = addr.clone();
    let results = tokio::task::spawn_blocking(move || {
        let limit = Duration::from_secs(8);
        // A first request answered, then the second head one byte every 500 ms (each byte within the
        // keep-alive time, so only a per-request head deadline ends it).
        let mut s = TcpStream::connect(&a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_one_answer(&mut s);
        let second_slow = time_to_close(s, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa", limit);
        // Three requests answered, then a slow fourth.
        let mut s = TcpStream::connect(&a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..3 {
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            read_one_answer(&mut s);
        }
        let fourth_slow = time_to_close(s, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa", limit);
        // A complete request and the start of a second one in one packet, then silence.
        let mut s = TcpStream::connect(&a).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nX-Half: ").unwrap();
        read_one_answer(&mut s);
        let pipelined_half = time_to_close(s, b"", limit);
        // A request with a body answered, then a slow second head.
        let mut s = TcpStream::connect(&a).unwrap();
        s.write_all(b"POST /sso/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n\r\ngrant_type=password&").unwrap();
        let mut buf = [0u8; 4096];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(s.read(&mut buf).unwrap() > 0, "an answer to the token request");
        std::thread::sleep(Duration::from_millis(200));
        let after_body = time_to_close(s, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa", limit);
        (second_slow, fourth_slow, pipelined_half, after_body)
    })
    .await
    .unwrap();
    eprintln!(
        "closed after: second head slow {:?}, fourth head slow {:?}, pipelined half head {:?}, slow head after a body {:?}",
        results.0, results.1, results.2, results.3
    );
    for (what, took) in [
        ("second", results.0),
        ("fourth", results.1),
        ("pipelined", results.2),
        ("after a body", results.3),
    ] {
        assert!(took < Duration::from_millis(3000), "{what}: {took:?}");
    }
    // A kept-alive connection that sends its requests promptly is not cut: 6 requests over 3 s.
    let c = reqwest::Client::new();
    for _ in 0..6 {
        assert_eq!(
            c.get(format!("{}/health", app.address))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(app.get("/health").await.status(), 200);
}

/// `Expect: 100-continue`: after the interim `100 Continue` the body may take longer than the header
/// timeout (it has the body timeout); the request is answered, and the same connection then serves a next
/// request. Header timeout 1 s, body timeout 6 s; the body is sent a byte every 80 ms (about 3.7 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_after_100_continue_has_the_body_timeout_not_the_header_timeout() {
    let config = "[server]\nrequest_header_timeout_ms = 1000\nrequest_body_timeout_ms = 6000\nkeep_alive_seconds = 5\nworkers = 1\n";
    let app = spawn_app_with(AppOptions::default().config(config)).await;
    let addr = format!("127.0.0.1:{}", app.port);
    let answers = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let body = b"grant_type=client_credentials&client_id=nobody";
        s.write_all(
            format!(
                "POST /sso/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("the interim answer");
        let interim = String::from_utf8_lossy(&buf[..n]).to_string();
        // The body one byte every 80 ms (about 3.7 s, longer than the header timeout).
        for b in body {
            s.write_all(&[*b]).expect("the connection is still open");
            std::thread::sleep(Duration::from_millis(80));
        }
        let n = s.read(&mut buf).expect("the final answer");
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        // The same connection serves a next request.
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_one_answer(&mut s);
        (interim, answer)
    })
    .await
    .unwrap();
    assert!(
        answers.0.starts_with("HTTP/1.1 100 Continue"),
        "{}",
        answers.0
    );
    // An unknown client: refused by the token endpoint, so the body was read and the request answered.
    assert!(answers.1.starts_with("HTTP/1.1 401"), "{}", answers.1);
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_slow_second_head_is_cut_off_too() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("tls.pem"), pem("CERTIFICATE", cert.der())).unwrap();
    std::fs::write(
        dir.path().join("tls.key"),
        pem("PRIVATE KEY", &key.serialize_der()),
    )
    .unwrap();
    let app = spawn_app_with(
        AppOptions::default()
            .config(CONFIG)
            .with(
                "STS_TLS_CERT_FILE",
                dir.path().join("tls.pem").display().to_string(),
            )
            .with(
                "STS_TLS_KEY_FILE",
                dir.path().join("tls.key").display().to_string(),
            ),
    )
    .await;
    assert!(app.address.starts_with("https://"));
    let addr = format!("127.0.0.1:{}", app.port);
    let cert_der = cert.der().clone();
    let (first, slow) = tokio::task::spawn_blocking(move || {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = std::sync::Arc::new(config);
        let tcp = TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let started = Instant::now();
        tls.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_one_answer(&mut tls);
        let first = started.elapsed();
        // Only HTTP/1.1 is served, also to a client that prefers h2.
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        tls.sock
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let slow = drip_until_closed(
            tls,
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            Duration::from_secs(8),
        );
        (first, slow)
    })
    .await
    .unwrap();
    eprintln!("over TLS: first answer after {first:?}, slow second head closed after {slow:?}");
    assert!(
        slow < Duration::from_millis(3000),
        "slow second head over TLS: {slow:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_the_server_recovers() {
    let app = spawn_app_with(AppOptions::default().config(CONFIG)).await;
    let addr = format!("127.0.0.1:{}", app.port);
    // Fill the cap with silent connections.
    let silent: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let res = reqwest::Client::new()
        .get(format!("{}/health", app.address))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("served once the silent connections are closed");
    assert_eq!(res.status(), 200);
    let waited = started.elapsed();
    eprintln!("a request beyond the cap waited {waited:?}");
    assert!(
        waited > Duration::from_millis(500),
        "the cap did not hold: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(4000),
        "not served after the timeout: {waited:?}"
    );
    drop(silent);
}
