//! Small cryptographic helpers shared by every layer (a leaf: it uses nothing of this crate).

/// Fill `buf` from the system's random generator (aws-lc-rs). There is no safe way to go on without
/// randomness (every token, id and key depends on it), so a failure of the generator ends the process.
#[allow(
    clippy::expect_used,
    reason = "no safe fallback exists for a failing system random generator"
)]
pub fn fill_random(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("the system random generator failed");
}

/// The RFC 7636 `S256` code challenge of a PKCE verifier: base64url (no padding) of its SHA-256. Used
/// both ways: towards identity providers (`providers::Provider::authorization_url`) and at our token
/// endpoint (`web::oauth::token`).
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Compare two secrets (state hashes, nonces, MACs) in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rfc7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
