//! LDAP / Active Directory (`type = "ldap"`): a username and password typed into our own form
//! ([`CredentialsForm`]), checked by binding to the directory as the user; the password is never stored
//! or logged. Two ways to find the user's entry: a DN template (`bind_dn_template`, direct bind) or a
//! search with a service account (`user_base_dn` + `user_filter`, search-then-bind).
//!
//! Checks, in order (the login flow, the form's `state` and the rate limits come first, in
//! `sso::login`):
//! 1. The username is 1..=256 characters without control characters (NUL included) and the password
//!    1..=1024 bytes: anything else is `invalid_credentials` without contacting the directory. An empty
//!    password is never sent: a simple bind with a DN and no password is an unauthenticated bind, which
//!    many directories answer with success, so it must never count as a login.
//! 2. The directory is reached over LDAPS or StartTLS with certificate verification (the roots of
//!    `ca_file`/`ca_pem`, else the Mozilla roots bundled in the binary); plain LDAP only on a loopback
//!    host or with `insecure_plaintext = true`. Connect within `connect_timeout_ms`; the whole check,
//!    including the wait for one of the provider's `max_connections`, within `timeout_ms`.
//! 3. The user's DN: direct bind puts the username into `bind_dn_template` escaped per RFC 4514
//!    (`,` `+` `"` `\` `<` `>` `;` `=` NUL, a leading `#` or space, a trailing space); search-then-bind
//!    binds the service account and searches `user_filter` with the username escaped per RFC 4515
//!    (`*` `(` `)` `\` NUL), subtree, aliases never dereferenced, at most two entries: none is an unknown
//!    user, two are refused as ambiguous (`ldap_ambiguous`). For an unknown user the password is still
//!    sent once, in a bind to a DN that does not exist, so that an unknown user and a wrong password take
//!    the same path and get the same answer (`invalid_credentials`).
//! 4. A simple bind as that DN with the password, on a connection of its own: result 49
//!    (invalidCredentials) is `invalid_credentials`; any other failure is `ldap_error`.
//! 5. The entry's attributes (`user_attributes`) and groups: from `memberOf` (each DN's first RDN value,
//!    or the whole DN with `group_name = "dn"`) or, with `group_base_dn`, a search for
//!    `group_filter` (`{dn}` and `{username}` escaped per RFC 4515; Active Directory's
//!    `LDAP_MATCHING_RULE_IN_CHAIN` with `nested_groups = true`), at most 1,000 groups.
//! 6. The claims: `dn`, each attribute (one value as a string, several as an array) and `groups`; the
//!    common claim paths, roles and constraints are applied to them like to any other kind's.
//!
//! The directory's answers are parsed on a task of their own, so a malformed answer that makes the LDAP
//! library panic fails that login (`ldap_error`), not the worker.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use ldap3::{
    DerefAliases, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ProviderError;
use super::kinds::{KindConfig, KindSettings, OpenContext};
use super::login::{CredentialsForm, Login};
use super::settings::{ClaimDefaults, SecretVars};
use crate::config::Secret;
use crate::providers::settings::Refused;

/// Longest username and password accepted (anything longer is `invalid_credentials` at once).
pub const MAX_USERNAME_CHARS: usize = 256;
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// At most this many groups are read for one user.
const MAX_GROUPS: i32 = 1000;
/// Idle service-account connections are reused for at most this long.
const IDLE_REUSE: Duration = Duration::from_secs(60);
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
    roots: Arc<rustls::RootCertStore>,
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

impl KindSettings for LdapSettings {
    fn type_name(&self) -> &'static str {
        LdapConfig::TYPE
    }
    fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Login, Refused> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Refused(format!("TLS: {e}")))?
        .with_root_certificates(self.roots.clone())
        .with_no_client_auth();
        Ok(Login::Credentials(Arc::new(LdapProvider {
            s: Arc::new(self.clone()),
            tls: Arc::new(tls),
            connect_timeout: Duration::from_millis(ctx.connect_timeout_ms),
            timeout: Duration::from_millis(ctx.timeout_ms),
            permits: Arc::new(tokio::sync::Semaphore::new(self.max_connections)),
            idle: Arc::new(Mutex::new(Vec::new())),
        })))
    }
    fn endpoints(&self, base: &str, id: &str) -> (String, Option<String>) {
        (format!("{base}/sso/login?provider={id}"), None)
    }
    /// The directory is the authority on its users' `mail` (as a SAML IdP's signed assertion is).
    fn asserts_verified_email(&self) -> bool {
        true
    }
    fn secret_destination(&self) -> Option<Value> {
        match &self.lookup {
            UserLookup::Search { bind_dn, .. } => Some(
                serde_json::json!({ "type": LdapConfig::TYPE, "url": self.url, "bind_dn": bind_dn }),
            ),
            UserLookup::DirectBind { .. } => None,
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[derive(Clone)]
pub struct LdapProvider {
    s: Arc<LdapSettings>,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    timeout: Duration,
    /// At most `max_connections` logins talk to the directory at once.
    permits: Arc<tokio::sync::Semaphore>,
    /// Bound service-account connections, reused (never held across I/O: popped, used, pushed back).
    idle: Arc<Mutex<Vec<(Ldap, Instant)>>>,
}

/// Why a directory operation failed.
fn directory_error(what: &str, e: ldap3::LdapError) -> ProviderError {
    match e {
        ldap3::LdapError::Timeout { .. } => ProviderError::Directory(
            "ldap_timeout",
            format!("{what}: the directory did not answer in time"),
        ),
        ldap3::LdapError::Io { source } => {
            ProviderError::Directory("ldap_unavailable", format!("{what}: {source}"))
        }
        ldap3::LdapError::Rustls { source } => {
            ProviderError::Directory("ldap_unavailable", format!("{what}: TLS: {source}"))
        }
        ldap3::LdapError::LdapResult { result } => ProviderError::Directory(
            "ldap_error",
            format!(
                "{what}: result {} {}",
                result.rc,
                result.text.chars().take(200).collect::<String>()
            ),
        ),
        other => ProviderError::Directory("ldap_error", format!("{what}: {other}")),
    }
}

fn is_invalid_credentials(e: &ldap3::LdapError) -> bool {
    matches!(e, ldap3::LdapError::LdapResult { result } if result.rc == 49)
}

impl LdapProvider {
    async fn connect(&self) -> Result<Ldap, ProviderError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_starttls(self.s.start_tls)
            .set_config(self.tls.clone());
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.s.url)
            .await
            .map_err(|e| directory_error("connect", e))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// A simple bind; `Ok(false)` for invalidCredentials. Never called with an empty password.
    async fn bind(&self, ldap: &mut Ldap, dn: &str, password: &str) -> Result<bool, ProviderError> {
        debug_assert!(!password.is_empty());
        if password.is_empty() {
            return Ok(false);
        }
        match ldap
            .simple_bind(dn, password)
            .await
            .and_then(|r| r.success())
        {
            Ok(_) => Ok(true),
            Err(e) if is_invalid_credentials(&e) => Ok(false),
            Err(e) => Err(directory_error("bind", e)),
        }
    }

    /// A bound service-account connection: an idle one, or a new one.
    async fn service(&self) -> Result<(Ldap, bool), ProviderError> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|(_, at)| at.elapsed() < IDLE_REUSE);
            idle.pop().map(|(l, _)| l)
        };
        if let Some(l) = reused {
            return Ok((l, true));
        }
        let UserLookup::Search {
            bind_dn,
            bind_password,
            ..
        } = &self.s.lookup
        else {
            return Err(ProviderError::Internal("no service account".into()));
        };
        let mut ldap = self.connect().await?;
        if !self
            .bind(&mut ldap, bind_dn, bind_password.expose())
            .await?
        {
            return Err(ProviderError::Directory(
                "ldap_service_bind",
                "the service account's bind was refused (bind_dn / password)".into(),
            ));
        }
        Ok((ldap, false))
    }

    fn give_back(&self, ldap: Ldap) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.s.max_connections {
            idle.push((ldap, Instant::now()));
        }
    }

    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
        limit: i32,
    ) -> Result<Vec<SearchEntry>, ldap3::LdapError> {
        let secs = self.timeout.as_secs().max(1) as i32;
        let res = ldap
            .with_search_options(
                SearchOptions::new()
                    .deref(DerefAliases::Never)
                    .sizelimit(limit)
                    .timelimit(secs),
            )
            .with_timeout(self.timeout)
            .search(base, scope, filter, attrs)
            .await?;
        let (entries, _) = res.success()?;
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_ref())
            .map(SearchEntry::construct)
            .collect())
    }

    /// Search-then-bind's lookup: the user's entry, None for an unknown user.
    async fn find_user(&self, username: &str) -> Result<Option<SearchEntry>, ProviderError> {
        let UserLookup::Search {
            user_base_dn,
            user_filter,
            ..
        } = &self.s.lookup
        else {
            return Err(ProviderError::Internal("no user search".into()));
        };
        let filter = user_filter.replace("{username}", &ldap3::ldap_escape(username));
        let mut attrs = self.s.user_attributes.clone();
        if let GroupSource::MemberOf { attribute, .. } = &self.s.groups {
            attrs.push(attribute.clone());
        }
        // A pooled connection may have gone stale: one retry on a fresh one.
        for attempt in 0..2 {
            let (mut ldap, reused) = self.service().await?;
            match self
                .search(&mut ldap, user_base_dn, Scope::Subtree, &filter, &attrs, 2)
                .await
            {
                Ok(mut entries) => {
                    self.give_back(ldap);
                    return match entries.len() {
                        0 => Ok(None),
                        1 => Ok(entries.pop()),
                        _ => Err(ProviderError::Directory(
                            "ldap_ambiguous",
                            "the user filter matches more than one entry".into(),
                        )),
                    };
                }
                // sizeLimitExceeded: more than one entry.
                Err(ldap3::LdapError::LdapResult { result }) if result.rc == 4 => {
                    self.give_back(ldap);
                    return Err(ProviderError::Directory(
                        "ldap_ambiguous",
                        "the user filter matches more than one entry".into(),
                    ));
                }
                Err(e) if reused && attempt == 0 => {
                    tracing::debug!(error = %e, "a pooled LDAP connection failed; retrying on a new one");
                }
                Err(e) => return Err(directory_error("user search", e)),
            }
        }
        Err(ProviderError::Internal(
            "user search: no attempt left".into(),
        ))
    }

    async fn groups_of(
        &self,
        ldap: &mut Ldap,
        entry: &SearchEntry,
        username: &str,
    ) -> Result<Vec<String>, ProviderError> {
        match &self.s.groups {
            GroupSource::MemberOf { .. } => Ok(self.groups_of_entry_only(entry)),
            GroupSource::Search {
                group_base_dn,
                group_filter,
                group_name_attribute,
            } => {
                let filter = group_filter
                    .replace("{dn}", &ldap3::ldap_escape(entry.dn.as_str()))
                    .replace("{username}", &ldap3::ldap_escape(username));
                let entries = self
                    .search(
                        ldap,
                        group_base_dn,
                        Scope::Subtree,
                        &filter,
                        std::slice::from_ref(group_name_attribute),
                        MAX_GROUPS,
                    )
                    .await
                    .map_err(|e| directory_error("group search", e))?;
                Ok(entries
                    .into_iter()
                    .filter_map(|g| {
                        g.attrs
                            .into_iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(group_name_attribute))
                            .and_then(|(_, mut v)| (!v.is_empty()).then(|| v.swap_remove(0)))
                    })
                    .collect())
            }
        }
    }

    async fn check(&self, username: String, password: Secret) -> Result<Value, ProviderError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ProviderError::Internal("closed".into()))?;
        let password = password.expose();
        match &self.s.lookup {
            UserLookup::DirectBind { bind_dn_template } => {
                let dn =
                    bind_dn_template.replace("{username}", &ldap3::dn_escape(username.as_str()));
                let mut ldap = self.connect().await?;
                if !self.bind(&mut ldap, &dn, password).await? {
                    let _ = ldap.unbind().await;
                    return Err(ProviderError::InvalidCredentials);
                }
                // The user reads their own entry (and groups, when searched) as themselves.
                let mut attrs = self.s.user_attributes.clone();
                if let GroupSource::MemberOf { attribute, .. } = &self.s.groups {
                    attrs.push(attribute.clone());
                }
                let entry = self
                    .search(&mut ldap, &dn, Scope::Base, "(objectClass=*)", &attrs, 1)
                    .await
                    .map_err(|e| directory_error("reading the user's entry", e))?
                    .pop()
                    .ok_or_else(|| {
                        ProviderError::Directory(
                            "ldap_error",
                            "the user's entry cannot be read".into(),
                        )
                    })?;
                let groups = self.groups_of(&mut ldap, &entry, &username).await;
                let _ = ldap.unbind().await;
                Ok(claims(entry, groups?))
            }
            UserLookup::Search { user_base_dn, .. } => {
                let found = self.find_user(&username).await?;
                let mut ldap = self.connect().await?;
                let Some(entry) = found else {
                    // The same path for an unknown user: one bind with the password, to a DN that
                    // does not exist (the directory answers invalidCredentials).
                    let _ = self
                        .bind(
                            &mut ldap,
                            &format!("cn=sts-no-such-user,{user_base_dn}"),
                            password,
                        )
                        .await;
                    let _ = ldap.unbind().await;
                    return Err(ProviderError::InvalidCredentials);
                };
                let ok = self.bind(&mut ldap, &entry.dn, password).await;
                let _ = ldap.unbind().await;
                if !ok? {
                    return Err(ProviderError::InvalidCredentials);
                }
                let groups = match &self.s.groups {
                    GroupSource::MemberOf { .. } => self.groups_of_entry_only(&entry),
                    GroupSource::Search { .. } => {
                        let (mut service, _) = self.service().await?;
                        let g = self.groups_of(&mut service, &entry, &username).await;
                        if g.is_ok() {
                            self.give_back(service);
                        }
                        g?
                    }
                };
                Ok(claims(entry, groups))
            }
        }
    }

    fn groups_of_entry_only(&self, entry: &SearchEntry) -> Vec<String> {
        let GroupSource::MemberOf { attribute, full_dn } = &self.s.groups else {
            return Vec::new();
        };
        entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
            .iter()
            .take(MAX_GROUPS as usize)
            .filter_map(|dn| {
                if *full_dn {
                    Some(dn.clone())
                } else {
                    first_rdn_value(dn)
                }
            })
            .collect()
    }
}

/// The claims of an entry: `dn`, each attribute (one value as a string, several as an array), `groups`.
fn claims(entry: SearchEntry, groups: Vec<String>) -> Value {
    let mut out = Map::new();
    for (k, mut v) in entry.attrs {
        let value = if v.len() == 1 {
            Value::String(v.swap_remove(0))
        } else {
            Value::Array(v.into_iter().map(Value::String).collect())
        };
        out.insert(k, value);
    }
    out.insert("dn".into(), Value::String(entry.dn));
    out.insert(
        "groups".into(),
        Value::Array(groups.into_iter().map(Value::String).collect()),
    );
    Value::Object(out)
}

/// The value of a DN's first RDN (`cn=admins,ou=groups,dc=example,dc=org` → `admins`), RFC 4514 escapes
/// undone; None when it is not of that form.
pub fn first_rdn_value(dn: &str) -> Option<String> {
    let (_, rest) = dn.split_once('=')?;
    let mut out = Vec::new();
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b',' | b'+' => break,
            b'\\' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(*bytes.get(i + 1)?);
                        i += 2;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl CredentialsForm for LdapProvider {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async move {
            if username.is_empty()
                || username.chars().count() > MAX_USERNAME_CHARS
                || username.chars().any(char::is_control)
                || password.expose().is_empty()
                || password.expose().len() > MAX_PASSWORD_BYTES
            {
                return Err(ProviderError::InvalidCredentials);
            }
            let me = self.clone();
            let (user, pw) = (
                username.to_string(),
                Secret::new(password.expose().to_string()),
            );
            let timeout = self.timeout;
            // Its own task: a panic in the LDAP library on a malformed answer fails this login only.
            let task =
                tokio::spawn(
                    async move { tokio::time::timeout(timeout, me.check(user, pw)).await },
                );
            match task.await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(ProviderError::Directory(
                    "ldap_timeout",
                    format!(
                        "the directory did not answer within {} ms",
                        timeout.as_millis()
                    ),
                )),
                Err(e) => Err(ProviderError::Directory(
                    "ldap_error",
                    format!("LDAP task: {e}"),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_rdn_values_are_unescaped() {
        assert_eq!(
            first_rdn_value("cn=admins,ou=groups,dc=x").as_deref(),
            Some("admins")
        );
        assert_eq!(
            first_rdn_value("CN=Smith\\, John,OU=x").as_deref(),
            Some("Smith, John")
        );
        assert_eq!(first_rdn_value("cn=a\\2cb,dc=x").as_deref(), Some("a,b"));
        assert_eq!(first_rdn_value("cn=a+uid=b,dc=x").as_deref(), Some("a"));
        assert_eq!(first_rdn_value("no-equals"), None);
        assert_eq!(first_rdn_value("cn=,dc=x"), None);
    }

    fn validate(extra: &str) -> Result<Arc<dyn KindSettings>, Refused> {
        let text = format!("url = \"ldaps://ldap.example.com\"\n{extra}");
        let c: LdapConfig = toml::from_str(&text).unwrap();
        let mut env = SecretVars::new();
        env.insert("PW".into(), "s3cret".into());
        c.validate(&env)
    }

    #[test]
    fn settings_are_checked_by_name() {
        assert!(validate("bind_dn_template = \"uid={username},ou=people,dc=x\"").is_ok());
        assert!(
            validate("user_base_dn = \"ou=people,dc=x\"\nbind_dn = \"cn=svc,dc=x\"\nbind_password_env = \"PW\"").is_ok()
        );
        for (extra, why) in [
            ("", "bind_dn_template"),
            ("bind_dn_template = \"uid=x,dc=x\"", "{username}"),
            (
                "bind_dn_template = \"uid={username}{username}\"",
                "exactly once",
            ),
            ("user_base_dn = \"ou=people,dc=x\"", "bind_dn"),
            (
                "user_base_dn = \"ou=people,dc=x\"\nbind_dn = \"cn=svc,dc=x\"",
                "password",
            ),
            (
                "user_base_dn = \"ou=people,dc=x\"\nbind_dn = \"cn=svc,dc=x\"\nbind_password_env = \"NOPE\"",
                "NOPE",
            ),
            (
                "bind_dn_template = \"uid={username},dc=x\"\nbind_dn = \"cn=svc,dc=x\"",
                "applies to the search",
            ),
            (
                "bind_dn_template = \"uid={username},dc=x\"\nstart_tls = true",
                "start_tls",
            ),
            (
                "bind_dn_template = \"uid={username},dc=x\"\nca_pem = \"junk\"",
                "no certificate",
            ),
            (
                "bind_dn_template = \"uid={username},dc=x\"\ngroup_filter = \"(member={dn})\"",
                "group_base_dn",
            ),
            (
                "bind_dn_template = \"uid={username},dc=x\"\ngroup_name = \"x\"",
                "group_name",
            ),
            (
                "bind_dn_template = \"uid={username},dc=x\"\nmax_connections = 0",
                "max_connections",
            ),
        ] {
            let e = validate(extra).unwrap_err().0;
            assert!(e.contains(why), "{extra}: {e}");
        }
        // Plain LDAP: loopback only, unless explicitly insecure; never with a DN or credentials in the URL.
        let plain = |url: &str, extra: &str| {
            let text =
                format!("url = \"{url}\"\nbind_dn_template = \"uid={{username}},dc=x\"\n{extra}");
            toml::from_str::<LdapConfig>(&text)
                .unwrap()
                .validate(&SecretVars::new())
        };
        assert!(plain("ldap://127.0.0.1:389", "").is_ok());
        assert!(plain("ldap://[::1]:389", "").is_ok());
        assert!(plain("ldap://localhost", "").is_ok());
        assert!(plain("ldap://127.0.0.1.example.com", "").is_err());
        assert!(plain("ldap://10.0.0.1", "").is_err());
        assert!(
            plain("ldap://ldap.example.com", "")
                .unwrap_err()
                .0
                .contains("clear")
        );
        assert!(plain("ldap://ldap.example.com", "start_tls = true").is_ok());
        assert!(plain("ldap://ldap.example.com", "insecure_plaintext = true").is_ok());
        assert!(plain("ldaps://u:p@ldap.example.com", "").is_err());
        assert!(plain("ldaps://ldap.example.com/dc=x", "").is_err());
        assert!(plain("http://ldap.example.com", "").is_err());
    }

    #[test]
    fn nested_groups_use_the_in_chain_rule() {
        let s = validate(
            "bind_dn_template = \"uid={username},dc=x\"\ngroup_base_dn = \"ou=groups,dc=x\"\nnested_groups = true",
        )
        .unwrap();
        let v = s.view();
        assert_eq!(
            v["groups"]["group_filter"],
            "(member:1.2.840.113556.1.4.1941:={dn})"
        );
        assert!(v.get("bind_password").is_none());
    }
}
