//! Token-signing keys (regenerate, import) and the SAML SP key: each change and its audit entry in the
//! rotation's transaction, then the key ring refreshed.

use super::*;

impl admin_ui::backend::KeysAdmin for Backend {
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

    fn stage_next_key(&self, actor: &str) -> BoxFut<'_, (String, i64)> {
        let actor = actor.to_string();
        Box::pin(async move {
            let k = self
                .keys
                .stage_next(Some((&actor, "key.rotate")))
                .await
                .map_err(|e| match e {
                    crate::keys::KeyError::NextStaged { .. } => {
                        BackendError::Conflict(e.to_string())
                    }
                    other => BackendError::Internal(other.to_string()),
                })?;
            self.key_changed().await;
            Ok((k.kid, k.activate_after.unwrap_or_default()))
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
            self.log_in(&mut tx, &actor, "saml_sp.import", None, json!({}))
                .await?;
            tx.commit().await.map_err(db)?;
            // Use it at once: new SP credentials, SAML providers rebuilt with them.
            self.load_saml_context().await?;
            self.remember_sp_certificate().await;
            let mut started = vec![];
            for p in self.providers.all() {
                if p.settings.kind.needs_sp_credentials() {
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
}
