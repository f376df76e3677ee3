//! Class: connections that hold the server without finishing a request. A client that never sends a byte,
//! sends its request head slowly, or its body one byte every 500 ms is disconnected within the configured
//! timeout (+1.5 s: the error answer, then the close); with the per-worker connection cap reached, further
//! connections wait and are served once the silent ones are gone.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sts_tests::{AppOptions, spawn_app_with};

const CONFIG: &str = "[server]\nrequest_header_timeout_ms = 1500\nrequest_body_timeout_ms = 2000\nkeep_alive_seconds = 2\nworkers = 1\nmax_connections_per_worker = 16\n";

/// Seconds until the server closes `s` (read returns 0 or an error), writing `drip` bytes one per 500 ms.
fn time_to_close(mut s: TcpStream, drip: &[u8], limit: Duration) -> Duration {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut drip = drip.iter();
    let mut buf = [0u8; 4096];
    loop {
        assert!(started.elapsed() < limit, "still open after {:?}", started.elapsed());
        if let Some(b) = drip.next()
            && s.write_all(&[*b]).is_err()
        {
            return started.elapsed();
        }
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {} // an answer (e.g. 408/400); keep reading until the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
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
    eprintln!("closed after: silent {:?}, slow head {:?}, slow body {:?}", results.0, results.1, results.2);
    assert!(results.0 < Duration::from_millis(2500), "silent: {:?}", results.0);
    assert!(results.1 < Duration::from_millis(2500), "slow head: {:?}", results.1);
    assert!(results.2 < Duration::from_millis(3500), "slow body: {:?}", results.2);
    // The server still answers.
    assert_eq!(app.get("/health").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_the_server_recovers() {
    let app = spawn_app_with(AppOptions::default().config(CONFIG)).await;
    let addr = format!("127.0.0.1:{}", app.port);
    // Fill the cap with silent connections.
    let silent: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(&addr).unwrap()).collect();
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
    assert!(waited > Duration::from_millis(500), "the cap did not hold: {waited:?}");
    assert!(waited < Duration::from_millis(4000), "not served after the timeout: {waited:?}");
    drop(silent);
}
