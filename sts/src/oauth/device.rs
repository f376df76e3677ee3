//! The device authorization grant (RFC 8628) without HTTP: a device (a shell on a remote host, a
//! notebook without a browser) asks for a device code and a user code ([`Op::device_authorization`]); the
//! user enters the user code at `/sso/device` in any browser with an SSO session, sees the application
//! and scopes, and approves or denies ([`Op::device_lookup`], [`Op::device_decide`]); the device polls the
//! token endpoint ([`Op::device_code`]) until it gets `authorization_pending`, `slow_down`,
//! `access_denied`, `expired_token` or the tokens (once).
//!
//! User codes (§6.1): 8 characters of the base-20 alphabet `BCDFGHJKLMNPQRSTVWXZ` (no vowels, so no
//! words; no digits, so nothing to confuse), shown as `XXXX-XXXX`, compared after removing dashes and
//! spaces and upper-casing. 20^8 ≈ 2.6·10^10 codes; wrong guesses are limited per session, per address
//! and in all (`web::oauth::device`), so guessing a live code is hopeless. Both codes are stored as
//! SHA-256 hashes.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Op;
use super::clients::{Client, GrantType};
use super::error::OAuthError;
use super::grants::GrantData;
use super::issue::{requested_audience, requested_scope, standard_scopes_of};
use crate::sso::login::SessionUser;
use crate::sso::{hash, random_token};
use crate::store;
use crate::store::device::Poll;

pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §6.1: consonants only.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const USER_CODE_LEN: usize = 8;

/// Lifetimes of the grant (`sessions.device_*`).
#[derive(Debug, Clone, Copy)]
pub struct DevicePolicy {
    pub code_lifetime: u64,
    pub poll_interval: u64,
}

/// What the device asked for (stored with the codes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRequest {
    pub scope: Vec<String>,
    #[serde(default)]
    pub audience: Option<Vec<String>>,
}

/// A new user code: uniform over the alphabet (rejection sampling of random bytes).
pub fn new_user_code() -> String {
    let mut out = String::with_capacity(USER_CODE_LEN);
    while out.len() < USER_CODE_LEN {
        let mut buf = [0u8; 16];
        crate::crypto::fill_random(&mut buf);
        for b in buf {
            // 240 = 12 × 20: bytes at or above it would favour the first letters.
            if b < 240 && out.len() < USER_CODE_LEN {
                out.push(ALPHABET[(b % 20) as usize] as char);
            }
        }
    }
    out
}

/// `BCDFGHJK` → `BCDF-GHJK`.
pub fn display_user_code(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

/// What a user typed, normalised (dashes and spaces removed, upper case); None when it cannot be a code.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

fn user_code_hash(code: &str) -> String {
    hash(&format!("device-user-code:{code}"))
}

impl Op<'_> {
    /// `POST /sso/device_authorization` for an authenticated (or public) client: the codes and where the
    /// user goes.
    pub async fn device_authorization(
        &self,
        p: &HashMap<String, String>,
        client: &Client,
        policy: DevicePolicy,
    ) -> Result<serde_json::Value, OAuthError> {
        if !client.settings.allows(GrantType::DeviceCode) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client may not use the device authorization grant",
            ));
        }
        let request = DeviceRequest {
            scope: requested_scope(p, client, &standard_scopes_of(client))?,
            audience: requested_audience(p, client)?,
        };
        let request = serde_json::to_string(&request).map_err(|_| OAuthError::internal())?;
        let now = self.now;
        let device_code = random_token();
        for _ in 0..3 {
            let user_code = new_user_code();
            let stored = store::device::insert(
                self.pool,
                &store::device::NewDeviceGrant {
                    device_code_hash: &hash(&device_code),
                    user_code_hash: &user_code_hash(&user_code),
                    client_id: &client.settings.id,
                    request: &request,
                    interval: policy.poll_interval as i64,
                    now,
                    expires_at: now + policy.code_lifetime as i64,
                },
            )
            .await?;
            if stored {
                let base = self.issuer;
                tracing::info!(client = %client.settings.id, "device authorization started");
                return Ok(serde_json::json!({
                    "device_code": device_code,
                    "user_code": display_user_code(&user_code),
                    "verification_uri": format!("{base}/sso/device"),
                    "verification_uri_complete": format!("{base}/sso/device?user_code={user_code}"),
                    "expires_in": policy.code_lifetime,
                    "interval": policy.poll_interval,
                }));
            }
        }
        Err(OAuthError::internal())
    }

    /// A pending grant by what the user typed: the application and what it asked for, with the code
    /// normalised. None for a wrong, used or expired code (the caller counts the attempt first).
    pub async fn device_lookup(
        &self,
        typed: &str,
    ) -> Result<Option<(Arc<Client>, DeviceRequest, String)>, sqlx::Error> {
        let Some(code) = normalize_user_code(typed) else {
            return Ok(None);
        };
        let Some((client_id, request)) =
            store::device::pending_by_user_code(self.pool, &user_code_hash(&code), self.now)
                .await?
        else {
            return Ok(None);
        };
        let (Some(client), Ok(request)) = (
            self.clients.get(&client_id),
            serde_json::from_str::<DeviceRequest>(&request),
        ) else {
            return Ok(None);
        };
        Ok(Some((client, request, code)))
    }

    /// The user's decision for a pending grant, recorded with its audit entry. Err(message) when the
    /// code is no longer pending or the application does not accept the session's provider.
    pub async fn device_decide(
        &self,
        typed: &str,
        user: &SessionUser,
        approve: bool,
    ) -> Result<Result<(), &'static str>, sqlx::Error> {
        let Some((client, request, code)) = self.device_lookup(typed).await? else {
            return Ok(Err("this code is unknown, was already used or has expired"));
        };
        let s = &client.settings;
        let subject = super::authorize::public_subject(&user.provider_id, &user.subject);
        let details = serde_json::json!({
            "scope": request.scope,
            "audience": request.audience,
            "sid": user.sid,
        });
        let approved = if approve {
            if !s.providers.is_empty() && !s.providers.contains(&user.provider_id) {
                return Ok(Err(
                    "this application does not accept the identity provider you signed in with",
                ));
            }
            let grant = GrantData {
                redirect_uri: String::new(),
                scope: request.scope,
                nonce: None,
                code_challenge: None,
                subject: subject.clone(),
                idp: user.provider_id.clone(),
                roles: user.roles.clone(),
                identity: user.identity.clone(),
                auth_time: user.auth_time,
                acr: user.acr.clone(),
                amr: user.amr.clone(),
                sid: user.sid.clone(),
                audience: request.audience,
            };
            Some(serde_json::to_string(&grant).unwrap_or_default())
        } else {
            None
        };
        let done = store::device::decide(
            self.pool,
            &user_code_hash(&code),
            approved.as_deref().map(|g| (user.sid.as_str(), g)),
            self.now,
            (
                &format!("user:{subject}"),
                if approve {
                    "device.approve"
                } else {
                    "device.deny"
                },
                &s.id,
                &details,
            ),
        )
        .await?;
        tracing::info!(client = %s.id, approve, done, "device authorization decided");
        Ok(if done {
            Ok(())
        } else {
            Err("this code is unknown, was already used or has expired")
        })
    }

    /// The token endpoint's device code grant (RFC 8628 §3.4, §3.5).
    pub(super) async fn device_code(
        &self,
        p: &HashMap<String, String>,
        client: &Client,
    ) -> Result<serde_json::Value, OAuthError> {
        if !client.settings.allows(GrantType::DeviceCode) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client may not use the device authorization grant",
            ));
        }
        let code = p
            .get("device_code")
            .ok_or_else(|| OAuthError::invalid_request("device_code is missing"))?;
        let polled =
            store::device::poll(self.pool, &hash(code), &client.settings.id, self.now).await?;
        let (_sid, grant) = match polled {
            Poll::Unknown => return Err(OAuthError::invalid_grant("unknown device code")),
            Poll::Expired => {
                return Err(OAuthError::new(
                    "expired_token",
                    "the device code has expired; start again",
                ));
            }
            Poll::SlowDown => {
                return Err(OAuthError::new(
                    "slow_down",
                    "polling too fast: the interval is now 5 seconds longer",
                ));
            }
            Poll::Pending => {
                return Err(OAuthError::new(
                    "authorization_pending",
                    "the user has not yet approved the request",
                ));
            }
            Poll::Denied => {
                return Err(OAuthError::new(
                    "access_denied",
                    "the user denied the request",
                ));
            }
            Poll::AlreadyUsed => {
                return Err(OAuthError::invalid_grant(
                    "the device code was already used",
                ));
            }
            Poll::Approved(sid, grant) => (sid, grant),
        };
        let grant: GrantData = serde_json::from_str(&grant).map_err(|e| {
            tracing::error!(error = %e, "a stored device grant is unreadable");
            OAuthError::internal()
        })?;
        let details = serde_json::json!({"scope": grant.scope, "audience": grant.audience});
        self.issue_user_grant(client, &grant, "token.device", details)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_base20_and_normalised() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let c = new_user_code();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)), "{c}");
            assert_eq!(
                normalize_user_code(&display_user_code(&c)).as_deref(),
                Some(c.as_str())
            );
            assert_eq!(
                normalize_user_code(&c.to_lowercase()).as_deref(),
                Some(c.as_str())
            );
            seen.insert(c);
        }
        assert!(seen.len() > 195);
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ1",
            "BCDF\u{0}GHJK",
            "ＢCDF-GHJK",
        ] {
            assert_eq!(normalize_user_code(bad), None, "{bad:?}");
        }
        assert_eq!(
            normalize_user_code(" bcdf ghjk ").as_deref(),
            Some("BCDFGHJK")
        );
    }
}
