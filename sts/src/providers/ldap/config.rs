//! The `[[providers]]` keys of `type = "ldap"` and their validation (no network): the URL and TLS roots,
//! how the user is found ([`UserLookup`]), where groups come from ([`GroupSource`]).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::super::kinds::{KindConfig, KindSettings};
use super::super::settings::{ClaimDefaults, SecretVars};
use crate::config::Secret;
use crate::providers::settings::Refused;

/// Active Directory's LDAP_MATCHING_RULE_IN_CHAIN (nested group membership).
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// `type = "ldap"`: the keys an LDAP provider reads besides the common ones.
#[derive(Debug, Clone, Deserialize)]
pub struct LdapConfig {
    url: Option<String>,
    start_tls: Option<bool>,
    insecure_plaintext: Option<bool>,
    ca_file: Option<PathBuf>,
    ca_pem: Option<String>,
    bind_dn_template: Option<String>,
    bind_dn: Option<String>,
    bind_password_env: Option<String>,
    bind_password_file: Option<PathBuf>,
    user_base_dn: Option<String>,
    user_filter: Option<String>,
    user_attributes: Option<Vec<String>>,
    member_of_attribute: Option<String>,
    group_name: Option<String>,
    group_base_dn: Option<String>,
    group_filter: Option<String>,
    group_name_attribute: Option<String>,
    nested_groups: Option<bool>,
    max_connections: Option<usize>,
}

/// How the user's DN is found.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum UserLookup {
    /// `bind_dn_template` with `{username}` (RFC 4514-escaped).
    DirectBind { bind_dn_template: String },
    /// The service account searches `user_filter` (RFC 4515-escaped) under `user_base_dn`.
    Search {
        bind_dn: String,
        #[serde(skip)]
        bind_password: Secret,
        user_base_dn: String,
        user_filter: String,
    },
}

/// Where groups come from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "groups_from", rename_all = "snake_case")]
pub enum GroupSource {
    /// An attribute of the user's entry holding group DNs (`memberOf`).
    MemberOf { attribute: String, full_dn: bool },
    /// A search under `group_base_dn`.
    Search {
        group_base_dn: String,
        group_filter: String,
        group_name_attribute: String,
    },
}

/// Validated LDAP settings.
#[derive(Clone, Serialize)]
pub struct LdapSettings {
    pub url: String,
    pub start_tls: bool,
    pub insecure_plaintext: bool,
    /// Whether a CA of its own is configured (else the bundled Mozilla roots).
    pub custom_ca: bool,
    #[serde(skip)]
    pub(super) roots: Arc<rustls::RootCertStore>,
    #[serde(flatten)]
    pub lookup: UserLookup,
    pub user_attributes: Vec<String>,
    pub groups: GroupSource,
    pub max_connections: usize,
}

impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("lookup", &self.lookup)
            .finish_non_exhaustive()
    }
}

fn with_placeholder(key: &str, v: &str, placeholder: &str) -> Result<(), Refused> {
    if v.matches(placeholder).count() != 1 || v.len() > 1024 || v.chars().any(char::is_control) {
        return Err(Refused(format!(
            "`{key}` must contain {placeholder} exactly once (at most 1024 characters, no control characters)"
        )));
    }
    Ok(())
}

fn plain_dn(key: &str, v: &str) -> Result<(), Refused> {
    if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) || !v.contains('=') {
        return Err(Refused(format!(
            "`{key}` must be a DN such as ou=people,dc=example,dc=org"
        )));
    }
    Ok(())
}

fn read_roots(
    file: Option<PathBuf>,
    pem: Option<String>,
) -> Result<(bool, rustls::RootCertStore), Refused> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let text = match (file, pem) {
        (Some(_), Some(_)) => return Err("set `ca_file` or `ca_pem`, not both".into()),
        (Some(path), None) => std::fs::read_to_string(&path)
            .map_err(|e| Refused(format!("ca_file {}: {e}", path.display())))?,
        (None, Some(pem)) => pem,
        (None, None) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            return Ok((false, roots));
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let cert =
            cert.map_err(|e| Refused(format!("`ca_file`/`ca_pem`: not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| Refused(format!("`ca_file`/`ca_pem`: unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err("`ca_file`/`ca_pem` holds no certificate".into());
    }
    Ok((true, roots))
}

impl KindConfig for LdapConfig {
    const TYPE: &'static str = "ldap";
    const KEYS: &'static [&'static str] = &[
        "url",
        "start_tls",
        "insecure_plaintext",
        "ca_file",
        "ca_pem",
        "bind_dn_template",
        "bind_dn",
        "bind_password_env",
        "bind_password_file",
        "user_base_dn",
        "user_filter",
        "user_attributes",
        "member_of_attribute",
        "group_name",
        "group_base_dn",
        "group_filter",
        "group_name_attribute",
        "nested_groups",
        "max_connections",
    ];
    const SECRET_ENV_KEY: &'static str = "bind_password_env";
    const CLAIMS: ClaimDefaults = ["uid", "uid", "mail", "cn", "groups"];

    fn validate(self, env: &SecretVars) -> Result<Arc<dyn KindSettings>, Refused> {
        let url = self
            .url
            .ok_or("`url` is required for type ldap (ldaps://host or ldap://host)")?;
        let parsed = url::Url::parse(&url).map_err(|e| Refused(format!("`url` {url}: {e}")))?;
        // ldap:// is not a special scheme for the URL parser: an IP address comes as an opaque host.
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            None => return Err("`url` has no host".into()),
        };
        if !parsed.username().is_empty()
            || parsed.password().is_some()
            || !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(
                "`url` is scheme://host[:port] only (no DN, credentials or options)".into(),
            );
        }
        let start_tls = self.start_tls.unwrap_or(false);
        let insecure_plaintext = self.insecure_plaintext.unwrap_or(false);
        match parsed.scheme() {
            "ldaps" if start_tls => {
                return Err("`start_tls` applies to ldap:// URLs (ldaps:// is TLS already)".into());
            }
            "ldaps" => {}
            "ldap" if start_tls || loopback || insecure_plaintext => {}
            "ldap" => {
                return Err(
                    "plain ldap:// sends passwords in clear: use ldaps://, or start_tls = true \
                     (plain LDAP is allowed only on a loopback host, or with insecure_plaintext = true)"
                        .into(),
                );
            }
            other => {
                return Err(Refused(format!(
                    "`url` scheme {other}: use ldaps:// or ldap://"
                )));
            }
        }
        let (custom_ca, roots) = read_roots(self.ca_file, self.ca_pem)?;

        let lookup = match (self.bind_dn_template, self.user_base_dn) {
            (Some(_), Some(_)) => {
                return Err(
                    "set `bind_dn_template` (direct bind) or `user_base_dn` (search with a service account), not both"
                        .into(),
                );
            }
            (None, None) => {
                return Err(
                    "set `bind_dn_template` (direct bind) or `user_base_dn` with `bind_dn` (search with a service account)"
                        .into(),
                );
            }
            (Some(t), None) => {
                with_placeholder("bind_dn_template", &t, "{username}")?;
                if let Some(k) = [
                    ("bind_dn", self.bind_dn.is_some()),
                    ("bind_password_env", self.bind_password_env.is_some()),
                    ("bind_password_file", self.bind_password_file.is_some()),
                    ("user_filter", self.user_filter.is_some()),
                ]
                .iter()
                .find(|(_, set)| *set)
                {
                    return Err(Refused(format!(
                        "`{}` applies to the search with a service account (`user_base_dn`), not to `bind_dn_template`",
                        k.0
                    )));
                }
                UserLookup::DirectBind {
                    bind_dn_template: t,
                }
            }
            (None, Some(base)) => {
                plain_dn("user_base_dn", &base)?;
                let bind_dn = self
                    .bind_dn
                    .ok_or("`bind_dn` (the service account) is required with `user_base_dn`")?;
                plain_dn("bind_dn", &bind_dn)?;
                let password = match (self.bind_password_env, self.bind_password_file) {
                    (Some(_), Some(_)) => {
                        return Err(
                            "set `bind_password_env` or `bind_password_file`, not both".into()
                        );
                    }
                    (Some(var), None) => env.get(&var).cloned().ok_or_else(|| {
                        Refused(format!(
                            "environment variable {var} (bind_password_env) is not set"
                        ))
                    })?,
                    (None, Some(path)) => {
                        let text = std::fs::read_to_string(&path).map_err(|e| {
                            Refused(format!("bind_password_file {}: {e}", path.display()))
                        })?;
                        text.strip_suffix('\n').unwrap_or(&text).to_string()
                    }
                    (None, None) => String::new(),
                };
                if password.is_empty() {
                    return Err(
                        "a non-empty service account password is required (`bind_password_env` or `bind_password_file`)"
                            .into(),
                    );
                }
                let filter = self
                    .user_filter
                    .unwrap_or_else(|| "(uid={username})".into());
                with_placeholder("user_filter", &filter, "{username}")?;
                if !filter.starts_with('(') || !filter.ends_with(')') {
                    return Err("`user_filter` must be a parenthesised LDAP filter such as (uid={username})".into());
                }
                UserLookup::Search {
                    bind_dn,
                    bind_password: Secret::new(password),
                    user_base_dn: base,
                    user_filter: filter,
                }
            }
        };

        let attr_ok = |a: &String| {
            !a.is_empty()
                && a.len() <= 128
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';' || b == b'.')
        };
        let user_attributes = self.user_attributes.unwrap_or_else(|| {
            [
                "uid",
                "cn",
                "displayName",
                "mail",
                "sAMAccountName",
                "userPrincipalName",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        });
        if user_attributes.len() > 64 || !user_attributes.iter().all(attr_ok) {
            return Err(
                "`user_attributes`: at most 64 attribute names (letters, digits, -)".into(),
            );
        }
        let nested = self.nested_groups.unwrap_or(false);
        let groups = match self.group_base_dn {
            Some(base) => {
                plain_dn("group_base_dn", &base)?;
                if self.member_of_attribute.is_some() || self.group_name.is_some() {
                    return Err(
                        "`member_of_attribute` and `group_name` apply to groups read from the user's entry, not to `group_base_dn`"
                            .into(),
                    );
                }
                let filter = match (self.group_filter, nested) {
                    (Some(f), _) => f,
                    (None, false) => "(member={dn})".into(),
                    (None, true) => format!("(member:{IN_CHAIN}:={{dn}})"),
                };
                if !(filter.contains("{dn}") || filter.contains("{username}"))
                    || !filter.starts_with('(')
                    || filter.len() > 1024
                {
                    return Err(
                        "`group_filter` must be a parenthesised filter naming {dn} or {username}"
                            .into(),
                    );
                }
                let name_attr = self.group_name_attribute.unwrap_or_else(|| "cn".into());
                if !attr_ok(&name_attr) {
                    return Err("`group_name_attribute` must be an attribute name".into());
                }
                GroupSource::Search {
                    group_base_dn: base,
                    group_filter: filter,
                    group_name_attribute: name_attr,
                }
            }
            None => {
                if self.group_filter.is_some() || self.group_name_attribute.is_some() || nested {
                    return Err(
                        "`group_filter`, `group_name_attribute` and `nested_groups` need `group_base_dn`".into(),
                    );
                }
                let attribute = self
                    .member_of_attribute
                    .unwrap_or_else(|| "memberOf".into());
                if !attr_ok(&attribute) {
                    return Err("`member_of_attribute` must be an attribute name".into());
                }
                let full_dn = match self.group_name.as_deref().unwrap_or("rdn") {
                    "rdn" => false,
                    "dn" => true,
                    other => {
                        return Err(Refused(format!("`group_name` {other:?}: allowed rdn, dn")));
                    }
                };
                GroupSource::MemberOf { attribute, full_dn }
            }
        };
        let max_connections = self.max_connections.unwrap_or(8);
        if !(1..=64).contains(&max_connections) {
            return Err("`max_connections` must be 1..=64".into());
        }
        Ok(Arc::new(LdapSettings {
            url: parsed.to_string().trim_end_matches('/').to_string(),
            start_tls,
            insecure_plaintext,
            custom_ca,
            roots: Arc::new(roots),
            lookup,
            user_attributes,
            groups,
            max_connections,
        }))
    }
}
