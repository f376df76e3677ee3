//! `/metrics`: the Prometheus text format. Served on `metrics.listen` (its own listener, nothing else
//! there) and, with `metrics.on_main_listener`, on the main one. The gauges that describe state (signing
//! keys, the database pool) are set from the key ring and the pool when it is read.

use actix_web::{HttpResponse, web};

use super::AppState;

pub async fn metrics(st: web::Data<AppState>) -> HttpResponse {
    let now = st.clock.now();
    if let Some(keys) = st.keys.key_states().await {
        for state in ["next", "active", "published", "retired"] {
            crate::measure::signing_keys(state, keys.iter().filter(|k| k.state == state).count());
        }
        if let Some(active) = keys.iter().find(|k| k.state == "active") {
            crate::measure::active_key_age(now - active.created_at);
        }
    }
    let (size, idle) = (st.pool.size() as usize, st.pool.num_idle());
    crate::measure::db_pool(
        idle,
        size.saturating_sub(idle),
        st.pool.options().get_max_connections(),
    );
    match crate::measure::render() {
        Some(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(text),
        None => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("no metrics recorder in this process\n"),
    }
}

/// The app of the metrics listener: `/metrics` and nothing else.
pub fn only_metrics(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .default_service(web::to(HttpResponse::NotFound));
}
