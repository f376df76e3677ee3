//! The registry of identity providers, and where each is opened with what the server provides (clock,
//! outbound HTTP with the provider's timeouts, SAML SP credentials). IdP metadata fetched from a URL is
//! refreshed by `super::metadata`, started from here for each provider registered.

use std::sync::Arc;

use super::{Provider, ProviderSettings, SamlContext};
use crate::clock::SharedClock;

/// The identity providers, by id, in order (configuration first, then those added in the admin console).
/// Replaced as a whole entry when an admin edits one; readers get `Arc`s, so a login in progress keeps the
/// provider it started with.
pub struct Registry {
    providers: std::sync::RwLock<Vec<Arc<Provider>>>,
    clock: SharedClock,
    saml: std::sync::RwLock<Option<SamlContext>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new(
        settings: Vec<ProviderSettings>,
        clock: SharedClock,
        saml: Option<&SamlContext>,
    ) -> Self {
        let providers = settings
            .into_iter()
            .map(|s| Arc::new(Provider::new(s, clock.clone(), saml)))
            .collect();
        Self {
            providers: std::sync::RwLock::new(providers),
            clock,
            saml: std::sync::RwLock::new(saml.cloned()),
        }
    }

    /// Every provider (enabled or not), in order.
    pub fn all(&self) -> Vec<Arc<Provider>> {
        self.providers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The first enabled SAML provider (served at `/sso/sso-saml/metadata`).
    pub fn default_saml(&self) -> Option<Arc<Provider>> {
        self.enabled()
            .into_iter()
            .find(|p| p.settings.kind.needs_sp_credentials())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Provider>> {
        self.providers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|p| p.id() == id)
            .cloned()
    }

    pub fn enabled(&self) -> Vec<Arc<Provider>> {
        self.all()
            .into_iter()
            .filter(|p| p.settings.enabled)
            .collect()
    }

    /// Whether SAML providers can be built (the SP credentials are loaded).
    pub fn has_saml_context(&self) -> bool {
        self.saml
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    pub fn set_saml_context(&self, ctx: SamlContext) {
        *self
            .saml
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ctx);
    }

    /// A provider built like the registry's own, not (yet) registered: to check it before saving.
    pub fn build(&self, settings: ProviderSettings) -> Arc<Provider> {
        let saml = self
            .saml
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Arc::new(Provider::new(settings, self.clock.clone(), saml.as_ref()))
    }

    /// Add a provider, or replace the one with the same id. Returns the new entry.
    pub fn upsert(&self, settings: ProviderSettings) -> Arc<Provider> {
        self.put(self.build(settings))
    }

    /// Register a built provider (replacing the one with the same id).
    pub fn put(&self, p: Arc<Provider>) -> Arc<Provider> {
        let mut list = self
            .providers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match list.iter_mut().find(|x| x.id() == p.id()) {
            Some(slot) => *slot = p.clone(),
            None => list.push(p.clone()),
        }
        p
    }
}
