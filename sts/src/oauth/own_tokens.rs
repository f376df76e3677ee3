//! Tokens this STS issued, verified when they come back (introspection, userinfo, revocation,
//! `id_token_hint`): `crit` and duplicated header members refused, RS256 only, `typ`, a key this STS
//! publishes (parsed once per key change), `iss`, and `exp`/`nbf`.

use super::Op;

/// Why a token is not one of ours, or no longer valid.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotOurs(pub String);

impl From<String> for NotOurs {
    fn from(s: String) -> Self {
        NotOurs(s)
    }
}

impl From<&str> for NotOurs {
    fn from(s: &str) -> Self {
        NotOurs(s.to_string())
    }
}

impl Op<'_> {
    /// A token this STS issued, verified: signature by a published key, RS256 only, `typ`, `iss`, and
    /// (unless `allow_expired`) `exp`/`nbf` without leeway.
    pub fn verify_own(
        &self,
        token: &str,
        typ: &str,
        allow_expired: bool,
    ) -> Result<serde_json::Value, NotOurs> {
        use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
        if token.len() > 16 * 1024 {
            return Err("token too large".into());
        }
        sts_client::check_jws_header(token)?;
        let header = decode_header(token).map_err(|e| format!("not a JWT: {e}"))?;
        if header.alg != Algorithm::RS256 {
            return Err("algorithm not allowed".into());
        }
        if header.typ.as_deref().map(|t| t.to_ascii_lowercase()) != Some(typ.to_ascii_lowercase()) {
            return Err(NotOurs(format!("not a token of type {typ}")));
        }
        let kid = header.kid.ok_or(NotOurs("no kid".into()))?;
        // The published keys, parsed once per key change (not per call).
        let snap = self.keys.current();
        let key = snap
            .jwks
            .decoding_key(&kid)
            .ok_or(NotOurs("signed by a key this STS does not publish".into()))?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[self.issuer]);
        v.validate_aud = false;
        // `nbf`/`iat` may be a little ahead on another replica; `exp` is checked below without leeway.
        v.leeway = 30;
        v.validate_exp = !allow_expired;
        v.validate_nbf = !allow_expired;
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data =
            decode::<serde_json::Value>(token, key, &v).map_err(|e| NotOurs(e.to_string()))?;
        if !allow_expired {
            // jsonwebtoken compares with its own clock; ours may be a test clock.
            let now = self.now;
            if data.claims["exp"].as_i64().is_none_or(|e| e <= now) {
                return Err("expired".into());
            }
        }
        Ok(data.claims)
    }
}
