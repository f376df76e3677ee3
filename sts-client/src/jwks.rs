//! The JWKS cache: one key set shared by every verification, refreshed by at most one request at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::Error;

pub(crate) struct Settings {
    pub http: reqwest::Client,
    pub issuer: String,
    pub jwks_url: Option<String>,
    pub source_url: Option<String>,
    /// Lowercase hosts keys may come from.
    pub trusted: Vec<String>,
    pub size_limit: usize,
    /// None: never expires.
    pub ttl: Option<Duration>,
    pub refetch_cooldown: Duration,
    pub stale_bound: Duration,
}

/// What the cache did (for tests and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests for the key set (discovery not counted).
    pub fetches: u64,
    /// Of those, answered 304 Not Modified.
    pub not_modified: u64,
    /// Failed fetches.
    pub failures: u64,
}

struct Entry {
    key: DecodingKey,
    alg: Option<Algorithm>,
}

struct Set {
    keys: HashMap<String, Entry>,
    /// None: never stale.
    fresh_until: Option<Instant>,
    etag: Option<String>,
}

#[derive(Default)]
struct FetchState {
    jwks_url: Option<String>,
    last_kid_refetch: Option<Instant>,
    last_failure: Option<(Instant, String)>,
}

pub(crate) struct KeyCache {
    s: Settings,
    set: RwLock<Option<Arc<Set>>>,
    fetch: tokio::sync::Mutex<FetchState>,
    generation: AtomicU64,
    fetches: AtomicU64,
    not_modified: AtomicU64,
    failures: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Initial,
    UnknownKid,
    Expired,
}

impl KeyCache {
    pub fn new(s: Settings) -> Self {
        Self {
            s,
            set: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            fetches: self.fetches.load(Ordering::Relaxed),
            not_modified: self.not_modified.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    fn current(&self) -> Option<Arc<Set>> {
        self.set.read().expect("jwks lock").clone()
    }

    fn pick(set: &Set, kid: &str, alg: Algorithm) -> Result<DecodingKey, Error> {
        let e = set
            .keys
            .get(kid)
            .ok_or_else(|| Error::UnknownKey(kid.to_string()))?;
        if e.alg.is_some_and(|a| a != alg) {
            return Err(Error::Algorithm(format!(
                "{alg:?} (the key {kid} is for {:?})",
                e.alg.unwrap()
            )));
        }
        Ok(e.key.clone())
    }

    /// The key for `kid`, fetching the set when needed (see the crate docs for the rules).
    pub async fn key(&self, kid: &str, alg: Algorithm) -> Result<DecodingKey, Error> {
        let now = Instant::now();
        let seen = self.generation.load(Ordering::Acquire);
        let Some(set) = self.current() else {
            self.refresh(Why::Initial, seen).await?;
            return Self::pick(&self.current().expect("fetched"), kid, alg);
        };
        let fresh = set.fresh_until.is_none_or(|t| now < t);
        if fresh {
            return match Self::pick(&set, kid, alg) {
                Err(Error::UnknownKey(_)) => {
                    // A key rotation: look again, at most once per cool-down, one request for everyone.
                    match self.refresh(Why::UnknownKid, seen).await {
                        Err(Error::UnknownKey(_)) => Err(Error::UnknownKey(kid.to_string())),
                        Err(e) => Err(e),
                        Ok(()) => Self::pick(&self.current().expect("fetched"), kid, alg),
                    }
                }
                other => other,
            };
        }
        match self.refresh(Why::Expired, seen).await {
            Ok(()) => Self::pick(&self.current().expect("fetched"), kid, alg),
            Err(e) => {
                // Stale-while-error, bounded.
                let within = set
                    .fresh_until
                    .is_some_and(|t| now < t + self.s.stale_bound);
                if within {
                    tracing::warn!(error = %e, "JWKS refresh failed; using the cached key set");
                    Self::pick(&set, kid, alg)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn refresh(&self, why: Why, seen: u64) -> Result<(), Error> {
        let mut st = self.fetch.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            // Someone fetched while we waited: use theirs.
            return Ok(());
        }
        let now = Instant::now();
        if why == Why::UnknownKid {
            if st
                .last_kid_refetch
                .is_some_and(|t| now.duration_since(t) < self.s.refetch_cooldown)
            {
                return Err(Error::UnknownKey("(refetch cool-down)".into()));
            }
            st.last_kid_refetch = Some(now);
        }
        // Do not hammer an STS that just failed (the caller may use the stale set meanwhile, or retry later).
        if why != Why::UnknownKid
            && let Some((t, e)) = &st.last_failure
            && now.duration_since(*t) < self.s.refetch_cooldown
        {
            return Err(Error::KeysUnavailable(e.clone()));
        }
        match self.fetch_set(&mut st).await {
            Ok(()) => {
                st.last_failure = None;
                self.generation.fetch_add(1, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                st.last_failure = Some((now, e.to_string()));
                Err(e)
            }
        }
    }

    fn trusted(&self, url: &str) -> Result<(), Error> {
        let u = url::Url::parse(url).map_err(|e| Error::KeysUnavailable(format!("{url}: {e}")))?;
        let host = u.host_str().unwrap_or("").to_ascii_lowercase();
        if !self.s.trusted.contains(&host) {
            return Err(Error::KeysUnavailable(format!(
                "{url}: host {host:?} is not trusted"
            )));
        }
        match u.scheme() {
            "https" | "http" => Ok(()),
            s => Err(Error::KeysUnavailable(format!(
                "{url}: scheme {s} not allowed"
            ))),
        }
    }

    async fn read_limited(&self, mut res: reqwest::Response) -> Result<Vec<u8>, Error> {
        let unavailable = |e: reqwest::Error| Error::KeysUnavailable(describe(&e));
        if res
            .content_length()
            .is_some_and(|n| n as usize > self.s.size_limit)
        {
            return Err(Error::KeysUnavailable(format!(
                "the key set is larger than {} bytes",
                self.s.size_limit
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(unavailable)? {
            body.extend_from_slice(&chunk);
            if body.len() > self.s.size_limit {
                return Err(Error::KeysUnavailable(format!(
                    "the key set is larger than {} bytes",
                    self.s.size_limit
                )));
            }
        }
        Ok(body)
    }

    async fn jwks_url(&self, st: &mut FetchState) -> Result<String, Error> {
        if let Some(u) = self
            .s
            .source_url
            .clone()
            .or_else(|| self.s.jwks_url.clone())
            .or_else(|| st.jwks_url.clone())
        {
            return Ok(u);
        }
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            self.s.issuer.trim_end_matches('/')
        );
        let res = self
            .s
            .http
            .get(&discovery)
            .send()
            .await
            .map_err(|e| Error::KeysUnavailable(format!("discovery: {}", describe(&e))))?;
        if !res.status().is_success() {
            return Err(Error::KeysUnavailable(format!(
                "discovery: HTTP {}",
                res.status()
            )));
        }
        let body = self.read_limited(res).await?;
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::KeysUnavailable(format!("discovery: {e}")))?;
        if doc["issuer"].as_str() != Some(self.s.issuer.as_str()) {
            return Err(Error::KeysUnavailable(
                "discovery: the document names another issuer".into(),
            ));
        }
        let url = doc["jwks_uri"]
            .as_str()
            .ok_or_else(|| Error::KeysUnavailable("discovery: no jwks_uri".into()))?
            .to_string();
        if self.s.issuer.starts_with("https://") && !url.starts_with("https://") {
            return Err(Error::KeysUnavailable(
                "discovery: jwks_uri is not https".into(),
            ));
        }
        self.trusted(&url)?;
        st.jwks_url = Some(url.clone());
        Ok(url)
    }

    async fn fetch_set(&self, st: &mut FetchState) -> Result<(), Error> {
        let url = self.jwks_url(st).await?;
        self.trusted(&url)?;
        let previous = self.current();
        let mut req = self.s.http.get(&url).header("accept", "application/json");
        if let Some(etag) = previous.as_ref().and_then(|p| p.etag.clone()) {
            req = req.header("if-none-match", etag);
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let res = req
            .send()
            .await
            .map_err(|e| Error::KeysUnavailable(describe(&e)))?;
        let fresh_until = self.freshness(&res);
        if res.status() == reqwest::StatusCode::NOT_MODIFIED
            && let Some(prev) = previous
        {
            self.not_modified.fetch_add(1, Ordering::Relaxed);
            let keys = prev
                .keys
                .iter()
                .map(|(k, e)| {
                    (
                        k.clone(),
                        Entry {
                            key: e.key.clone(),
                            alg: e.alg,
                        },
                    )
                })
                .collect();
            *self.set.write().expect("jwks lock") = Some(Arc::new(Set {
                keys,
                fresh_until,
                etag: prev.etag.clone(),
            }));
            return Ok(());
        }
        if !res.status().is_success() {
            return Err(Error::KeysUnavailable(format!(
                "{url}: HTTP {}",
                res.status()
            )));
        }
        let etag = res
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = self.read_limited(res).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| Error::KeysUnavailable(format!("{url}: not a JWK Set: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let Some(entry) = usable(jwk) {
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), entry);
            }
        }
        *self.set.write().expect("jwks lock") = Some(Arc::new(Set {
            keys,
            fresh_until,
            etag,
        }));
        Ok(())
    }

    /// `min(cache_ttl, Cache-Control max-age)` from now (max-age at least 1 s); None when never stale.
    fn freshness(&self, res: &reqwest::Response) -> Option<Instant> {
        let ttl = self.s.ttl?;
        let max_age = res
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',').find_map(|d| {
                    let d = d.trim().to_ascii_lowercase();
                    if d == "no-cache" || d == "no-store" {
                        Some(0)
                    } else {
                        d.strip_prefix("max-age=")
                            .and_then(|n| n.parse::<u64>().ok())
                    }
                })
            });
        let secs = match max_age {
            Some(m) => ttl.as_secs().min(m.max(1)),
            None => ttl.as_secs(),
        };
        Some(Instant::now() + Duration::from_secs(secs))
    }
}

/// A verification key from a JWK: signature keys only (`use` absent or `sig`), public only.
fn usable(jwk: &Jwk) -> Option<Entry> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| !matches!(u, jsonwebtoken::jwk::PublicKeyUse::Signature))
    {
        return None;
    }
    if matches!(
        jwk.algorithm,
        jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
    ) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    // A key for another purpose (e.g. `RSA-OAEP`) is not a signature key.
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
    };
    Some(Entry { key, alg })
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.to_string()
    }
}
