//! Trusted gateway headers (`type = "header"`): an authenticating front end (oauth2-proxy, Pomerium, an
//! API gateway) has established who the user is and says so in request headers; the STS believes those
//! headers only from the gateway ([`RequestIdentity`]). `/sso/login?provider=ID` then signs the user in
//! without a page of its own.
//!
//! Checks, in order:
//! 1. The request comes from the gateway: its TCP peer is in `trusted_sources`, or (a gateway behind
//!    a load balancer listed in `server.trusted_proxies`) the client address those proxies name is.
//!    Anyone else sending the headers is refused (`gateway_untrusted_source`) and logged with the
//!    address, before any header is read.
//! 2. With `shared_secret_header`, that header must carry the shared secret (compared in constant time;
//!    missing or different: `gateway_secret_mismatch`).
//! 3. `user_header` must be present once, non-empty, valid UTF-8 (`gateway_no_user`); every identity header
//!    given twice is refused (`gateway_invalid_header`): two values would make which one counts a parser
//!    choice.
//! 4. Values are bounded like claims: the user, email and name at most 1,024 bytes without control
//!    characters (then `identity_from_claims` applies its own checks); groups split at
//!    `groups_separator`, trimmed, empty ones dropped, each at most 256 characters without control
//!    characters, at most 1,000 of them.

use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ProviderError;
use super::kinds::{KindConfig, KindSettings, OpenContext};
use super::login::{Login, RequestFacts, RequestIdentity};
use super::settings::{ClaimDefaults, SecretVars};
use crate::config::Secret;
use crate::providers::settings::Refused;

/// `type = "header"`: the keys a trusted-gateway provider reads besides the common ones.
#[derive(Debug, Clone, Deserialize)]
pub struct HeaderConfig {
    trusted_sources: Option<Vec<String>>,
    user_header: Option<String>,
    email_header: Option<String>,
    name_header: Option<String>,
    groups_header: Option<String>,
    groups_separator: Option<String>,
    shared_secret_header: Option<String>,
    shared_secret_env: Option<String>,
    shared_secret_file: Option<std::path::PathBuf>,
}

/// Validated trusted-gateway settings.
#[derive(Clone, Serialize)]
pub struct HeaderSettings {
    #[serde(serialize_with = "as_strings")]
    pub trusted_sources: Vec<IpNet>,
    pub user_header: String,
    pub email_header: Option<String>,
    pub name_header: Option<String>,
    pub groups_header: Option<String>,
    pub groups_separator: String,
    pub shared_secret_header: Option<String>,
    #[serde(skip)]
    shared_secret: Option<Secret>,
}

fn as_strings<S: serde::Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(nets.iter().map(|n| n.to_string()))
}

impl std::fmt::Debug for HeaderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderSettings")
            .field("trusted_sources", &self.trusted_sources)
            .field("user_header", &self.user_header)
            .finish_non_exhaustive()
    }
}

/// Header names that never carry an identity (the transport's own, or ours).
const NOT_IDENTITY: &[&str] = &[
    "host",
    "cookie",
    "authorization",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "forwarded",
    "x-forwarded-for",
];

fn header_name(key: &str, v: Option<String>) -> Result<Option<String>, Refused> {
    let Some(v) = v else { return Ok(None) };
    let lower = v.to_ascii_lowercase();
    if lower.is_empty()
        || lower.len() > 128
        || !lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Refused(format!(
            "`{key}` must be a header name (letters, digits, - and _)"
        )));
    }
    if NOT_IDENTITY.contains(&lower.as_str()) {
        return Err(Refused(format!("`{key}`: {v} cannot carry an identity")));
    }
    Ok(Some(lower))
}

impl KindConfig for HeaderConfig {
    const TYPE: &'static str = "header";
    const KEYS: &'static [&'static str] = &[
        "trusted_sources",
        "user_header",
        "email_header",
        "name_header",
        "groups_header",
        "groups_separator",
        "shared_secret_header",
        "shared_secret_env",
        "shared_secret_file",
    ];
    const SECRET_ENV_KEY: &'static str = "shared_secret_env";
    const CLAIMS: ClaimDefaults = ["user", "user", "email", "name", "groups"];

    fn validate(self, env: &SecretVars) -> Result<Arc<dyn KindSettings>, Refused> {
        let sources = self.trusted_sources.filter(|s| !s.is_empty()).ok_or(
            "`trusted_sources` is required for type header: the gateway's addresses (CIDRs)",
        )?;
        let mut trusted_sources = Vec::new();
        for s in &sources {
            let net = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    Refused(format!(
                        "`trusted_sources`: {s:?} is not an address or CIDR"
                    ))
                })?;
            if net.prefix_len() == 0 {
                return Err(Refused(format!(
                    "`trusted_sources`: {s} would trust every address"
                )));
            }
            trusted_sources.push(net);
        }
        let user_header = header_name("user_header", self.user_header)?
            .ok_or("`user_header` is required for type header (e.g. X-Forwarded-User)")?;
        let secret = match (self.shared_secret_env, self.shared_secret_file) {
            (Some(_), Some(_)) => {
                return Err("set `shared_secret_env` or `shared_secret_file`, not both".into());
            }
            (Some(var), None) => Some(env.get(&var).cloned().ok_or_else(|| {
                Refused(format!(
                    "environment variable {var} (shared_secret_env) is not set"
                ))
            })?),
            (None, Some(path)) => {
                let t = std::fs::read_to_string(&path)
                    .map_err(|e| Refused(format!("shared_secret_file {}: {e}", path.display())))?;
                Some(t.strip_suffix('\n').unwrap_or(&t).to_string())
            }
            (None, None) => None,
        };
        let shared_secret_header = header_name("shared_secret_header", self.shared_secret_header)?;
        match (&shared_secret_header, &secret) {
            (Some(_), None) => {
                return Err(
                    "`shared_secret_header` needs the secret (`shared_secret_env` or `shared_secret_file`)"
                        .into(),
                );
            }
            (None, Some(_)) => return Err("the shared secret needs `shared_secret_header`".into()),
            (_, Some(s)) if s.len() < 16 => {
                return Err("the shared secret must have at least 16 characters".into());
            }
            _ => {}
        }
        let groups_separator = self.groups_separator.unwrap_or_else(|| ",".into());
        if groups_separator.is_empty() || groups_separator.len() > 8 {
            return Err("`groups_separator` must be 1..=8 characters".into());
        }
        Ok(Arc::new(HeaderSettings {
            trusted_sources,
            user_header,
            email_header: header_name("email_header", self.email_header)?,
            name_header: header_name("name_header", self.name_header)?,
            groups_header: header_name("groups_header", self.groups_header)?,
            groups_separator,
            shared_secret_header,
            shared_secret: secret.map(Secret::new),
        }))
    }
}

impl KindSettings for HeaderSettings {
    fn type_name(&self) -> &'static str {
        HeaderConfig::TYPE
    }
    fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn open(&self, _ctx: &OpenContext<'_>) -> Result<Login, Refused> {
        Ok(Login::Request(Arc::new(HeaderProvider {
            s: Arc::new(self.clone()),
        })))
    }
    fn endpoints(&self, base: &str, id: &str) -> (String, Option<String>) {
        (format!("{base}/sso/login?provider={id}"), None)
    }
    fn secret_destination(&self) -> Option<Value> {
        self.shared_secret_header
            .as_ref()
            .map(|h| serde_json::json!({ "type": HeaderConfig::TYPE, "shared_secret_header": h }))
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub struct HeaderProvider {
    s: Arc<HeaderSettings>,
}

fn refused(code: &'static str, detail: String) -> ProviderError {
    ProviderError::Gateway(code, detail)
}

/// The one value of header `name`; None when absent; refused when given twice.
fn single<'a>(
    headers: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, ProviderError> {
    let mut found = headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str());
    let first = found.next();
    if found.next().is_some() {
        return Err(refused(
            "gateway_invalid_header",
            format!("the header {name} was given more than once"),
        ));
    }
    Ok(first)
}

fn bounded(name: &str, v: &str) -> Result<String, ProviderError> {
    let v = v.trim();
    if v.len() > 1024 || v.chars().any(char::is_control) {
        return Err(refused(
            "gateway_invalid_header",
            format!("the header {name} is over 1024 bytes or has control characters"),
        ));
    }
    Ok(v.to_string())
}

impl HeaderProvider {
    fn is_from_gateway(&self, r: &RequestFacts<'_>) -> bool {
        let trusted = |ip: &std::net::IpAddr| self.s.trusted_sources.iter().any(|n| n.contains(ip));
        trusted(&r.peer) || trusted(&r.client)
    }
}

impl RequestIdentity for HeaderProvider {
    fn identify(&self, r: RequestFacts<'_>) -> Result<Value, ProviderError> {
        if !self.is_from_gateway(&r) {
            return Err(refused(
                "gateway_untrusted_source",
                format!(
                    "identity headers are accepted only from trusted_sources; this request came from {} (client {})",
                    r.peer, r.client
                ),
            ));
        }
        if let (Some(name), Some(secret)) = (&self.s.shared_secret_header, &self.s.shared_secret) {
            let given = single(r.headers, name)?.unwrap_or_default();
            if !crate::crypto::constant_time_eq(given.as_bytes(), secret.expose().as_bytes()) {
                return Err(refused(
                    "gateway_secret_mismatch",
                    format!("the header {name} does not carry the shared secret"),
                ));
            }
        }
        let user = single(r.headers, &self.s.user_header)?
            .map(|v| bounded(&self.s.user_header, v))
            .transpose()?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                refused(
                    "gateway_no_user",
                    format!("the gateway sent no {} header", self.s.user_header),
                )
            })?;
        let mut claims = Map::new();
        claims.insert("user".into(), Value::String(user));
        for (claim, header) in [
            ("email", &self.s.email_header),
            ("name", &self.s.name_header),
        ] {
            if let Some(h) = header
                && let Some(v) = single(r.headers, h)?
            {
                let v = bounded(h, v)?;
                if !v.is_empty() {
                    claims.insert(claim.into(), Value::String(v));
                }
            }
        }
        if let Some(h) = &self.s.groups_header
            && let Some(v) = single(r.headers, h)?
        {
            if v.len() > 64 * 1024 {
                return Err(refused(
                    "gateway_invalid_header",
                    format!("the header {h} is over 64 KiB"),
                ));
            }
            let mut groups = Vec::new();
            for g in v.split(self.s.groups_separator.as_str()).map(str::trim) {
                if g.is_empty() {
                    continue;
                }
                if g.chars().count() > 256
                    || g.chars().any(char::is_control)
                    || groups.len() == 1000
                {
                    return Err(refused(
                        "gateway_invalid_header",
                        format!(
                            "the header {h}: at most 1000 groups of 256 characters, no control characters"
                        ),
                    ));
                }
                groups.push(Value::String(g.to_string()));
            }
            claims.insert("groups".into(), Value::Array(groups));
        }
        Ok(Value::Object(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(extra: &str) -> HeaderProvider {
        let c: HeaderConfig = toml::from_str(&format!(
            "trusted_sources = [\"10.1.0.0/16\"]\nuser_header = \"X-Forwarded-User\"\ngroups_header = \"X-Forwarded-Groups\"\n{extra}"
        ))
        .unwrap();
        let mut env = SecretVars::new();
        env.insert("GW".into(), "0123456789abcdef0123".into());
        let s = c.validate(&env).unwrap();
        HeaderProvider {
            s: Arc::new(s.as_any().downcast_ref::<HeaderSettings>().unwrap().clone()),
        }
    }

    fn facts<'a>(peer: &str, headers: &'a [(String, String)]) -> RequestFacts<'a> {
        RequestFacts {
            peer: peer.parse().unwrap(),
            client: peer.parse().unwrap(),
            headers,
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_gateway_with_its_secret_is_believed() {
        let p = provider("shared_secret_header = \"X-Gateway-Secret\"\nshared_secret_env = \"GW\"");
        let good = h(&[
            ("x-forwarded-user", "alice"),
            ("x-forwarded-groups", "staff, admins,,"),
            ("x-gateway-secret", "0123456789abcdef0123"),
        ]);
        let v = p.identify(facts("10.1.2.3", &good)).unwrap();
        assert_eq!(v["user"], "alice");
        assert_eq!(v["groups"], serde_json::json!(["staff", "admins"]));
        let code = |r: Result<Value, ProviderError>| r.unwrap_err().code();
        assert_eq!(
            code(p.identify(facts("10.2.0.1", &good))),
            "gateway_untrusted_source"
        );
        let no_secret = h(&[("x-forwarded-user", "alice")]);
        assert_eq!(
            code(p.identify(facts("10.1.2.3", &no_secret))),
            "gateway_secret_mismatch"
        );
        let twice = h(&[
            ("x-forwarded-user", "alice"),
            ("x-forwarded-user", "root"),
            ("x-gateway-secret", "0123456789abcdef0123"),
        ]);
        assert_eq!(
            code(p.identify(facts("10.1.2.3", &twice))),
            "gateway_invalid_header"
        );
        let control = h(&[
            ("x-forwarded-user", "alice\u{1}"),
            ("x-gateway-secret", "0123456789abcdef0123"),
        ]);
        assert_eq!(
            code(p.identify(facts("10.1.2.3", &control))),
            "gateway_invalid_header"
        );
        let none = h(&[("x-gateway-secret", "0123456789abcdef0123")]);
        assert_eq!(
            code(p.identify(facts("10.1.2.3", &none))),
            "gateway_no_user"
        );
    }

    #[test]
    fn settings_are_checked_by_name() {
        let v = |extra: &str| {
            toml::from_str::<HeaderConfig>(extra)
                .unwrap()
                .validate(&SecretVars::new())
                .map(|_| ())
                .unwrap_err()
                .0
        };
        assert!(v("user_header = \"X-User\"").contains("trusted_sources"));
        assert!(
            v("trusted_sources = [\"0.0.0.0/0\"]\nuser_header = \"X-User\"")
                .contains("every address")
        );
        assert!(v("trusted_sources = [\"10.0.0.1\"]").contains("user_header"));
        assert!(
            v("trusted_sources = [\"10.0.0.1\"]\nuser_header = \"Cookie\"")
                .contains("cannot carry")
        );
        assert!(v("trusted_sources = [\"10.0.0.1\"]\nuser_header = \"X-User\"\nshared_secret_header = \"X-S\"").contains("needs the secret"));
        assert!(v("trusted_sources = [\"nope\"]\nuser_header = \"X-User\"").contains("nope"));
    }
}
