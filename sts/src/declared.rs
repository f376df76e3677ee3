//! The identity providers and applications the configuration declares (`[[providers]]`, `[[clients]]`).
//! `config` keeps them as plain TOML tables, so that it depends on nothing above it; here each table is
//! read and validated by its own module without network (`providers::ProviderConfig`, secrets from
//! `Config::provider_secrets`; `oauth::clients::RawClient::validate`), and what spans entries is checked:
//! duplicate ids, and applications that name a provider the file does not declare. The CLI runs this
//! right after loading the configuration (a refusal exits with 2, like any configuration error) and
//! hands the result to `Application::build_declared`; `Application::build_on` runs it itself.

use std::path::PathBuf;

use crate::config::{Config, ConfigError};
use crate::oauth::clients::{ClientSettings, RawClient};
use crate::providers::{ProviderConfig, ProviderSettings};

#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub providers: Vec<ProviderSettings>,
    pub clients: Vec<ClientSettings>,
}

impl Declared {
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut providers: Vec<ProviderSettings> = Vec::new();
        for (i, table) in config.providers.iter().enumerate() {
            let raw = ProviderConfig::from_table(table.clone())
                .map_err(|e| parse_error(config, "providers", i, e.to_string()))?;
            let settings = raw
                .validate(config.provider_secrets.vars())
                .map_err(|e| ConfigError::Provider(e.to_string()))?;
            if providers.iter().any(|q| q.id == settings.id) {
                return Err(ConfigError::Provider(format!(
                    "provider `{}` is declared twice",
                    settings.id
                )));
            }
            providers.push(settings);
        }
        let mut clients: Vec<ClientSettings> = Vec::new();
        for (i, table) in config.clients.iter().enumerate() {
            let raw: RawClient = read_entry(config, "clients", i, table)?;
            let c = raw
                .validate(config.token_max_lifetime)
                .map_err(|e| ConfigError::Client(e.to_string()))?;
            if clients.iter().any(|q| q.id == c.id) {
                return Err(ConfigError::Client(format!(
                    "client `{}` is declared twice",
                    c.id
                )));
            }
            if let Some(p) = c
                .providers
                .iter()
                .find(|p| !providers.iter().any(|q| &q.id == *p))
            {
                return Err(ConfigError::Client(format!(
                    "client `{}`: provider `{p}` is not declared in [[providers]]",
                    c.id
                )));
            }
            clients.push(c);
        }
        Ok(Self { providers, clients })
    }

    /// The ids of the declared providers.
    pub fn provider_ids(&self) -> Vec<String> {
        self.providers.iter().map(|p| p.id.clone()).collect()
    }
}

/// Entry `i` (from 0) of `[[section]]` as `T`; an unknown or mistyped key names the file, section and entry.
fn read_entry<T: serde::de::DeserializeOwned>(
    config: &Config,
    section: &str,
    i: usize,
    table: &toml::Table,
) -> Result<T, ConfigError> {
    T::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| parse_error(config, section, i, e.to_string()))
}

fn parse_error(config: &Config, section: &str, i: usize, message: String) -> ConfigError {
    ConfigError::Parse {
        path: config
            .source
            .clone()
            .unwrap_or_else(|| PathBuf::from("<environment>")),
        message: format!("[[{section}]] entry {}: {}", i + 1, message.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Declared, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sts.toml");
        std::fs::write(&path, text).unwrap();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::load_from(Some(&path), &env, &[])?;
        Declared::from_config(&config)
    }

    const CORP: &str = "[[providers]]\nid = \"corp\"\ntype = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"sts\"\nclient_secret_env = \"CORP_SECRET\"\n";

    #[test]
    fn providers_and_clients_are_validated_and_cross_checked() {
        let d = load(
            &format!("{CORP}[[clients]]\nid = \"app\"\ntype = \"confidential\"\nredirect_uris = [\"https://app.example.com/cb\"]\nproviders = [\"corp\"]\n"),
            &[("CORP_SECRET", "s3cret")],
        )
        .unwrap();
        assert_eq!(d.provider_ids(), vec!["corp"]);
        assert_eq!(d.clients[0].id, "app");
        let refusals = [
            (format!("{CORP}{CORP}"), "declared twice"),
            (
                format!("{CORP}[[providers]]\nid = \"x\"\ntype = \"oidc\"\nbogus = 1\n"),
                "[[providers]] entry 2: unknown field `bogus`",
            ),
            (
                format!(
                    "{CORP}[[clients]]\nid = \"app\"\ntype = \"public\"\nredirect_uris = [\"http://127.0.0.1/cb\"]\nproviders = [\"nope\"]\n"
                ),
                "provider `nope` is not declared",
            ),
            (
                format!(
                    "{CORP}[[clients]]\nid = \"app\"\ntype = \"public\"\nredirect_uris = [\"http://127.0.0.1/cb\"]\n[[clients]]\nid = \"app\"\ntype = \"public\"\nredirect_uris = [\"http://127.0.0.1/cb\"]\n"
                ),
                "client `app` is declared twice",
            ),
            (
                format!(
                    "{CORP}[[clients]]\nid = \"app\"\ntype = \"public\"\nredirect_uris = [\"http://127.0.0.1/cb\"]\nwhat = 1\n"
                ),
                "[[clients]] entry 1: unknown field `what`",
            ),
        ];
        for (text, said) in refusals {
            let e = load(&text, &[("CORP_SECRET", "s3cret")])
                .unwrap_err()
                .to_string();
            assert!(e.contains(said), "{said}: {e}");
        }
        // The secret variable is required, and its value never printed.
        let e = load(CORP, &[]).unwrap_err().to_string();
        assert!(e.contains("CORP_SECRET"), "{e}");
    }

    #[test]
    fn the_kept_secrets_are_only_the_named_variables_and_do_not_debug_print() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sts.toml");
        std::fs::write(&path, CORP).unwrap();
        let env: BTreeMap<String, String> = [("CORP_SECRET", "s3cret"), ("OTHER", "x")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::load_from(Some(&path), &env, &[]).unwrap();
        assert_eq!(
            config.provider_secrets.vars().keys().collect::<Vec<_>>(),
            vec!["CORP_SECRET"]
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
