//! Console changes made on another replica: every replica reads the console providers and the SAML SP
//! credentials from the shared database on the reload interval and rebuilds what changed, so a provider
//! added, edited or disabled through one replica's console logs users in through every replica without a
//! restart, and a replaced SP key is used by all of them. (Applications and signing keys have their own
//! periodic reload.) What this replica built itself (start-up, its own console saves) is recorded as
//! seen, so it is not rebuilt again (a rebuild drops fetched IdP metadata until the next fetch).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::{Backend, db};
use crate::store;
use admin_ui::backend::BackendError;

/// What this replica last built: by provider id, a digest of the stored row (settings as entered, sealed
/// secret, enabled); and a digest of the SP certificate.
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

fn row_digest(source: &str, sealed: Option<&str>, enabled: bool) -> [u8; 32] {
    digest(&[
        source,
        sealed.unwrap_or("-"),
        if enabled { "1" } else { "0" },
    ])
}

impl Backend {
    /// Compare the stored console providers and SP certificate with what this replica built, and
    /// rebuild what changed: a new or changed console provider; every SAML provider (configured ones
    /// too) when the SP key was replaced elsewhere. The first call (at start-up) only records what
    /// start-up built. Returns how many providers were rebuilt. Metadata fetches (network) start after
    /// the provider lock is released.
    pub async fn pick_up_console_changes(&self) -> Result<usize, BackendError> {
        let changes = self.provider_changes.lock().await;
        let mut seen = self.console_seen.lock().await;
        let rows = store::admin::admin_providers(&self.pool)
            .await
            .map_err(db)?;
        let cert = store::saml::sp_credentials(&self.pool)
            .await
            .map_err(db)?
            .map(|(c, _, _)| digest(&[&c]));
        let sp_changed = seen.primed && cert != seen.sp_certificate;
        let mut rebuilt = Vec::new();
        if sp_changed && self.providers.has_saml_context() {
            // The SP key was replaced elsewhere: sign and decrypt with the new one from now on.
            self.load_saml_context().await?;
            for p in self.providers.all() {
                if p.settings.kind.needs_sp_credentials() {
                    rebuilt.push(self.providers.upsert((*p.settings).clone()));
                }
            }
        }
        let mut next = HashMap::new();
        for (id, source, sealed, enabled) in rows {
            if self.config_provider_ids.contains(&id) {
                continue;
            }
            let d = row_digest(&source, sealed.as_deref(), enabled);
            next.insert(id.clone(), d);
            if !seen.primed || seen.providers.get(&id) == Some(&d) {
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
                    rebuilt.retain(|p| p.id() != id);
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
        drop(seen);
        drop(changes);
        for p in &rebuilt {
            if p.settings.enabled {
                let _ = crate::providers::metadata::start_saml_metadata(p).await;
            }
        }
        Ok(rebuilt.len())
    }

    /// After this replica saved or toggled console provider `id` itself (under `provider_changes`):
    /// record its stored row as seen, so the periodic check does not rebuild it a second time.
    pub(super) async fn remember_console_provider(&self, id: &str) {
        match store::admin::admin_providers(&self.pool).await {
            Ok(rows) => {
                let mut seen = self.console_seen.lock().await;
                if let Some((_, source, sealed, enabled)) = rows.iter().find(|r| r.0 == id) {
                    seen.providers.insert(
                        id.to_string(),
                        row_digest(source, sealed.as_deref(), *enabled),
                    );
                }
            }
            // Not fatal: the periodic check then rebuilds it once more.
            Err(e) => tracing::warn!(error = %e, "recording a console change failed"),
        }
    }

    /// After this replica replaced the SP key itself: record the new certificate as seen.
    pub(super) async fn remember_sp_certificate(&self) {
        if let Ok(Some((c, _, _))) = store::saml::sp_credentials(&self.pool).await {
            self.console_seen.lock().await.sp_certificate = Some(digest(&[&c]));
        }
    }

    /// Look for changes every `every` (the first look was made at start-up).
    pub fn spawn_console_sync(
        self: std::sync::Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = self.pick_up_console_changes().await {
                    tracing::warn!(error = %e, "reading console changes failed; will retry");
                }
            }
        })
    }
}
