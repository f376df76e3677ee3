//! What the server signs and publishes with: the active [`SigningKey`] (unsealed), the JWKS, and the
//! [`KeyRing`] that holds both as one snapshot and refreshes it from the database.

use super::*;

/// The active signing key, unsealed. aws-lc-rs wipes the key when it is dropped.
pub struct SigningKey {
    pub kid: String,
    pub(super) pair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RS256) through aws-lc-rs.
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|_| KeyError::Corrupt {
                kid: self.kid.clone(),
                reason: "RSA signing failed".into(),
            })?;
        Ok(sig)
    }

    /// A signing key from key material (benchmarks and unit tests; the server loads keys from the store).
    #[allow(
        clippy::expect_used,
        reason = "benchmark and test helper; KeyMaterial holds a key aws-lc-rs already parsed"
    )]
    pub fn from_material(m: &KeyMaterial) -> Self {
        Self {
            kid: m.kid(),
            pair: KeyPair::from_pkcs8(&m.pkcs8).expect("valid material"),
        }
    }
}

/// The published JWKS, serialised once per key change, with its ETag, and its RS256 keys parsed once
/// for verifying our own tokens ([`Jwks::decoding_key`]).
#[derive(Debug, Clone)]
pub struct Jwks {
    pub body: Arc<[u8]>,
    pub etag: String,
    pub kids: Vec<String>,
    pub max_age: u64,
    verifiers: Arc<Verifiers>,
}

/// Parsed public keys by kid (`DecodingKey` has no `Debug`).
#[derive(Default)]
struct Verifiers(Vec<(String, jsonwebtoken::DecodingKey)>);

impl std::fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(kid, _)| kid))
            .finish()
    }
}

#[derive(Serialize)]
struct JwkOut<'a> {
    kty: &'a str,
    #[serde(rename = "use")]
    use_: &'a str,
    alg: &'a str,
    kid: &'a str,
    n: &'a str,
    e: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    x5c: &'a [String],
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<&'a str>,
}

impl Jwks {
    pub(super) fn build(rows: &[sql::KeyRow], max_age: u64) -> Result<Self, KeyError> {
        let mut jwks = Vec::with_capacity(rows.len());
        for r in rows {
            let jwk: PublicJwk =
                serde_json::from_str(&r.public_jwk).map_err(|e| KeyError::Corrupt {
                    kid: r.kid.clone(),
                    reason: e.to_string(),
                })?;
            jwks.push((r.kid.clone(), r.alg.clone(), jwk));
        }
        Ok(Self::from_keys(
            jwks.iter().map(|(k, a, j)| (k.as_str(), a.as_str(), j)),
            max_age,
        ))
    }

    pub fn from_keys<'a>(
        keys: impl Iterator<Item = (&'a str, &'a str, &'a PublicJwk)>,
        max_age: u64,
    ) -> Self {
        let mut kids = Vec::new();
        let mut verifiers = Verifiers::default();
        let out: Vec<JwkOut> = keys
            .map(|(kid, alg, j)| {
                kids.push(kid.to_string());
                if alg == ALG
                    && let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_components(&j.n, &j.e)
                {
                    verifiers.0.push((kid.to_string(), key));
                }
                JwkOut {
                    kty: &j.kty,
                    use_: "sig",
                    alg,
                    kid,
                    n: &j.n,
                    e: &j.e,
                    x5c: &j.x5c,
                    x5t_s256: j.x5t_s256.as_deref(),
                }
            })
            .collect();
        // A `Value` always formats.
        let body = serde_json::json!({ "keys": out }).to_string().into_bytes();
        let etag = format!(
            "\"{}\"",
            &URL_SAFE_NO_PAD.encode(Sha256::digest(&body))[..27]
        );
        Self {
            body: body.into(),
            etag,
            kids,
            max_age,
            verifiers: Arc::new(verifiers),
        }
    }

    /// The parsed RS256 public key published under `kid`.
    pub fn decoding_key(&self, kid: &str) -> Option<&jsonwebtoken::DecodingKey> {
        self.verifiers
            .0
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key)
    }
}

/// What the server signs and publishes with at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub active: Option<Arc<SigningKey>>,
    pub jwks: Jwks,
    pub(super) fingerprint: String,
}

impl Snapshot {
    /// A snapshot holding one in-memory key (benchmarks and unit tests).
    pub fn single(material: &KeyMaterial) -> Self {
        let key = SigningKey::from_material(material);
        let jwks = Jwks::from_keys(
            std::iter::once((key.kid.as_str(), ALG, &material.public)),
            300,
        );
        Self {
            fingerprint: key.kid.clone(),
            active: Some(Arc::new(key)),
            jwks,
        }
    }
}

/// The live key snapshot shared by request handlers, refreshed from the database.
pub struct KeyRing {
    current: RwLock<Arc<Snapshot>>,
    service: Option<Arc<KeyService>>,
    jwks_max_age: u64,
    /// The last database write probe for `/ready`: (when, state), at most one probe a second.
    probe: std::sync::Mutex<Option<(std::time::Instant, &'static str)>>,
    /// A probe is running: concurrent `/ready` calls answer the last state instead of probing too.
    probing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    pub async fn load(service: Arc<KeyService>, jwks_max_age: u64) -> Result<Self, KeyError> {
        let snap = service.snapshot(jwks_max_age).await?;
        Ok(Self {
            current: RwLock::new(Arc::new(snap)),
            service: Some(service),
            jwks_max_age,
            probe: std::sync::Mutex::new(None),
            probing: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A fixed ring (no database): benchmarks and unit tests.
    pub fn fixed(snapshot: Snapshot) -> Self {
        Self {
            jwks_max_age: snapshot.jwks.max_age,
            current: RwLock::new(Arc::new(snapshot)),
            service: None,
            probe: std::sync::Mutex::new(None),
            probing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Retire what is due, and rebuild the snapshot when the set of visible keys changed.
    /// Returns true when the snapshot changed.
    pub async fn refresh(&self) -> Result<bool, KeyError> {
        let Some(service) = &self.service else {
            return Ok(false);
        };
        service.stage_if_due().await?;
        service.promote_due().await?;
        service.retire_expired().await?;
        let (fp, _) = service.fingerprint().await?;
        if fp == self.current().fingerprint {
            return Ok(false);
        }
        let snap = service.snapshot(self.jwks_max_age).await?;
        tracing::info!(active = snap.active.as_ref().map(|k| k.kid.as_str()).unwrap_or("-"),
            published = ?snap.jwks.kids, "signing keys reloaded");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snap);
        Ok(true)
    }

    /// Every stored key with its state (for `/metrics`); None for a fixed ring or when the database does
    /// not answer.
    pub async fn key_states(&self) -> Option<Vec<super::KeyInfo>> {
        self.service.as_ref()?.list_read_only().await.ok()
    }

    /// Refresh every `interval` until the ring is dropped.
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(ring) = weak.upgrade() else { break };
                if let Err(e) = ring.refresh().await {
                    tracing::error!(error = %e, "reloading signing keys failed; keeping the current set");
                }
            }
        })
    }

    /// The database for `/ready`: `ok`, `unreachable` (no answer) or `not_writable` (answers, but a write
    /// fails: full disk, read-only file or filesystem; or less than [`store::MIN_FREE_BYTES`] are free). Probed at most once a second (an unauthenticated
    /// endpoint must not turn into a write load); the cause of a failure is logged, not answered.
    pub async fn database_state(&self) -> &'static str {
        let Some(s) = &self.service else {
            return "ok";
        };
        let last = self.probe.lock().ok().and_then(|g| *g);
        if let Some((at, state)) = last
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return state;
        }
        use std::sync::atomic::Ordering;
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // One probe at a time (single flight): the others answer what the last one found.
            return last.map(|(_, state)| state).unwrap_or("ok");
        }
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, std::sync::atomic::Ordering::Release);
            }
        }
        let _done = Done(&self.probing);
        let free = store::free_space(s.pool());
        let state = match store::writable(s.pool(), s.now()).await {
            Ok(()) if free.is_some_and(|f| f < store::MIN_FREE_BYTES) => {
                tracing::error!(
                    free_bytes = free,
                    "the disk holding the database is full: not ready"
                );
                "not_writable"
            }
            Ok(()) => "ok",
            // Busy or locked (a long write elsewhere, e.g. a CLI import): not a verdict on the database;
            // keep the last state rather than flap.
            Err(e) if store::is_busy(s.pool(), &e) => {
                return last.map(|(_, state)| state).unwrap_or("ok");
            }
            Err(e) => {
                let reason = store::describe_for(s.pool(), &e, "the database");
                if store::ping(s.pool()).await {
                    tracing::error!(reason = %reason, "the database does not take writes: not ready");
                    "not_writable"
                } else {
                    tracing::error!(reason = %reason, "the database does not answer: not ready");
                    "unreachable"
                }
            }
        };
        if let Ok(mut g) = self.probe.lock() {
            *g = Some((std::time::Instant::now(), state));
        }
        state
    }
}
