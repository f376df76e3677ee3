//! Role extraction and mapping, shared by every provider kind.
//!
//! 1. Extraction: values are read from the claims (or SAML attributes) at a configured path. A dotted path
//!    walks nested JSON objects (`realm_access.roles`, `resource_access.app.roles`); at each level a key that
//!    literally equals the rest of the path wins, so namespaced claim names such as
//!    `https://example.com/roles` work too. The value may be an array, a single string, or a delimited
//!    string (configurable separator). A step through an array of objects is taken in each element
//!    (`teams.slug` on GitHub's teams). Values are kept as exact opaque strings (never trimmed or
//!    normalised).
//! 2. Mapping: each external value is matched against the rules in order (exact, or a glob with `*` and `?`;
//!    no regular expressions from configuration); every matching rule contributes its STS roles. A value no
//!    rule matches is dropped or kept as-is (`unmapped`). Default roles are always added.
//! 3. Constraints (checked by the caller before a session exists): allowed email domains (the email must be
//!    present and verified: `email_verified` true, or an attribute in a signed SAML assertion) and
//!    required groups (at least one of them).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What to do with an external value that no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmapped {
    #[default]
    Drop,
    Keep,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    /// External value: exact, or a glob with `*` / `?`.
    #[serde(rename = "match")]
    pub pattern: String,
    /// STS roles granted when the pattern matches.
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RoleMapping {
    /// Claim / attribute path holding the external role values.
    pub claim: String,
    /// Split single string values on this separator (e.g. "," or " ").
    pub separator: Option<String>,
    pub rules: Vec<RoleRule>,
    pub default_roles: Vec<String>,
    pub unmapped: Unmapped,
}

impl Default for RoleMapping {
    fn default() -> Self {
        Self {
            claim: "groups".into(),
            separator: None,
            rules: vec![],
            default_roles: vec![],
            unmapped: Unmapped::Drop,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Constraints {
    /// The user's (verified) email must be in one of these domains. Empty: no constraint.
    pub allowed_email_domains: Vec<String>,
    /// The user must be in at least one of these groups. Empty: no constraint.
    pub required_groups: Vec<String>,
}

/// Why a user was refused by the constraints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error(
        "your email address is missing or not verified, and this sign-in requires one from: {0}"
    )]
    NoVerifiedEmail(String),
    #[error("your email domain `{domain}` is not allowed here (allowed: {allowed})")]
    EmailDomain { domain: String, allowed: String },
    #[error("you are not in any of the groups this sign-in requires ({0})")]
    NotInRequiredGroups(String),
}

impl ConstraintError {
    pub fn code(&self) -> &'static str {
        match self {
            ConstraintError::NoVerifiedEmail(_) => "email_unverified",
            ConstraintError::EmailDomain { .. } => "email_domain_not_allowed",
            ConstraintError::NotInRequiredGroups(_) => "not_in_required_groups",
        }
    }
}

impl Constraints {
    pub fn check(
        &self,
        email: Option<&str>,
        email_verified: Option<bool>,
        groups: &[String],
    ) -> Result<(), ConstraintError> {
        if !self.allowed_email_domains.is_empty() {
            let allowed = self.allowed_email_domains.join(", ");
            let email = match (email, email_verified) {
                // Only an email the IdP says it verified counts (an absent `email_verified` does not:
                // many IdPs let users type any address).
                (Some(e), Some(true)) => e,
                _ => return Err(ConstraintError::NoVerifiedEmail(allowed)),
            };
            let domain = email
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            if !self
                .allowed_email_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&domain))
            {
                return Err(ConstraintError::EmailDomain { domain, allowed });
            }
        }
        if !self.required_groups.is_empty()
            && !self.required_groups.iter().any(|g| groups.contains(g))
        {
            return Err(ConstraintError::NotInRequiredGroups(
                self.required_groups.join(", "),
            ));
        }
        Ok(())
    }
}

/// The value at `path` in `claims` (see the module doc for the path rules).
pub fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    let obj = claims.as_object()?;
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    lookup(obj.get(head)?, rest)
}

/// String values at `path`: an array's strings (numbers and booleans as text), a single string (split on
/// `separator` when set). Anything else yields nothing.
pub fn extract(claims: &Value, path: &str, separator: Option<&str>) -> Vec<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let Some(found) = lookup(claims, path) else {
        return fan_out(claims, path, separator);
    };
    match found {
        Value::Array(items) => items.iter().filter_map(scalar).collect(),
        Value::String(s) => match separator {
            Some(sep) if !sep.is_empty() => s
                .split(sep)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            _ => vec![s.clone()],
        },
        other => scalar(other).into_iter().collect(),
    }
}

/// A path that steps through an array takes that step in each element: `teams.slug` on
/// `{"teams": [{"slug": "a"}, {"slug": "b"}]}` gives `a`, `b` (GitHub's teams and organisations). The
/// longest key that matches is taken first, as in [`lookup`]; at most 1,000 values.
fn fan_out(claims: &Value, path: &str, separator: Option<&str>) -> Vec<String> {
    let Some(obj) = claims.as_object() else {
        return Vec::new();
    };
    for (i, _) in path
        .match_indices('.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        match obj.get(head) {
            Some(Value::Array(items)) => {
                return items
                    .iter()
                    .flat_map(|item| extract(item, rest, separator))
                    .take(1000)
                    .collect();
            }
            Some(inner @ Value::Object(_)) => return fan_out(inner, rest, separator),
            _ => {}
        }
    }
    Vec::new()
}

/// Glob match with `*` (any run) and `?` (one char); linear time, no backtracking blow-up.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl RoleMapping {
    /// External values from the claims.
    pub fn external_values(&self, claims: &Value) -> Vec<String> {
        extract(claims, &self.claim, self.separator.as_deref())
    }

    /// STS roles for the given external values (deduplicated, in first-seen order).
    pub fn map(&self, values: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |r: &str| {
            if !out.iter().any(|x| x == r) {
                out.push(r.to_string());
            }
        };
        for v in values {
            let mut matched = false;
            for rule in &self.rules {
                if glob_match(&rule.pattern, v) {
                    matched = true;
                    rule.roles.iter().for_each(|r| push(r));
                }
            }
            // Kept values become roles as they are: only plain, bounded strings qualify.
            if !matched
                && self.unmapped == Unmapped::Keep
                && !v.is_empty()
                && v.len() <= 256
                && !v.chars().any(char::is_control)
            {
                push(v);
            }
        }
        self.default_roles.iter().for_each(|r| push(r));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extraction_handles_paths_arrays_strings_and_separators() {
        let c = json!({
            "groups": ["a", "b", 3],
            "realm_access": {"roles": ["r1", "r2"]},
            "resource_access": {"app": {"roles": ["x"]}},
            "https://example.com/roles": ["ns"],
            "csv": "a,b,,c",
            "one": "solo",
            "obj": {"k": 1}
        });
        assert_eq!(extract(&c, "groups", None), vec!["a", "b", "3"]);
        assert_eq!(extract(&c, "realm_access.roles", None), vec!["r1", "r2"]);
        assert_eq!(extract(&c, "resource_access.app.roles", None), vec!["x"]);
        assert_eq!(extract(&c, "https://example.com/roles", None), vec!["ns"]);
        assert_eq!(extract(&c, "csv", Some(",")), vec!["a", "b", "c"]);
        assert_eq!(extract(&c, "one", None), vec!["solo"]);
        let gh = serde_json::json!({
            "teams": [{"slug": "platform", "organization": {"login": "acme"}}, {"slug": "sre"}],
            "orgs": [{"login": "acme"}, {"login": "oss"}],
            "deep": {"list": [{"x": "1"}, {"x": "2"}]},
        });
        assert_eq!(extract(&gh, "teams.slug", None), vec!["platform", "sre"]);
        assert_eq!(extract(&gh, "teams.organization.login", None), vec!["acme"]);
        assert_eq!(extract(&gh, "orgs.login", None), vec!["acme", "oss"]);
        assert_eq!(extract(&gh, "deep.list.x", None), vec!["1", "2"]);
        assert!(extract(&gh, "teams.nope", None).is_empty());
        assert!(extract(&c, "obj", None).is_empty());
        assert!(extract(&c, "missing.path", None).is_empty());
    }

    #[test]
    fn values_are_opaque_not_trimmed() {
        let c = json!({"groups": [" admin", "admin\u{2028}"]});
        let m = RoleMapping {
            rules: vec![RoleRule {
                pattern: "admin".into(),
                roles: vec!["admin".into()],
            }],
            ..Default::default()
        };
        assert!(
            m.map(&m.external_values(&c)).is_empty(),
            "look-alike values must not map"
        );
    }

    #[test]
    fn mapping_rules_defaults_and_unmapped_policy() {
        let mut m = RoleMapping {
            claim: "groups".into(),
            separator: None,
            rules: vec![
                RoleRule {
                    pattern: "sts-admins".into(),
                    roles: vec!["admin".into(), "user".into()],
                },
                RoleRule {
                    pattern: "dev-*".into(),
                    roles: vec!["developer".into()],
                },
            ],
            default_roles: vec!["user".into()],
            unmapped: Unmapped::Drop,
        };
        let v = vec![
            "sts-admins".to_string(),
            "dev-team".into(),
            "dev-ops".into(),
            "other".into(),
        ];
        assert_eq!(m.map(&v), vec!["admin", "user", "developer"]);
        m.unmapped = Unmapped::Keep;
        assert_eq!(m.map(&v), vec!["admin", "user", "developer", "other"]);
    }

    #[test]
    fn glob() {
        assert!(glob_match("dev-*", "dev-"));
        assert!(glob_match("*-admins", "sts-admins"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(!glob_match("dev-*", "xdev-1"));
        assert!(glob_match("*", ""));
        assert!(
            !glob_match(&"*a".repeat(20), &"a".repeat(19)),
            "no exponential blow-up"
        );
    }

    #[test]
    fn constraints() {
        let c = Constraints {
            allowed_email_domains: vec!["example.com".into()],
            required_groups: vec!["staff".into()],
        };
        let staff = vec!["staff".to_string()];
        assert!(c.check(Some("a@Example.com"), Some(true), &staff).is_ok());
        assert_eq!(
            c.check(Some("a@example.com"), None, &staff)
                .unwrap_err()
                .code(),
            "email_unverified"
        );
        assert_eq!(
            c.check(Some("a@example.com"), Some(false), &staff)
                .unwrap_err()
                .code(),
            "email_unverified"
        );
        assert_eq!(
            c.check(None, None, &staff).unwrap_err().code(),
            "email_unverified"
        );
        assert_eq!(
            c.check(Some("a@evil.com"), Some(true), &staff)
                .unwrap_err()
                .code(),
            "email_domain_not_allowed"
        );
        assert_eq!(
            c.check(Some("a@example.com.evil.com"), Some(true), &staff)
                .unwrap_err()
                .code(),
            "email_domain_not_allowed"
        );
        assert_eq!(
            c.check(Some("a@example.com"), Some(true), &[])
                .unwrap_err()
                .code(),
            "not_in_required_groups"
        );
    }
}
