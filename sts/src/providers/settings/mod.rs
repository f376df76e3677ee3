//! What every provider kind shares in its `[[providers]]` entry — id, display name, claim paths, roles,
//! constraints, timeouts — validated without network; the kind's own keys are its module's (see
//! [`super::kinds`]). A key that belongs to another kind is refused by name.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::kinds::KindSettings;
use crate::roles::{Constraints, RoleMapping};

/// The keys every kind reads.
pub const COMMON_KEYS: &[&str] = &[
    "id",
    "type",
    "display_name",
    "enabled",
    "subject_claim",
    "username_claim",
    "email_claim",
    "name_claim",
    "groups_claim",
    "roles",
    "constraints",
    "connect_timeout_ms",
    "timeout_ms",
];

/// The common part of a raw `[[providers]]` entry (the kind's keys are beside it, in its own struct).
#[derive(Debug, Clone, Deserialize)]
pub struct CommonRaw {
    pub id: String,
    pub display_name: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub subject_claim: Option<String>,
    pub username_claim: Option<String>,
    pub email_claim: Option<String>,
    pub name_claim: Option<String>,
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub roles: RoleMapping,
    #[serde(default)]
    pub constraints: Constraints,
    pub connect_timeout_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Claim paths used to build an [`super::Identity`].
#[derive(Debug, Clone, Serialize)]
pub struct ClaimPaths {
    pub subject: String,
    pub username: String,
    pub email: String,
    pub name: String,
    pub groups: String,
}

/// A kind's default claim paths: subject, username, email, name, groups.
pub type ClaimDefaults = [&'static str; 5];

/// Validated settings of one provider: the common part, and the kind's own settings behind
/// [`KindSettings`]. Secrets are held in memory only, never written to the database or serialised.
#[derive(Clone)]
pub struct ProviderSettings {
    pub id: String,
    pub display_name: String,
    pub enabled: bool,
    pub claims: ClaimPaths,
    pub roles: RoleMapping,
    pub constraints: Constraints,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub kind: Arc<dyn KindSettings>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Serialised as one flat object (the common keys, `kind`, then the kind's validated settings), as the
/// admin console shows it and the database records it. Never with secrets.
impl Serialize for ProviderSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Common<'a> {
            id: &'a str,
            kind: &'a str,
            display_name: &'a str,
            enabled: bool,
            claims: &'a ClaimPaths,
            roles: &'a RoleMapping,
            constraints: &'a Constraints,
            connect_timeout_ms: u64,
            timeout_ms: u64,
        }
        let mut out = match serde_json::to_value(Common {
            id: &self.id,
            kind: self.kind.type_name(),
            display_name: &self.display_name,
            enabled: self.enabled,
            claims: &self.claims,
            roles: &self.roles,
            constraints: &self.constraints,
            connect_timeout_ms: self.connect_timeout_ms,
            timeout_ms: self.timeout_ms,
        }) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if let serde_json::Value::Object(own) = self.kind.view() {
            for (k, v) in own {
                out.entry(k).or_insert(v);
            }
        }
        out.serialize(s)
    }
}

crate::text::refusal!(
    /// A provider setting, document or value refused, with the reason (it names the key or the part).
    Refused
);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("provider `{id}`: {message}")]
pub struct SettingsError {
    pub id: String,
    pub message: String,
}

impl CommonRaw {
    /// Check the common keys; `claims` are the kind's defaults for unset claim paths.
    pub fn validate(
        self,
        claims: ClaimDefaults,
        kind: Arc<dyn KindSettings>,
    ) -> Result<ProviderSettings, Refused> {
        let (connect_timeout_ms, timeout_ms) = (
            self.connect_timeout_ms.unwrap_or(3000),
            self.timeout_ms.unwrap_or(10_000),
        );
        if !(100..=60_000).contains(&connect_timeout_ms) || !(100..=120_000).contains(&timeout_ms) {
            return Err(
                "timeouts must be 100..=60000 ms (connect) and 100..=120000 ms (total)".into(),
            );
        }
        validate_roles(&self.roles)?;
        let [subject, username, email, name, groups] = claims;
        let or = |v: Option<String>, d: &str| v.unwrap_or_else(|| d.to_string());
        Ok(ProviderSettings {
            display_name: self.display_name.unwrap_or_else(|| self.id.clone()),
            id: self.id,
            enabled: self.enabled,
            claims: ClaimPaths {
                subject: or(self.subject_claim, subject),
                username: or(self.username_claim, username),
                email: or(self.email_claim, email),
                name: or(self.name_claim, name),
                groups: or(self.groups_claim, groups),
            },
            roles: self.roles,
            constraints: self.constraints,
            connect_timeout_ms,
            timeout_ms,
            kind,
        })
    }
}

/// `id`: 1-64 characters of a-z, 0-9 and '-' (it appears in URLs, logs and token claims).
pub fn check_id(id: &str) -> Result<(), Refused> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("`id` must be 1-64 characters of a-z, 0-9 and '-'".into());
    }
    Ok(())
}

/// The role claim path must be set; STS role names (rule targets, default roles) must be plain bounded
/// strings, since they go into every token.
fn validate_roles(r: &RoleMapping) -> Result<(), Refused> {
    if r.claim.is_empty() {
        return Err("`roles.claim` must not be empty".into());
    }
    let bad =
        |role: &String| role.is_empty() || role.len() > 256 || role.chars().any(char::is_control);
    if let Some(role) = r
        .rules
        .iter()
        .flat_map(|rule| rule.roles.iter())
        .chain(r.default_roles.iter())
        .find(|x| bad(x))
    {
        return Err(Refused(format!(
            "role name {role:?} in `roles` must be 1..=256 characters without control characters"
        )));
    }
    if let Some(rule) = r
        .rules
        .iter()
        .find(|rule| rule.pattern.is_empty() || rule.pattern.len() > 256)
    {
        return Err(Refused(format!(
            "`roles.rules` match {:?} must be 1..=256 characters",
            rule.pattern
        )));
    }
    Ok(())
}

/// An outbound endpoint: https, or http only on a loopback host (local IdPs, tests).
pub fn endpoint_url(s: &str) -> Result<String, Refused> {
    let url = url::Url::parse(s).map_err(|e| Refused(format!("`{s}` is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => return Err(Refused(format!("`{s}` has no host"))),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(Refused(format!(
                "`{s}` must be https (plain http only on a loopback host)"
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(Refused(format!(
            "`{s}` must not carry credentials or a fragment"
        )));
    }
    Ok(url.to_string())
}

/// `env`: the values `*_env` keys name (the configuration's secret environment, or the console's field).
pub type SecretVars = BTreeMap<String, String>;

#[cfg(test)]
mod tests;
