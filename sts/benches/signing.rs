//! Token signing throughput (RS256 through aws-lc-rs), to compare with `openssl speed rsa2048`.
//! Run: `cargo bench -p sts --bench signing`. Results: docs/performance.md.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sts::clock;
use sts::keys::{KeyMaterial, KeyRing, Snapshot};
use sts::tokens::{TokenIssuer, TokenKind, TokenRequest};

fn bench_signing(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_signing");
    group.throughput(Throughput::Elements(1));
    for bits in [2048usize, 3072] {
        let material = KeyMaterial::generate(bits).expect("key generation");
        let ring = Arc::new(KeyRing::fixed(Snapshot::single(&material)));
        let issuer = TokenIssuer::new(
            "https://sts.example.com".into(),
            ring,
            clock::system(),
            600,
            3600,
        );
        let req = TokenRequest {
            kind: TokenKind::Access,
            subject: "alice@example.com".into(),
            audience: vec!["https://api.example.com".into()],
            roles: vec!["admin".into(), "developer".into()],
            client_id: "bench".into(),
            idp: None,
            ttl: None,
            extra: Default::default(),
        };
        group.bench_function(format!("issue_rs256_rsa{bits}"), |b| {
            b.iter(|| issuer.issue(&req).expect("signed"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_signing);
criterion_main!(benches);
