//! Prometheus metrics (the `metrics` facade, rendered by `metrics-exporter-prometheus`): one recorder per
//! process, installed by the first server that starts. Every label value comes from the configuration or
//! from a fixed set (route patterns, grant types, reason codes), never from a request, so the number of
//! series stays bounded whatever clients send. What is recorded where:
//!
//! - `sts_http_requests_total{route, method, status}` and `sts_http_request_duration_seconds{route}`: every
//!   request, by its matched route pattern (`unmatched` for a 404), in `web::request_span`;
//! - `sts_logins_total{provider, outcome}`: browser logins, `ok` or the reason code, in `sso::login`;
//! - `sts_tokens_issued_total{grant, client}`: tokens from the token endpoint, in `oauth::grants`;
//! - `sts_upstream_request_duration_seconds{provider, call}` and `sts_upstream_errors_total{provider, call}`:
//!   calls to identity providers (discovery, token exchange, JWKS, userinfo, metadata);
//! - `sts_signing_keys{state}`, `sts_active_key_age_seconds`, `sts_db_connections{state}` and
//!   `sts_db_connections_max`: gauges set when `/metrics` is read.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets (seconds): 1 ms to 30 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Install the process's recorder (once; later calls reuse it). None when another recorder was
/// installed first (then nothing is recorded here, and `/metrics` says so).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// The text exposition format (version 0.0.4), or None without a recorder.
pub fn render() -> Option<String> {
    install().map(PrometheusHandle::render)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "sts_http_requests_total",
        "HTTP requests by matched route, method and status"
    );
    describe_histogram!(
        "sts_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from the request head to the response, by matched route"
    );
    describe_counter!(
        "sts_logins_total",
        "Browser logins by provider and outcome (ok or reason code)"
    );
    describe_counter!(
        "sts_tokens_issued_total",
        "Tokens issued at the token endpoint by grant and client"
    );
    describe_histogram!(
        "sts_upstream_request_duration_seconds",
        metrics::Unit::Seconds,
        "Calls to identity providers by provider and call"
    );
    describe_counter!(
        "sts_upstream_errors_total",
        "Failed calls to identity providers by provider and call"
    );
    describe_gauge!(
        "sts_signing_keys",
        "Signing keys by state (next, active, published, retired)"
    );
    describe_gauge!(
        "sts_active_key_age_seconds",
        "Age of the active signing key"
    );
    describe_gauge!(
        "sts_db_connections",
        "Database pool connections by state (idle, in_use)"
    );
    describe_gauge!("sts_db_connections_max", "Database pool size limit");
}

pub fn http_request(route: &str, method: &str, status: u16, seconds: f64) {
    metrics::counter!("sts_http_requests_total", "route" => route.to_string(), "method" => method.to_string(),
        "status" => status.to_string())
    .increment(1);
    metrics::histogram!("sts_http_request_duration_seconds", "route" => route.to_string())
        .record(seconds);
}

pub fn login(provider: &str, outcome: &str) {
    metrics::counter!("sts_logins_total", "provider" => provider.to_string(), "outcome" => outcome.to_string())
        .increment(1);
}

pub fn token_issued(grant: &str, client: &str) {
    metrics::counter!("sts_tokens_issued_total", "grant" => grant.to_string(), "client" => client.to_string())
        .increment(1);
}

pub fn upstream(provider: &str, call: &'static str, seconds: f64, ok: bool) {
    metrics::histogram!("sts_upstream_request_duration_seconds", "provider" => provider.to_string(), "call" => call)
        .record(seconds);
    if !ok {
        metrics::counter!("sts_upstream_errors_total", "provider" => provider.to_string(), "call" => call)
            .increment(1);
    }
}

pub fn signing_keys(state: &'static str, count: usize) {
    metrics::gauge!("sts_signing_keys", "state" => state).set(count as f64);
}

pub fn active_key_age(seconds: i64) {
    metrics::gauge!("sts_active_key_age_seconds").set(seconds as f64);
}

pub fn db_pool(idle: usize, in_use: usize, max: u32) {
    metrics::gauge!("sts_db_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("sts_db_connections", "state" => "in_use").set(in_use as f64);
    metrics::gauge!("sts_db_connections_max").set(f64::from(max));
}
