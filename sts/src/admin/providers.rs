//! Console identity providers: list, show, save (validated without the provider-changes lock, re-checked
//! under it), enable or disable, role preview.

use super::*;

impl admin_ui::backend::ProvidersAdmin for Backend {
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
                && old.settings.kind.secret_destination() != new.kind.secret_destination()
            {
                return Err(BackendError::Invalid(
                    "the client id, issuer or an endpoint changed: give the client secret again"
                        .into(),
                ));
            }
            let mut settings = crate::providers::managed::settings_from_source(&source, effective)
                .map_err(|e| BackendError::Invalid(e.to_string()))?;
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
            if settings.kind.needs_sp_credentials() {
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
                .kind
                .remote_metadata()
                .map(|(url, _)| url.to_string())
            {
                crate::providers::metadata::fetch_saml_metadata(&built, &url)
                    .await
                    .map_err(|e| BackendError::Invalid(e.to_string()))?;
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
            let json = serde_json::to_string(&settings)
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            // The provider, its sealed secret and the audit entry commit together.
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            let saved = store::admin::save_admin_provider(
                &mut *tx,
                &store::admin::SavedProvider {
                    id: &settings.id,
                    kind: settings.kind.type_name(),
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
                &mut tx,
                &actor,
                if existing.is_none() {
                    "provider.create"
                } else {
                    "provider.update"
                },
                Some(&settings.id),
                json!({"type": settings.kind.type_name(), "secret_changed": secret.is_some()}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            let p = self.providers.put(built);
            self.remember_console_provider(&settings.id).await;
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
                &mut tx,
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
            self.remember_console_provider(&id).await;
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
}
