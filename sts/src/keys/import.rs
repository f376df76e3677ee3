//! PKCS#12 keystore import: exactly one RSA key pair (>= 2048 bits), password-protected, with its
//! certificate chain kept for `x5c` / `x5t#S256`. Everything is parsed and checked in memory before
//! anything is written, so a refused keystore changes nothing.
//!
//! Checks, in order:
//! 1. the password is not empty; the file is a complete DER structure (truncation is caught here);
//! 2. the file has a PKCS#12 integrity MAC, and it verifies under the password (wrong password);
//! 3. exactly one private key bag (zero or several are refused, naming what was found);
//! 4. the key algorithm is rsaEncryption (EC, Ed25519, RSA-PSS... refused by name);
//! 5. the key parses in aws-lc-rs and has at least 2048 bits;
//! 6. when certificates are present, the leaf certificate's public key is the key pair's public key;
//!    the chain is the leaf followed by its issuers found in the file.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p12_keystore::Pkcs12Archive;
use p12_keystore::error::Error as P12Error;
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;
use zeroize::Zeroizing;

use super::material::{KeyMaterial, KeySource, MaterialError, modulus_bytes};

const RSA_OID: &str = "1.2.840.113549.1.1.1";
const MIN_RSA_BITS: usize = 2048;
/// Keystores are small; refuse anything larger than this before parsing.
pub const MAX_KEYSTORE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the keystore password is empty; a password-protected PKCS#12 keystore is required")]
    EmptyPassword,
    #[error("the keystore file is empty")]
    EmptyFile,
    #[error("the keystore is larger than {MAX_KEYSTORE_BYTES} bytes")]
    TooLarge,
    #[error("not a PKCS#12 keystore, or the file is truncated or corrupt ({0})")]
    Corrupt(String),
    #[error(
        "the keystore has no integrity MAC (made with -nomac?), so it is not password-protected; export it with a password"
    )]
    NoMac,
    #[error("wrong keystore password (the PKCS#12 integrity check failed)")]
    WrongPassword,
    #[error("the keystore could not be decrypted: wrong password or corrupt content ({0})")]
    Undecryptable(String),
    #[error("unsupported keystore protection: {0}")]
    Unsupported(String),
    #[error(
        "the keystore holds no private key (it has {certs} certificate(s)); exactly one RSA key pair is required"
    )]
    NoKey { certs: usize },
    #[error(
        "the keystore holds {count} private keys ({aliases}); exactly one RSA key pair is required"
    )]
    SeveralKeys { count: usize, aliases: String },
    #[error(
        "the keystore's private key is {algorithm}, not RSA; only an RSA key pair can sign RS256 tokens"
    )]
    NotRsa { algorithm: String },
    #[error("the RSA key is too small ({0}); at least {MIN_RSA_BITS} bits are required")]
    TooSmall(String),
    #[error("the RSA private key could not be read: {0}")]
    BadKey(String),
    #[error("the keystore's certificate does not match its private key")]
    CertificateMismatch,
}

fn algorithm_name(oid: &str) -> String {
    let name = match oid {
        "1.2.840.10045.2.1" => "EC (ECDSA)",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.113549.1.1.10" => "RSA-PSS (restricted RSA key, not usable for RS256)",
        "1.2.840.10040.4.1" => "DSA",
        _ => "an unknown algorithm",
    };
    format!("{name} ({oid})")
}

/// One DER header at the start of `data`: (tag, header length, content length).
fn der_header(data: &[u8]) -> Result<(u8, usize, usize), ImportError> {
    let corrupt = |m: &str| ImportError::Corrupt(m.to_string());
    if data.len() < 2 {
        return Err(corrupt("truncated DER header"));
    }
    match data[1] {
        l if l < 0x80 => Ok((data[0], 2, l as usize)),
        0x80 => Err(corrupt("indefinite length is not DER")),
        l => {
            let n = (l & 0x7f) as usize;
            if n > 4 || data.len() < 2 + n {
                return Err(corrupt("bad length header"));
            }
            let len = data[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            Ok((data[0], 2 + n, len))
        }
    }
}

/// Check that `data` is one complete DER SEQUENCE (catches truncated and padded files early) and that
/// the PFX carries `macData` (RFC 7292 section 4: version, authSafe, macData OPTIONAL). Without a MAC
/// any password would be accepted, so such a keystore is not password-protected.
fn check_pfx_structure(data: &[u8]) -> Result<(), ImportError> {
    let corrupt = |m: &str| ImportError::Corrupt(m.to_string());
    let (tag, header, len) = der_header(data)?;
    if tag != 0x30 {
        return Err(corrupt("does not start with a DER SEQUENCE"));
    }
    match (header + len).cmp(&data.len()) {
        std::cmp::Ordering::Greater => {
            return Err(corrupt(&format!(
                "truncated: {} of {} bytes",
                data.len(),
                header + len
            )));
        }
        std::cmp::Ordering::Less => return Err(corrupt("trailing bytes after the keystore")),
        std::cmp::Ordering::Equal => {}
    }
    let mut rest = &data[header..];
    for what in ["version", "authSafe"] {
        let (_, h, l) = der_header(rest)?;
        if h + l > rest.len() {
            return Err(corrupt(&format!("{what} overruns the file")));
        }
        rest = &rest[h + l..];
    }
    if rest.is_empty() {
        return Err(ImportError::NoMac);
    }
    Ok(())
}

fn map_p12_error(e: P12Error) -> ImportError {
    match e {
        P12Error::MacError(_) => ImportError::WrongPassword,
        P12Error::UnpadError | P12Error::InvalidPrivateKey | P12Error::Pkcs5Error(_) => {
            ImportError::Undecryptable(e.to_string())
        }
        P12Error::UnsupportedEncryptionScheme
        | P12Error::UnsupportedMacAlgorithm
        | P12Error::UnsupportedContentType => ImportError::Unsupported(e.to_string()),
        other => ImportError::Corrupt(other.to_string()),
    }
}

/// Parse and check a PKCS#12 keystore; returns the key material with its certificate chain.
pub fn from_pkcs12(data: &[u8], password: &str) -> Result<KeyMaterial, ImportError> {
    if password.is_empty() {
        return Err(ImportError::EmptyPassword);
    }
    if data.is_empty() {
        return Err(ImportError::EmptyFile);
    }
    if data.len() > MAX_KEYSTORE_BYTES {
        return Err(ImportError::TooLarge);
    }
    check_pfx_structure(data)?;
    let archive = Pkcs12Archive::from_pkcs12(data, password).map_err(map_p12_error)?;

    let key_bag = match archive.keys.as_slice() {
        [] => {
            return Err(ImportError::NoKey {
                certs: archive.certs.len(),
            });
        }
        [one] => one,
        several => {
            let aliases = several
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    k.friendly_name
                        .clone()
                        .unwrap_or_else(|| format!("#{}", i + 1))
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ImportError::SeveralKeys {
                count: several.len(),
                aliases,
            });
        }
    };
    let oid = key_bag.key.oid().to_string();
    if oid != RSA_OID {
        return Err(ImportError::NotRsa {
            algorithm: algorithm_name(&oid),
        });
    }
    let pkcs8 = Zeroizing::new(key_bag.key.as_der().to_vec());
    let mut material =
        KeyMaterial::from_pkcs8(pkcs8, KeySource::Imported).map_err(|e| match e {
            // aws-lc-rs itself refuses RSA keys under 2048 bits.
            MaterialError::Rejected(reason) if reason.contains("TooSmall") => {
                ImportError::TooSmall("refused by aws-lc".into())
            }
            other => ImportError::BadKey(other.to_string()),
        })?;
    if material.bits < MIN_RSA_BITS {
        return Err(ImportError::TooSmall(format!("{} bits", material.bits)));
    }

    // Certificates: find the leaf for this key (by public key), then walk up its issuers.
    let modulus = modulus_bytes(&material.public);
    let mut parsed = Vec::new();
    for bag in &archive.certs {
        let der = bag.cert.as_der().to_vec();
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| ImportError::Corrupt(format!("certificate could not be parsed: {e}")))?;
        let cert_modulus = match cert.public_key().parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                Some(strip_zeros(rsa.modulus).to_vec())
            }
            _ => None,
        };
        let entry = (
            cert.subject().to_string(),
            cert.issuer().to_string(),
            cert_modulus,
            cert.validity().is_valid(),
        );
        parsed.push((der.clone(), entry.0, entry.1, entry.2, entry.3));
    }
    if !parsed.is_empty() {
        let leaf_idx = parsed
            .iter()
            .position(|(_, _, _, m, _)| m.as_deref() == Some(modulus.as_slice()))
            .ok_or(ImportError::CertificateMismatch)?;
        let mut chain = vec![leaf_idx];
        let mut current = leaf_idx;
        while parsed[current].1 != parsed[current].2 {
            let issuer = &parsed[current].2;
            match parsed
                .iter()
                .enumerate()
                .position(|(i, c)| !chain.contains(&i) && &c.1 == issuer)
            {
                Some(next) => {
                    chain.push(next);
                    current = next;
                }
                None => break,
            }
        }
        let leaf = &parsed[leaf_idx];
        if !leaf.4 {
            tracing::warn!(subject = %leaf.1, "the imported certificate is outside its validity period; tokens still verify by key, but x5c consumers may refuse it");
        }
        material.public.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&leaf.0)));
        material.public.x5c = chain
            .iter()
            .map(|i| STANDARD.encode(&parsed[*i].0))
            .collect();
    }
    Ok(material)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncation_are_corrupt() {
        assert_eq!(from_pkcs12(b"", "pw").unwrap_err(), ImportError::EmptyFile);
        assert!(matches!(
            from_pkcs12(b"hello world", "pw"),
            Err(ImportError::Corrupt(_))
        ));
        assert!(
            matches!(from_pkcs12(&[0x30, 0x82, 0x10, 0x00, 1, 2, 3], "pw"), Err(ImportError::Corrupt(m)) if m.contains("truncated"))
        );
        assert_eq!(
            from_pkcs12(&[0x30, 0x00], "").unwrap_err(),
            ImportError::EmptyPassword
        );
    }
}
