//! Export and import of the whole configuration (`crate::export`).

use super::*;

impl admin_ui::backend::TransferAdmin for Backend {
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
                if settings.kind.needs_sp_credentials() {
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
}
