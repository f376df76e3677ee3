//! IdP metadata fetched from a URL (SAML providers with `idp_metadata_url`): the first fetch when a
//! provider is registered, then a refresher task per provider that ends with the provider. Used by start-up
//! and by the admin backend (enable, save check, import).

use std::sync::Arc;

use super::Provider;
use crate::providers::settings::Refused;

/// Fetch a SAML provider's IdP metadata (timeouts, no redirects, size limit) and install it if usable.
async fn refresh_saml_metadata(p: &Provider, url: &str) -> bool {
    match fetch_saml_metadata(p, url).await {
        Ok(()) => {
            tracing::info!(provider = %p.id(), "IdP metadata loaded");
            true
        }
        Err(e) => {
            tracing::warn!(provider = %p.id(), reason = "idp_metadata_unavailable", detail = %e, "IdP metadata not loaded; keeping the previous one");
            false
        }
    }
}

/// Fetch and install a SAML provider's IdP metadata; the reason when it could not.
pub async fn fetch_saml_metadata(p: &Provider, url: &str) -> Result<(), Refused> {
    let http = super::http::Outbound::new(
        &p.settings.id,
        p.settings.connect_timeout_ms,
        p.settings.timeout_ms,
    );
    let xml = http
        .text("saml_metadata", http.client().get(url))
        .await
        .map_err(|e| {
            format!(
                "the IdP metadata could not be fetched from {url} ({})",
                e.code()
            )
        })?;
    p.saml()
        .and_then(|s| s.set_idp_metadata(&xml))
        .map_err(|e| match e {
            super::ProviderError::Unusable(why) => {
                Refused(format!("the IdP metadata at {url} is not usable: {why}"))
            }
            other => Refused(format!("the IdP metadata at {url} is not usable: {other}")),
        })
}

/// For a SAML provider with `idp_metadata_url`: the first fetch now (a failure leaves the provider unusable
/// until a refresh works), then a refresher task. None for other providers.
pub async fn start_saml_metadata(p: &Arc<Provider>) -> Option<tokio::task::JoinHandle<()>> {
    let url = p.settings.kind.remote_metadata()?.0.to_string();
    let loaded = refresh_saml_metadata(p, &url).await;
    Some(spawn_metadata_refresher(Arc::downgrade(p), url, loaded))
}

/// Refresh the IdP metadata every `metadata_refresh_seconds` (every minute while it keeps failing); stops
/// when the provider is replaced or removed (the registry held the only strong reference).
fn spawn_metadata_refresher(
    p: std::sync::Weak<Provider>,
    url: String,
    loaded: bool,
) -> tokio::task::JoinHandle<()> {
    let every = p
        .upgrade()
        .and_then(|p| p.settings.kind.remote_metadata().map(|(_, every)| every))
        .unwrap_or(3600);
    tokio::spawn(async move {
        let mut ok = loaded;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(if ok { every } else { 60 })).await;
            let Some(p) = p.upgrade() else { return };
            ok = refresh_saml_metadata(&p, &url).await;
        }
    })
}
