//! Logging: human-readable by default, JSON with `log.format = "json"`; filter from `log.level` / `STS_LOG`.
//! Secrets never reach the log: secret types print `<redacted>` and the HTTP layer logs paths only.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Install the global subscriber (a second call is a no-op, which tests rely on).
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
