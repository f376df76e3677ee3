//! What a request may ask for (`audience`, `scope`) and tokens for a grant a user approved outside a code
//! redirect (the device grant, the encrypted token redirect): [`Op::issue_user_grant`].

use std::collections::HashMap;

use super::Op;
use super::clients::{Client, GrantType};
use super::error::OAuthError;
use super::grants::{GrantData, unreadable};
use crate::sso::{hash, random_token};
use crate::store;

/// `audience` (RFC 8693's parameter name; one value): one of the application's registered audiences, which
/// becomes the access token's only `aud`. None when not asked for.
pub fn requested_audience(
    p: &HashMap<String, String>,
    client: &Client,
) -> Result<Option<Vec<String>>, OAuthError> {
    match p.get("audience") {
        None => Ok(None),
        Some(a) if client.settings.audience.iter().any(|x| x == a) => Ok(Some(vec![a.clone()])),
        Some(_) => Err(OAuthError::new(
            "invalid_target",
            "the requested audience is not one this application may ask for",
        )),
    }
}

/// The default scope of a request that names none: the application's standard OpenID scopes.
pub fn standard_scopes_of(client: &Client) -> Vec<String> {
    client
        .settings
        .scopes
        .iter()
        .filter(|s| super::clients::STANDARD_SCOPES.contains(&s.as_str()))
        .cloned()
        .collect()
}

/// `scope`: each one allowed for the application, duplicates dropped; `default` when absent.
pub fn requested_scope(
    p: &HashMap<String, String>,
    client: &Client,
    default: &[String],
) -> Result<Vec<String>, OAuthError> {
    let Some(asked) = p.get("scope") else {
        return Ok(default.to_vec());
    };
    let mut scope: Vec<String> = Vec::new();
    for t in asked.split(' ').filter(|t| !t.is_empty()) {
        if !client.settings.scopes.iter().any(|a| a == t) {
            return Err(OAuthError::new(
                "invalid_scope",
                "a requested scope is not allowed for this client",
            ));
        }
        if !scope.iter().any(|x| x == t) {
            scope.push(t.to_string());
        }
    }
    Ok(scope)
}

impl Op<'_> {
    /// Tokens for a grant the user approved outside a redirect with a code (the device grant, the
    /// encrypted token redirect): the SSO session must still be alive; a refresh token (a new family)
    /// when the application may refresh; its row, the application recorded in the session and the audit
    /// entry (`action`, by the user) commit in one transaction.
    pub async fn issue_user_grant(
        &self,
        client: &Client,
        grant: &GrantData,
        action: &str,
        details: serde_json::Value,
    ) -> Result<serde_json::Value, OAuthError> {
        let now = self.now;
        if !store::oauth::session_alive(self.pool, &grant.sid, now).await? {
            return Err(OAuthError::invalid_grant(
                "the single sign-on session has ended",
            ));
        }
        let with_refresh = client.settings.allows(GrantType::RefreshToken);
        let (body, access_jti, access_exp, refresh) =
            self.user_tokens(client, grant, true, with_refresh)?;
        let grant_json = serde_json::to_string(grant).map_err(unreadable)?;
        let mut tx = store::begin_write(self.pool).await?;
        if let Some(r) = &refresh {
            store::oauth::insert_refresh(
                &mut *tx,
                &store::oauth::NewRefresh {
                    token_hash: &hash(r),
                    family_id: &random_token(),
                    client_id: &client.settings.id,
                    sid: &grant.sid,
                    grant_data: &grant_json,
                    now,
                    expires_at: now + client.settings.refresh_token_lifetime as i64,
                    access_jti: &access_jti,
                    access_exp,
                },
            )
            .await?;
        }
        store::admin::audit(
            &mut tx,
            now,
            &format!("user:{}", grant.subject),
            action,
            Some(&client.settings.id),
            &details,
        )
        .await?;
        tx.commit().await?;
        store::oauth::touch_session_client(self.pool, &grant.sid, &client.settings.id, now).await?;
        tracing::info!(client = %client.settings.id, subject = ?grant.subject, action, "tokens issued");
        Ok(body)
    }
}
