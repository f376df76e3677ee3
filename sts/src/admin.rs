//! The server's side of the admin console: [`admin_ui::AdminBackend`] over the store, the key service,
//! the key ring and the client registry. Every change writes an audit entry (secrets never).

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
        self.log_in(&self.pool, actor, action, target, details)
            .await
    }

    /// An audit entry inside the transaction of the change it records (both commit or neither).
    async fn log_in(
        &self,
        conn: impl sqlx::SqliteExecutor<'_>,
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
        use crate::providers::Kind;
        let s = &p.settings;
        let base = &self.public_url;
        let (callback_url, sp_metadata_url) = match s.kind {
            Kind::Oidc => (format!("{base}/sso/sso-openid/openid-login"), None),
            Kind::Oauth2 => (format!("{base}/sso/sso-oauth/oauth-login"), None),
            Kind::Saml => {
                let per = s.saml.as_ref().is_some_and(|x| x.per_provider_acs);
                (
                    if per {
                        format!("{base}/sso/sso-saml/{}/acs", s.id)
                    } else {
                        format!("{base}/sso/sso-saml/acs")
                    },
                    Some(format!("{base}/sso/sso-saml/{}/metadata", s.id)),
                )
            }
        };
        ProviderInfo {
            id: s.id.clone(),
            kind: s.kind.as_str().into(),
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
            access_token_lifetime_seconds: None,
            refresh_token_lifetime_seconds: None,
            providers: vec![],
            token_endpoint_auth_method: None,
            jwks: None,
            enabled: true,
        };
        raw.validate(self.token_max_lifetime)
            .map_err(BackendError::Invalid)
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

impl admin_ui::AdminBackend for Backend {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    fn admin_password_hash(&self, username: &str) -> BoxFut<'_, Option<String>> {
        let username = username.to_string();
        Box::pin(async move {
            store::admin::admin_password_hash(&self.pool, &username)
                .await
                .map_err(db)
        })
    }

    fn insert_admin_session(&self, s: NewAdminSession) -> BoxFut<'_, ()> {
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            store::admin::insert_session(&mut *tx, &s)
                .await
                .map_err(db)?;
            self.log_in(
                &mut *tx,
                &format!("admin:{}", s.username),
                "admin.login",
                None,
                s.audit_details.clone(),
            )
            .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn admin_session(&self, id_hash: &str, idle_until: i64) -> BoxFut<'_, Option<AdminSession>> {
        let id_hash = id_hash.to_string();
        Box::pin(async move {
            Ok(
                store::admin::touch_session(&self.pool, &id_hash, self.clock.now(), idle_until)
                    .await
                    .map_err(db)?
                    .map(|(username, csrf)| AdminSession { username, csrf }),
            )
        })
    }

    fn delete_admin_session(&self, id_hash: &str, logout_actor: Option<&str>) -> BoxFut<'_, ()> {
        let (id_hash, actor) = (id_hash.to_string(), logout_actor.map(str::to_string));
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            store::admin::delete_session(&mut *tx, &id_hash)
                .await
                .map_err(db)?;
            if let Some(actor) = actor {
                self.log_in(&mut *tx, &actor, "admin.logout", None, json!({}))
                    .await?;
            }
            tx.commit().await.map_err(db)
        })
    }

    fn api_token(&self, token_hash: &str) -> BoxFut<'_, Option<String>> {
        let h = token_hash.to_string();
        Box::pin(async move {
            store::admin::use_api_token(&self.pool, &h, self.clock.now())
                .await
                .map_err(db)
        })
    }

    fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> BoxFut<'_, ()> {
        let (actor, action, target) = (
            actor.to_string(),
            action.to_string(),
            target.map(str::to_string),
        );
        Box::pin(async move { self.log(&actor, &action, target.as_deref(), details).await })
    }

    fn dashboard(&self) -> BoxFut<'_, Dashboard> {
        Box::pin(async move {
            let now = self.clock.now();
            let snap = self.ring.current();
            let active_kid = snap.active.as_ref().map(|k| k.kid.clone());
            let keys = self
                .keys
                .list()
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            let active = keys.iter().find(|k| Some(&k.kid) == active_kid.as_ref());
            let (providers, clients, sso_sessions) =
                store::admin::counts(&self.pool, now).await.map_err(db)?;
            Ok(Dashboard {
                database_ok: store::ping(&self.pool).await,
                active_key_source: active.map(|k| k.source.clone()),
                active_key_created_at: active.map(|k| k.created_at),
                active_kid,
                providers,
                clients,
                sso_sessions,
                recent_logins: store::admin::recent_logins(&self.pool).await.map_err(db)?,
                recent_events: store::login::recent_login_events(&self.pool, 20)
                    .await
                    .map_err(db)?,
            })
        })
    }

    fn keys(&self) -> BoxFut<'_, Vec<KeyInfo>> {
        Box::pin(async move {
            Ok(self
                .keys
                .list()
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?
                .into_iter()
                .map(|k| KeyInfo {
                    retire_at: if k.state == "retired" {
                        k.retired_at
                    } else {
                        k.publish_until
                    },
                    kid: k.kid,
                    algorithm: k.alg,
                    source: k.source,
                    state: k.state,
                    created_at: k.created_at,
                })
                .collect())
        })
    }

    fn regenerate_key(&self, actor: &str) -> BoxFut<'_, String> {
        let actor = actor.to_string();
        Box::pin(async move {
            let k = self
                .keys
                .regenerate_audited(Some((&actor, "key.regenerate")))
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            self.key_changed().await;
            Ok(k.kid)
        })
    }

    fn import_keystore(&self, actor: &str, data: Vec<u8>, password: String) -> BoxFut<'_, String> {
        let actor = actor.to_string();
        Box::pin(async move {
            let password = zeroize::Zeroizing::new(password);
            if data.len() > crate::keys::import::MAX_KEYSTORE_BYTES {
                return Err(BackendError::Invalid(
                    "the keystore file is too large".into(),
                ));
            }
            match self
                .keys
                .import_pkcs12_audited(&data, &password, Some((&actor, "key.import")))
                .await
            {
                Ok(k) => {
                    self.key_changed().await;
                    Ok(k.kid)
                }
                Err(
                    e @ (crate::keys::KeyError::Import(_)
                    | crate::keys::KeyError::Material(_)
                    | crate::keys::KeyError::Duplicate { .. }),
                ) => {
                    self.log(
                        &actor,
                        "key.import_refused",
                        None,
                        json!({"reason": e.to_string()}),
                    )
                    .await?;
                    Err(BackendError::Invalid(e.to_string()))
                }
                Err(e) => Err(BackendError::Internal(e.to_string())),
            }
        })
    }

    fn saml_sp(&self) -> BoxFut<'_, Option<SamlSpInfo>> {
        Box::pin(async move {
            let Some((cert_b64, _, _)) =
                store::saml::sp_credentials(&self.pool).await.map_err(db)?
            else {
                return Ok(None);
            };
            let created_at: i64 = sqlx::query_scalar(
                "SELECT created_at FROM saml_sp_credentials WHERE id = 'default'",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
            let der = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                cert_b64.as_bytes(),
            )
            .map_err(|e| BackendError::Internal(e.to_string()))?;
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            use sha2::Digest;
            Ok(Some(SamlSpInfo {
                fingerprint: hex::encode(sha2::Sha256::digest(&der)),
                subject: cert.subject().to_string(),
                not_after: cert.validity().not_after.timestamp(),
                created_at,
            }))
        })
    }

    fn import_saml_sp(&self, actor: &str, data: Vec<u8>, password: String) -> BoxFut<'_, String> {
        let actor = actor.to_string();
        Box::pin(async move {
            let changes = self.provider_changes.lock().await;
            let password = zeroize::Zeroizing::new(password);
            if data.len() > crate::keys::import::MAX_KEYSTORE_BYTES {
                return Err(BackendError::Invalid(
                    "the keystore file is too large".into(),
                ));
            }
            // The new SP key and its audit entry commit together.
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            if let Err(e) = crate::providers::saml::SpCredentials::import_pkcs12(
                &self.keys, &mut *tx, &data, &password,
            )
            .await
            {
                drop(tx);
                self.log(
                    &actor,
                    "saml_sp.import_refused",
                    None,
                    json!({"reason": e.to_string()}),
                )
                .await?;
                return Err(BackendError::Invalid(e.to_string()));
            }
            self.log_in(&mut *tx, &actor, "saml_sp.import", None, json!({}))
                .await?;
            tx.commit().await.map_err(db)?;
            // Use it at once: new SP credentials, SAML providers rebuilt with them.
            self.load_saml_context().await?;
            let mut started = vec![];
            for p in self.providers.all() {
                if p.settings.kind == crate::providers::Kind::Saml {
                    let p = self.providers.upsert((*p.settings).clone());
                    if p.settings.enabled {
                        started.push(p);
                    }
                }
            }
            // Metadata fetches (network) after the lock is released.
            drop(changes);
            for p in started {
                let _ = crate::providers::metadata::start_saml_metadata(&p).await;
            }
            let info = self.saml_sp().await?.ok_or_else(|| {
                BackendError::Internal("SP credentials missing after import".into())
            })?;
            Ok(info.fingerprint)
        })
    }

    fn sso_sessions(&self) -> BoxFut<'_, Vec<SsoSessionInfo>> {
        Box::pin(async move {
            store::admin::sso_sessions(&self.pool, self.clock.now())
                .await
                .map_err(db)
        })
    }

    fn revoke_sso_session(&self, actor: &str, sid: &str) -> BoxFut<'_, ()> {
        let (actor, sid) = (actor.to_string(), sid.to_string());
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            if !store::admin::delete_sso_session(&mut *tx, &sid)
                .await
                .map_err(db)?
            {
                return Err(BackendError::NotFound);
            }
            store::oauth::revoke_session_tokens_in(&mut tx, &sid, self.clock.now())
                .await
                .map_err(db)?;
            self.log_in(&mut *tx, &actor, "session.revoke", Some(&sid), json!({}))
                .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn audit_log(&self, limit: i64, offset: i64) -> BoxFut<'_, (Vec<AuditEntry>, i64)> {
        Box::pin(async move {
            store::admin::audit_log(&self.pool, limit, offset)
                .await
                .map_err(db)
        })
    }

    fn clients(&self) -> BoxFut<'_, Vec<ClientInfo>> {
        Box::pin(async move {
            let rows = store::oauth::load_clients(&self.pool).await.map_err(db)?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let s: ClientSettings = serde_json::from_str(&r.settings).ok()?;
                    Some(self.client_info(&s, r.enabled, r.secret_hash.is_some(), &r.managed_by))
                })
                .collect())
        })
    }

    fn create_client(&self, actor: &str, c: NewClient) -> BoxFut<'_, (ClientInfo, Option<String>)> {
        let actor = actor.to_string();
        Box::pin(async move {
            let settings = self.validate_client(c)?;
            let now = self.clock.now();
            let json = serde_json::to_string(&settings).expect("serialisable");
            // The application, its secret and the audit entry commit together.
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            if !store::admin::insert_client(&mut *tx, &settings.id, &json, now)
                .await
                .map_err(db)?
            {
                return Err(BackendError::Conflict(format!(
                    "an application with the client id {:?} exists already",
                    settings.id
                )));
            }
            let secret = if settings.auth_method.uses_secret() {
                let secret = generate_secret();
                let hash = self.clients.hasher.hash(&secret);
                store::oauth::set_client_secret(
                    &mut *tx,
                    &settings.id,
                    &hash,
                    self.clients.hasher.key_id(),
                    now,
                )
                .await
                .map_err(db)?;
                Some(secret.to_string())
            } else {
                None
            };
            self.log_in(
                &mut *tx,
                &actor,
                "application.create",
                Some(&settings.id),
                serde_json::to_value(&settings).unwrap_or_default(),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            self.reload_clients().await;
            Ok((
                self.client_info(&settings, true, secret.is_some(), "admin"),
                secret,
            ))
        })
    }

    fn update_client(&self, actor: &str, id: &str, c: NewClient) -> BoxFut<'_, ClientInfo> {
        let (actor, id) = (actor.to_string(), id.to_string());
        Box::pin(async move {
            if c.id != id {
                return Err(BackendError::Conflict(format!(
                    "the client id cannot change (this is {id:?})"
                )));
            }
            let rows = store::oauth::load_clients(&self.pool).await.map_err(db)?;
            let row = rows
                .iter()
                .find(|r| r.client_id == id)
                .ok_or(BackendError::NotFound)?;
            if row.managed_by != "admin" {
                return Err(BackendError::Conflict(format!(
                    "{id} is managed by the configuration file"
                )));
            }
            let old: ClientSettings = serde_json::from_str(&row.settings)
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            let mut settings = self.validate_client(c)?;
            if settings.client_type != old.client_type {
                return Err(BackendError::Conflict(
                    "the type cannot change; register a new application".into(),
                ));
            }
            settings.enabled = row.enabled;
            // What the console does not edit is kept (an imported entry may have set it).
            settings.providers = old.providers.clone();
            settings.auth_method = old.auth_method;
            settings.jwks = old.jwks.clone();
            settings.access_token_lifetime = old.access_token_lifetime;
            settings.refresh_token_lifetime = old.refresh_token_lifetime;
            let json = serde_json::to_string(&settings).expect("serialisable");
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            if !store::admin::update_client(&mut *tx, &id, &json, self.clock.now())
                .await
                .map_err(db)?
            {
                return Err(BackendError::NotFound);
            }
            self.log_in(
                &mut *tx,
                &actor,
                "application.update",
                Some(&id),
                serde_json::to_value(&settings).unwrap_or_default(),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            self.reload_clients().await;
            Ok(self.client_info(&settings, row.enabled, row.secret_hash.is_some(), "admin"))
        })
    }

    fn rotate_client_secret(&self, actor: &str, id: &str) -> BoxFut<'_, String> {
        let (actor, id) = (actor.to_string(), id.to_string());
        Box::pin(async move {
            let rows = store::oauth::load_clients(&self.pool).await.map_err(db)?;
            let row = rows
                .iter()
                .find(|r| r.client_id == id)
                .ok_or(BackendError::NotFound)?;
            let s: ClientSettings = serde_json::from_str(&row.settings)
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            if !matches!(
                s.auth_method,
                AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
            ) {
                return Err(BackendError::Conflict(format!(
                    "{id} authenticates with {}: it has no secret",
                    s.auth_method.as_str()
                )));
            }
            let secret = generate_secret();
            let hash = self.clients.hasher.hash(&secret);
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            store::oauth::set_client_secret(
                &mut *tx,
                &id,
                &hash,
                self.clients.hasher.key_id(),
                self.clock.now(),
            )
            .await
            .map_err(db)?;
            self.log_in(
                &mut *tx,
                &actor,
                "application.rotate_secret",
                Some(&id),
                json!({}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            self.reload_clients().await;
            Ok(secret.to_string())
        })
    }

    fn set_client_enabled(&self, actor: &str, id: &str, enabled: bool) -> BoxFut<'_, ()> {
        let (actor, id) = (actor.to_string(), id.to_string());
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            if !store::admin::set_client_enabled(&mut *tx, &id, enabled, self.clock.now())
                .await
                .map_err(db)?
            {
                drop(tx);
                let exists = store::oauth::load_clients(&self.pool)
                    .await
                    .map_err(db)?
                    .iter()
                    .any(|r| r.client_id == id);
                return Err(if exists {
                    BackendError::Conflict(format!("{id} is managed by the configuration file"))
                } else {
                    BackendError::NotFound
                });
            }
            self.log_in(
                &mut *tx,
                &actor,
                if enabled {
                    "application.enable"
                } else {
                    "application.disable"
                },
                Some(&id),
                json!({}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            self.reload_clients().await;
            Ok(())
        })
    }

    fn api_tokens(&self) -> BoxFut<'_, Vec<ApiTokenInfo>> {
        Box::pin(async move { store::admin::api_tokens(&self.pool).await.map_err(db) })
    }

    fn create_api_token(&self, actor: &str, name: &str) -> BoxFut<'_, (String, String)> {
        let (actor, name) = (actor.to_string(), name.to_string());
        Box::pin(async move {
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(BackendError::Invalid(
                    "the name must be 1..=64 characters without control characters".into(),
                ));
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            let token = format!("stsadm_{}", crate::sso::random_token());
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            store::admin::insert_api_token(
                &mut *tx,
                &id,
                &name,
                &admin_ui::auth::hash(&token),
                &actor,
                self.clock.now(),
            )
            .await
            .map_err(db)?;
            self.log_in(
                &mut *tx,
                &actor,
                "api_token.create",
                Some(&name),
                json!({"id": id}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            Ok((id, token))
        })
    }

    fn sso_enabled(&self) -> bool {
        !self.sso_roles.is_empty()
    }

    fn sso_admin(&self, sso_session_cookie: &str) -> BoxFut<'_, SsoAdmin> {
        let h = crate::sso::hash(sso_session_cookie);
        Box::pin(async move {
            if self.sso_roles.is_empty() {
                return Err(BackendError::Invalid(
                    "single sign-on to the console is not enabled (admin.sso_roles)".into(),
                ));
            }
            let now = self.clock.now();
            let Some(s) = store::login::touch_session(&self.pool, &h, now, now + self.session_idle)
                .await
                .map_err(db)?
            else {
                return Err(BackendError::Invalid("no single sign-on session".into()));
            };
            let roles: Vec<String> = serde_json::from_str(&s.roles).unwrap_or_default();
            let sub = crate::tokens::public_subject(&s.provider_id, &s.subject);
            if !roles.iter().any(|r| self.sso_roles.contains(r)) {
                self.log(
                    &format!("sso:{sub}"),
                    "admin.login_refused",
                    None,
                    json!({"reason": "no admin role"}),
                )
                .await?;
                return Err(BackendError::Invalid(format!(
                    "{sub} does not hold an admin role ({})",
                    self.sso_roles.join(", ")
                )));
            }
            let sid = s
                .sid
                .ok_or_else(|| BackendError::Invalid("no single sign-on session".into()))?;
            Ok(SsoAdmin {
                name: format!("sso:{sub}"),
                sid,
                expires_at: s.expires_at,
            })
        })
    }

    fn providers(&self) -> BoxFut<'_, Vec<ProviderInfo>> {
        Box::pin(async move {
            let sources: std::collections::HashMap<String, String> =
                store::admin::admin_providers(&self.pool)
                    .await
                    .map_err(db)?
                    .into_iter()
                    .map(|(id, source, _, _)| (id, source))
                    .collect();
            let mut out = Vec::new();
            for p in self.providers.all() {
                let last = store::admin::last_login(&self.pool, p.id())
                    .await
                    .map_err(db)?
                    .map(|l| (l.1, l.2));
                let source = sources.get(p.id()).cloned();
                let managed =
                    if source.is_some() && !self.config_provider_ids.iter().any(|c| c == p.id()) {
                        "admin"
                    } else {
                        "config"
                    };
                out.push(self.provider_info(
                    &p,
                    managed,
                    if managed == "admin" { source } else { None },
                    last,
                ));
            }
            Ok(out)
        })
    }

    fn provider(&self, id: &str) -> BoxFut<'_, ProviderDetail> {
        let id = id.to_string();
        Box::pin(async move {
            let info = self
                .providers()
                .await?
                .into_iter()
                .find(|p| p.id == id)
                .ok_or(BackendError::NotFound)?;
            let p = self.providers.get(&id).ok_or(BackendError::NotFound)?;
            let last_login = store::admin::last_login(&self.pool, &id)
                .await
                .map_err(db)?
                .map(|(subject, outcome, at, claims, ext, roles)| LastLogin {
                    subject,
                    outcome,
                    at,
                    claims: serde_json::from_str(&claims).unwrap_or_default(),
                    external_values: serde_json::from_str(&ext).unwrap_or_default(),
                    roles: serde_json::from_str(&roles).unwrap_or_default(),
                });
            Ok(ProviderDetail {
                info,
                settings: serde_json::to_value(&*p.settings).unwrap_or_default(),
                last_login,
            })
        })
    }

    fn save_provider(
        &self,
        actor: &str,
        existing: Option<&str>,
        source: String,
        secret: Option<String>,
    ) -> BoxFut<'_, ProviderInfo> {
        let (actor, existing) = (actor.to_string(), existing.map(str::to_string));
        Box::pin(async move {
            // Validation, including the fetch of a SAML IdP's metadata, runs without the provider-changes
            // lock (no lock is held across network I/O); the write re-checks what it read under the lock.
            if let Some(id) = &existing
                && self.config_provider_ids.iter().any(|c| c == id)
            {
                return Err(BackendError::Conflict(format!(
                    "{id} is declared in the configuration file: edit it there"
                )));
            }
            let secret = secret
                .filter(|s| !s.is_empty())
                .map(zeroize::Zeroizing::new);
            // Editing without a new secret keeps the stored one.
            let stored = match &existing {
                Some(id) => Some(
                    store::admin::admin_provider_secret(&self.pool, id)
                        .await
                        .map_err(db)?
                        .ok_or(BackendError::NotFound)?,
                ),
                None => None,
            };
            let stored_before = stored.clone();
            let kept = match (&secret, stored.flatten(), &existing) {
                (None, Some(sealed), Some(id)) => Some(zeroize::Zeroizing::new(
                    String::from_utf8(
                        self.keys
                            .open_sealed(&sealed, &crate::providers::managed::secret_aad(id))
                            .map_err(|e| BackendError::Internal(e.to_string()))?
                            .to_vec(),
                    )
                    .map_err(|e| BackendError::Internal(e.to_string()))?,
                )),
                _ => None,
            };
            let effective = secret.as_ref().or(kept.as_ref()).map(|s| s.as_str());
            // A kept secret must keep going where it went: not to a changed issuer, endpoint or client id.
            if secret.is_none()
                && kept.is_some()
                && let (Some(id), Ok(new)) = (
                    &existing,
                    crate::providers::managed::settings_from_source(&source, effective),
                )
                && let Some(old) = self.providers.get(id)
            {
                let o = &old.settings;
                if o.client_id != new.client_id
                    || o.issuer != new.issuer
                    || o.authorization_endpoint != new.authorization_endpoint
                    || o.token_endpoint != new.token_endpoint
                    || o.userinfo_endpoint != new.userinfo_endpoint
                    || o.client_auth != new.client_auth
                {
                    return Err(BackendError::Invalid(
                        "the client id, issuer or an endpoint changed: give the client secret again".into(),
                    ));
                }
            }
            let mut settings = crate::providers::managed::settings_from_source(&source, effective)
                .map_err(BackendError::Invalid)?;
            if let Some(id) = &existing
                && settings.id != *id
            {
                return Err(BackendError::Invalid(format!(
                    "the id cannot change (this is {id:?})"
                )));
            }
            if self.config_provider_ids.contains(&settings.id) {
                return Err(BackendError::Conflict(format!(
                    "{:?} is declared in the configuration file",
                    settings.id
                )));
            }
            if settings.kind == crate::providers::Kind::Saml {
                self.saml_ready().await?;
            }
            let enabled = match &existing {
                Some(id) => self.providers.get(id).is_some_and(|p| p.settings.enabled),
                None => settings.enabled,
            };
            settings.enabled = enabled;
            // A SAML provider's IdP metadata URL must answer with usable metadata before it is saved.
            let built = self.providers.build(settings.clone());
            if let Some(url) = built
                .settings
                .saml
                .as_ref()
                .and_then(|s| s.idp_metadata_url.clone())
            {
                crate::providers::metadata::fetch_saml_metadata(&built, &url)
                    .await
                    .map_err(BackendError::Invalid)?;
            }
            let changes = self.provider_changes.lock().await;
            // Another change may have landed while this one was validated: enabling, disabling or a new
            // secret. Then this save would undo it: refuse, the admin saves again.
            let enabled_now = match &existing {
                Some(id) => self.providers.get(id).is_some_and(|p| p.settings.enabled),
                None => settings.enabled,
            };
            let stored_now = match &existing {
                Some(id) => store::admin::admin_provider_secret(&self.pool, id)
                    .await
                    .map_err(db)?,
                None => None,
            };
            if enabled_now != enabled || stored_now != stored_before {
                return Err(BackendError::Conflict(
                    "the provider changed while this change was checked; load it again and save"
                        .into(),
                ));
            }
            let sealed = match effective {
                Some(s) => Some(
                    self.keys
                        .seal(
                            s.as_bytes(),
                            &crate::providers::managed::secret_aad(&settings.id),
                        )
                        .map_err(|e| BackendError::Internal(e.to_string()))?,
                ),
                None => None,
            };
            let json = serde_json::to_string(&settings).expect("serialisable");
            // The provider, its sealed secret and the audit entry commit together.
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            let saved = store::admin::save_admin_provider(
                &mut *tx,
                &store::admin::SavedProvider {
                    id: &settings.id,
                    kind: settings.kind.as_str(),
                    display_name: &settings.display_name,
                    enabled,
                    settings: &json,
                    source: &source,
                    secret_sealed: sealed.as_deref(),
                    now: self.clock.now(),
                },
                existing.is_none(),
            )
            .await
            .map_err(db)?;
            if !saved {
                return Err(if existing.is_none() {
                    BackendError::Conflict(format!(
                        "a provider with the id {:?} exists already",
                        settings.id
                    ))
                } else {
                    BackendError::NotFound
                });
            }
            self.log_in(
                &mut *tx,
                &actor,
                if existing.is_none() {
                    "provider.create"
                } else {
                    "provider.update"
                },
                Some(&settings.id),
                json!({"type": settings.kind.as_str(), "secret_changed": secret.is_some()}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            let p = self.providers.put(built);
            drop(changes);
            if p.settings.enabled {
                let _ = crate::providers::metadata::start_saml_metadata(&p).await;
            }
            Ok(self.provider_info(&p, "admin", Some(source), None))
        })
    }

    fn set_provider_enabled(&self, actor: &str, id: &str, enabled: bool) -> BoxFut<'_, ()> {
        let (actor, id) = (actor.to_string(), id.to_string());
        Box::pin(async move {
            let changes = self.provider_changes.lock().await;
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            if !store::admin::set_provider_enabled(&mut *tx, &id, enabled, self.clock.now())
                .await
                .map_err(db)?
            {
                drop(tx);
                return Err(if self.providers.get(&id).is_some() {
                    BackendError::Conflict(format!("{id} is managed by the configuration file"))
                } else {
                    BackendError::NotFound
                });
            }
            let current = self.providers.get(&id).ok_or(BackendError::NotFound)?;
            self.log_in(
                &mut *tx,
                &actor,
                if enabled {
                    "provider.enable"
                } else {
                    "provider.disable"
                },
                Some(&id),
                json!({}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            let mut settings = (*current.settings).clone();
            settings.enabled = enabled;
            let p = self.providers.upsert(settings);
            drop(changes);
            if enabled {
                let _ = crate::providers::metadata::start_saml_metadata(&p).await;
            }
            Ok(())
        })
    }

    fn preview_roles(&self, id: &str, claims: serde_json::Value) -> BoxFut<'_, RolePreview> {
        let id = id.to_string();
        Box::pin(async move {
            let p = self.providers.get(&id).ok_or(BackendError::NotFound)?;
            if !claims.is_object() {
                return Err(BackendError::Invalid(
                    "the sample claims must be a JSON object".into(),
                ));
            }
            let external_values = p.settings.roles.external_values(&claims);
            let roles = p.settings.roles.map(&external_values);
            Ok(RolePreview {
                external_values,
                roles,
            })
        })
    }

    fn export(&self, actor: &str, with_secrets: bool) -> BoxFut<'_, serde_json::Value> {
        let actor = actor.to_string();
        Box::pin(async move {
            let doc = crate::export::export(&self.pool, &self.keys, with_secrets, self.clock.now())
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            self.log(
                &actor,
                "config.export",
                None,
                json!({"with_secrets": with_secrets}),
            )
            .await?;
            Ok(doc)
        })
    }

    fn import(&self, actor: &str, doc: serde_json::Value) -> BoxFut<'_, serde_json::Value> {
        let actor = actor.to_string();
        Box::pin(async move {
            let changes = self.provider_changes.lock().await;
            let (summary, providers) = crate::export::import(
                &self.pool,
                &self.keys,
                &self.config_provider_ids,
                &doc,
                self.token_max_lifetime,
                self.clock.now(),
                &actor,
            )
            .await
            .map_err(|e| match e {
                crate::export::ImportError::Invalid(m) => BackendError::Invalid(m),
                crate::export::ImportError::Db(e) => db(e),
            })?;
            self.reload_clients().await;
            let mut started = vec![];
            for settings in providers {
                if settings.kind == crate::providers::Kind::Saml {
                    self.saml_ready().await?;
                }
                let p = self.providers.upsert(settings);
                if p.settings.enabled {
                    started.push(p);
                }
            }
            // Metadata fetches (network) after the lock is released.
            drop(changes);
            for p in started {
                let _ = crate::providers::metadata::start_saml_metadata(&p).await;
            }
            Ok(serde_json::to_value(&summary).unwrap_or_default())
        })
    }

    fn revoke_api_token(&self, actor: &str, id: &str) -> BoxFut<'_, ()> {
        let (actor, id) = (actor.to_string(), id.to_string());
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            let Some(name) = store::admin::revoke_api_token(&mut *tx, &id, self.clock.now())
                .await
                .map_err(db)?
            else {
                return Err(BackendError::NotFound);
            };
            self.log_in(
                &mut *tx,
                &actor,
                "api_token.revoke",
                Some(&name),
                json!({"id": id}),
            )
            .await?;
            tx.commit().await.map_err(db)
        })
    }
}
