//! The built-in public application `sts-login`: what the `sts-login` CLI, the Python helper
//! (`clients/python`), the device grant and the encrypted token redirect issue tokens to, so that people
//! in shells and notebooks need no application registered per user and no secret on disk.
//!
//! It is created once, at start-up, as an ordinary console-managed application (unless the configuration
//! file declares an application with this id, which then wins): admins disable it or limit its
//! audiences, scopes, token lifetime and identity providers in the console or the admin API like any other,
//! and what it is given is in the audit log (`token.redirect`, `device.approve`, `token.device`).
//! Its redirect URIs are the loopback callbacks (any port, RFC 8252 §7.3); the encrypted token redirect
//! also accepts any loopback port and path, and exactly the other URIs an admin registers.

use super::clients::{AuthMethod, ClientSettings, ClientType, GrantType, STANDARD_SCOPES};
use crate::store::{self, Pool};

pub const BUILTIN_CLIENT_ID: &str = "sts-login";

/// The settings it is created with.
pub fn default_settings() -> ClientSettings {
    ClientSettings {
        id: BUILTIN_CLIENT_ID.into(),
        name: "Command line and notebooks (sts-login)".into(),
        client_type: ClientType::Public,
        redirect_uris: vec![
            "http://127.0.0.1/callback".into(),
            "http://[::1]/callback".into(),
        ],
        post_logout_redirect_uris: vec![],
        grant_types: vec![
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::DeviceCode,
        ],
        scopes: STANDARD_SCOPES.iter().map(|s| s.to_string()).collect(),
        audience: vec![BUILTIN_CLIENT_ID.into()],
        roles: vec![],
        access_token_lifetime: None,
        refresh_token_lifetime: 28_800,
        providers: vec![],
        auth_method: AuthMethod::None,
        jwks: None,
        enabled: true,
    }
}

/// Create the built-in application when no application has its id (its creation audited in the same
/// transaction); an existing one, whatever an admin made of it, is left alone.
pub async fn ensure(pool: &Pool, now: i64) -> Result<(), sqlx::Error> {
    let settings = serde_json::to_string(&default_settings())
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let mut tx = store::begin_write(pool).await?;
    if store::admin::insert_client(&mut *tx, BUILTIN_CLIENT_ID, &settings, now).await? {
        store::admin::audit(
            &mut tx,
            now,
            "server",
            "application.create",
            Some(BUILTIN_CLIENT_ID),
            &serde_json::json!({"builtin": true}),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(client = BUILTIN_CLIENT_ID, "built-in application created");
    } else {
        tx.rollback().await?;
    }
    Ok(())
}
