//! Verify STS access tokens offline, against the STS's JWKS, with a cache that behaves:
//!
//! - fetched once, then served from memory for `cache_ttl` (or the response's `Cache-Control: max-age`,
//!   whichever is shorter; a negative `cache_ttl` never expires); revalidated with `If-None-Match`;
//! - an unknown `kid` (a key rotation) triggers a refetch, at most once per `refetch_cooldown`, and
//!   concurrent refetches are coalesced into one request;
//! - while the STS is unreachable, the cached keys keep working until `cache_ttl + stale_bound`;
//! - every fetch has a connect timeout, a read timeout, no redirects and a size limit; keys are fetched only
//!   from `jwks_url` (default: from the issuer's discovery document) or `source_url` (an alternative URL, e.g.
//!   one that bypasses a load balancer), whose host must be in `trusted_hostnames`;
//! - tokens: the allowed algorithms only (default RS256; never `none` or HS*), a `kid` from the set, the
//!   required `typ` (default `at+jwt`), `iss`, `aud` (required), `exp`/`nbf` with a leeway.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sts_client::Error> {
//! let verifier = sts_client::Verifier::builder("https://sts.example.com")
//!     .audience("orders-api")
//!     .build()?;
//! let claims = verifier.verify("eyJ...").await?;
//! println!("{} has roles {:?}", claims.subject, claims.roles);
//! # Ok(()) }
//! ```

#[cfg(feature = "actix")]
pub mod actix;
mod jwks;
mod jws;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::Value;

pub use jwks::Stats;
pub use jws::check_jws_header;

/// Why a token was refused or keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("algorithm {0} is not allowed")]
    Algorithm(String),
    #[error("the token has type {found:?}, {expected:?} is required")]
    Type {
        expected: String,
        found: Option<String>,
    },
    #[error("no key with kid {0:?} in the issuer's key set")]
    UnknownKey(String),
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the issuer's keys are not available: {0}")]
    KeysUnavailable(String),
}

impl Error {
    /// RFC 6750 `error` code: `invalid_token` for the token's faults, `temporarily_unavailable` otherwise.
    pub fn oauth_code(&self) -> &'static str {
        match self {
            Error::KeysUnavailable(_) | Error::Config(_) => "temporarily_unavailable",
            _ => "invalid_token",
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Claims {
    pub subject: String,
    pub issuer: String,
    pub audience: Vec<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub client_id: Option<String>,
    /// Unix time.
    pub expires_at: i64,
    /// Every claim, as sent.
    pub raw: serde_json::Map<String, Value>,
}

impl Claims {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Settings of a [`Verifier`]; see [`Verifier::builder`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    issuer: String,
    jwks_url: Option<String>,
    source_url: Option<String>,
    trusted_hostnames: Vec<String>,
    connect_timeout: Duration,
    read_timeout: Duration,
    size_limit: usize,
    cache_ttl_seconds: i64,
    refetch_cooldown: Duration,
    stale_bound: Duration,
    audience: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    typ: Option<String>,
}

impl VerifierBuilder {
    /// The JWKS URL (default: `jwks_uri` of `{issuer}/.well-known/openid-configuration`).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }
    /// Fetch keys from this URL instead (e.g. a node's own address, bypassing a load balancer). Its host
    /// must be listed in [`trusted_hostnames`](Self::trusted_hostnames).
    pub fn source_url(mut self, url: impl Into<String>) -> Self {
        self.source_url = Some(url.into());
        self
    }
    /// Hosts keys may be fetched from besides the issuer's and the JWKS URL's own.
    pub fn trusted_hostnames<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        hosts: I,
    ) -> Self {
        self.trusted_hostnames = hosts.into_iter().map(Into::into).collect();
        self
    }
    /// Default 2000 ms.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Default 2000 ms (also bounds each fetch as a whole, with the connect timeout).
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }
    /// Largest JWKS body, bytes (default 51200).
    pub fn size_limit(mut self, bytes: usize) -> Self {
        self.size_limit = bytes;
        self
    }
    /// Seconds the key set is used without asking again (default 300); negative: never expires.
    pub fn cache_ttl_seconds(mut self, s: i64) -> Self {
        self.cache_ttl_seconds = s;
        self
    }
    /// Least time between two refetches caused by unknown `kid`s (default 10 s).
    pub fn refetch_cooldown(mut self, d: Duration) -> Self {
        self.refetch_cooldown = d;
        self
    }
    /// How long past its TTL a cached set still serves while the STS cannot be reached (default 1 h).
    pub fn stale_bound(mut self, d: Duration) -> Self {
        self.stale_bound = d;
        self
    }
    /// An accepted audience (at least one is required).
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audience.push(aud.into());
        self
    }
    /// Allowed algorithms (default RS256). HS* are refused: the keys are public.
    pub fn algorithms(mut self, algs: &[Algorithm]) -> Self {
        self.algorithms = algs.to_vec();
        self
    }
    /// Clock-skew leeway for `exp`/`nbf`, seconds (default 60).
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }
    /// Required `typ` header (default `at+jwt`, RFC 9068); `None` accepts any.
    pub fn required_typ(mut self, typ: Option<&str>) -> Self {
        self.typ = typ.map(str::to_string);
        self
    }

    pub fn build(self) -> Result<Verifier, Error> {
        let issuer =
            url::Url::parse(&self.issuer).map_err(|e| Error::Config(format!("issuer: {e}")))?;
        if self.audience.is_empty() {
            return Err(Error::Config("at least one audience is required".into()));
        }
        if self.algorithms.is_empty() {
            return Err(Error::Config("no algorithm allowed".into()));
        }
        if let Some(a) = self
            .algorithms
            .iter()
            .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(Error::Config(format!(
                "{a:?} cannot verify with public keys"
            )));
        }
        let mut trusted: Vec<String> = self
            .trusted_hostnames
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        trusted.extend(issuer.host_str().map(str::to_ascii_lowercase));
        if let Some(j) = &self.jwks_url {
            let u = url::Url::parse(j).map_err(|e| Error::Config(format!("jwks_url: {e}")))?;
            trusted.extend(u.host_str().map(str::to_ascii_lowercase));
        }
        if let Some(s) = &self.source_url {
            let u = url::Url::parse(s).map_err(|e| Error::Config(format!("source_url: {e}")))?;
            let host = u.host_str().unwrap_or("").to_ascii_lowercase();
            if !self
                .trusted_hostnames
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host))
            {
                return Err(Error::Config(format!(
                    "source_url host {host:?} is not in trusted_hostnames"
                )));
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .timeout(self.connect_timeout + self.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let mut validation = Validation::new(self.algorithms[0]);
        validation.algorithms = self.algorithms.clone();
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&self.audience);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let keys = jwks::KeyCache::new(jwks::Settings {
            http,
            issuer: self.issuer.clone(),
            jwks_url: self.jwks_url.clone(),
            source_url: self.source_url.clone(),
            trusted,
            size_limit: self.size_limit,
            ttl: (self.cache_ttl_seconds >= 0)
                .then(|| Duration::from_secs(self.cache_ttl_seconds as u64)),
            refetch_cooldown: self.refetch_cooldown,
            stale_bound: self.stale_bound,
        });
        Ok(Verifier {
            inner: Arc::new(Inner {
                validation,
                algorithms: self.algorithms,
                typ: self.typ,
                keys,
            }),
        })
    }
}

struct Inner {
    validation: Validation,
    algorithms: Vec<Algorithm>,
    typ: Option<String>,
    keys: jwks::KeyCache,
}

/// Verifies STS tokens; cheap to clone (one shared cache).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

impl Verifier {
    /// Settings for tokens issued by `issuer` (the STS's public URL, compared exactly with `iss`).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            jwks_url: None,
            source_url: None,
            trusted_hostnames: vec![],
            connect_timeout: Duration::from_millis(2000),
            read_timeout: Duration::from_millis(2000),
            size_limit: 51_200,
            cache_ttl_seconds: 300,
            refetch_cooldown: Duration::from_secs(10),
            stale_bound: Duration::from_secs(3600),
            audience: vec![],
            algorithms: vec![Algorithm::RS256],
            leeway: 60,
            typ: Some("at+jwt".into()),
        }
    }

    /// Verify a compact JWS; the claims when it is good.
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        let i = &self.inner;
        if token.len() > 16 * 1024 {
            return Err(Error::Malformed("longer than 16 KiB".into()));
        }
        check_jws_header(token).map_err(Error::Malformed)?;
        let header = decode_header(token).map_err(|e| Error::Malformed(e.to_string()))?;
        if !i.algorithms.contains(&header.alg) {
            return Err(Error::Algorithm(format!("{:?}", header.alg)));
        }
        if let Some(expected) = &i.typ {
            let found = header.typ.as_deref().map(|t| {
                t.strip_prefix("application/")
                    .unwrap_or(t)
                    .to_ascii_lowercase()
            });
            if found.as_deref() != Some(expected.to_ascii_lowercase().as_str()) {
                return Err(Error::Type {
                    expected: expected.clone(),
                    found: header.typ.clone(),
                });
            }
        }
        let kid = header
            .kid
            .ok_or_else(|| Error::Malformed("no kid".into()))?;
        let key = i.keys.key(&kid, header.alg).await?;
        let data = decode::<serde_json::Map<String, Value>>(token, &key, &i.validation)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(claims(data.claims))
    }

    /// Fetch counters (tests, metrics).
    pub fn stats(&self) -> Stats {
        self.inner.keys.stats()
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

fn claims(raw: serde_json::Map<String, Value>) -> Claims {
    let text = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
    Claims {
        subject: text("sub").unwrap_or_default(),
        issuer: text("iss").unwrap_or_default(),
        audience: strings(raw.get("aud")),
        roles: strings(raw.get("roles")),
        scopes: text("scope")
            .map(|s| {
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        client_id: text("client_id"),
        expires_at: raw.get("exp").and_then(Value::as_i64).unwrap_or(0),
        raw,
    }
}
