//! The token endpoint's grants without HTTP (RFC 6749 section 4.1.3 and 6, section 4.4): what a code or
//! refresh token grants ([`GrantData`]), and for an authenticated client the checks of each grant in
//! order, the tokens issued, and the single use of codes and refresh tokens (a second use revokes what
//! the first produced).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::Op;
use super::clients::{Client, ClientType, GrantType};
use super::error::OAuthError;
use crate::crypto::constant_time_eq;
use crate::sso::login::SessionIdentity;
use crate::sso::{hash, random_token};
use crate::store;
use crate::tokens::{TokenKind, TokenRequest};

/// What a code or refresh token grants: the user, the client's request, and how the user authenticated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantData {
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub subject: String,
    pub idp: String,
    pub roles: Vec<String>,
    pub identity: SessionIdentity,
    pub auth_time: i64,
    pub acr: Option<String>,
    pub amr: Option<Vec<String>>,
    pub sid: String,
    /// The access token's audience when the request named one (`audience`, one of the application's);
    /// else the application's whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Vec<String>>,
}

impl Op<'_> {
    /// The grant `grant_type` for an authenticated client: the token response body.
    pub async fn grant(
        &self,
        grant_type: &str,
        p: &HashMap<String, String>,
        client: &Client,
    ) -> Result<serde_json::Value, OAuthError> {
        let (grant, out) = match grant_type {
            "authorization_code" => (
                "authorization_code",
                self.authorization_code(p, client).await,
            ),
            "refresh_token" => ("refresh_token", self.refresh_token(p, client).await),
            "client_credentials" => ("client_credentials", self.client_credentials(p, client)),
            super::device::DEVICE_CODE_GRANT => ("device_code", self.device_code(p, client).await),
            super::exchange::TOKEN_EXCHANGE_GRANT => {
                ("token_exchange", self.token_exchange(p, client).await)
            }
            _ => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    "grant_type must be authorization_code, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code or urn:ietf:params:oauth:grant-type:token-exchange",
                ));
            }
        };
        if out.is_ok() {
            // The client is authenticated and registered: its id is a configured name.
            crate::measure::token_issued(grant, &client.settings.id);
        }
        out
    }
}

impl Op<'_> {
    async fn authorization_code(
        &self,
        p: &HashMap<String, String>,
        client: &Client,
    ) -> Result<serde_json::Value, OAuthError> {
        if !client.settings.allows(GrantType::AuthorizationCode) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client may not use authorization_code",
            ));
        }
        let code = p
            .get("code")
            .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
        let now = self.now;
        let code_hash = hash(code);
        // The refresh-token family is fixed when the code is marked used, so a concurrent second redemption
        // (a reuse) can revoke it even before the first one has finished issuing.
        let family = random_token();
        let row = match store::oauth::redeem_code(
            self.pool,
            &code_hash,
            &client.settings.id,
            &family,
            now,
        )
        .await?
        {
            store::oauth::Redeem::Ok(r) => r,
            store::oauth::Redeem::Reused {
                access_jti,
                access_exp,
                family_id,
            } => {
                // RFC 6749 4.1.2 / 10.5: a code used twice revokes what it produced.
                if let (Some(j), Some(e)) = (access_jti, access_exp) {
                    store::oauth::revoke_access(self.pool, &j, e).await?;
                }
                if let Some(f) = family_id {
                    store::oauth::revoke_family(self.pool, &f, now).await?;
                }
                tracing::warn!(client = %client.settings.id, reason = "code_reuse", "authorization code presented twice: its tokens are revoked");
                return Err(OAuthError::invalid_grant("the code was already used"));
            }
            store::oauth::Redeem::Unknown => {
                return Err(OAuthError::invalid_grant("unknown or expired code"));
            }
        };
        if row.client_id != client.settings.id {
            return Err(OAuthError::invalid_grant("unknown or expired code"));
        }
        if row.expires_at <= now {
            return Err(OAuthError::invalid_grant("the code has expired"));
        }
        let grant: GrantData = serde_json::from_str(&row.grant_data).map_err(unreadable)?;
        match p.get("redirect_uri") {
            Some(r) if *r == grant.redirect_uri => {}
            Some(_) => {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri differs from the authorization request",
                ));
            }
            None => return Err(OAuthError::invalid_request("redirect_uri is required")),
        }
        match (&grant.code_challenge, p.get("code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                if verifier.len() < 43
                    || verifier.len() > 128
                    || !verifier
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                {
                    return Err(OAuthError::invalid_grant(
                        "code_verifier is malformed (RFC 7636 4.1)",
                    ));
                }
                let computed = crate::crypto::pkce_s256(verifier);
                if !constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                    return Err(OAuthError::invalid_grant(
                        "code_verifier does not match the code_challenge",
                    ));
                }
            }
            (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required")),
            (None, Some(_)) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier given but no code_challenge was sent",
                ));
            }
            (None, None) => {}
        }
        if !store::oauth::session_alive(self.pool, &row.sid, now).await? {
            return Err(OAuthError::invalid_grant(
                "the single sign-on session has ended",
            ));
        }
        let family = client
            .settings
            .allows(GrantType::RefreshToken)
            .then_some(family);
        let refresh_expires = now + client.settings.refresh_token_lifetime as i64;
        let (body, access_jti, access_exp, refresh) =
            self.user_tokens(client, &grant, true, family.is_some())?;
        if let (Some(f), Some(r)) = (&family, &refresh) {
            store::oauth::insert_refresh(
                self.pool,
                &store::oauth::NewRefresh {
                    token_hash: &hash(r),
                    family_id: f,
                    client_id: &client.settings.id,
                    sid: &grant.sid,
                    grant_data: &row.grant_data,
                    now,
                    expires_at: refresh_expires,
                    access_jti: &access_jti,
                    access_exp,
                },
            )
            .await?;
        }
        if store::oauth::record_code_result(self.pool, &code_hash, &access_jti, access_exp).await? {
            // Presented twice while this redemption was issuing: revoke what it issued, as a reuse does.
            store::oauth::revoke_access(self.pool, &access_jti, access_exp).await?;
            if let Some(f) = &family {
                store::oauth::revoke_family(self.pool, f, now).await?;
            }
            return Err(OAuthError::invalid_grant("the code was already used"));
        }
        store::oauth::touch_session_client(self.pool, &grant.sid, &client.settings.id, now).await?;
        tracing::info!(client = %client.settings.id, subject = ?grant.subject, "tokens issued (authorization_code)");
        Ok(body)
    }

    async fn refresh_token(
        &self,
        p: &HashMap<String, String>,
        client: &Client,
    ) -> Result<serde_json::Value, OAuthError> {
        if !client.settings.allows(GrantType::RefreshToken) {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client may not use refresh_token",
            ));
        }
        let presented = p
            .get("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
        let now = self.now;
        let token_hash = hash(presented);
        let Some(row) = store::oauth::find_refresh(self.pool, &token_hash).await? else {
            return Err(OAuthError::invalid_grant("unknown refresh token"));
        };
        if row.client_id != client.settings.id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if row.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant("the refresh token was revoked"));
        }
        if row.used_at.is_some() {
            return Err(self.reuse(&row.family_id, client, now).await);
        }
        if row.expires_at <= now {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        // An application refreshing its tokens keeps the SSO session alive (idle timeout), never past its
        // absolute end.
        if !store::oauth::touch_session_by_sid(
            self.pool,
            &row.sid,
            now,
            now + self.session_idle as i64,
        )
        .await?
        {
            return Err(OAuthError::invalid_grant(
                "the single sign-on session has ended",
            ));
        }
        let mut grant: GrantData = serde_json::from_str(&row.grant_data).map_err(unreadable)?;
        if let Some(scope) = p.get("scope") {
            let asked: Vec<String> = scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if asked.iter().any(|s| !grant.scope.contains(s)) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    "the requested scope exceeds the scope originally granted",
                ));
            }
            // Only these tokens are narrowed; the new refresh token keeps the original grant (RFC 6749 6).
            grant.scope = asked;
        }
        // Another of the application's audiences may be asked for (`sts-login token --aud X`): only
        // this access token's `aud` changes.
        if let Some(a) = super::issue::requested_audience(p, client)? {
            grant.audience = Some(a);
        }
        let (body, access_jti, access_exp, refresh) =
            self.user_tokens(client, &grant, false, true)?;
        let Some(r) = refresh else {
            tracing::error!("no refresh token was made for a refresh grant");
            return Err(OAuthError::internal());
        };
        // Rotation: whoever marks it used first wins; a concurrent second use is a reuse.
        let rotated = store::oauth::rotate_refresh(
            self.pool,
            &token_hash,
            &store::oauth::NewRefresh {
                token_hash: &hash(&r),
                family_id: &row.family_id,
                client_id: &client.settings.id,
                sid: &row.sid,
                grant_data: &row.grant_data,
                now,
                // Rotation never extends the grant.
                expires_at: row.expires_at,
                access_jti: &access_jti,
                access_exp,
            },
        )
        .await?;
        if !rotated {
            return Err(self.reuse(&row.family_id, client, now).await);
        }
        store::oauth::touch_session_client(self.pool, &row.sid, &client.settings.id, now).await?;
        Ok(body)
    }
}

fn issue_failed(e: crate::tokens::TokenError) -> OAuthError {
    tracing::error!(error = %e, "token issuance failed");
    OAuthError::internal()
}

pub(super) fn unreadable(e: serde_json::Error) -> OAuthError {
    tracing::error!(error = %e, "a stored grant is unreadable");
    OAuthError::internal()
}

impl Op<'_> {
    async fn reuse(&self, family: &str, client: &Client, now: i64) -> OAuthError {
        if let Err(e) = store::oauth::revoke_family(self.pool, family, now).await {
            return e.into();
        }
        tracing::warn!(client = %client.settings.id, reason = "refresh_token_reuse", "a rotated refresh token was presented again: its family is revoked");
        OAuthError::invalid_grant("the refresh token was already used; its grant is revoked")
    }

    fn client_credentials(
        &self,
        p: &HashMap<String, String>,
        client: &Client,
    ) -> Result<serde_json::Value, OAuthError> {
        let s = &client.settings;
        if !s.allows(GrantType::ClientCredentials) || s.client_type != ClientType::Confidential {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client may not use client_credentials",
            ));
        }
        let mut scope: Vec<&str> = Vec::new();
        if let Some(asked) = p.get("scope") {
            for t in asked.split(' ').filter(|t| !t.is_empty()) {
                if t == "openid" || t == "offline_access" || !s.scopes.iter().any(|a| a == t) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        "a requested scope is not allowed for this client",
                    ));
                }
                if !scope.contains(&t) {
                    scope.push(t);
                }
            }
        }
        let mut extra = serde_json::Map::new();
        let scope_text = scope.join(" ");
        if !scope_text.is_empty() {
            extra.insert("scope".into(), scope_text.clone().into());
        }
        let issued = self
            .tokens
            .issue(&TokenRequest {
                kind: TokenKind::Access,
                subject: s.id.clone(),
                audience: s.audience.clone(),
                roles: s.roles.clone(),
                client_id: s.id.clone(),
                idp: None,
                ttl: s.access_token_lifetime,
                extra,
            })
            .map_err(issue_failed)?;
        let mut body = serde_json::json!({
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_at - self.now,
        });
        if !scope_text.is_empty() {
            body["scope"] = scope_text.into();
        }
        Ok(body)
    }

    /// Access token (+ ID token when `openid` was granted, + a new refresh token when asked).
    /// Returns (response body, access jti, access exp, refresh token).
    pub(super) fn user_tokens(
        &self,
        client: &Client,
        g: &GrantData,
        with_nonce: bool,
        with_refresh: bool,
    ) -> Result<(serde_json::Value, String, i64, Option<String>), OAuthError> {
        let s = &client.settings;
        // A narrowed audience holds only while the application still has it (an admin may have taken it
        // away since the grant).
        let audience = match &g.audience {
            None => s.audience.clone(),
            Some(a) => {
                let kept: Vec<String> = a
                    .iter()
                    .filter(|x| s.audience.contains(x))
                    .cloned()
                    .collect();
                if kept.is_empty() {
                    return Err(OAuthError::invalid_grant(
                        "the application may no longer get tokens for this audience",
                    ));
                }
                kept
            }
        };
        let scope = g.scope.join(" ");
        let mut extra = serde_json::Map::new();
        if !scope.is_empty() {
            extra.insert("scope".into(), scope.clone().into());
        }
        extra.insert("sid".into(), g.sid.clone().into());
        extra.insert("auth_time".into(), g.auth_time.into());
        let access = self
            .tokens
            .issue(&TokenRequest {
                kind: TokenKind::Access,
                subject: g.subject.clone(),
                audience,
                roles: g.roles.clone(),
                client_id: s.id.clone(),
                idp: Some(g.idp.clone()),
                ttl: s.access_token_lifetime,
                extra,
            })
            .map_err(issue_failed)?;
        let now = self.now;
        let mut body = serde_json::json!({
            "access_token": access.token,
            "token_type": "Bearer",
            "expires_in": access.expires_at - now,
        });
        if !scope.is_empty() {
            body["scope"] = scope.clone().into();
        }
        if g.scope.iter().any(|x| x == "openid") {
            let mut extra = user_claims(&g.scope, &g.identity);
            extra.insert("sid".into(), g.sid.clone().into());
            extra.insert("auth_time".into(), g.auth_time.into());
            extra.insert("azp".into(), s.id.clone().into());
            let digest = sha2::Sha256::digest(access.token.as_bytes());
            extra.insert(
                "at_hash".into(),
                URL_SAFE_NO_PAD.encode(&digest[..16]).into(),
            );
            if with_nonce && let Some(n) = &g.nonce {
                extra.insert("nonce".into(), n.clone().into());
            }
            if let Some(a) = &g.acr {
                extra.insert("acr".into(), a.clone().into());
            }
            if let Some(a) = &g.amr {
                extra.insert("amr".into(), a.clone().into());
            }
            let id = self
                .tokens
                .issue(&TokenRequest {
                    kind: TokenKind::Id,
                    subject: g.subject.clone(),
                    audience: vec![s.id.clone()],
                    roles: if g.scope.iter().any(|x| x == "roles") {
                        g.roles.clone()
                    } else {
                        vec![]
                    },
                    client_id: s.id.clone(),
                    idp: Some(g.idp.clone()),
                    ttl: s.access_token_lifetime,
                    extra,
                })
                .map_err(issue_failed)?;
            body["id_token"] = id.token.into();
        }
        let refresh = with_refresh.then(random_token);
        if let Some(r) = &refresh {
            body["refresh_token"] = r.clone().into();
        }
        Ok((body, access.jti, access.expires_at, refresh))
    }
}

/// Profile and email claims by scope (ID token and userinfo).
pub fn user_claims(
    scope: &[String],
    identity: &SessionIdentity,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let has = |s: &str| scope.iter().any(|x| x == s);
    if has("profile") {
        m.insert(
            "preferred_username".into(),
            identity.username.clone().into(),
        );
        if let Some(n) = &identity.display_name {
            m.insert("name".into(), n.clone().into());
        }
    }
    if has("email")
        && let Some(e) = &identity.email
    {
        m.insert("email".into(), e.clone().into());
        m.insert(
            "email_verified".into(),
            identity.email_verified.unwrap_or(false).into(),
        );
    }
    m
}
