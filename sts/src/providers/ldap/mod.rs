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

mod config;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use ldap3::{
    DerefAliases, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions,
};
use serde_json::{Map, Value};

use super::ProviderError;
use super::kinds::{KindConfig, KindSettings, OpenContext};
use super::login::{CredentialsForm, Login};
use crate::config::Secret;
use crate::providers::settings::Refused;
pub use config::{GroupSource, LdapConfig, LdapSettings, UserLookup};

/// Longest username and password accepted (anything longer is `invalid_credentials` at once).
pub const MAX_USERNAME_CHARS: usize = 256;
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// At most this many groups are read for one user.
const MAX_GROUPS: i32 = 1000;
/// Idle service-account connections are reused for at most this long.
const IDLE_REUSE: Duration = Duration::from_secs(60);

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
