//! The login domain without HTTP: opaque random values and how they are stored, the `return_to` rule,
//! the logout confirmation token, and the login flow itself ([`login`]). The browser-facing handlers,
//! cookies and pages are in `web::sso`.

pub mod login;
pub mod session;

/// The logout confirmation token of a session (in the page that asks "sign out?" and in `/sso/me`'s
/// sign-out form): it proves a logout POST comes from a page of this STS.
pub fn logout_confirmation_token(session_cookie: &str) -> String {
    hash(&format!("sts-logout-confirm:{session_cookie}"))
}

/// Random 256-bit value, base64url.
pub fn random_token() -> String {
    use base64::Engine;
    let mut b = [0u8; 32];
    crate::crypto::fill_random(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// How opaque random values are stored: SHA-256, hex. (They are 256-bit random, so a fast hash is right.)
pub fn hash(value: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// `return_to` must be a path on this origin: starts with one `/`, no `//` or `/\` (protocol-relative),
/// no backslashes or control characters, at most 2048 bytes.
/// Shaped like a [`random_token`] (43 base64url characters): ids that come back in URLs are checked with
/// this first, so nothing else (another flow's namespaced id, control bytes) reaches a lookup.
pub fn token_shaped(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn valid_return_to(v: &str) -> bool {
    v.starts_with('/')
        && !v.starts_with("//")
        && !v.contains('\\')
        && v.len() <= 2048
        && !v.chars().any(|c| c.is_control() || c.is_whitespace())
        && !v.to_ascii_lowercase().contains("%2f%2f")
        && url::Url::parse("https://sts.invalid")
            .and_then(|b| b.join(v))
            .is_ok_and(|u| u.host_str() == Some("sts.invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_rules() {
        for ok in ["/sso/me", "/app?x=1", "/a/b#c"] {
            assert!(valid_return_to(ok), "{ok}");
        }
        for bad in [
            "https://evil.example.com/",
            "//evil.example.com",
            "/\\evil.example.com",
            "\\\\evil",
            "javascript:alert(1)",
            "",
            "evil.com",
            "/\tevil",
            "/%2F%2Fevil.example.com",
            "http:/evil.example.com",
        ] {
            assert!(!valid_return_to(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_are_random_and_hashes_hex() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 43);
        assert_eq!(hash("x").len(), 64);
    }
}
