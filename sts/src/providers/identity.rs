//! From a provider's claims to one [`Identity`], the same way for every kind: the configured claim paths,
//! values opaque (never trimmed or normalised) but refused with control or line-separator characters or
//! over 1 KiB.

use serde_json::Value;

use super::settings::ProviderSettings;
use super::{Identity, ProviderError};
use crate::roles;

fn string_at(claims: &Value, path: &str) -> Option<String> {
    match roles::lookup(claims, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        // SAML attributes are lists: a single value stands for itself; several are ambiguous.
        Value::Array(items) if items.len() == 1 => items[0]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        _ => None,
    }
}

/// Values are opaque: never trimmed or normalised; control and line-separator characters are refused.
fn clean(field: &'static str, v: Option<String>) -> Result<Option<String>, ProviderError> {
    match v {
        Some(s)
            if s.chars()
                .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}') =>
        {
            Err(ProviderError::BadValue(field))
        }
        Some(s) if s.len() > 1024 => Err(ProviderError::BadValue(field)),
        other => Ok(other),
    }
}

pub fn identity_from_claims(
    s: &ProviderSettings,
    claims: Value,
) -> Result<Identity, ProviderError> {
    let subject = clean("subject", string_at(&claims, &s.claims.subject))?
        .ok_or_else(|| ProviderError::NoSubject(s.claims.subject.clone()))?;
    let username = clean("username", string_at(&claims, &s.claims.username))?
        .unwrap_or_else(|| subject.clone());
    let email = clean("email", string_at(&claims, &s.claims.email))?;
    let display_name = clean("name", string_at(&claims, &s.claims.name))?;
    // Absent: unknown (None). Present: only a boolean `true` or the string "true" counts as verified.
    let email_verified = roles::lookup(&claims, "email_verified").map(|v| match v {
        Value::Bool(b) => *b,
        Value::String(s) => s == "true",
        _ => false,
    });
    let groups = roles::extract(&claims, &s.claims.groups, None);
    Ok(Identity {
        subject,
        username,
        email,
        email_verified,
        display_name,
        groups,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_are_checked() {
        let table: toml::Table = toml::from_str(
            "id = \"a\"\ntype = \"oauth2\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\nauthorization_endpoint = \"https://x/a\"\ntoken_endpoint = \"https://x/t\"\nuserinfo_endpoint = \"https://x/u\"\nsubject_claim = \"id\"\n",
        )
        .unwrap();
        let s = super::super::ProviderConfig::from_table(table)
            .unwrap()
            .validate(&[("S".to_string(), "x".to_string())].into_iter().collect())
            .unwrap();
        let id = identity_from_claims(&s, serde_json::json!({"id": 42, "groups": ["g"]})).unwrap();
        assert_eq!(id.subject, "42");
        assert_eq!(id.username, "42");
        assert!(identity_from_claims(&s, serde_json::json!({"name": "x"})).is_err());
        let e = identity_from_claims(&s, serde_json::json!({"id": "a\u{2028}b"})).unwrap_err();
        assert_eq!(e.code(), "invalid_claim_value");
    }
}
