//! Administrator authentication: argon2id passwords, the admin session cookie, CSRF tokens, sign-in rate
//! limiting, and API bearer tokens.
//!
//! - Passwords: argon2id (m = 19 MiB, t = 2, p = 1, OWASP's minimum), verified on the blocking pool in
//!   one of at most [`MAX_CONCURRENT_VERIFICATIONS`] preallocated 19 MiB memory areas ([`HashMemory`]),
//!   reused for every verification and wiped after each, so hashing never allocates again: the process
//!   stays at its size after any number of sign-ins (argon2's own allocation per check, freed on
//!   blocking-pool threads, stayed in glibc's per-thread arenas and grew the process by ~19.5 MB each).
//!   An unknown user is verified against a dummy hash so both paths take the same time.
//! - Session: 256-bit random id in `sts_admin` (HttpOnly, SameSite=Strict, Path=/admin, Secure on https),
//!   stored hashed; a new id at every sign-in; idle timeout 15 min, absolute 8 h.
//! - CSRF: a per-session random token in a hidden field of every form, compared in constant time on every
//!   state-changing request. The sign-in form (no session yet) uses a double-submit cookie.
//! - Rate limit: after 5 sign-in attempts within 15 min for an account name (known or not), 20 from one IP
//!   address (both for 15 minutes), or [`MAX_TOTAL`] within a minute in all (however many names and
//!   addresses an attacker uses), password sign-in is refused for the rest of the window with a clear
//!   message. The attempts are counted in the database ([`crate::backend::ConsoleAdmin::record_sign_in_attempt`]),
//!   so the limits hold across replicas; only the hashing memory is per process. A success forgets the account's attempts and gives its place in the
//!   total back. Console SSO and the CLI are not affected by the limits.

use std::sync::Mutex;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest;

crate::refusal!(
    /// Why a password is not accepted, or could not be hashed.
    PasswordRefused
);

pub const SESSION_COOKIE: &str = "sts_admin";
pub const LOGIN_CSRF_COOKIE: &str = "sts_admin_login";
pub const IDLE_SECONDS: i64 = 15 * 60;
pub const ABSOLUTE_SECONDS: i64 = 8 * 3600;

pub const WINDOW_SECONDS: i64 = 15 * 60;
pub const MAX_PER_ACCOUNT: usize = 5;
pub const MAX_PER_IP: usize = 20;
/// Sign-in attempts within [`TOTAL_WINDOW_SECONDS`] over all accounts and addresses (unknown names and many
/// client addresses included): beyond it, password sign-in waits for the window to move on. A short window:
/// whoever floods the form delays password sign-in by at most a minute after they stop (a cap on the work
/// an unauthenticated caller can cause, not a lockout); guessing is bounded by the per-account limit.
pub const MAX_TOTAL: usize = 60;
pub const TOTAL_WINDOW_SECONDS: i64 = 60;
pub const TOTAL_KEY: &str = "*";

/// Fill `buf` from the system's random generator (aws-lc-rs). Sessions, CSRF tokens, API tokens and
/// salts depend on it and there is no safe fallback, so a failing generator ends the process.
#[allow(
    clippy::expect_used,
    reason = "no safe fallback exists for a failing system random generator"
)]
fn fill_random(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("the system random generator failed");
}

/// 256 random bits, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    fill_random(&mut b);
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
        // 19 MiB, 2 passes, 1 lane (OWASP's argon2id minimum), which are also the crate's defaults.
        argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default(),
    )
}

/// Rules for administrator passwords: 12..=1024 characters.
pub fn check_password_rules(password: &str) -> Result<(), PasswordRefused> {
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
pub fn hash_password(password: &str) -> Result<String, PasswordRefused> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordRefused(e.to_string()))
}

/// Verify `password` against a PHC string; `None` (unknown user) still does the same work. Allocates its
/// own 19 MiB (CLI and tests); the server uses [`verify_password_in`] with pooled memory.
pub fn verify_password(password: &str, phc: Option<&str>) -> bool {
    let mut memory = vec![argon2::Block::new(); MEMORY_BLOCKS].into_boxed_slice();
    verify_password_in(password, phc, &mut memory)
}

/// argon2 memory blocks (1 KiB each) for one verification: m = 19 MiB.
pub const MEMORY_BLOCKS: usize = 19 * 1024;

/// Verify `password` against a PHC string using `memory` (at least [`MEMORY_BLOCKS`] blocks) for argon2's
/// working area: no allocation of its own. A hash with other parameters than fit in `memory`, another
/// algorithm or a malformed string never verifies. `None` (unknown user) does the same work as a real one.
pub fn verify_password_in(password: &str, phc: Option<&str>, memory: &mut [argon2::Block]) -> bool {
    use argon2::password_hash::PasswordHash;
    let (target, real) = match phc {
        Some(p) => (p, true),
        None => (DUMMY_HASH, false),
    };
    let Ok(parsed) = PasswordHash::new(target) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    let (Ok(params), Some(expected), Some(salt)) =
        (argon2::Params::try_from(&parsed), parsed.hash, parsed.salt)
    else {
        return false;
    };
    if params.block_count() > memory.len() {
        return false;
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| argon2::Version::try_from(v).ok())
        .unwrap_or(argon2::Version::V0x13);
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let ok = argon2::Argon2::new(argon2::Algorithm::Argon2id, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut *memory)
        .is_ok()
        && constant_time_eq(out, expected.as_bytes());
    // The working area holds values derived from the password: wipe it.
    memory.fill(argon2::Block::new());
    ok && real
}

/// The argon2 working areas of this process: at most [`MAX_CONCURRENT_VERIFICATIONS`], each allocated once
/// on first use and then reused; a [`Lease`] hands one out and gives it back when dropped (also when the
/// request that asked for it went away), so the memory of hashing is bounded for good.
#[derive(Default)]
pub struct HashMemory {
    inner: Mutex<(Vec<Box<[argon2::Block]>>, usize)>,
}

/// One working area, returned to its [`HashMemory`] on drop.
pub struct Lease {
    memory: Option<Box<[argon2::Block]>>,
    pool: std::sync::Arc<HashMemory>,
}

impl Lease {
    pub fn blocks(&mut self) -> &mut [argon2::Block] {
        self.memory.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(m) = self.memory.take()
            && let Ok(mut g) = self.pool.inner.lock()
        {
            g.0.push(m);
        }
    }
}

impl HashMemory {
    /// A working area, or None when [`MAX_CONCURRENT_VERIFICATIONS`] are in use.
    pub fn lease(self: &std::sync::Arc<Self>) -> Option<Lease> {
        let mut g = self.inner.lock().ok()?;
        let memory = match g.0.pop() {
            Some(m) => m,
            None if g.1 < MAX_CONCURRENT_VERIFICATIONS => {
                g.1 += 1;
                vec![argon2::Block::new(); MEMORY_BLOCKS].into_boxed_slice()
            }
            None => return None,
        };
        Some(Lease {
            memory: Some(memory),
            pool: self.clone(),
        })
    }

    /// Working areas allocated so far (never more than [`MAX_CONCURRENT_VERIFICATIONS`]).
    pub fn allocated(&self) -> usize {
        self.inner.lock().map(|g| g.1).unwrap_or(0)
    }
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

/// Sign-in limits per account, per address and in all within a sliding window ([`Self::limits`]; the
/// attempts themselves are counted by the backend, in the shared database). An attempt counts when it
/// starts (so concurrent requests cannot all pass the check); a success forgets the account's attempts
/// and gives its place in the total back. At most [`MAX_CONCURRENT_VERIFICATIONS`] password hashes run at
/// once, each in a reused working area of [`HashMemory`].
#[derive(Default)]
pub struct RateLimiter {
    memory: std::sync::Arc<HashMemory>,
}

/// Concurrent argon2id verifications (each 19 MiB, allocated once); others wait for it (up to
/// [`SLOT_WAIT_MS`]), then answer "busy".
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 1;

/// How long a sign-in waits for a free verification slot before it answers "busy".
pub const SLOT_WAIT_MS: u64 = 10_000;

/// The limit key of an account name (bounded: names are at most 64 characters by the form's rule, but
/// never trust that here).
fn account_key(account: &str) -> String {
    format!("u:{}", account.chars().take(128).collect::<String>())
}

impl RateLimiter {
    /// The limits one attempt by `account` from `ip` counts against.
    pub fn limits(account: &str, ip: &str) -> Vec<crate::backend::AttemptLimit> {
        use crate::backend::AttemptLimit;
        vec![
            AttemptLimit {
                key: account_key(account),
                max: MAX_PER_ACCOUNT as i64,
                window: WINDOW_SECONDS,
            },
            AttemptLimit {
                key: format!("ip:{}", ip.chars().take(64).collect::<String>()),
                max: MAX_PER_IP as i64,
                window: WINDOW_SECONDS,
            },
            AttemptLimit {
                key: TOTAL_KEY.to_string(),
                max: MAX_TOTAL as i64,
                window: TOTAL_WINDOW_SECONDS,
            },
        ]
    }

    /// What a successful sign-in forgets (the account's attempts) and gives back (one of the total).
    pub fn success_keys(account: &str) -> (String, String) {
        (account_key(account), TOTAL_KEY.to_string())
    }

    /// The working area for one password verification, or None when too many run already.
    pub fn verification_slot(&self) -> Option<Lease> {
        self.memory.lease()
    }

    /// The working area for one password verification, waiting up to [`SLOT_WAIT_MS`] for one to be free.
    pub async fn wait_for_slot(&self) -> Option<Lease> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(SLOT_WAIT_MS);
        loop {
            if let Some(l) = self.memory.lease() {
                return Some(l);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The argon2 working areas (to observe that they stay bounded).
    pub fn hash_memory(&self) -> &HashMemory {
        &self.memory
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
    fn each_attempt_counts_against_its_account_its_address_and_the_total() {
        let l = RateLimiter::limits("admin", "192.0.2.1");
        let keys: Vec<_> = l
            .iter()
            .map(|l| (l.key.as_str(), l.max, l.window))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("u:admin", 5, WINDOW_SECONDS),
                ("ip:192.0.2.1", 20, WINDOW_SECONDS),
                ("*", 60, TOTAL_WINDOW_SECONDS)
            ]
        );
        let long = "x".repeat(1000);
        assert!(
            RateLimiter::limits(&long, &long)
                .iter()
                .all(|l| l.key.len() <= 130)
        );
        assert_eq!(
            RateLimiter::success_keys("admin"),
            ("u:admin".to_string(), "*".to_string())
        );
    }

    #[test]
    fn verification_slots_are_bounded_and_their_memory_reused() {
        let r = RateLimiter::default();
        let slots: Vec<_> = (0..MAX_CONCURRENT_VERIFICATIONS)
            .map(|_| r.verification_slot().unwrap())
            .collect();
        assert!(r.verification_slot().is_none());
        drop(slots);
        let h = hash_password("correct horse battery").unwrap();
        for _ in 0..5 {
            let mut lease = r.verification_slot().unwrap();
            assert!(verify_password_in(
                "correct horse battery",
                Some(&h),
                lease.blocks()
            ));
            assert!(!verify_password_in("wrong", Some(&h), lease.blocks()));
            assert!(
                lease
                    .blocks()
                    .iter()
                    .all(|b| b.as_ref().iter().all(|x| *x == 0)),
                "wiped"
            );
        }
        assert_eq!(r.hash_memory().allocated(), MAX_CONCURRENT_VERIFICATIONS);
    }

    #[test]
    fn hashes_with_more_memory_than_the_pool_never_verify() {
        let a = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64 * 1024, 1, 1, None).unwrap(),
        );
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let h = a.hash_password(b"pw", &salt).unwrap().to_string();
        let mut memory = vec![argon2::Block::new(); MEMORY_BLOCKS];
        assert!(!verify_password_in("pw", Some(&h), &mut memory));
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
