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
mod ring;

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
pub use ring::{Jwks, KeyRing, SigningKey, Snapshot};

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
    #[error(
        "a next key is staged already ({kid}, active from {activate_after} (unix time)); it stays: stage another after it became active"
    )]
    NextStaged { kid: String, activate_after: i64 },
    #[error("a key could not be serialised: {0}")]
    Json(#[from] serde_json::Error),
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
    /// `next`: when it becomes active (at the first reload after this time).
    pub activate_after: Option<i64>,
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
            activate_after: r.activate_after,
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
    /// How long a staged next key is published before it signs (`Config::next_key_delay_seconds`).
    next_delay: i64,
    /// `keys.rotate_after_days`, in seconds.
    rotate_after: Option<i64>,
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
            next_delay: config.next_key_delay_seconds(),
            rotate_after: config.key_rotate_after.map(|d| d.as_secs() as i64),
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

    /// Generate a key and stage it as the next one: published in the JWKS at once, signing only after
    /// `next_delay` (so verifiers with a cached JWKS already know it), then promoted by [`Self::promote_due`].
    pub async fn stage_next(&self, audit: Option<(&str, &str)>) -> Result<KeyInfo, KeyError> {
        self.refuse_if_staged().await?;
        let material = generate(self.rsa_bits).await?;
        self.stage(material, "staged", audit).await
    }

    /// Import a PKCS#12 keystore (see [`import`]) as the next key. Nothing changes on error.
    pub async fn stage_next_pkcs12(
        &self,
        data: &[u8],
        password: &str,
        audit: Option<(&str, &str)>,
    ) -> Result<KeyInfo, KeyError> {
        self.refuse_if_staged().await?;
        let material = import::from_pkcs12(data, password)?;
        self.stage(material, "imported", audit).await
    }

    async fn refuse_if_staged(&self) -> Result<(), KeyError> {
        match sql::next_key(&self.pool).await? {
            Some((kid, activate_after)) => Err(KeyError::NextStaged {
                kid,
                activate_after,
            }),
            None => Ok(()),
        }
    }

    async fn stage(
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
        let activate_after = new.now + self.next_delay;
        match sql::insert_next(&self.pool, &new, activate_after, self.actor, action, audit).await {
            Ok(sql::Staged::Staged) => {}
            Ok(sql::Staged::AlreadyStaged(other)) => {
                return Err(KeyError::NextStaged {
                    kid: other,
                    activate_after,
                });
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(KeyError::Duplicate { kid });
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(kid = %kid, activate_after, source = material.source.as_str(), "next signing key staged (published, not signing yet)");
        self.info(&kid).await
    }

    async fn info(&self, kid: &str) -> Result<KeyInfo, KeyError> {
        sql::all(&self.pool)
            .await?
            .into_iter()
            .find(|r| r.kid == kid)
            .map(KeyInfo::from)
            .ok_or_else(|| KeyError::Corrupt {
                kid: kid.to_string(),
                reason: "not found right after it was stored".into(),
            })
    }

    /// Promote the staged next key when its time has come (every replica calls this on each reload; the
    /// write transaction makes it happen once). Returns the new active kid.
    pub async fn promote_due(&self) -> Result<Option<String>, KeyError> {
        let promoted =
            sql::promote_due(&self.pool, self.clock.now(), self.grace, self.actor).await?;
        Ok(promoted.map(|(previous, kid)| {
            tracing::info!(kid = %kid, previous = previous.as_deref().unwrap_or("-"), "staged next key is now active");
            kid
        }))
    }

    /// With `keys.rotate_after_days`: stage a next key when the active one is that old and none is
    /// staged. Replicas racing here stage one key (the second finds it staged and stops).
    pub async fn stage_if_due(&self) -> Result<Option<String>, KeyError> {
        let Some(after) = self.rotate_after else {
            return Ok(None);
        };
        if sql::next_key(&self.pool).await?.is_some() {
            return Ok(None);
        }
        let now = self.clock.now();
        let due = sql::all(&self.pool)
            .await?
            .iter()
            .find(|r| r.state == "active")
            .is_some_and(|r| r.created_at + after <= now);
        if !due {
            return Ok(None);
        }
        match self
            .stage_next(Some(("server", "key.scheduled_rotation")))
            .await
        {
            Ok(info) => Ok(Some(info.kid)),
            Err(KeyError::NextStaged { .. }) => Ok(None),
            Err(e) => Err(e),
        }
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
            .ok_or_else(|| KeyError::Corrupt {
                kid: kid.clone(),
                reason: "not found right after it was stored".into(),
            })?;
        Ok(row.into())
    }

    fn seal_material(&self, material: &KeyMaterial) -> Result<(String, String), KeyError> {
        let jwk = serde_json::to_string(&material.public)?;
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

    /// Every key, newest first, as stored (no write: for `/metrics`, which anyone may be able to read).
    pub async fn list_read_only(&self) -> Result<Vec<KeyInfo>, KeyError> {
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

    /// Whether a stored signing key opens under this master key and is a usable RSA key (`sts migrate`
    /// checks every copied key this way).
    pub fn check_signing_key(&self, kid: &str, sealed: &str) -> Result<(), KeyError> {
        let pkcs8 = self
            .master
            .open(sealed, &aad(kid))
            .map_err(|_| KeyError::Unseal {
                kid: kid.to_string(),
            })?;
        KeyPair::from_pkcs8(&pkcs8).map_err(|e| KeyError::Corrupt {
            kid: kid.to_string(),
            reason: e.to_string(),
        })?;
        Ok(())
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

#[cfg(test)]
mod tests;
