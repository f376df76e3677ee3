//! The token issuer: compact JWS (RS256) signed with the active key through aws-lc-rs.
//!
//! Every token carries `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `client_id` and `roles`; the header carries
//! `alg`, `kid` and an explicit `typ` (`at+jwt` for access tokens, RFC 9068), so one kind of token cannot
//! be replayed as another. Lifetimes are capped by `tokens.max_lifetime_seconds`, which is what the key
//! rotation window is computed from.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::clock::SharedClock;
use crate::keys::{ALG, KeyRing};

/// What kind of token: decides the `typ` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// RFC 9068 access token (`typ: at+jwt`).
    Access,
    /// OpenID Connect ID token (`typ: JWT`): no `client_id`; `roles` only when asked for.
    Id,
}

impl TokenKind {
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Id => "JWT",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("no active signing key")]
    NoActiveKey,
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the token could not be serialised: {0}")]
    Json(String),
    #[error("the token could not be signed: {0}")]
    Signing(String),
}

impl From<serde_json::Error> for TokenError {
    fn from(e: serde_json::Error) -> Self {
        TokenError::Json(e.to_string())
    }
}

impl From<crate::keys::KeyError> for TokenError {
    fn from(e: crate::keys::KeyError) -> Self {
        TokenError::Signing(e.to_string())
    }
}

/// A request for a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub kind: TokenKind,
    pub subject: String,
    pub audience: Vec<String>,
    pub roles: Vec<String>,
    pub client_id: String,
    /// The identity provider that authenticated the subject (`idp` claim). Subjects are the IdP's own
    /// identifiers, so `(idp, sub)` is what identifies a user across several providers.
    pub idp: Option<String>,
    /// Seconds; `None` = the configured default.
    pub ttl: Option<u64>,
    /// Further claims (`scope`, `sid`, `auth_time`, `nonce`, ...); they cannot replace the ones above.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub kid: String,
    pub jti: String,
    pub expires_at: i64,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(serialize_with = "one_or_many")]
    aud: &'a [String],
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

/// Claims the issuer sets itself; `extra` may not carry them.
const RESERVED: [&str; 11] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "idp",
    "roles",
    "typ",
];

fn one_or_many<S: serde::Serializer>(v: &&[String], s: S) -> Result<S::Ok, S::Error> {
    match v {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

pub struct TokenIssuer {
    issuer: String,
    keys: Arc<KeyRing>,
    clock: SharedClock,
    default_ttl: u64,
    max_ttl: u64,
}

impl TokenIssuer {
    /// `tokens.lifetime_seconds`: the lifetime of a token whose request names none.
    pub fn default_ttl(&self) -> u64 {
        self.default_ttl
    }

    pub fn new(
        issuer: String,
        keys: Arc<KeyRing>,
        clock: SharedClock,
        default_ttl: u64,
        max_ttl: u64,
    ) -> Self {
        Self {
            issuer,
            keys,
            clock,
            default_ttl,
            max_ttl,
        }
    }

    pub fn issue(&self, req: &TokenRequest) -> Result<IssuedToken, TokenError> {
        check_text("sub", &req.subject)?;
        check_text("client_id", &req.client_id)?;
        if req.audience.is_empty() {
            return Err(TokenError::Invalid {
                field: "aud",
                reason: "at least one audience is required".into(),
            });
        }
        for a in &req.audience {
            check_text("aud", a)?;
        }
        for r in &req.roles {
            check_text("roles", r)?;
        }
        if let Some(k) = req.extra.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(TokenError::Invalid {
                field: "extra",
                reason: format!("`{k}` is set by the issuer"),
            });
        }
        let ttl = req.ttl.unwrap_or(self.default_ttl);
        debug_assert!(ttl > 0);
        if ttl == 0 || ttl > self.max_ttl {
            return Err(TokenError::Invalid {
                field: "ttl",
                reason: format!(
                    "{ttl} s is outside 1..={} (tokens.max_lifetime_seconds)",
                    self.max_ttl
                ),
            });
        }
        let snapshot = self.keys.current();
        let key = snapshot.active.as_ref().ok_or(TokenError::NoActiveKey)?;
        let now = self.clock.now();
        let jti = new_jti();
        let header = Header {
            alg: ALG,
            typ: req.kind.typ(),
            kid: &key.kid,
        };
        let claims = Claims {
            iss: &self.issuer,
            sub: &req.subject,
            aud: &req.audience,
            exp: now + ttl as i64,
            iat: now,
            nbf: now,
            jti: &jti,
            client_id: (req.kind == TokenKind::Access).then_some(req.client_id.as_str()),
            idp: req.idp.as_deref(),
            roles: (req.kind == TokenKind::Access || !req.roles.is_empty())
                .then_some(req.roles.as_slice()),
            extra: &req.extra,
        };
        let mut signing_input = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        signing_input.push('.');
        signing_input.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?));
        let signature = key.sign_rs256(signing_input.as_bytes())?;
        signing_input.push('.');
        signing_input.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(IssuedToken {
            token: signing_input,
            kid: key.kid.clone(),
            jti,
            expires_at: now + ttl as i64,
        })
    }
}

fn check_text(field: &'static str, v: &str) -> Result<(), TokenError> {
    if v.is_empty() || v.len() > 1024 {
        return Err(TokenError::Invalid {
            field,
            reason: "must be 1..=1024 bytes".into(),
        });
    }
    if v.chars().any(char::is_control) {
        return Err(TokenError::Invalid {
            field,
            reason: "control characters are not allowed".into(),
        });
    }
    Ok(())
}

/// The `sub` of tokens that represent a user: `<provider id>|<subject at that provider>`. A subject is
/// unique only within its identity provider; qualifying it means two providers can never produce the
/// same `sub` (otherwise a user of one IdP could pick the subject of a user of another). Provider ids are
/// `a-z 0-9 -` and client ids never contain `|`, so user and machine subjects cannot collide either. Kept
/// within OIDC's 255 ASCII characters: a longer or non-ASCII subject becomes a SHA-256 of itself.
pub fn public_subject(provider_id: &str, subject: &str) -> String {
    let plain = format!("{provider_id}|{subject}");
    if plain.len() <= 255 && plain.bytes().all(|b| b.is_ascii_graphic()) {
        plain
    } else {
        use sha2::Digest;
        format!(
            "{provider_id}|sha256:{}",
            hex::encode(sha2::Sha256::digest(subject.as_bytes()))
        )
    }
}

/// 128 random bits, base64url.
fn new_jti() -> String {
    let mut b = [0u8; 16];
    crate::crypto::fill_random(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::{KeyMaterial, Snapshot};
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

    fn issuer() -> (TokenIssuer, KeyMaterial) {
        let m = KeyMaterial::generate(2048).unwrap();
        let ring = Arc::new(KeyRing::fixed(Snapshot::single(&m)));
        let clock = ManualClock::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        );
        (
            TokenIssuer::new("https://sts.test".into(), ring, clock, 600, 3600),
            m,
        )
    }

    fn req() -> TokenRequest {
        TokenRequest {
            kind: TokenKind::Access,
            subject: "alice".into(),
            audience: vec!["api".into()],
            roles: vec!["admin".into(), "dev".into()],
            client_id: "cli".into(),
            idp: None,
            ttl: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn issued_token_verifies_with_the_public_jwk() {
        let (iss, m) = issuer();
        let t = iss.issue(&req()).unwrap();
        let h = decode_header(&t.token).unwrap();
        assert_eq!(h.kid.as_deref(), Some(m.kid().as_str()));
        assert_eq!(h.typ.as_deref(), Some("at+jwt"));
        let key = DecodingKey::from_rsa_components(&m.public.n, &m.public.e).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&["api"]);
        v.set_issuer(&["https://sts.test"]);
        v.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        let data = decode::<serde_json::Value>(&t.token, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], "alice");
        assert_eq!(data.claims["roles"], serde_json::json!(["admin", "dev"]));
        assert_eq!(
            data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap(),
            600
        );
        assert_eq!(data.claims["jti"].as_str().unwrap(), t.jti);
    }

    #[test]
    fn bad_requests_are_refused() {
        let (iss, _) = issuer();
        let mut r = req();
        r.ttl = Some(3601);
        assert!(matches!(
            iss.issue(&r),
            Err(TokenError::Invalid { field: "ttl", .. })
        ));
        let mut r = req();
        r.subject = "a\nb".into();
        assert!(matches!(
            iss.issue(&r),
            Err(TokenError::Invalid { field: "sub", .. })
        ));
        let mut r = req();
        r.audience.clear();
        assert!(matches!(
            iss.issue(&r),
            Err(TokenError::Invalid { field: "aud", .. })
        ));
    }

    #[test]
    fn public_subjects_are_qualified_and_bounded() {
        assert_eq!(public_subject("corp", "alice"), "corp|alice");
        assert_ne!(
            public_subject("corp", "alice"),
            public_subject("git", "alice")
        );
        let long = public_subject("corp", &"x".repeat(300));
        assert!(
            long.len() <= 255 && long.starts_with("corp|sha256:"),
            "{long}"
        );
        assert!(public_subject("corp", "j\u{f6}rg").starts_with("corp|sha256:"));
        assert!(public_subject("corp", "a b").starts_with("corp|sha256:"));
    }

    #[test]
    fn jti_is_unique() {
        let (iss, _) = issuer();
        assert_ne!(
            iss.issue(&req()).unwrap().jti,
            iss.issue(&req()).unwrap().jti
        );
    }
}
