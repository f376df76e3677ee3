//! The master key: 32 random bytes that seal every private key stored in the database (AES-256-GCM).
//! It never enters the database; only its id (a hash) does, so a wrong key is recognised before use.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::MasterKeySource;

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "master key {origin}: not valid base64 of 32 bytes (generate one with `openssl rand -base64 32`)"
    )]
    Malformed { origin: String },
    #[error("cannot read master key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create master key file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("master key file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("sealing failed")]
    Seal,
    #[error(
        "a sealed private key could not be decrypted with the master key (wrong key or corrupted row)"
    )]
    Open,
}

/// The master key. `Debug` shows only its id; the bytes are wiped on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    id: String,
    origin: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Load the configured master key. When it is a file that does not exist and `may_create` is true, a
    /// new random key is written there with mode 0600 (directory 0700). Never creates an inline key.
    pub fn load(source: &MasterKeySource, may_create: bool) -> Result<Self, MasterKeyError> {
        match source {
            MasterKeySource::Inline(secret) => {
                Self::from_base64(secret.expose(), "from STS_MASTER_KEY".into())
            }
            MasterKeySource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => {
                    warn_if_readable_by_others(path);
                    Self::from_base64(&Zeroizing::new(text), format!("file {}", path.display()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if may_create {
                        Self::create(path)
                    } else {
                        Err(MasterKeyError::Missing { path: path.clone() })
                    }
                }
                Err(e) => Err(MasterKeyError::Read {
                    path: path.clone(),
                    source: e,
                }),
            },
        }
    }

    fn from_base64(text: &str, origin: String) -> Result<Self, MasterKeyError> {
        let t = text.trim();
        let decoded = Zeroizing::new(
            STANDARD
                .decode(t)
                .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
                .map_err(|_| MasterKeyError::Malformed {
                    origin: origin.clone(),
                })?,
        );
        let arr: [u8; 32] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| MasterKeyError::Malformed {
                    origin: origin.clone(),
                })?;
        Ok(Self::from_bytes(arr, origin))
    }

    fn from_bytes(bytes: [u8; 32], origin: String) -> Self {
        let mut h = Sha256::new();
        h.update(b"sts master key id v1\0");
        h.update(bytes);
        let id = hex::encode(&h.finalize()[..8]);
        Self {
            bytes: Zeroizing::new(bytes),
            id,
            origin,
        }
    }

    fn create(path: &Path) -> Result<Self, MasterKeyError> {
        let err = |e| MasterKeyError::Create {
            path: path.to_path_buf(),
            source: e,
        };
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| err(std::io::Error::other("no randomness")))?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
            restrict_dir(dir);
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(err)?;
        let encoded = Zeroizing::new(STANDARD.encode(bytes));
        file.write_all(encoded.as_bytes())
            .and_then(|_| file.write_all(b"\n"))
            .and_then(|_| file.sync_all())
            .map_err(err)?;
        tracing::warn!(path = %path.display(), "created a new master key file; back it up: without it the stored signing keys cannot be used");
        Ok(Self::from_bytes(bytes, format!("file {}", path.display())))
    }

    /// Short, non-secret identifier of this key (recorded next to every row it seals).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the key came from, for error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A 256-bit key for another purpose, derived with HMAC-SHA256(master, label): the master key itself is
    /// never used for two things.
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.bytes.as_ref());
        let tag = aws_lc_rs::hmac::sign(&key, label.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// AES-256-GCM with a random 96-bit nonce; `aad` binds the ciphertext to its row (e.g. the kid).
    /// Output: base64url(nonce || ciphertext || tag).
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, MasterKeyError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, self.bytes.as_ref())
            .map_err(|_| MasterKeyError::Seal)?;
        let mut buf = Zeroizing::new(plaintext.to_vec());
        let nonce = key
            .seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut *buf)
            .map_err(|_| MasterKeyError::Seal)?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str, aad: &str) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| MasterKeyError::Open)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(MasterKeyError::Open);
        }
        let nonce = Nonce::try_assume_unique_for_key(&raw[..NONCE_LEN])
            .map_err(|_| MasterKeyError::Open)?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, self.bytes.as_ref())
            .map_err(|_| MasterKeyError::Open)?;
        let mut buf = Zeroizing::new(raw[NONCE_LEN..].to_vec());
        let len = key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| MasterKeyError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.permissions().mode() & 0o077 != 0
        && dir.file_name().is_some_and(|n| n == "keys")
    {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
}
#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) {}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "master key file is readable by group or others; chmod 600 it");
    }
}
#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let k = MasterKey::from_bytes([7u8; 32], "test".into());
        let sealed = k.seal(b"private bytes", "kid-1").unwrap();
        assert_eq!(&*k.open(&sealed, "kid-1").unwrap(), b"private bytes");
        assert!(
            k.open(&sealed, "kid-2").is_err(),
            "ciphertext is bound to its row"
        );
        let other = MasterKey::from_bytes([8u8; 32], "test".into());
        assert!(other.open(&sealed, "kid-1").is_err());
        assert_ne!(k.id(), other.id());
        assert_ne!(
            k.seal(b"x", "a").unwrap(),
            k.seal(b"x", "a").unwrap(),
            "fresh nonce per seal"
        );
    }

    #[test]
    fn created_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let src = MasterKeySource::File(path.clone());
        assert!(matches!(
            MasterKey::load(&src, false),
            Err(MasterKeyError::Missing { .. })
        ));
        let k1 = MasterKey::load(&src, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let k2 = MasterKey::load(&src, true).unwrap();
        assert_eq!(k1.id(), k2.id());
        assert!(!format!("{k1:?}").contains(&STANDARD.encode(*k1.bytes)));
    }

    #[test]
    fn malformed_keys_are_refused() {
        use crate::config::Secret;
        for bad in ["", "not base64!", "c2hvcnQ="] {
            let src = MasterKeySource::Inline(Secret::new(bad.into()));
            assert!(
                matches!(
                    MasterKey::load(&src, true),
                    Err(MasterKeyError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }
}
