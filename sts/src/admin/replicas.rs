//! Console changes made on another replica: every replica reads the console providers and the SAML SP
//! credentials from the shared database on the reload interval and rebuilds what changed, so a provider
//! added, edited or disabled through one replica's console logs users in through every replica without a
//! restart. (Applications and signing keys have their own periodic reload.)

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::{Backend, db};
use crate::store;
use admin_ui::backend::BackendError;

/// What this replica last built, by provider id: a digest of the stored row (settings as entered, sealed
/// secret, enabled), and of the SP certificate.
#[derive(Default)]
pub struct Seen {
    providers: HashMap<String, [u8; 32]>,
    sp_certificate: Option<[u8; 32]>,
    primed: bool,
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

impl Backend {
    /// Compare the stored console providers with what `seen` says this replica built, and rebuild those
    /// that changed (or are new). The first call only records what start-up built. Returns how many were
    /// rebuilt. Metadata fetches start after the provider lock is released.
    pub async fn pick_up_console_changes(&self, seen: &mut Seen) -> Result<usize, BackendError> {
        let changes = self.provider_changes.lock().await;
        let rows = store::admin::admin_providers(&self.pool)
            .await
            .map_err(db)?;
        let cert = store::saml::sp_credentials(&self.pool)
            .await
            .map_err(db)?
            .map(|(c, _, _)| digest(&[&c]));
        let sp_changed = seen.primed && cert != seen.sp_certificate;
        if sp_changed && self.providers.has_saml_context() {
            // The SP key was replaced elsewhere: sign and decrypt with the new one from now on.
            self.load_saml_context().await?;
        }
        let mut next = HashMap::new();
        let mut rebuilt = Vec::new();
        for (id, source, sealed, enabled) in rows {
            if self.config_provider_ids.contains(&id) {
                continue;
            }
            let d = digest(&[
                &source,
                sealed.as_deref().unwrap_or("-"),
                if enabled { "1" } else { "0" },
            ]);
            next.insert(id.clone(), d);
            let unchanged = seen.providers.get(&id) == Some(&d);
            let is_saml = |p: &crate::providers::Provider| p.settings.kind.needs_sp_credentials();
            if !seen.primed
                || (unchanged
                    && !(sp_changed && self.providers.get(&id).is_some_and(|p| is_saml(&p))))
            {
                continue;
            }
            match crate::providers::managed::stored_settings(
                &self.keys,
                &id,
                &source,
                sealed.as_deref(),
                enabled,
            ) {
                Ok(settings) => {
                    if settings.kind.needs_sp_credentials() {
                        self.saml_ready().await?;
                    }
                    tracing::info!(provider = %id, enabled, "console provider changed in the database: rebuilt");
                    rebuilt.push(self.providers.upsert(settings));
                }
                Err(e) => {
                    tracing::error!(provider = %id, error = %e, "console provider changed in the database but left as it was")
                }
            }
        }
        seen.providers = next;
        seen.sp_certificate = cert;
        seen.primed = true;
        drop(changes);
        for p in &rebuilt {
            if p.settings.enabled {
                let _ = crate::providers::metadata::start_saml_metadata(p).await;
            }
        }
        Ok(rebuilt.len())
    }

    /// Record what start-up built, then look for changes every `every`.
    pub fn spawn_console_sync(
        self: std::sync::Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.pick_up_console_changes(&mut seen).await {
                    tracing::warn!(error = %e, "reading console changes failed; will retry");
                }
            }
        })
    }
}
