//! Verifications per second with a warm cache (RS256, RSA 2048), to compare with `openssl speed rsa2048`
//! verify/s. Run: `cargo bench -p sts-client --bench verify`. Results: docs/performance.md.
//! The key set is served once by a one-shot local HTTP server; everything measured is in memory.

use std::io::{Read, Write};
use std::net::TcpListener;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

fn bench_verify(c: &mut Criterion) {
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;
    let pair = KeyPair::generate(KeySize::Rsa2048).expect("key");
    let public = pair.public_key();
    let (n, e) = {
        let comps: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>> = public.into();
        (b64(&comps.n), b64(&comps.e))
    };
    let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": n, "e": e}]}).to_string();
    // A one-request server for the key set.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/jwks.json",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                jwks.len(),
                jwks
            );
        }
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64(br#"{"alg":"RS256","typ":"at+jwt","kid":"k1"}"#);
    let claims = b64(serde_json::json!({"iss": "https://sts.example.com", "sub": "alice", "aud": "api", "exp": now + 3600, "iat": now, "roles": ["admin"]}).to_string().as_bytes());
    let input = format!("{header}.{claims}");
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let token = format!("{input}.{}", b64(&sig));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let verifier = sts_client::Verifier::builder("https://sts.example.com")
        .jwks_url(url)
        .trusted_hostnames(["127.0.0.1"])
        .audience("api")
        .build()
        .unwrap();
    rt.block_on(verifier.verify(&token))
        .expect("warm-up verification");
    let mut group = c.benchmark_group("token_verification");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_rs256_rsa2048_warm_cache", |b| {
        b.iter(|| rt.block_on(verifier.verify(&token)).expect("verifies"))
    });
    group.finish();
    assert_eq!(verifier.stats().fetches, 1, "a warm cache makes no request");
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
