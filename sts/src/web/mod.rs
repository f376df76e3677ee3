//! HTTP surface: routes, a request id and access log per request, and security headers.
//! Only paths are logged, never query strings or bodies (they can carry codes and tokens).

pub mod client_addr;
pub mod conn;
pub mod metrics;
pub mod oauth;
pub mod sso;
mod wellknown;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};
use std::future::Future;

use futures_util::FutureExt;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::keys::KeyRing;
use crate::providers::Registry;
use crate::store::Pool;
use crate::tokens::TokenIssuer;

/// Shared state for handlers.
pub struct AppState {
    pub keys: Arc<KeyRing>,
    pub issuer: String,
    pub jwks_uri: String,
    pub pool: Pool,
    pub providers: Arc<Registry>,
    pub clients: Arc<crate::oauth::clients::ClientRegistry>,
    pub tokens: Arc<TokenIssuer>,
    pub clock: SharedClock,
    pub web: WebSettings,
    /// Set at SIGTERM/SIGINT: `/ready` answers 503 while the server drains.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// Browser-facing settings derived from the configuration.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub secure_cookies: bool,
    /// `server.echo`: `/sso/echo` answers.
    pub echo: bool,
    /// Lifetimes and callback URLs of the login flow (the domain's).
    pub login: crate::sso::login::LoginPolicy,
    /// Lifetimes of the device authorization grant.
    pub device: crate::oauth::device::DevicePolicy,
}

/// Mount every route on an actix `App`. Each path answers GET and HEAD; other methods get 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    routes_with(cfg, false)
}

/// [`routes`], with `/metrics` when `metrics.on_main_listener` is set.
pub fn routes_with(cfg: &mut web::ServiceConfig, metrics_here: bool) {
    if metrics_here {
        cfg.service(read_only("/metrics", metrics::metrics));
    }
    cfg.service(read_only("/sso/jwks.json", wellknown::jwks))
        .service(read_only("/.well-known/jwks.json", wellknown::jwks))
        .service(read_only(
            "/.well-known/openid-configuration",
            wellknown::discovery,
        ))
        .service(read_only("/health", wellknown::health))
        .service(read_only("/ready", wellknown::ready))
        .route(
            "/favicon.ico",
            web::get().to(|| async { HttpResponse::NoContent().finish() }),
        )
        .configure(sso::routes)
        .configure(oauth::routes)
        .default_service(web::to(not_found));
}

fn read_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|| async {
            HttpResponse::MethodNotAllowed()
                .insert_header((actix_web::http::header::ALLOW, "GET, HEAD"))
                .json(serde_json::json!({"error": "method_not_allowed"}))
        }))
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"error": "not_found"}))
}

/// Headers every response carries. HSTS only when the public URL is https.
pub fn security_headers(https: bool) -> DefaultHeaders {
    let h = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ));
    if https {
        h.add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        h
    }
}

/// The request body must arrive within `timeout` of the request head (`server.request_body_timeout_ms`):
/// a body sent one byte every few seconds is cut off with an error (400), and the connection closes,
/// since the body was not read to its end. Requests without a body are not wrapped.
pub fn body_deadline<S, B>(
    mut req: actix_web::dev::ServiceRequest,
    srv: &S,
    timeout: std::time::Duration,
) -> S::Future
where
    S: Service<
            actix_web::dev::ServiceRequest,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        >,
{
    let has_body = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req
            .headers()
            .contains_key(actix_web::http::header::TRANSFER_ENCODING);
    if has_body {
        let inner = actix_web::HttpMessage::take_payload(&mut req);
        let stream = DeadlineStream {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            expired: false,
        };
        req.set_payload(actix_web::dev::Payload::Stream {
            payload: Box::pin(stream),
        });
    }
    srv.call(req)
}

struct DeadlineStream {
    inner: actix_web::dev::Payload,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl futures_util::Stream for DeadlineStream {
    type Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.expired {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(actix_web::error::PayloadError::Io(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                ),
            ))));
        }
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Wrap a service so each request gets an id (span field and `X-Request-Id` header) and one access-log line.
pub fn request_span<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
    trusted_proxies: &[ipnet::IpNet],
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<
            actix_web::dev::ServiceRequest,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    S::Future: 'static,
{
    let client = client_of(&req, trusted_proxies);
    if let Some(ip) = client {
        actix_web::HttpMessage::extensions_mut(&req).insert(admin_ui::ClientAddr(ip));
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("request", id = %id, method = %req.method(), path = ?req.path(),
        client = %client.map(|c| c.to_string()).unwrap_or_default());
    let start = Instant::now();
    // A fixed set of method names: an extension method must not become a new series.
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let fut = {
        let _enter = span.enter();
        srv.call(req)
    };
    async move {
        let mut res = fut.await?;
        let elapsed = start.elapsed();
        tracing::info!(
            status = res.status().as_u16(),
            ms = elapsed.as_millis() as u64,
            "request"
        );
        // The matched route pattern (`/admin/api/v1/providers/{id}`), never the path itself.
        let route = res.request().match_pattern();
        crate::measure::http_request(
            route.as_deref().unwrap_or("unmatched"),
            method,
            res.status().as_u16(),
            elapsed.as_secs_f64(),
        );
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), v);
        }
        Ok(res)
    }
    .instrument(span)
    .boxed_local()
}

/// The client's address: the TCP peer, or behind a trusted proxy what the proxies say
/// ([`client_addr::resolve`]).
fn client_of(
    req: &actix_web::dev::ServiceRequest,
    trusted: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    if trusted.is_empty() {
        // No proxy is trusted: the headers are not even read (every request passes here).
        return Some(client_addr::resolve(peer, &[], &[], trusted));
    }
    let values = |name: &str| -> Vec<&str> {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    Some(client_addr::resolve(
        peer,
        &values("forwarded"),
        &values("x-forwarded-for"),
        trusted,
    ))
}
