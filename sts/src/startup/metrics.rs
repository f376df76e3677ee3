//! The `metrics.listen` listener: a one-worker HTTP/1.1 server that answers `/metrics` and nothing else
//! (404), so a Prometheus port can be opened to the monitoring network without exposing the STS itself.

use actix_web::dev::Server;
use actix_web::{App, HttpServer};

use super::StartError;
use crate::web::{self, AppState};

pub(super) fn serve(
    addr: std::net::SocketAddr,
    state: actix_web::web::Data<AppState>,
) -> Result<Server, StartError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Listen { addr, source })?;
    tracing::info!(listen = %addr, "metrics at /metrics");
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(web::metrics::only_metrics)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .client_request_timeout(std::time::Duration::from_secs(5))
    .listen(listener)
    .map_err(|source| StartError::Listen { addr, source })?
    .run())
}
