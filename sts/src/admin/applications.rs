//! Registered applications: create (with a secret for confidential clients), replace, rotate the secret,
//! enable or disable; each with its audit entry in one transaction, then the client registry reloaded.

use super::*;

impl admin_ui::backend::ApplicationsAdmin for Backend {
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
            let json = serde_json::to_string(&settings)
                .map_err(|e| BackendError::Internal(e.to_string()))?;
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
                &mut tx,
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
            let keep = (
                c.providers.is_none(),
                c.access_token_lifetime_seconds.is_none(),
                c.refresh_token_lifetime_seconds.is_none(),
            );
            let mut settings = self.validate_client(c)?;
            if settings.client_type != old.client_type {
                return Err(BackendError::Conflict(
                    "the type cannot change; register a new application".into(),
                ));
            }
            settings.enabled = row.enabled;
            // What the console does not edit is kept (an imported entry may have set it), and so is what
            // the request leaves out.
            settings.auth_method = old.auth_method;
            settings.jwks = old.jwks.clone();
            if keep.0 {
                settings.providers = old.providers.clone();
            }
            if keep.1 {
                settings.access_token_lifetime = old.access_token_lifetime;
            }
            if keep.2 {
                settings.refresh_token_lifetime = old.refresh_token_lifetime;
            }
            let json = serde_json::to_string(&settings)
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            if !store::admin::update_client(&mut *tx, &id, &json, self.clock.now())
                .await
                .map_err(db)?
            {
                return Err(BackendError::NotFound);
            }
            self.log_in(
                &mut tx,
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
                &mut tx,
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
                &mut tx,
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
}
