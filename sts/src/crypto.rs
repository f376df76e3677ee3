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
