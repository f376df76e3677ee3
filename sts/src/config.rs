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

// ---------------------------------------------------------------- raw (serde) layer

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    server: RawServer,
    database: RawDatabase,
    keys: RawKeys,
    tokens: RawTokens,
    jwks: RawJwks,
    log: RawLog,
    sessions: RawSessions,
    providers: Vec<toml::Table>,
    clients: Vec<toml::Table>,
    admin: RawAdmin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAdmin {
    sso_roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSessions {
    idle_timeout_seconds: i64,
    absolute_timeout_seconds: i64,
    login_flow_ttl_seconds: i64,
}
impl Default for RawSessions {
    fn default() -> Self {
        Self {
            idle_timeout_seconds: 1800,
            absolute_timeout_seconds: 28_800,
            login_flow_ttl_seconds: 600,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    workers: Option<i64>,
    request_header_timeout_ms: Option<i64>,
    request_body_timeout_ms: Option<i64>,
    keep_alive_seconds: Option<i64>,
    max_connections_per_worker: Option<i64>,
    tls: RawTls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    pkcs12_file: Option<String>,
    pkcs12_password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    url: String,
    max_connections: i64,
    busy_timeout_ms: i64,
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
struct RawKeys {
    master_key_file: String,
    algorithm: String,
    rsa_bits: i64,
    reload_interval_seconds: i64,
}
impl Default for RawKeys {
    fn default() -> Self {
        Self {
            master_key_file: "keys/master.key".into(),
            algorithm: "RS256".into(),
            rsa_bits: 2048,
            reload_interval_seconds: 5,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTokens {
    lifetime_seconds: i64,
    max_lifetime_seconds: i64,
    leeway_seconds: i64,
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
struct RawJwks {
    max_age_seconds: i64,
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
struct RawLog {
    level: String,
    format: String,
}
impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

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
    /// Open connections per worker; more wait in the listen backlog until one closes.
    pub max_connections_per_worker: usize,
    pub tls: Option<TlsConfig>,
    pub database_url: String,
    pub database_max_connections: u32,
    pub database_busy_timeout: Duration,
    pub master_key: MasterKeySource,
    pub rsa_bits: usize,
    pub key_reload_interval: Duration,
    pub token_lifetime: u64,
    pub token_max_lifetime: u64,
    pub leeway: u64,
    pub jwks_max_age: u64,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub session_idle_timeout: u64,
    pub session_absolute_timeout: u64,
    pub login_flow_ttl: u64,
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
        // Variables named by `client_secret_env` in the providers are the operator's to name.
        let secret_vars: Vec<String> = table
            .get("providers")
            .and_then(toml::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|p| {
                        p.get("client_secret_env")
                            .and_then(toml::Value::as_str)
                            .map(str::to_string)
                    })
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

    fn validate(
        raw: RawConfig,
        source: Option<PathBuf>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let tls = validate_tls(&raw.server.tls, env)?;
        let listen_str = raw.server.listen.clone().unwrap_or_else(|| {
            if tls.is_some() {
                DEFAULT_TLS_LISTEN
            } else {
                DEFAULT_LISTEN
            }
            .to_string()
        });
        let listen: SocketAddr = listen_str.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!("`{listen_str}` is not an IP:port address (env STS_LISTEN)"),
            )
        })?;
        let default_url = format!(
            "{}://{}",
            if tls.is_some() { "https" } else { "http" },
            listen
        );
        if raw.server.public_url.is_none() && listen.ip().is_unspecified() {
            return Err(invalid(
                "server.public_url",
                format!(
                    "must be set when listening on {listen}: it is the token issuer (env STS_PUBLIC_URL)"
                ),
            ));
        }
        let public_url =
            validate_public_url(raw.server.public_url.as_deref().unwrap_or(&default_url))?;
        let workers = match raw.server.workers {
            None | Some(0) => None,
            Some(n) if (1..=512).contains(&n) => Some(n as usize),
            Some(n) => {
                return Err(invalid(
                    "server.workers",
                    format!("{n} is out of range 0..=512"),
                ));
            }
        };

        let request_header_timeout = Duration::from_millis(positive(
            "server.request_header_timeout_ms",
            raw.server.request_header_timeout_ms.unwrap_or(5000),
            500,
            60_000,
        )?);
        let request_body_timeout = Duration::from_millis(positive(
            "server.request_body_timeout_ms",
            raw.server.request_body_timeout_ms.unwrap_or(15_000),
            1000,
            300_000,
        )?);
        let keep_alive = Duration::from_secs(positive(
            "server.keep_alive_seconds",
            raw.server.keep_alive_seconds.unwrap_or(5),
            0,
            300,
        )?);
        let max_connections_per_worker = positive(
            "server.max_connections_per_worker",
            raw.server.max_connections_per_worker.unwrap_or(1024),
            16,
            100_000,
        )? as usize;

        let database_url = raw.database.url.trim().to_string();
        if !database_url.starts_with("sqlite:") && database_url.contains("://") {
            return Err(invalid(
                "database.url",
                format!(
                    "`{database_url}`: only SQLite (`sqlite://PATH` or a file path) is supported by this build"
                ),
            ));
        }
        if database_url.is_empty() || database_url == "sqlite://" {
            return Err(invalid(
                "database.url",
                "must not be empty (env STS_DATABASE_URL)",
            ));
        }
        let max_conn = positive(
            "database.max_connections",
            raw.database.max_connections,
            1,
            64,
        )? as u32;
        let busy = positive(
            "database.busy_timeout_ms",
            raw.database.busy_timeout_ms,
            0,
            600_000,
        )?;

        let master_key = match env.get("STS_MASTER_KEY") {
            Some(v) => MasterKeySource::Inline(Secret::new(v.clone())),
            None => {
                if raw.keys.master_key_file.trim().is_empty() {
                    return Err(invalid(
                        "keys.master_key_file",
                        "must not be empty (env STS_MASTER_KEY_FILE)",
                    ));
                }
                MasterKeySource::File(PathBuf::from(&raw.keys.master_key_file))
            }
        };
        if raw.keys.algorithm != "RS256" {
            return Err(invalid(
                "keys.algorithm",
                format!("`{}` is not supported; allowed: RS256", raw.keys.algorithm),
            ));
        }
        let rsa_bits = match raw.keys.rsa_bits {
            b @ (2048 | 3072 | 4096) => b as usize,
            b => {
                return Err(invalid(
                    "keys.rsa_bits",
                    format!("{b} is not one of 2048, 3072, 4096 (env STS_KEY_SIZE)"),
                ));
            }
        };
        let reload = positive(
            "keys.reload_interval_seconds",
            raw.keys.reload_interval_seconds,
            1,
            3600,
        )?;

        let lifetime = positive(
            "tokens.lifetime_seconds",
            raw.tokens.lifetime_seconds,
            1,
            86_400,
        )?;
        let max_lifetime = positive(
            "tokens.max_lifetime_seconds",
            raw.tokens.max_lifetime_seconds,
            1,
            86_400,
        )?;
        if lifetime > max_lifetime {
            return Err(invalid(
                "tokens.lifetime_seconds",
                format!("{lifetime} exceeds tokens.max_lifetime_seconds ({max_lifetime})"),
            ));
        }
        let leeway = positive("tokens.leeway_seconds", raw.tokens.leeway_seconds, 0, 600)?;
        let jwks_max_age = positive("jwks.max_age_seconds", raw.jwks.max_age_seconds, 0, 86_400)?;

        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.log.level) {
            return Err(invalid(
                "log.level",
                format!(
                    "`{}` is not a valid filter: {e} (env STS_LOG)",
                    raw.log.level
                ),
            ));
        }
        let log_format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("`{other}`: allowed values are text, json (env STS_LOG_FORMAT)"),
                ));
            }
        };

        let session_idle = positive(
            "sessions.idle_timeout_seconds",
            raw.sessions.idle_timeout_seconds,
            60,
            86_400,
        )?;
        let session_abs = positive(
            "sessions.absolute_timeout_seconds",
            raw.sessions.absolute_timeout_seconds,
            60,
            30 * 86_400,
        )?;
        let flow_ttl = positive(
            "sessions.login_flow_ttl_seconds",
            raw.sessions.login_flow_ttl_seconds,
            30,
            3600,
        )?;
        // Only the variables the providers name in `client_secret_env` are kept.
        let provider_secrets = SecretEnv(
            raw.providers
                .iter()
                .filter_map(|p| p.get("client_secret_env").and_then(toml::Value::as_str))
                .filter_map(|name| Some((name.to_string(), env.get(name)?.clone())))
                .collect(),
        );
        if let Some(r) = raw
            .admin
            .sso_roles
            .iter()
            .find(|r| r.is_empty() || r.len() > 256 || r.chars().any(char::is_control))
        {
            return Err(invalid(
                "admin.sso_roles",
                format!("role {r:?} must be 1..=256 characters without control characters"),
            ));
        }
        let admin_sso_roles = raw.admin.sso_roles;
        Ok(Config {
            session_idle_timeout: session_idle,
            session_absolute_timeout: session_abs,
            login_flow_ttl: flow_ttl,
            providers: raw.providers,
            provider_secrets,
            clients: raw.clients,
            admin_sso_roles,
            source,
            listen,
            public_url,
            workers,
            request_header_timeout,
            request_body_timeout,
            keep_alive,
            max_connections_per_worker,
            tls,
            database_url,
            database_max_connections: max_conn,
            database_busy_timeout: Duration::from_millis(busy),
            master_key,
            rsa_bits,
            key_reload_interval: Duration::from_secs(reload),
            token_lifetime: lifetime,
            token_max_lifetime: max_lifetime,
            leeway,
            jwks_max_age,
            log_filter: raw.log.level,
            log_format,
        })
    }

    /// How long a key that stopped signing stays in the JWKS: the longest token it may have signed, plus
    /// clock skew, plus one reload interval (a running server may sign with it until it notices the change).
    pub fn publish_grace_seconds(&self) -> i64 {
        (self.token_max_lifetime + self.leeway + self.key_reload_interval.as_secs()) as i64
    }

    /// A configuration for tests and benchmarks: defaults, with the given database and master key file.
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

    /// The SQLite file `database.url` names (as configured, relative to the working directory), or
    /// `None` for an in-memory database.
    pub fn database_file(&self) -> Option<PathBuf> {
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
            database: self
                .database_file()
                .map(|f| absolute(&f))
                .unwrap_or_else(|| "in memory".to_string()),
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

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim().to_string(),
    })
}

fn set_path(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().expect("non-empty key");
    let mut t = table;
    for p in parts {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        t = entry.as_table_mut().expect("just made a table");
    }
    t.insert(last.to_string(), value);
}

fn positive(key: &'static str, v: i64, min: i64, max: i64) -> Result<u64, ConfigError> {
    if v < min || v > max {
        return Err(invalid(key, format!("{v} is out of range {min}..={max}")));
    }
    Ok(v as u64)
}

fn validate_public_url(s: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(s.trim()).map_err(|e| {
        invalid(
            "server.public_url",
            format!("`{s}` is not a URL: {e} (env STS_PUBLIC_URL)"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(
            "server.public_url",
            format!("`{s}`: scheme must be http or https"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "server.public_url",
            format!("`{s}`: a host is required"),
        ));
    }
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(
            "server.public_url",
            format!("`{s}`: no user info, query or fragment allowed"),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn validate_tls(
    raw: &RawTls,
    env: &BTreeMap<String, String>,
) -> Result<Option<TlsConfig>, ConfigError> {
    let nonempty = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    let (cert, key, p12) = (
        nonempty(&raw.cert_file),
        nonempty(&raw.key_file),
        nonempty(&raw.pkcs12_file),
    );
    match (cert, key, p12) {
        (None, None, None) => Ok(None),
        (Some(cert_file), Some(key_file), None) => Ok(Some(TlsConfig::Pem {
            cert_file,
            key_file,
        })),
        (None, None, Some(file)) => {
            let password = if let Some(p) = env.get("STS_TLS_PKCS12_PASSWORD") {
                Secret::new(p.clone())
            } else if let Some(pf) = nonempty(&raw.pkcs12_password_file) {
                let text = std::fs::read_to_string(&pf).map_err(|e| {
                    invalid(
                        "server.tls.pkcs12_password_file",
                        format!("cannot read {}: {e}", pf.display()),
                    )
                })?;
                Secret::new(strip_newline(text))
            } else {
                return Err(invalid(
                    "server.tls.pkcs12_file",
                    "needs a password: set STS_TLS_PKCS12_PASSWORD or server.tls.pkcs12_password_file",
                ));
            };
            Ok(Some(TlsConfig::Pkcs12 { file, password }))
        }
        (_, _, Some(_)) => Err(invalid(
            "server.tls.pkcs12_file",
            "set either a PKCS#12 file or cert_file + key_file, not both",
        )),
        (Some(_), None, None) => Err(invalid(
            "server.tls.key_file",
            "cert_file is set but key_file is not",
        )),
        (None, Some(_), None) => Err(invalid(
            "server.tls.cert_file",
            "key_file is set but cert_file is not",
        )),
    }
}

/// Drop one trailing newline (`\n` or `\r\n`) from a secret read from a file; nothing else is trimmed.
pub fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_are_safe() {
        let c = Config::load_from(None, &env(&[]), &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:19090");
        assert_eq!(c.public_url, "http://127.0.0.1:19090");
        assert_eq!(c.database_url, "sqlite://data/sts.db");
        assert!(
            matches!(c.master_key, MasterKeySource::File(ref p) if p == Path::new("keys/master.key"))
        );
        assert_eq!(c.rsa_bits, 2048);
        assert_eq!(c.token_lifetime, 600);
        assert!(c.tls.is_none());
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let f = file(
            "[server]\nlisten = \"127.0.0.1:1000\"\npublic_url = \"https://sts.example.com/\"\n[tokens]\nlifetime_seconds = 120\n",
        );
        let c = Config::load_from(Some(f.path()), &env(&[("STS_LISTEN", "0.0.0.0:2000")]), &[])
            .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:2000");
        assert_eq!(
            c.public_url, "https://sts.example.com",
            "trailing slash trimmed"
        );
        assert_eq!(c.token_lifetime, 120);
    }

    #[test]
    fn unknown_file_key_is_named() {
        let f = file("[server]\nlistn = \"127.0.0.1:1000\"\n");
        let e = Config::load_from(Some(f.path()), &env(&[]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("listn"), "{e}");
        let f = file("[servr]\n");
        let e = Config::load_from(Some(f.path()), &env(&[]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("servr"), "{e}");
    }

    #[test]
    fn unknown_env_variable_is_named() {
        let e = Config::load_from(None, &env(&[("STS_LISTN", "x")]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("STS_LISTN"), "{e}");
        assert!(Config::load_from(None, &env(&[("STS_MY_PW", "x")]), &["STS_MY_PW"]).is_ok());
    }

    #[test]
    fn invalid_values_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("STS_LISTEN", "nope")], "server.listen"),
            (&[("STS_PUBLIC_URL", "ftp://x")], "server.public_url"),
            (&[("STS_PUBLIC_URL", "https://u:p@x")], "server.public_url"),
            (&[("STS_KEY_SIZE", "1024")], "keys.rsa_bits"),
            (&[("STS_KEY_SIZE", "big")], "STS_KEY_SIZE"),
            (&[("STS_TOKEN_LIFETIME", "0")], "tokens.lifetime_seconds"),
            (&[("STS_TOKEN_LIFETIME", "7200")], "tokens.lifetime_seconds"),
            (&[("STS_LOG_FORMAT", "xml")], "log.format"),
            (&[("STS_DATABASE_URL", "postgres://db/sts")], "database.url"),
            (&[("STS_TLS_CERT_FILE", "c.pem")], "server.tls.key_file"),
            (&[("STS_LISTEN", "0.0.0.0:19090")], "server.public_url"),
        ];
        for (vars, key) in cases {
            let e = Config::load_from(None, &env(vars), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{vars:?}: `{e}` should name {key}");
        }
    }

    #[test]
    fn wrong_type_in_file_is_named() {
        let f = file("[tokens]\nlifetime_seconds = \"ten\"\n");
        let e = Config::load_from(Some(f.path()), &env(&[]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lifetime_seconds"), "{e}");
    }

    #[test]
    fn tls_moves_default_port_and_scheme() {
        let c = Config::load_from(
            None,
            &env(&[
                ("STS_TLS_CERT_FILE", "c.pem"),
                ("STS_TLS_KEY_FILE", "k.pem"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 19443);
        assert!(c.public_url.starts_with("https://"));
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let c = Config::load_from(
            None,
            &env(&[("STS_MASTER_KEY", "c2VjcmV0LW1hc3Rlci1rZXk=")]),
            &[],
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
    }

    #[test]
    fn shipped_config_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/sts.toml");
        let c = Config::load_from(Some(&path), &env(&[]), &[]).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    }
}
