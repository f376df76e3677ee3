//! Administrator authentication: argon2id passwords, the admin session cookie, CSRF tokens, sign-in rate
//! limiting, and API bearer tokens.
//!
//! - Passwords: argon2id (m = 19 MiB, t = 2, p = 1, OWASP's minimum), verified on the blocking pool; an
//!   unknown user is verified against a dummy hash so both paths take the same time.
//! - Session: 256-bit random id in `sts_admin` (HttpOnly, SameSite=Strict, Path=/admin, Secure on https),
//!   stored hashed; a new id at every sign-in; idle timeout 15 min, absolute 8 h.
//! - CSRF: a per-session random token in a hidden field of every form, compared in constant time on every
//!   state-changing request. The sign-in form (no session yet) uses a double-submit cookie.
//! - Rate limit: after 5 failed sign-ins within 15 min for an account, or 20 from one IP address, sign-in
//!   is refused for the rest of the window with a clear message (in memory, per process).

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;

pub const SESSION_COOKIE: &str = "sts_admin";
pub const LOGIN_CSRF_COOKIE: &str = "sts_admin_login";
pub const IDLE_SECONDS: i64 = 15 * 60;
pub const ABSOLUTE_SECONDS: i64 = 8 * 3600;

const WINDOW_SECONDS: i64 = 15 * 60;
const MAX_PER_ACCOUNT: usize = 5;
const MAX_PER_IP: usize = 20;

/// 256 random bits, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("system randomness");
    URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256, hex: how session ids and API tokens (256-bit random) are stored.
pub fn hash(v: &str) -> String {
    hex::encode(sha2::Sha256::digest(v.as_bytes()))
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn argon2() -> argon2::Argon2<'static> {
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

/// Rules for administrator passwords: 12..=1024 characters.
pub fn check_password_rules(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < 12 {
        return Err("the password must have at least 12 characters".into());
    }
    if n > 1024 {
        return Err("the password must have at most 1024 characters".into());
    }
    Ok(())
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).expect("system randomness");
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verify `password` against a PHC string; `None` (unknown user) still does the same work.
pub fn verify_password(password: &str, phc: Option<&str>) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let (target, real) = match phc {
        Some(p) => (p, true),
        None => (DUMMY_HASH, false),
    };
    let Ok(parsed) = PasswordHash::new(target) else {
        return false;
    };
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// A valid argon2id hash (same parameters) of a random string: unknown users cost the same as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c3RzLWR1bW15LXNhbHQ$0Jd6T8hTo5XK6CZ2tkEzRSGtrFNmb1dG9dQZ2QmS2cA";

pub fn cookie(
    name: &'static str,
    value: String,
    secure: bool,
    max_age: Option<i64>,
) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path("/admin")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish();
    if let Some(s) = max_age {
        c.set_max_age(CookieDuration::seconds(s));
    }
    c
}

pub fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(name, String::new(), secure, Some(0));
    c.make_removal();
    c
}

/// Sign-in attempts per account and per address within a sliding window. An attempt counts when it starts
/// (so concurrent requests cannot all pass the check); a success forgets the account's attempts. At most
/// [`MAX_CONCURRENT_VERIFICATIONS`] password hashes run at once (argon2id takes 19 MiB each).
#[derive(Default)]
pub struct RateLimiter {
    attempts: Mutex<HashMap<String, Vec<i64>>>,
    in_flight: std::sync::atomic::AtomicUsize,
}

/// Concurrent argon2id verifications (each 19 MiB); more answer "busy".
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 4;

/// A verification slot; freed on drop.
pub struct Slot<'a>(&'a RateLimiter);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl RateLimiter {
    fn recent(map: &mut HashMap<String, Vec<i64>>, key: &str, now: i64) -> usize {
        match map.get_mut(key) {
            Some(list) => {
                list.retain(|t| *t > now - WINDOW_SECONDS);
                list.len()
            }
            None => 0,
        }
    }

    /// `Err(seconds to wait)` when this account or address may not try now; otherwise the attempt is
    /// recorded at once.
    pub fn attempt(&self, account: &str, ip: &str, now: i64) -> Result<(), i64> {
        let mut map = self.attempts.lock().expect("rate limiter lock");
        let (ka, ki) = (format!("u:{account}"), format!("ip:{ip}"));
        let by_account = Self::recent(&mut map, &ka, now) >= MAX_PER_ACCOUNT;
        let by_ip = Self::recent(&mut map, &ki, now) >= MAX_PER_IP;
        if by_account || by_ip {
            let oldest = [&ka, &ki]
                .iter()
                .filter_map(|k| map.get(*k).and_then(|l| l.first().copied()))
                .min()
                .unwrap_or(now);
            return Err((oldest + WINDOW_SECONDS - now).max(1));
        }
        for k in [ka, ki] {
            map.entry(k).or_default().push(now);
        }
        // Bound memory: forget idle keys.
        if map.len() > 10_000 {
            map.retain(|_, l| l.iter().any(|t| *t > now - WINDOW_SECONDS));
        }
        Ok(())
    }

    /// A slot for one password verification, or None when too many run already.
    pub fn verification_slot(&self) -> Option<Slot<'_>> {
        let n = self
            .in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let slot = Slot(self);
        (n < MAX_CONCURRENT_VERIFICATIONS).then_some(slot)
    }

    /// A successful sign-in forgets the account's attempts.
    pub fn succeeded(&self, account: &str) {
        self.attempts
            .lock()
            .expect("rate limiter lock")
            .remove(&format!("u:{account}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_unknown_users_fail() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", Some(&h)));
        assert!(!verify_password("wrong horse battery!", Some(&h)));
        assert!(!verify_password("correct horse battery", None));
        assert!(!verify_password("x", Some("not a hash")));
    }

    #[test]
    fn rate_limit_per_account_and_ip() {
        let r = RateLimiter::default();
        for _ in 0..5 {
            assert!(r.attempt("admin", "1.2.3.4", 1000).is_ok());
        }
        assert!(
            r.attempt("admin", "9.9.9.9", 1001).is_err(),
            "per account, counted at the start"
        );
        assert!(r.attempt("other", "1.2.3.4", 1001).is_ok());
        assert!(
            r.attempt("admin", "1.2.3.4", 1000 + WINDOW_SECONDS + 1)
                .is_ok(),
            "window passes"
        );
        r.succeeded("admin");
        for _ in 0..4 {
            assert!(
                r.attempt("admin", "5.5.5.5", 2000).is_ok(),
                "a success forgets the account's attempts"
            );
        }
    }

    #[test]
    fn verification_slots_are_bounded() {
        let r = RateLimiter::default();
        let slots: Vec<_> = (0..MAX_CONCURRENT_VERIFICATIONS)
            .map(|_| r.verification_slot().unwrap())
            .collect();
        assert!(r.verification_slot().is_none());
        drop(slots);
        assert!(r.verification_slot().is_some());
    }

    #[test]
    fn the_dummy_hash_costs_a_real_verification() {
        use argon2::password_hash::PasswordHash;
        let p = PasswordHash::new(DUMMY_HASH).expect("the dummy hash parses");
        assert_eq!(p.algorithm.as_str(), "argon2id");
    }

    #[test]
    fn password_rules() {
        assert!(check_password_rules("short").is_err());
        assert!(check_password_rules("twelve chars").is_ok());
    }
}
