//! Configuration: built-in defaults < config file (`--config PATH`, default `conf/sts.toml` when present)
//! < `STS_*` environment variables. Unknown keys (in the file or as `STS_*` variables) and invalid values are
//! refused with a message that names the key. Secrets (master key, TLS keystore password) are only read
//! from the environment or from files, never from the config file itself.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

/// Default config file, used when present and no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "conf/sts.toml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:19090";
pub const DEFAULT_TLS_LISTEN: &str = "127.0.0.1:19443";

/// Environment variables and the config key each one overrides.
/// (name, dotted key, kind). `Secret` variables are not part of the file's key space.
const ENV_KEYS: &[(&str, &str, Kind)] = &[
    ("STS_LISTEN", "server.listen", Kind::Str),
    ("STS_PUBLIC_URL", "server.public_url", Kind::Str),
    ("STS_WORKERS", "server.workers", Kind::Int),
    ("STS_TLS_CERT_FILE", "server.tls.cert_file", Kind::Str),
    ("STS_TLS_KEY_FILE", "server.tls.key_file", Kind::Str),
    ("STS_TLS_PKCS12_FILE", "server.tls.pkcs12_file", Kind::Str),
    (
        "STS_TLS_PKCS12_PASSWORD_FILE",
        "server.tls.pkcs12_password_file",
        Kind::Str,
    ),
    ("STS_DATABASE_URL", "database.url", Kind::Str),
    (
        "STS_DATABASE_MAX_CONNECTIONS",
        "database.max_connections",
        Kind::Int,
    ),
    ("STS_MASTER_KEY_FILE", "keys.master_key_file", Kind::Str),
    ("STS_KEY_SIZE", "keys.rsa_bits", Kind::Int),
    (
        "STS_KEY_RELOAD_INTERVAL",
        "keys.reload_interval_seconds",
        Kind::Int,
    ),
    ("STS_TOKEN_LIFETIME", "tokens.lifetime_seconds", Kind::Int),
    (
        "STS_TOKEN_MAX_LIFETIME",
        "tokens.max_lifetime_seconds",
        Kind::Int,
    ),
    ("STS_CLOCK_SKEW", "tokens.leeway_seconds", Kind::Int),
    ("STS_JWKS_MAX_AGE", "jwks.max_age_seconds", Kind::Int),
    ("STS_LOG", "log.level", Kind::Str),
    ("STS_METRICS_LISTEN", "metrics.listen", Kind::Str),
    ("STS_LOG_FORMAT", "log.format", Kind::Str),
];
/// Variables read directly (secrets, or the config path itself).
const ENV_DIRECT: &[&str] = &["STS_MASTER_KEY", "STS_TLS_PKCS12_PASSWORD", "STS_CONFIG"];

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
}

/// A configuration error that names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("clients: {0}")]
    Client(String),
    #[error("providers: {0}")]
    Provider(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

mod checks;
mod database;
pub use database::{Engine, redact_url};
mod raw;
#[cfg(test)]
mod tests;

pub use checks::strip_newline;
use checks::{read_table, set_path};
use raw::RawConfig;

// ---------------------------------------------------------------- typed layer

/// A secret string: `Debug` never shows it, memory is wiped on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);
impl Secret {
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// Base64 key material from `STS_MASTER_KEY`.
    Inline(Secret),
    /// A file holding the base64 key; created (mode 0600) on first start when the database has no keys.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub enum TlsConfig {
    Pem {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    Pkcs12 {
        file: PathBuf,
        password: Secret,
    },
}

pub use crate::telemetry::LogFormat;

#[derive(Debug, Clone)]
pub struct Config {
    /// The config file that was read, if any.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    /// Public base URL without trailing slash; also the token issuer (`iss`).
    pub public_url: String,
    pub workers: Option<usize>,
    /// From accepting a connection (or the end of the previous request) to the end of the request head:
    /// a client that sends no byte, or its headers slowly, is disconnected after it.
    pub request_header_timeout: Duration,
    /// From the request head to the last byte of its body.
    pub request_body_timeout: Duration,
    /// Idle time allowed between requests on a kept-alive connection (0 = no keep-alive).
    pub keep_alive: Duration,
    /// After SIGTERM or SIGINT: how long `/ready` answers 503 while requests are still served (so a load
    /// balancer takes the replica out), before the server stops accepting and finishes what is in flight.
    pub shutdown_grace: Duration,
    /// `/sso/echo`: show a caller the headers and addresses that reach the STS (secrets redacted), to set
    /// up a trusted gateway. Off by default.
    pub echo: bool,
    /// Open connections per worker; more wait in the listen backlog until one closes.
    pub max_connections_per_worker: usize,
    /// Load balancers and reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the client
    /// (empty: those headers are ignored).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `metrics.listen`: `/metrics` on its own plain-HTTP listener (None: not there).
    pub metrics_listen: Option<SocketAddr>,
    /// `metrics.on_main_listener`: `/metrics` also on the main listener.
    pub metrics_on_main: bool,
    pub tls: Option<TlsConfig>,
    pub database_url: String,
    pub database_max_connections: u32,
    pub database_busy_timeout: Duration,
    pub master_key: MasterKeySource,
    pub rsa_bits: usize,
    pub key_reload_interval: Duration,
    /// `keys.rotate_after_days`: stage a next key when the active one is this old (None: only by hand).
    pub key_rotate_after: Option<Duration>,
    pub token_lifetime: u64,
    pub token_max_lifetime: u64,
    pub leeway: u64,
    pub jwks_max_age: u64,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub session_idle_timeout: u64,
    pub session_absolute_timeout: u64,
    pub login_flow_ttl: u64,
    /// `sessions.device_code_lifetime_seconds`: how long a device code and its user code live.
    pub device_code_lifetime: u64,
    /// `sessions.device_poll_interval_seconds`: the polling interval a device is told first.
    pub device_poll_interval: u64,
    /// `[[providers]]` as written: validated by `providers::settings` (through `crate::declared`), not
    /// here, so that this module depends on nothing above it.
    pub providers: Vec<toml::Table>,
    /// The values of the environment variables that `[[providers]]` name in `client_secret_env`.
    pub provider_secrets: SecretEnv,
    /// `[[clients]]` as written: validated by `oauth::clients` (through `crate::declared`); their secrets
    /// live in the database.
    pub clients: Vec<toml::Table>,
    /// STS roles whose holders may sign in to the admin console through single sign-on (empty: only
    /// administrators created with `sts admin create`).
    pub admin_sso_roles: Vec<String>,
}

impl Config {
    /// Load from the process environment and `path` (or `STS_CONFIG`, or `conf/sts.toml` when present).
    /// `extra_allowed_env` names variables the caller reads itself (e.g. a `--password-env` variable).
    pub fn load(path: Option<&Path>, extra_allowed_env: &[&str]) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self::load_from(path, &env, extra_allowed_env)
    }

    /// Same as [`Config::load`] with an explicit environment (tests).
    pub fn load_from(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
        extra_allowed_env: &[&str],
    ) -> Result<Self, ConfigError> {
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| env.get("STS_CONFIG").map(PathBuf::from));
        let (source, mut table) = match explicit {
            Some(p) => {
                let t = read_table(&p)?;
                (Some(p), t)
            }
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                let p = PathBuf::from(DEFAULT_CONFIG_FILE);
                let t = read_table(&p)?;
                (Some(p), t)
            }
            None => (None, toml::Table::new()),
        };
        // Variables named by the providers' `*_env` keys (`client_secret_env`, `bind_password_env`) are
        // the operator's to name.
        let secret_vars: Vec<String> = table
            .get("providers")
            .and_then(toml::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(toml::Value::as_table)
                    .flat_map(secret_var_names)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for name in env.keys().filter(|k| k.starts_with("STS_")) {
            let known = ENV_KEYS.iter().any(|(n, _, _)| n == name)
                || ENV_DIRECT.contains(&name.as_str())
                || extra_allowed_env.contains(&name.as_str())
                || secret_vars.contains(name);
            if !known {
                return Err(ConfigError::Env {
                    name: name.clone(),
                    message: "unknown STS_* variable (see docs/operator-guide.md for the list)"
                        .into(),
                });
            }
        }
        for (name, key, kind) in ENV_KEYS {
            if let Some(value) = env.get(*name) {
                let v = match kind {
                    Kind::Str => toml::Value::String(value.clone()),
                    Kind::Int => toml::Value::Integer(value.trim().parse().map_err(|_| {
                        ConfigError::Env {
                            name: (*name).into(),
                            message: format!("`{value}` is not an integer (sets `{key}`)"),
                        }
                    })?),
                };
                set_path(&mut table, key, v);
            }
        }
        let raw: RawConfig = RawConfig::deserialize(table).map_err(|e| ConfigError::Parse {
            path: source
                .clone()
                .unwrap_or_else(|| PathBuf::from("<environment>")),
            message: e.to_string().trim().to_string(),
        })?;
        Self::validate(raw, source, env)
    }

    /// How long a key that stopped signing stays in the JWKS: the longest token it may have signed, plus
    /// clock skew, plus one reload interval (a running server may sign with it until it notices the change).
    pub fn publish_grace_seconds(&self) -> i64 {
        (self.token_max_lifetime + self.leeway + self.key_reload_interval.as_secs()) as i64
    }

    /// How long a staged `next` key is published before it may sign: a verifier that fetched the JWKS
    /// just before the key appeared on the slowest replica (one reload interval) keeps that copy for
    /// `jwks.max_age_seconds`; the leeway covers clocks.
    pub fn next_key_delay_seconds(&self) -> i64 {
        (self.jwks_max_age + self.key_reload_interval.as_secs() + self.leeway) as i64
    }

    /// A configuration for tests and benchmarks: defaults, with the given database and master key file.
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "test and benchmark helper; the defaults and the address are constants"
    )]
    pub fn for_tests(database_url: String, master_key_file: PathBuf) -> Self {
        let raw = RawConfig::default();
        let mut c = Self::validate(raw, None, &BTreeMap::new()).expect("defaults are valid");
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.database_url = database_url;
        c.master_key = MasterKeySource::File(master_key_file);
        c
    }

    /// Redirect URI registered at OIDC providers.
    pub fn oidc_redirect_uri(&self) -> String {
        format!("{}/sso/sso-openid/openid-login", self.public_url)
    }

    /// SAML SP metadata URL (also the default SP entity ID).
    pub fn saml_metadata_url(&self) -> String {
        format!("{}/sso/sso-saml/metadata", self.public_url)
    }

    /// SAML assertion consumer service (HTTP-POST).
    pub fn saml_acs_url(&self) -> String {
        format!("{}/sso/sso-saml/acs", self.public_url)
    }

    /// Redirect URI registered at plain OAuth 2.0 providers.
    pub fn oauth_redirect_uri(&self) -> String {
        format!("{}/sso/sso-oauth/oauth-login", self.public_url)
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/sso/jwks.json", self.public_url)
    }

    /// This configuration on another database (`sts migrate --from/--to`); the URL is checked like
    /// `database.url`.
    pub fn with_database_url(&self, url: &str) -> Result<Config, ConfigError> {
        let url = url.trim();
        database::check_url(url)?;
        let mut c = self.clone();
        c.database_url = url.to_string();
        Ok(c)
    }

    /// Which storage engine `database.url` chooses (`postgres://` or `postgresql://`: PostgreSQL).
    pub fn database_engine(&self) -> Engine {
        Engine::of_url(&self.database_url)
    }

    /// The SQLite file `database.url` names (as configured, relative to the working directory), or
    /// `None` for an in-memory database or PostgreSQL.
    pub fn database_file(&self) -> Option<PathBuf> {
        if self.database_engine() != Engine::Sqlite {
            return None;
        }
        let path = self.database_path();
        if path.starts_with(":memory:") || path.contains("mode=memory") {
            return None;
        }
        Some(PathBuf::from(path.split('?').next().unwrap_or(path)))
    }

    /// The part of `database.url` after `sqlite://` (path and options).
    pub fn database_path(&self) -> &str {
        let url = &self.database_url;
        url.strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url)
    }

    /// Where this configuration came from and points to, for the start-up log and `sts -v`: the config
    /// file read (or `none`), the database file (absolute) and the master key's location. No secrets.
    pub fn locations(&self) -> Locations {
        let absolute = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        Locations {
            config_file: self
                .source
                .as_deref()
                .map(absolute)
                .unwrap_or_else(|| "none".to_string()),
            database: match (self.database_engine(), self.database_file()) {
                (Engine::Postgres, _) => redact_url(&self.database_url),
                (_, Some(f)) => absolute(&f),
                (_, None) => "in memory".to_string(),
            },
            master_key: match &self.master_key {
                MasterKeySource::File(p) => absolute(p),
                MasterKeySource::Inline(_) => "STS_MASTER_KEY (environment)".to_string(),
            },
        }
    }
}

/// Environment values kept for a later validation step (see [`Config::provider_secrets`]). `Debug`
/// prints the names only; the values are wiped on drop.
#[derive(Clone, Default)]
pub struct SecretEnv(BTreeMap<String, String>);

impl SecretEnv {
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl std::fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Drop for SecretEnv {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.0.values_mut().for_each(Zeroize::zeroize);
    }
}

/// See [`Config::locations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub config_file: String,
    pub database: String,
    pub master_key: String,
}

/// The environment variables a `[[providers]]` entry names for its secrets: the values of its keys ending
/// in `_env` (`client_secret_env`, `bind_password_env`, ...).
pub(crate) fn secret_var_names(provider: &toml::Table) -> Vec<&str> {
    provider
        .iter()
        .filter(|(k, _)| k.ends_with("_env"))
        .filter_map(|(_, v)| v.as_str())
        .collect()
}
