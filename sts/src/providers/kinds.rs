//! The provider kinds, listed once. A `[[providers]]` entry is a [`ProviderConfig`]: a
//! `#[serde(tag = "type")]` enum with one config struct per kind, each next to the common keys
//! ([`CommonRaw`]). Validation ([`ProviderConfig::validate`]) needs no network; a validated kind is a
//! [`KindSettings`], whose `open` builds the login capability ([`Login`]) the web layer drives.
//!
//! Adding a kind: one file with its config struct (implementing [`KindConfig`]), its validated settings
//! (implementing [`KindSettings`]) and its capability (a trait of [`super::login`]), and one line in the
//! `kinds!` list below. See docs/architecture.md, "Adding a provider kind".

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::login::Login;
use super::settings::{COMMON_KEYS, ClaimDefaults, CommonRaw, ProviderSettings, SecretVars};
use super::{SamlContext, SettingsError};
use crate::clock::SharedClock;
use crate::providers::settings::Refused;

/// A kind's raw settings, as deserialised from its `[[providers]]` entry beside the common keys.
pub trait KindConfig: DeserializeOwned + fmt::Debug + Clone {
    /// The `type` value.
    const TYPE: &'static str;
    /// Every key this kind reads besides [`COMMON_KEYS`] and [`Self::SHARED_KEYS`] (a key of another
    /// kind is refused by name).
    const KEYS: &'static [&'static str];
    /// Keys of a part this kind shares with others (the OAuth client part: `client::CLIENT_KEYS`).
    const SHARED_KEYS: &'static [&'static str] = &[];
    /// The key naming the environment variable of the kind's secret: where the admin console puts the
    /// secret given in its own field.
    const SECRET_ENV_KEY: &'static str = "client_secret_env";
    /// Default claim paths (subject, username, email, name, groups).
    const CLAIMS: ClaimDefaults;
    /// Check the kind's keys without network; `env` resolves `*_env` keys.
    fn validate(self, env: &SecretVars) -> Result<Arc<dyn KindSettings>, Refused>;
}

/// What `open` needs from the server.
pub struct OpenContext<'a> {
    pub id: &'a str,
    /// The provider's timeouts (the outbound HTTP client has them too).
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub clock: SharedClock,
    pub http: super::http::Outbound,
    /// SP credentials and URLs; None when no SAML provider was configured at start.
    pub saml: Option<&'a SamlContext>,
}

/// A kind's validated settings.
pub trait KindSettings: Send + Sync + fmt::Debug {
    fn type_name(&self) -> &'static str;
    /// The validated settings without secrets, for the admin console and the database record.
    fn view(&self) -> Value;
    /// Build the login capability (no network: documents are fetched on first use or by the registry).
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Login, Refused>;
    /// Where the browser comes back (`base` is the public URL), and the SP metadata URL when the kind
    /// publishes one: shown to admins, who register them at the IdP.
    fn endpoints(&self, base: &str, id: &str) -> (String, Option<String>);
    /// A document fetched from the network and refreshed (the SAML IdP metadata URL), with its period.
    fn remote_metadata(&self) -> Option<(&str, u64)> {
        None
    }
    /// Where a client secret of this provider goes (client id, issuer, endpoints, client authentication):
    /// a console provider saved without its secret keeps the stored one only when this is unchanged.
    fn secret_destination(&self) -> Option<Value> {
        None
    }
    /// Whether `open` needs the SAML SP credentials (rebuilt when they change).
    fn needs_sp_credentials(&self) -> bool {
        false
    }
    /// Whether an e-mail address from this kind counts as verified without an `email_verified` claim
    /// (a SAML IdP asserts `mail` in a signed assertion).
    fn asserts_verified_email(&self) -> bool {
        false
    }
    fn as_any(&self) -> &dyn std::any::Any;
}

/// One `[[providers]]` entry: the common keys and the kind's keys. (Keys of neither are refused by
/// [`ProviderConfig::from_table`] before: serde's `deny_unknown_fields` does not work with `flatten`.)
#[derive(Debug, Clone, Deserialize)]
#[serde(bound(deserialize = "K: KindConfig"))]
pub struct Entry<K> {
    #[serde(flatten)]
    pub common: CommonRaw,
    #[serde(flatten)]
    pub kind: K,
}

impl<K: KindConfig> Entry<K> {
    fn validate(self, env: &SecretVars) -> Result<ProviderSettings, SettingsError> {
        let id = self.common.id.clone();
        let err = |e: Refused| SettingsError {
            id: id.clone(),
            message: e.0,
        };
        super::settings::check_id(&id).map_err(err)?;
        let kind = self.kind.validate(env).map_err(err)?;
        self.common.validate(K::CLAIMS, kind).map_err(err)
    }
}

macro_rules! kinds {
    ($($variant:ident = $name:literal => $config:ty),* $(,)?) => {
        /// A `[[providers]]` entry, by `type`.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type")]
        pub enum ProviderConfig {
            $(#[serde(rename = $name)] $variant(Entry<$config>),)*
        }

        /// The `type` values, in order.
        pub const TYPES: &[&str] = &[$($name),*];

        /// The keys a kind reads besides the common ones: its own, and those of a part it shares.
        fn keys_of(kind: &str) -> [&'static [&'static str]; 2] {
            match kind {
                $($name => [<$config as KindConfig>::KEYS, <$config as KindConfig>::SHARED_KEYS],)*
                _ => [&[], &[]],
            }
        }

        /// The key the console's secret field goes into, for a kind.
        pub fn secret_env_key(kind: &str) -> Option<&'static str> {
            match kind {
                $($name => Some(<$config as KindConfig>::SECRET_ENV_KEY),)*
                _ => None,
            }
        }

        fn is_known_key(key: &str) -> bool {
            COMMON_KEYS.contains(&key)
                $(|| <$config as KindConfig>::KEYS.contains(&key)
                    || <$config as KindConfig>::SHARED_KEYS.contains(&key))*
        }

        impl ProviderConfig {
            /// Validate without network; `env` resolves `*_env` keys.
            pub fn validate(self, env: &SecretVars) -> Result<ProviderSettings, SettingsError> {
                match self {
                    $(Self::$variant(e) => e.validate(env),)*
                }
            }


        }
    };
}

kinds! {
    Oidc = "oidc" => crate::providers::oidc::OidcConfig,
    Oauth2 = "oauth2" => crate::providers::oauth::OAuth2Config,
    Saml = "saml" => crate::providers::saml::SamlConfig,
    Ldap = "ldap" => crate::providers::ldap::LdapConfig,
    Proxy = "proxy" => crate::providers::proxy::ProxyConfig,
    Header = "header" => crate::providers::header::HeaderConfig,
}

impl ProviderConfig {
    /// Read one entry. The `type` is checked first, so that an unknown or missing one is named as such;
    /// a key no kind reads is an unknown field; a mistyped value comes as serde's message. A key of
    /// another kind is refused by `validate`, by name.
    pub fn from_table(table: toml::Table) -> Result<Self, Refused> {
        match table.get("type") {
            None => Err(Refused(format!(
                "`type` is required (one of {})",
                TYPES.join(", ")
            ))),
            Some(toml::Value::String(t)) if TYPES.contains(&t.as_str()) => {
                let [own, shared] = keys_of(t);
                let id = table.get("id").and_then(|v| v.as_str()).unwrap_or("?");
                if let Some(k) = table.keys().find(|k| {
                    ![COMMON_KEYS, own, shared]
                        .iter()
                        .any(|l| l.contains(&k.as_str()))
                }) {
                    return Err(if is_known_key(k) {
                        Refused(format!(
                            "provider `{id}`: key `{k}` does not apply to type {t}"
                        ))
                    } else {
                        Refused(format!("unknown field `{k}`"))
                    });
                }
                toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| Refused(e.message().trim().to_string()))
            }
            Some(other) => Err(Refused(format!(
                "unknown `type` {other} (allowed: {})",
                TYPES.join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key a kind lists is read by it (a value of the wrong type is refused by serde), and every
    /// key of another kind is refused by name.
    #[test]
    fn each_kind_reads_exactly_its_keys() {
        let lists: Vec<(&str, Vec<&str>)> =
            TYPES.iter().map(|t| (*t, keys_of(t).concat())).collect();
        for (kind, keys) in &lists {
            for (_, other) in &lists {
                for key in other.iter().chain(COMMON_KEYS) {
                    if *key == "type" || *key == "id" {
                        continue;
                    }
                    let text = format!("id = \"x\"\ntype = \"{kind}\"\n{key} = [[1]]\n");
                    let table: toml::Table = toml::from_str(&text).unwrap();
                    let msg = match ProviderConfig::from_table(table) {
                        Err(e) => e.0,
                        Ok(c) => c.validate(&SecretVars::new()).unwrap_err().to_string(),
                    };
                    assert!(!msg.contains("unknown field"), "{kind}.{key}: {msg}");
                    if !keys.contains(key) && !COMMON_KEYS.contains(key) {
                        assert!(msg.contains("does not apply"), "{kind}.{key}: {msg}");
                    } else {
                        assert!(msg.contains("invalid type"), "{kind}.{key}: {msg}");
                    }
                }
            }
        }
    }
}
