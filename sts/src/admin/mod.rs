//! The server's side of the admin console: [`admin_ui::AdminBackend`] over the store, the key service,
//! the key ring and the client registry. Every change writes an audit entry (secrets never). One file per
//! resource trait of `admin_ui::backend` (`console`, `keys`, `sessions`, `applications`, `providers`,
//! `transfer`); this file holds `Backend` and the helpers they share.

mod applications;
mod console;
mod keys;
mod providers;
pub mod replicas;
mod sessions;
mod transfer;

use std::sync::Arc;

use admin_ui::backend::{
    AdminSession, ApiTokenInfo, AuditEntry, BackendError, BoxFut, ClientInfo, Dashboard, KeyInfo,
    LastLogin, NewAdminSession, NewClient, ProviderDetail, ProviderInfo, RolePreview, SamlSpInfo,
    SsoAdmin, SsoSessionInfo,
};
use serde_json::json;

use crate::clock::SharedClock;
use crate::keys::{KeyRing, KeyService};
use crate::oauth::clients::{
    AuthMethod, ClientRegistry, ClientSettings, ClientType, GrantType, RawClient, generate_secret,
};
use crate::store::{self, Pool};

pub struct Backend {
    pub pool: Pool,
    pub keys: Arc<KeyService>,
    pub ring: Arc<KeyRing>,
    pub clients: Arc<ClientRegistry>,
    pub clock: SharedClock,
    pub secure_cookies: bool,
    pub token_max_lifetime: u64,
    pub providers: Arc<crate::providers::Registry>,
    /// `public_url` (redirect URIs, SAML URLs shown to admins).
    pub public_url: String,
    /// Ids declared in the configuration file (they cannot be created in the console).
    pub config_provider_ids: Vec<String>,
    /// `admin.sso_roles`.
    pub sso_roles: Vec<String>,
    /// Serialises provider changes (save, enable, import, SP key) so none overwrites another's.
    pub provider_changes: tokio::sync::Mutex<()>,
    pub session_idle: i64,
    /// What this replica built of the console providers and the SP key (`replicas.rs`).
    pub console_seen: tokio::sync::Mutex<replicas::Seen>,
}

fn db(e: sqlx::Error) -> BackendError {
    BackendError::Internal(format!("database: {e}"))
}

impl Backend {
    /// After a committed client change: reload the registry now. A failure here must not turn the
    /// committed change (and a secret shown only once) into an error: it is logged, and the registry's
    /// periodic reload picks the change up.
    async fn reload_clients(&self) {
        if let Err(e) = self.clients.reload().await {
            tracing::warn!(error = %e, "reloading applications after a change failed; the periodic reload will pick it up");
        }
    }

    /// An audit entry on its own (refusals, exports: nothing else is written).
    async fn log(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> Result<(), BackendError> {
        store::admin::audit_alone(
            &self.pool,
            self.clock.now(),
            actor,
            action,
            target,
            &details,
        )
        .await
        .map_err(db)
    }

    /// An audit entry inside the transaction of the change it records (both commit or neither).
    async fn log_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        actor: &str,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> Result<(), BackendError> {
        store::admin::audit(conn, self.clock.now(), actor, action, target, &details)
            .await
            .map_err(db)
    }

    fn client_info(
        &self,
        s: &ClientSettings,
        enabled: bool,
        secret_set: bool,
        managed_by: &str,
    ) -> ClientInfo {
        ClientInfo {
            id: s.id.clone(),
            name: s.name.clone(),
            client_type: match s.client_type {
                ClientType::Confidential => "confidential".into(),
                ClientType::Public => "public".into(),
            },
            redirect_uris: s.redirect_uris.clone(),
            post_logout_redirect_uris: s.post_logout_redirect_uris.clone(),
            grant_types: s
                .grant_types
                .iter()
                .map(|g| g.as_str().to_string())
                .collect(),
            scopes: s.scopes.clone(),
            audience: s.audience.clone(),
            roles: s.roles.clone(),
            auth_method: s.auth_method.as_str().into(),
            access_token_lifetime_seconds: s.access_token_lifetime,
            refresh_token_lifetime_seconds: s.refresh_token_lifetime,
            providers: s.providers.clone(),
            enabled,
            secret_set,
            managed_by: managed_by.into(),
        }
    }

    fn provider_info(
        &self,
        p: &crate::providers::Provider,
        managed_by: &str,
        source: Option<String>,
        last: Option<(String, i64)>,
    ) -> ProviderInfo {
        let s = &p.settings;
        let (callback_url, sp_metadata_url) = s.kind.endpoints(&self.public_url, &s.id);
        ProviderInfo {
            id: s.id.clone(),
            kind: s.kind.type_name().into(),
            display_name: s.display_name.clone(),
            enabled: s.enabled,
            managed_by: managed_by.into(),
            source,
            callback_url,
            sp_metadata_url,
            last_outcome: last.as_ref().map(|l| l.0.clone()),
            last_at: last.map(|l| l.1),
        }
    }

    async fn saml_ready(&self) -> Result<(), BackendError> {
        if self.providers.has_saml_context() {
            return Ok(());
        }
        self.load_saml_context().await
    }

    /// (Re)load the SAML SP credentials from the store (creating them the first time) into the registry.
    async fn load_saml_context(&self) -> Result<(), BackendError> {
        let credentials =
            crate::providers::saml::SpCredentials::load_or_create(&self.keys, &self.pool)
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?;
        self.providers
            .set_saml_context(crate::providers::SamlContext {
                credentials: Arc::new(credentials),
                entity_id: format!("{}/sso/sso-saml/metadata", self.public_url),
                acs_url: format!("{}/sso/sso-saml/acs", self.public_url),
                base_url: format!("{}/sso/sso-saml", self.public_url),
            });
        Ok(())
    }

    async fn key_changed(&self) {
        if let Err(e) = self.ring.refresh().await {
            tracing::warn!(error = %e, "reloading keys after an admin change failed; the reload loop will retry");
        }
    }
}

impl Backend {
    /// A console/API application, validated exactly like a `[[clients]]` entry.
    fn validate_client(&self, c: NewClient) -> Result<ClientSettings, BackendError> {
        let client_type = match c.client_type.as_str() {
            "confidential" => ClientType::Confidential,
            "public" => ClientType::Public,
            other => {
                return Err(BackendError::Invalid(format!(
                    "type must be confidential or public, not {other:?}"
                )));
            }
        };
        if let Some(unknown) = c
            .providers
            .iter()
            .flatten()
            .find(|p| self.providers.get(p).is_none())
        {
            return Err(BackendError::Invalid(format!(
                "providers: there is no identity provider {unknown:?}"
            )));
        }
        let raw = RawClient {
            id: c.id,
            name: c.name,
            client_type,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            grant_types: parse_list::<GrantType>("grant_types", c.grant_types)?,
            scopes: c.scopes,
            audience: c.audience,
            roles: c.roles,
            // 0: back to the default.
            access_token_lifetime_seconds: c.access_token_lifetime_seconds.filter(|s| *s != 0),
            refresh_token_lifetime_seconds: c.refresh_token_lifetime_seconds.filter(|s| *s != 0),
            providers: c.providers.unwrap_or_default(),
            token_endpoint_auth_method: None,
            jwks: None,
            enabled: true,
        };
        raw.validate(self.token_max_lifetime)
            .map_err(|e| BackendError::Invalid(e.to_string()))
    }
}

fn parse_list<T: serde::de::DeserializeOwned>(
    field: &str,
    v: Option<Vec<String>>,
) -> Result<Option<Vec<T>>, BackendError> {
    v.map(|list| {
        list.into_iter()
            .map(|s| {
                serde_json::from_value(serde_json::Value::String(s.clone()))
                    .map_err(|_| BackendError::Invalid(format!("{field}: unknown value {s:?}")))
            })
            .collect()
    })
    .transpose()
}
