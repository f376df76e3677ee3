//! Signing keys: generate, import (PKCS#12), seal at rest under the master key, rotate, publish (JWKS).
//!
//! States (docs/architecture.md): `active` signs new tokens (at most one); `published` signs nothing but
//! stays in the JWKS until every token it may have signed has expired (max token lifetime + leeway +
//! one reload interval); `retired` has left the JWKS. Rows are never deleted here.
//!
//! [`KeyService`] owns the database side; [`KeyRing`] holds the in-memory snapshot the server signs and
//! publishes with, refreshed from the database so CLI changes reach a running server within one
//! reload interval.

pub mod import;
pub mod master;
pub mod material;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::rsa::KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::store::{self, Pool, keys as sql};
pub use import::ImportError;
pub use master::{MasterKey, MasterKeyError};
pub use material::{KeyMaterial, KeySource, PublicJwk};

pub const ALG: &str = "RS256";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the database holds {count} signing key(s) sealed by master key id {stored}, but the master key was not found: {cause}. \
         Refusing to start (a new key would orphan them): restore the master key file or set STS_MASTER_KEY"
    )]
    MasterKeyMissing {
        count: i64,
        stored: String,
        cause: MasterKeyError,
    },
    #[error(
        "wrong master key: the database's signing keys are sealed by master key id {stored}, \
         but the configured master key ({origin}) has id {actual}. Refusing to start; restore the original master key"
    )]
    WrongMasterKey {
        stored: String,
        actual: String,
        origin: String,
    },
    #[error(transparent)]
    Master(#[from] MasterKeyError),
    #[error("signing key {kid} could not be decrypted with the master key; the row may be corrupt")]
    Unseal { kid: String },
    #[error("stored signing key {kid} is unusable: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error(transparent)]
    Material(#[from] material::MaterialError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("the key {kid} is already in the key store")]
    Duplicate { kid: String },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// A key's metadata, as listed by `sts keys list`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub source: String,
    pub state: String,
    pub created_at: i64,
    pub deactivated_at: Option<i64>,
    pub publish_until: Option<i64>,
    pub retired_at: Option<i64>,
    pub certificates: usize,
}

impl From<sql::KeyRow> for KeyInfo {
    fn from(r: sql::KeyRow) -> Self {
        let certificates = serde_json::from_str::<PublicJwk>(&r.public_jwk)
            .map(|j| j.x5c.len())
            .unwrap_or_default();
        Self {
            kid: r.kid,
            alg: r.alg,
            source: r.source,
            state: r.state,
            created_at: r.created_at,
            deactivated_at: r.deactivated_at,
            publish_until: r.publish_until,
            retired_at: r.retired_at,
            certificates,
        }
    }
}

/// Database-backed key management.
pub struct KeyService {
    pool: Pool,
    master: MasterKey,
    clock: SharedClock,
    rsa_bits: usize,
    grace: i64,
    actor: &'static str,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl KeyService {
    /// Load the master key and check it against the stored keys. A missing master key is created only
    /// when the database holds no key at all; a missing or different one with stored keys is an error.
    pub async fn open(
        pool: Pool,
        config: &Config,
        clock: SharedClock,
        actor: &'static str,
    ) -> Result<Self, KeyError> {
        let count = sql::count(&pool).await?;
        let stored = sql::master_key_ids(&pool).await?;
        let master = match MasterKey::load(&config.master_key, count == 0) {
            Ok(m) => m,
            Err(cause @ MasterKeyError::Missing { .. }) => {
                return Err(KeyError::MasterKeyMissing {
                    count,
                    stored: stored.join(", "),
                    cause,
                });
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(other) = stored.iter().find(|id| *id != master.id()) {
            return Err(KeyError::WrongMasterKey {
                stored: other.clone(),
                actual: master.id().to_string(),
                origin: master.origin().to_string(),
            });
        }
        Ok(Self {
            pool,
            master,
            clock,
            rsa_bits: config.rsa_bits,
            grace: config.publish_grace_seconds(),
            actor,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Generate the first key when there is no active key. Safe against a concurrent process doing the same.
    pub async fn ensure_active(&self) -> Result<(), KeyError> {
        if sql::has_active(&self.pool).await? {
            return Ok(());
        }
        let material = generate(self.rsa_bits).await?;
        let kid = material.kid();
        let (jwk, sealed) = self.seal_material(&material)?;
        let new = self.new_key(&kid, &material, &jwk, &sealed);
        if sql::insert_first_active(&self.pool, &new, self.actor).await? {
            tracing::info!(kid = %kid, bits = material.bits, "generated the first signing key");
        }
        Ok(())
    }

    /// Generate a new key and make it active; the previous one stays published.
    pub async fn regenerate(&self) -> Result<KeyInfo, KeyError> {
        self.regenerate_audited(None).await
    }

    /// [`KeyService::regenerate`] with an audit entry `(actor, action)` committed in the same transaction.
    pub async fn regenerate_audited(
        &self,
        audit: Option<(&str, &str)>,
    ) -> Result<KeyInfo, KeyError> {
        let material = generate(self.rsa_bits).await?;
        self.activate(material, "generated", audit).await
    }

    /// Import a PKCS#12 keystore (see [`import`]) and make its key active. Nothing changes on error.
    pub async fn import_pkcs12(&self, data: &[u8], password: &str) -> Result<KeyInfo, KeyError> {
        self.import_pkcs12_audited(data, password, None).await
    }

    /// [`KeyService::import_pkcs12`] with an audit entry `(actor, action)` committed in the same transaction.
    pub async fn import_pkcs12_audited(
        &self,
        data: &[u8],
        password: &str,
        audit: Option<(&str, &str)>,
    ) -> Result<KeyInfo, KeyError> {
        let material = import::from_pkcs12(data, password)?;
        self.activate(material, "imported", audit).await
    }

    async fn activate(
        &self,
        material: KeyMaterial,
        action: &str,
        audit: Option<(&str, &str)>,
    ) -> Result<KeyInfo, KeyError> {
        let kid = material.kid();
        if sql::all(&self.pool).await?.iter().any(|r| r.kid == kid) {
            return Err(KeyError::Duplicate { kid });
        }
        let (jwk, sealed) = self.seal_material(&material)?;
        let new = self.new_key(&kid, &material, &jwk, &sealed);
        let previous = sql::rotate_to(&self.pool, &new, self.grace, self.actor, action, audit)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    KeyError::Duplicate { kid: kid.clone() }
                }
                other => other.into(),
            })?;
        tracing::info!(kid = %kid, previous = previous.as_deref().unwrap_or("-"), source = material.source.as_str(),
            "new active signing key");
        let row = sql::all(&self.pool)
            .await?
            .into_iter()
            .find(|r| r.kid == kid)
            .expect("just inserted");
        Ok(row.into())
    }

    fn seal_material(&self, material: &KeyMaterial) -> Result<(String, String), KeyError> {
        let jwk = serde_json::to_string(&material.public).expect("serialisable");
        let sealed = self.master.seal(&material.pkcs8, &aad(&material.kid()))?;
        Ok((jwk, sealed))
    }

    fn new_key<'a>(
        &'a self,
        kid: &'a str,
        m: &KeyMaterial,
        jwk: &'a str,
        sealed: &'a str,
    ) -> sql::NewKey<'a> {
        sql::NewKey {
            kid,
            alg: ALG,
            source: m.source.as_str(),
            public_jwk: jwk,
            sealed,
            master_key_id: self.master.id(),
            now: self.clock.now(),
        }
    }

    /// Seal other secrets (e.g. the SAML SP private key) under the master key; `aad` names the row.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, KeyError> {
        Ok(self.master.seal(plaintext, aad)?)
    }

    pub fn open_sealed(
        &self,
        sealed: &str,
        aad: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
        Ok(self.master.open(sealed, aad)?)
    }

    /// A purpose-bound key derived from the master key (see [`MasterKey::derive`]).
    pub fn derive_key(&self, label: &str) -> zeroize::Zeroizing<[u8; 32]> {
        self.master.derive(label)
    }

    pub fn master_key_id(&self) -> &str {
        self.master.id()
    }

    /// Every key, newest first (after moving expired published keys to retired).
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        self.retire_expired().await?;
        Ok(sql::all(&self.pool)
            .await?
            .into_iter()
            .map(KeyInfo::from)
            .collect())
    }

    pub async fn retire_expired(&self) -> Result<Vec<String>, KeyError> {
        let kids = sql::retire_expired(&self.pool, self.clock.now(), self.actor).await?;
        for kid in &kids {
            tracing::info!(kid = %kid, "signing key retired: every token it signed has expired");
        }
        Ok(kids)
    }

    /// Fingerprint of what the JWKS and signer depend on; cheap (no decryption).
    async fn fingerprint(&self) -> Result<(String, Vec<sql::KeyRow>), KeyError> {
        let rows = sql::visible(&self.pool, self.clock.now()).await?;
        let fp = rows
            .iter()
            .map(|r| format!("{}:{}", r.kid, r.state))
            .collect::<Vec<_>>()
            .join(",");
        Ok((fp, rows))
    }

    /// Build a snapshot: the active key unsealed into aws-lc-rs, and the JWKS document.
    pub async fn snapshot(&self, jwks_max_age: u64) -> Result<Snapshot, KeyError> {
        let (fingerprint, rows) = self.fingerprint().await?;
        let active = match sql::active_sealed(&self.pool).await? {
            None => None,
            Some((kid, sealed)) => {
                let pkcs8 = self
                    .master
                    .open(&sealed, &aad(&kid))
                    .map_err(|_| KeyError::Unseal { kid: kid.clone() })?;
                let pair = KeyPair::from_pkcs8(&pkcs8).map_err(|e| KeyError::Corrupt {
                    kid: kid.clone(),
                    reason: e.to_string(),
                })?;
                Some(Arc::new(SigningKey { kid, pair }))
            }
        };
        let jwks = Jwks::build(&rows, jwks_max_age)?;
        Ok(Snapshot {
            active,
            jwks,
            fingerprint,
        })
    }
}

fn aad(kid: &str) -> String {
    format!("sts signing key v1:{kid}")
}

async fn generate(bits: usize) -> Result<KeyMaterial, KeyError> {
    // RSA generation takes a while (up to seconds for 4096 bits): keep it off the async workers.
    tokio::task::spawn_blocking(move || KeyMaterial::generate(bits))
        .await
        .map_err(|_| KeyError::Material(material::MaterialError::Generate))?
        .map_err(KeyError::from)
}

/// The active signing key, unsealed. aws-lc-rs wipes the key when it is dropped.
pub struct SigningKey {
    pub kid: String,
    pair: KeyPair,
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
    pub fn sign_rs256(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .expect("RSA signing with a validated key does not fail");
        sig
    }

    /// A signing key from key material (benchmarks and unit tests; the server loads keys from the store).
    pub fn from_material(m: &KeyMaterial) -> Self {
        Self {
            kid: m.kid(),
            pair: KeyPair::from_pkcs8(&m.pkcs8).expect("valid material"),
        }
    }
}

/// The published JWKS, serialised once per key change, with its ETag.
#[derive(Debug, Clone)]
pub struct Jwks {
    pub body: Arc<[u8]>,
    pub etag: String,
    pub kids: Vec<String>,
    pub max_age: u64,
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
    fn build(rows: &[sql::KeyRow], max_age: u64) -> Result<Self, KeyError> {
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
        let out: Vec<JwkOut> = keys
            .map(|(kid, alg, j)| {
                kids.push(kid.to_string());
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
        let body = serde_json::to_vec(&serde_json::json!({ "keys": out })).expect("serialisable");
        let etag = format!(
            "\"{}\"",
            &URL_SAFE_NO_PAD.encode(Sha256::digest(&body))[..27]
        );
        Self {
            body: body.into(),
            etag,
            kids,
            max_age,
        }
    }
}

/// What the server signs and publishes with at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub active: Option<Arc<SigningKey>>,
    pub jwks: Jwks,
    fingerprint: String,
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
            Err(e)
                if e.as_database_error()
                    .and_then(|d| d.code())
                    .and_then(|c| c.parse::<i64>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6)) =>
            {
                return last.map(|(_, state)| state).unwrap_or("ok");
            }
            Err(e) => {
                let reason = store::explain(&e, "the database");
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

#[cfg(test)]
mod tests;
