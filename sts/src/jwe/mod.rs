//! Compact JWE encryption (RFC 7516) to a client's public key, for the encrypted token redirect: the
//! token response travels through the browser's address bar to a program on the user's machine, readable
//! only with the private key that program holds.
//!
//! Only what that needs, on aws-lc-rs (the stack's crypto library; Rust JWE crates either link OpenSSL or
//! ring, and none of them uses aws-lc-rs — see docs/security.md, "Encrypted token redirect"):
//! - key management `ECDH-ES+A256KW` (P-256: an ephemeral key agreement, Concat KDF with SHA-256, AES-256
//!   key wrap) or `RSA-OAEP-256` (RSA 2048..=8192 bits, OAEP with SHA-256 and MGF1-SHA-256);
//! - content encryption `A256GCM` with a random 96-bit IV and the protected header as AAD.
//!
//! Encryption only: the STS never decrypts. [`ClientKey::parse`] checks the JWK the client sent (kind,
//! curve, size, no private members, `use`/`alg` consistent) and the point or modulus itself, so a bad key
//! is refused when the request arrives, not when the token is ready.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use aws_lc_rs::digest;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrap};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// Why a client's key was refused (shown to the user; names no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyRefused(pub String);

fn refuse(m: impl Into<String>) -> KeyRefused {
    KeyRefused(m.into())
}

/// Largest JWK text accepted (an RSA 8192-bit key is about 1.5 KB).
pub const MAX_JWK_BYTES: usize = 4096;

/// A client's public encryption key, checked.
#[derive(Debug)]
pub enum ClientKey {
    /// P-256 public point, uncompressed (0x04 || x || y).
    Ec { point: Vec<u8>, kid: Option<String> },
    /// RSA public key (SubjectPublicKeyInfo DER) and its size.
    Rsa {
        spki: Vec<u8>,
        bits: usize,
        kid: Option<String>,
    },
}

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl ClientKey {
    /// The JWK (JSON text) a client sent: EC P-256 or RSA of at least 2048 bits, public members only.
    pub fn parse(text: &str) -> Result<Self, KeyRefused> {
        if text.len() > MAX_JWK_BYTES {
            return Err(refuse("the key (jwk) is too long"));
        }
        let v: Value =
            serde_json::from_str(text).map_err(|_| refuse("the key (jwk) is not JSON"))?;
        let o = v
            .as_object()
            .ok_or_else(|| refuse("the key (jwk) must be a JSON object"))?;
        if PRIVATE_MEMBERS.iter().any(|m| o.contains_key(*m)) {
            return Err(refuse(
                "the key (jwk) holds private or symmetric key material: send the public key only",
            ));
        }
        let text_member = |name: &str| -> Result<Option<&str>, KeyRefused> {
            match o.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(refuse(format!("the key's `{name}` must be a string"))),
            }
        };
        if let Some(u) = text_member("use")?
            && u != "enc"
        {
            return Err(refuse("the key's `use` must be \"enc\""));
        }
        let kid = match text_member("kid")? {
            Some(k) if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) => {
                return Err(refuse(
                    "the key's `kid` must be 1..=128 printable characters",
                ));
            }
            k => k.map(str::to_string),
        };
        let b64 = |name: &str| -> Result<Vec<u8>, KeyRefused> {
            let s = text_member(name)?.ok_or_else(|| refuse(format!("the key has no `{name}`")))?;
            URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| refuse(format!("the key's `{name}` is not base64url")))
        };
        let alg = text_member("alg")?;
        match text_member("kty")? {
            Some("EC") => {
                if text_member("crv")? != Some("P-256") {
                    return Err(refuse("an EC key must be on the P-256 curve"));
                }
                if alg.is_some_and(|a| a != "ECDH-ES+A256KW") {
                    return Err(refuse("an EC key is used with ECDH-ES+A256KW only"));
                }
                let (x, y) = (b64("x")?, b64("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(refuse("a P-256 key's x and y are 32 bytes each"));
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                // The point must be on the curve: one agreement with a throwaway key tells.
                let rng = SystemRandom::new();
                let mine = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
                    .map_err(|_| refuse("could not check the key"))?;
                agreement::agree_ephemeral(
                    mine,
                    UnparsedPublicKey::new(&ECDH_P256, &point),
                    (),
                    |_| Ok(()),
                )
                .map_err(|_| refuse("the key's point is not on the P-256 curve"))?;
                Ok(ClientKey::Ec { point, kid })
            }
            Some("RSA") => {
                if alg.is_some_and(|a| a != "RSA-OAEP-256") {
                    return Err(refuse("an RSA key is used with RSA-OAEP-256 only"));
                }
                let n = strip_zeros(b64("n")?);
                let e = strip_zeros(b64("e")?);
                if n.is_empty() || e.is_empty() {
                    return Err(refuse("the RSA key's n and e must not be zero"));
                }
                let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
                if bits < 2048 {
                    return Err(refuse("an RSA key must have at least 2048 bits"));
                }
                if bits > 8192 {
                    return Err(refuse("an RSA key may have at most 8192 bits"));
                }
                if e.is_empty() || e.len() > 4 || e.last().is_some_and(|b| b % 2 == 0) || e == [1] {
                    return Err(refuse("the RSA key's public exponent is not acceptable"));
                }
                let spki = rsa_spki(&n, &e);
                PublicEncryptingKey::from_der(&spki)
                    .map_err(|_| refuse("the RSA key is not acceptable"))?;
                Ok(ClientKey::Rsa { spki, bits, kid })
            }
            Some(_) => Err(refuse("the key must be an EC (P-256) or RSA key")),
            None => Err(refuse("the key has no `kty`")),
        }
    }

    /// The JWE `alg` this key is used with.
    pub fn alg(&self) -> &'static str {
        match self {
            ClientKey::Ec { .. } => "ECDH-ES+A256KW",
            ClientKey::Rsa { .. } => "RSA-OAEP-256",
        }
    }

    /// A short description for the confirmation page and the audit log ("EC P-256", "RSA 3072").
    pub fn describe(&self) -> String {
        match self {
            ClientKey::Ec { .. } => "EC P-256".into(),
            ClientKey::Rsa { bits, .. } => format!("RSA {bits}"),
        }
    }

    /// `plaintext` as a compact JWE (`enc` A256GCM) readable only with this key's private half.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, KeyRefused> {
        let failed = |_| refuse("encryption failed");
        let rng = SystemRandom::new();
        let mut cek = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill(cek.as_mut()).map_err(failed)?;
        let (mut header, encrypted_key) = match self {
            ClientKey::Ec { point, kid } => {
                let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(failed)?;
                let public = eph.compute_public_key().map_err(failed)?;
                let public = public.as_ref();
                let kek = agreement::agree_ephemeral(
                    eph,
                    UnparsedPublicKey::new(&ECDH_P256, point),
                    refuse("key agreement failed"),
                    |z| Ok(concat_kdf(z, "ECDH-ES+A256KW", b"", b"", 256)),
                )?;
                let kek = AesKek::new(&AES_256, kek.as_ref()).map_err(failed)?;
                let mut wrapped = [0u8; 40];
                let wrapped = kek
                    .wrap(cek.as_ref(), &mut wrapped)
                    .map_err(failed)?
                    .to_vec();
                let mut h = json!({
                    "alg": "ECDH-ES+A256KW",
                    "enc": "A256GCM",
                    "epk": {
                        "kty": "EC",
                        "crv": "P-256",
                        "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
                        "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
                    },
                });
                if let Some(k) = kid {
                    h["kid"] = k.clone().into();
                }
                (h, wrapped)
            }
            ClientKey::Rsa { spki, kid, .. } => {
                let key = PublicEncryptingKey::from_der(spki).map_err(|_| refuse("bad RSA key"))?;
                let key = OaepPublicEncryptingKey::new(key).map_err(failed)?;
                let mut out = vec![0u8; key.ciphertext_size()];
                let n = key
                    .encrypt(&OAEP_SHA256_MGF1SHA256, cek.as_ref(), &mut out, None)
                    .map_err(failed)?
                    .len();
                out.truncate(n);
                let mut h = json!({"alg": "RSA-OAEP-256", "enc": "A256GCM"});
                if let Some(k) = kid {
                    h["kid"] = k.clone().into();
                }
                (h, out)
            }
        };
        header["typ"] = "JOSE".into();
        let protected = URL_SAFE_NO_PAD.encode(header.to_string());
        let mut iv = [0u8; NONCE_LEN];
        rng.fill(&mut iv).map_err(failed)?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, cek.as_ref()).map_err(failed)?);
        let mut data = plaintext.to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(protected.as_bytes()),
                &mut data,
            )
            .map_err(failed)?;
        Ok(format!(
            "{protected}.{}.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&encrypted_key),
            URL_SAFE_NO_PAD.encode(iv),
            URL_SAFE_NO_PAD.encode(&data),
            URL_SAFE_NO_PAD.encode(tag.as_ref()),
        ))
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let n = v.iter().take_while(|b| **b == 0).count();
    v.drain(..n);
    v
}

/// RFC 7518 4.6.2: Concat KDF (NIST SP 800-56A) with SHA-256, one round (keys of at most 256 bits). We
/// send no PartyUInfo or PartyVInfo (empty `apu`, `apv`).
fn concat_kdf(
    z: &[u8],
    alg: &str,
    apu: &[u8],
    apv: &[u8],
    key_bits: u32,
) -> zeroize::Zeroizing<Vec<u8>> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&1u32.to_be_bytes());
    ctx.update(z);
    ctx.update(&(alg.len() as u32).to_be_bytes());
    ctx.update(alg.as_bytes());
    ctx.update(&(apu.len() as u32).to_be_bytes());
    ctx.update(apu);
    ctx.update(&(apv.len() as u32).to_be_bytes());
    ctx.update(apv);
    ctx.update(&key_bits.to_be_bytes());
    let d = ctx.finish();
    zeroize::Zeroizing::new(d.as_ref()[..(key_bits / 8) as usize].to_vec())
}

/// DER length.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 128 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    der_len(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn der_uint(v: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(v.len() + 1);
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(v);
    der(0x02, &body)
}

/// SubjectPublicKeyInfo for rsaEncryption with this modulus and exponent.
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let rsa_key = der(0x30, &[der_uint(n), der_uint(e)].concat());
    let mut bits = vec![0u8];
    bits.extend(rsa_key);
    // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }
    let alg_id: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    der(0x30, &[alg_id.to_vec(), der(0x03, &bits)].concat())
}

#[cfg(test)]
mod tests;
