//! The configuration as serde reads it (file and `STS_*` variables merged into one TOML table), with the
//! built-in defaults; `deny_unknown_fields` everywhere, so a misspelt key is refused, naming it.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) database: RawDatabase,
    pub(super) keys: RawKeys,
    pub(super) tokens: RawTokens,
    pub(super) jwks: RawJwks,
    pub(super) log: RawLog,
    pub(super) sessions: RawSessions,
    pub(super) providers: Vec<toml::Table>,
    pub(super) clients: Vec<toml::Table>,
    pub(super) admin: RawAdmin,
    pub(super) metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
    pub(super) on_main_listener: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAdmin {
    pub(super) sso_roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSessions {
    pub(super) idle_timeout_seconds: i64,
    pub(super) absolute_timeout_seconds: i64,
    pub(super) login_flow_ttl_seconds: i64,
    pub(super) device_code_lifetime_seconds: i64,
    pub(super) device_poll_interval_seconds: i64,
}
impl Default for RawSessions {
    fn default() -> Self {
        Self {
            idle_timeout_seconds: 1800,
            absolute_timeout_seconds: 28_800,
            login_flow_ttl_seconds: 600,
            device_code_lifetime_seconds: 600,
            device_poll_interval_seconds: 5,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) workers: Option<i64>,
    pub(super) request_header_timeout_ms: Option<i64>,
    pub(super) request_body_timeout_ms: Option<i64>,
    pub(super) keep_alive_seconds: Option<i64>,
    pub(super) max_connections_per_worker: Option<i64>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) shutdown_grace_seconds: Option<i64>,
    pub(super) echo: bool,
    pub(super) tls: RawTls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTls {
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) pkcs12_file: Option<String>,
    pub(super) pkcs12_password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDatabase {
    pub(super) url: String,
    pub(super) max_connections: i64,
    pub(super) busy_timeout_ms: i64,
}
impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: "sqlite://data/sts.db".into(),
            max_connections: 8,
            busy_timeout_ms: 5000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawKeys {
    pub(super) master_key_file: String,
    pub(super) algorithm: String,
    pub(super) rsa_bits: i64,
    pub(super) reload_interval_seconds: i64,
    pub(super) rotate_after_days: i64,
}
impl Default for RawKeys {
    fn default() -> Self {
        Self {
            master_key_file: "keys/master.key".into(),
            algorithm: "RS256".into(),
            rsa_bits: 2048,
            reload_interval_seconds: 5,
            rotate_after_days: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTokens {
    pub(super) lifetime_seconds: i64,
    pub(super) max_lifetime_seconds: i64,
    pub(super) leeway_seconds: i64,
}
impl Default for RawTokens {
    fn default() -> Self {
        Self {
            lifetime_seconds: 600,
            max_lifetime_seconds: 3600,
            leeway_seconds: 60,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawJwks {
    pub(super) max_age_seconds: i64,
}
impl Default for RawJwks {
    fn default() -> Self {
        Self {
            max_age_seconds: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    pub(super) level: String,
    pub(super) format: String,
}
impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}
