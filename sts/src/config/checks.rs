//! Turning the raw configuration into a checked [`Config`]: every value range-checked, URLs and TLS
//! material validated, the file read and the `STS_*` variables merged in, each refusal naming its key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::*;
use super::*;

impl Config {
    pub(super) fn validate(
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
        let shutdown_grace = Duration::from_secs(positive(
            "server.shutdown_grace_seconds",
            raw.server.shutdown_grace_seconds.unwrap_or(5),
            0,
            300,
        )?);
        let max_connections_per_worker = positive(
            "server.max_connections_per_worker",
            raw.server.max_connections_per_worker.unwrap_or(1024),
            16,
            100_000,
        )? as usize;

        let trusted_proxies = match &raw.server.trusted_proxies {
            None => Vec::new(),
            Some(list) if list.len() > 64 => {
                return Err(invalid(
                    "server.trusted_proxies",
                    "at most 64 entries (use CIDRs)".to_string(),
                ));
            }
            Some(list) => list
                .iter()
                .map(|e| parse_trusted_proxy(e))
                .collect::<Result<Vec<_>, _>>()?,
        };

        let metrics_listen = match &raw.metrics.listen {
            None => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics.listen",
                    format!("`{s}` is not an IP:port address (env STS_METRICS_LISTEN)"),
                )
            })?),
        };
        if metrics_listen.is_some_and(|m| m == listen) {
            return Err(invalid(
                "metrics.listen",
                "must differ from server.listen (use metrics.on_main_listener to serve /metrics there)",
            ));
        }
        let database_url = raw.database.url.trim().to_string();
        super::database::check_url(&database_url)?;
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
        // 0: no scheduled rotation.
        let rotate_after_days = positive(
            "keys.rotate_after_days",
            raw.keys.rotate_after_days,
            0,
            3650,
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
        let device_code_lifetime = positive(
            "sessions.device_code_lifetime_seconds",
            raw.sessions.device_code_lifetime_seconds,
            10,
            1800,
        )?;
        let device_poll_interval = positive(
            "sessions.device_poll_interval_seconds",
            raw.sessions.device_poll_interval_seconds,
            1,
            60,
        )?;
        // Only the variables the providers name in their `*_env` keys are kept.
        let provider_secrets = SecretEnv(
            raw.providers
                .iter()
                .flat_map(super::secret_var_names)
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
            device_code_lifetime,
            device_poll_interval,
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
            trusted_proxies,
            metrics_listen,
            metrics_on_main: raw.metrics.on_main_listener,
            shutdown_grace,
            echo: raw.server.echo,
            tls,
            database_url,
            database_max_connections: max_conn,
            database_busy_timeout: Duration::from_millis(busy),
            master_key,
            rsa_bits,
            key_reload_interval: Duration::from_secs(reload),
            key_rotate_after: (rotate_after_days > 0)
                .then(|| Duration::from_secs(rotate_after_days * 86_400)),
            token_lifetime: lifetime,
            token_max_lifetime: max_lifetime,
            leeway,
            jwks_max_age,
            log_filter: raw.log.level,
            log_format,
        })
    }
}

pub(super) fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim().to_string(),
    })
}

pub(super) fn set_path(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let (parents, last) = match dotted.rsplit_once('.') {
        Some((parents, last)) => (Some(parents), last),
        None => (None, dotted),
    };
    let mut t = table;
    for p in parents.into_iter().flat_map(|p| p.split('.')) {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else {
            return;
        };
        t = inner;
    }
    t.insert(last.to_string(), value);
}

pub(super) fn positive(key: &'static str, v: i64, min: i64, max: i64) -> Result<u64, ConfigError> {
    if v < min || v > max {
        return Err(invalid(key, format!("{v} is out of range {min}..={max}")));
    }
    Ok(v as u64)
}

pub(super) fn validate_public_url(s: &str) -> Result<String, ConfigError> {
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

pub(super) fn validate_tls(
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

/// A `server.trusted_proxies` entry: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or one address.
fn parse_trusted_proxy(entry: &str) -> Result<ipnet::IpNet, ConfigError> {
    let e = entry.trim();
    e.parse::<ipnet::IpNet>()
        .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| {
            invalid(
                "server.trusted_proxies",
                format!("`{e}` is neither a CIDR (e.g. 10.0.0.0/8, 2001:db8::/32) nor an address"),
            )
        })
}
