//! Token exchange (RFC 8693) on behalf of a user: a service (a confidential application allowed the grant)
//! that received a user's access token exchanges it for one to call another service, with `act` naming
//! the service (§4.1). Checks, in order:
//! 1. the client may use the grant (confidential, `token-exchange` in its grant types);
//! 2. no `actor_token` (the authenticated client is the actor) and no `resource` (use `audience`);
//!    `requested_token_type`, when given, is an access token;
//! 3. `subject_token` of type `access_token` (or `jwt`): one of our access tokens (`verify_own`: our key,
//!    RS256, `typ: at+jwt`, unexpired), not revoked, its SSO session alive, and issued for this client (its
//!    `aud` names the client's id): a service exchanges only tokens that were meant for it;
//! 4. `audience`: one of the client's registered audiences (`invalid_target`), default all of them;
//! 5. `scope`: within the subject token's scope (`invalid_scope`), never wider; default unchanged;
//! 6. at most 4 actors deep (a chain of exchanges keeps the earlier actors nested in `act`).
//!
//! The new token keeps the user (`sub`, `idp`, `roles`, `sid`, `auth_time`), never outlives the subject
//! token, and is audited (`token.exchange`, by `client:<id>`).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::Op;
use super::clients::{Client, ClientType, GrantType};
use super::error::OAuthError;
use super::issue::requested_audience;
use crate::store;
use crate::tokens::{TokenKind, TokenRequest};

pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Longest chain of actors kept in `act`.
const MAX_ACTORS: usize = 4;

fn names(aud: &Value, id: &str) -> bool {
    match aud {
        Value::String(a) => a == id,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(id)),
        _ => false,
    }
}

fn actors(act: &Value) -> usize {
    let mut n = 0;
    let mut cur = act;
    while cur.is_object() && n <= MAX_ACTORS {
        n += 1;
        cur = &cur["act"];
    }
    n
}

impl Op<'_> {
    pub(super) async fn token_exchange(
        &self,
        p: &HashMap<String, String>,
        client: &Client,
    ) -> Result<Value, OAuthError> {
        let s = &client.settings;
        if !s.allows(GrantType::TokenExchange) || s.client_type != ClientType::Confidential {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client may not use token exchange",
            ));
        }
        if p.contains_key("actor_token") || p.contains_key("actor_token_type") {
            return Err(OAuthError::invalid_request(
                "actor_token is not supported: the authenticated client is the actor",
            ));
        }
        if p.contains_key("resource") {
            return Err(OAuthError::new(
                "invalid_target",
                "resource is not supported; name the audience with `audience`",
            ));
        }
        match p.get("requested_token_type").map(String::as_str) {
            None | Some(ACCESS_TOKEN_TYPE) => {}
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "only access tokens can be requested",
                ));
            }
        }
        let subject_token = p
            .get("subject_token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
        match p.get("subject_token_type").map(String::as_str) {
            Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
            None => return Err(OAuthError::invalid_request("subject_token_type is missing")),
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "subject_token_type must be urn:ietf:params:oauth:token-type:access_token",
                ));
            }
        }
        let claims = self
            .verify_own(subject_token, "at+jwt", false)
            .map_err(|e| {
                OAuthError::invalid_grant(format!(
                    "the subject token is not a valid access token of this STS: {}",
                    e.0
                ))
            })?;
        if !names(&claims["aud"], &s.id) {
            return Err(OAuthError::invalid_grant(
                "the subject token was not issued for this client (its aud does not name it)",
            ));
        }
        let (Some(sub), Some(jti), Some(exp)) = (
            claims["sub"].as_str(),
            claims["jti"].as_str(),
            claims["exp"].as_i64(),
        ) else {
            return Err(OAuthError::invalid_grant(
                "the subject token lacks sub, jti or exp",
            ));
        };
        if store::oauth::is_revoked(self.pool, jti).await? {
            return Err(OAuthError::invalid_grant("the subject token was revoked"));
        }
        if let Some(sid) = claims["sid"].as_str()
            && !store::oauth::session_alive(self.pool, sid, self.now).await?
        {
            return Err(OAuthError::invalid_grant(
                "the single sign-on session of the subject token has ended",
            ));
        }
        if claims["act"].is_object() && actors(&claims["act"]) >= MAX_ACTORS {
            return Err(OAuthError::invalid_grant("the chain of actors is too long"));
        }
        let audience = requested_audience(p, client)?.unwrap_or_else(|| s.audience.clone());
        let granted: Vec<&str> = claims["scope"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .filter(|x| !x.is_empty())
            .collect();
        let scope: Vec<&str> = match p.get("scope") {
            None => granted.clone(),
            Some(asked) => {
                let asked: Vec<&str> = asked.split(' ').filter(|x| !x.is_empty()).collect();
                if asked.iter().any(|x| !granted.contains(x)) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        "the requested scope exceeds the subject token's",
                    ));
                }
                asked
            }
        };
        let mut act = json!({"sub": s.id});
        if claims["act"].is_object() {
            act["act"] = claims["act"].clone();
        }
        let mut extra = serde_json::Map::new();
        if !scope.is_empty() {
            extra.insert("scope".into(), scope.join(" ").into());
        }
        extra.insert("act".into(), act);
        for k in ["sid", "auth_time"] {
            if !claims[k].is_null() {
                extra.insert(k.into(), claims[k].clone());
            }
        }
        let roles: Vec<String> = claims["roles"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        // Never past the subject token.
        let left = (exp - self.now).max(1) as u64;
        let ttl = s
            .access_token_lifetime
            .unwrap_or(self.tokens.default_ttl())
            .min(left);
        let issued = self
            .tokens
            .issue(&TokenRequest {
                kind: TokenKind::Access,
                subject: sub.to_string(),
                audience: audience.clone(),
                roles,
                client_id: s.id.clone(),
                idp: claims["idp"].as_str().map(str::to_string),
                ttl: Some(ttl),
                extra,
            })
            .map_err(|e| {
                tracing::error!(error = %e, "token issuance failed");
                OAuthError::internal()
            })?;
        store::admin::audit_alone(
            self.pool,
            self.now,
            &format!("client:{}", s.id),
            "token.exchange",
            Some(sub),
            &json!({"audience": audience, "scope": scope, "subject_client": claims["client_id"]}),
        )
        .await?;
        tracing::info!(client = %s.id, "token exchanged on behalf of a user");
        let mut body = json!({
            "access_token": issued.token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": issued.expires_at - self.now,
        });
        if !scope.is_empty() {
            body["scope"] = scope.join(" ").into();
        }
        Ok(body)
    }
}
