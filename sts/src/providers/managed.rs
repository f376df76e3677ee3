//! Identity providers managed in the admin console. Their settings are the same TOML as a `[[providers]]`
//! entry (validated by the same code), kept as entered; the client secret is given separately and stored
//! sealed under the master key (the client secret, or an LDAP service account's password: the kind's
//! `SECRET_ENV_KEY`). Local files and the server's environment are not readable from the console: every
//! `*_file` and `*_env` key is refused there.

use std::collections::BTreeMap;

use super::{ProviderConfig, ProviderSettings};
use crate::providers::settings::Refused;

/// The variable name the secret is handed to validation under (never a real environment variable).
const SECRET_VAR: &str = "STS_CONSOLE_PROVIDER_SECRET";

/// Validate a provider's TOML as entered in the console, with its client secret (when the kind needs one).
pub fn settings_from_source(
    source: &str,
    secret: Option<&str>,
) -> Result<ProviderSettings, Refused> {
    if source.len() > 256 * 1024 {
        return Err("the settings are larger than 256 KiB".into());
    }
    let mut table: toml::Table =
        toml::from_str(source).map_err(|e| format!("not valid TOML: {}", e.message()))?;
    // Nothing from the server's files or environment: every `*_file` and `*_env` key is refused (the
    // secret has its own field; certificates and metadata go inline).
    if let Some(key) = table
        .keys()
        .find(|k| k.ends_with("_file") || k.ends_with("_env"))
    {
        return Err(Refused(format!(
            "`{key}` cannot be used in the console (no access to the server's files or environment): {}",
            match key.as_str() {
                "idp_metadata_file" => "use idp_metadata_url or idp_metadata_xml",
                "ca_file" => "give the certificates inline in ca_pem",
                _ => "give the secret in its own field",
            }
        )));
    }
    let secret_key = table
        .get("type")
        .and_then(|t| t.as_str())
        .and_then(super::kinds::secret_env_key)
        .unwrap_or("client_secret_env");
    let mut env = BTreeMap::new();
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        table.insert(secret_key.into(), toml::Value::String(SECRET_VAR.into()));
        env.insert(SECRET_VAR.to_string(), s.to_string());
    }
    ProviderConfig::from_table(table)?
        .validate(&env)
        .map_err(|e| {
            Refused(
                e.to_string()
                    .replace(SECRET_VAR, "the secret field")
                    .replace(
                        "(`client_secret_env` or `client_secret_file`)",
                        "(the secret field)",
                    )
                    .replace(
                        "(`bind_password_env` or `bind_password_file`)",
                        "(the secret field)",
                    ),
            )
        })
}

/// Why a stored console provider is left out (logged; the server keeps running without it).
#[derive(Debug, thiserror::Error)]
pub enum StoredRefused {
    #[error("its client secret cannot be opened under the master key")]
    Secret,
    #[error("it no longer validates: {0}")]
    Invalid(#[from] Refused),
}

/// A console provider as stored (the settings as entered, the sealed secret, enabled) made into its
/// settings: the secret opened under the master key, the settings validated again. Used at start-up and
/// when another replica's change is picked up.
pub fn stored_settings(
    keys: &crate::keys::KeyService,
    id: &str,
    source: &str,
    sealed: Option<&str>,
    enabled: bool,
) -> Result<ProviderSettings, StoredRefused> {
    let secret = match sealed {
        Some(s) => Some(
            keys.open_sealed(s, &secret_aad(id))
                .ok()
                .and_then(|b| String::from_utf8(b.to_vec()).ok())
                .ok_or(StoredRefused::Secret)?,
        ),
        None => None,
    };
    let mut settings = settings_from_source(source, secret.as_deref())?;
    settings.enabled = enabled;
    Ok(settings)
}

/// The AAD that binds a sealed client secret to its provider.
pub fn secret_aad(id: &str) -> String {
    format!("provider-secret:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OIDC: &str = "id = \"corp\"\ntype = \"oidc\"\nissuer = \"https://login.example.com\"\nclient_id = \"sts\"\n[roles]\nclaim = \"groups\"\n";

    #[test]
    fn console_sources_are_validated_like_the_file() {
        let s = settings_from_source(OIDC, Some("s3cret")).unwrap();
        assert_eq!(s.id, "corp");
        let oidc = s
            .kind
            .as_any()
            .downcast_ref::<crate::providers::oidc::OidcSettings>()
            .unwrap();
        assert_eq!(oidc.client.client_secret.expose(), "s3cret");
        let e = settings_from_source(OIDC, None).unwrap_err().0;
        assert!(e.contains("client secret"), "{e}");
        for (src, why) in [
            (OIDC.replace("[roles]", "client_secret_file = \"/etc/shadow\"\n[roles]"), "cannot be used"),
            ("id = \"x\"\ntype = \"saml\"\nidp_metadata_file = \"/etc/passwd\"\n".to_string(), "cannot be used"),
            ("id = \"x\"\ntype = \"oidc\"\nissuer = \"http://login.example.com\"\nclient_id = \"a\"\n".to_string(), "https"),
            ("not toml".to_string(), "TOML"),
            ("id = \"x\"\ntype = \"ldap\"\nurl = \"ldaps://l\"\nca_file = \"/etc/ssl/x\"\n".to_string(), "ca_pem"),
            ("id = \"x\"\ntype = \"ldap\"\nbind_password_env = \"HOME\"\n".to_string(), "cannot be used"),
            ("id = \"x\"\ntype = \"nope\"\n".to_string(), "type"),
        ] {
            let e = settings_from_source(&src, Some("s")).unwrap_err().0;
            assert!(e.contains(why), "{src}: {e}");
        }
    }
}
