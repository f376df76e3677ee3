//! Credential proxy (`type = "proxy"`, after Tyk Identity Broker's proxy provider): the username and
//! password typed into our own form ([`CredentialsForm`]) are forwarded to an existing service, whose
//! answer decides. The password is never stored or logged; it goes only to the configured URL.
//!
//! Checks, in order (the login flow, the form's `state` and the rate limits come first, in
//! `sso::login`):
//! 1. The username is 1..=256 characters without control characters and the password 1..=1024 bytes
//!    without NUL: anything else is `invalid_credentials` without calling the upstream. An empty password
//!    is never sent.
//! 2. The credentials go to `url` (https, plain http only to a loopback host) as a form or JSON body
//!    (`username_field`, `password_field`) or as HTTP Basic credentials (`send = "basic"`), through the
//!    provider's outbound client: TLS verified against the Mozilla roots, no redirects followed, within
//!    `connect_timeout_ms`/`timeout_ms`, the answer read up to 256 KiB.
//! 3. Success needs every configured rule: the status in `success_status` (default 200); the body
//!    matching `success_body_regex` (Rust's `regex`: linear time, size-limited); the JSON value at
//!    `success_json_path` equal to `success_json_value` (default `true`). Any other status below 500, or
//!    a rule not met, is `invalid_credentials` (one answer for every refusal); a status of 500 or more, a
//!    timeout or a transport failure is `proxy_unavailable` / `proxy_timeout`.
//! 4. The claims: the answer's JSON object when it is one, with `username` set to the value at
//!    `username_path` (else the username as typed) and `groups` to the value at `groups_path` (an array,
//!    or a string split at commas); the common claim paths, roles and constraints apply as for any kind.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ProviderError;
use super::http::{Outbound, OutboundError};
use super::kinds::{KindConfig, KindSettings, OpenContext};
use super::login::{CredentialsForm, Login};
use super::settings::{ClaimDefaults, SecretVars, endpoint_url};
use crate::config::Secret;
use crate::providers::settings::Refused;

/// `type = "proxy"`: the keys a credential proxy reads besides the common ones.
#[derive(Debug, Clone, Deserialize)]
pub struct ProxyConfig {
    url: Option<String>,
    send: Option<String>,
    username_field: Option<String>,
    password_field: Option<String>,
    success_status: Option<Vec<u16>>,
    success_body_regex: Option<String>,
    success_json_path: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    success_json_value: Option<Value>,
    username_path: Option<String>,
    groups_path: Option<String>,
}

/// How the credentials are sent.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Send {
    /// POST `application/x-www-form-urlencoded`.
    Form,
    /// POST `application/json`.
    Json,
    /// GET with `Authorization: Basic`.
    Basic,
}

/// Validated credential-proxy settings.
#[derive(Debug, Clone, Serialize)]
pub struct ProxySettings {
    pub url: String,
    pub send: Send,
    pub username_field: String,
    pub password_field: String,
    pub success_status: Vec<u16>,
    pub success_body_regex: Option<String>,
    #[serde(skip)]
    regex: Option<regex::Regex>,
    pub success_json_path: Option<String>,
    pub success_json_value: Value,
    pub username_path: Option<String>,
    pub groups_path: Option<String>,
}

/// `success_json_value`: a boolean, an integer or a string (what a JSON field is compared with).
fn scalar<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a boolean, an integer or a string")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Value::from(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Value::from(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Value::String(v.to_string())))
        }
    }
    d.deserialize_any(V)
}

fn field_name(key: &str, v: Option<String>, default: &str) -> Result<String, Refused> {
    let v = v.unwrap_or_else(|| default.to_string());
    if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
        return Err(Refused(format!("`{key}` must be 1..=128 characters")));
    }
    Ok(v)
}

fn path(key: &str, v: Option<String>) -> Result<Option<String>, Refused> {
    match v {
        Some(p) if p.is_empty() || p.len() > 256 || p.chars().any(char::is_control) => {
            Err(Refused(format!(
                "`{key}` must be a dotted path of 1..=256 characters"
            )))
        }
        other => Ok(other),
    }
}

impl KindConfig for ProxyConfig {
    const TYPE: &'static str = "proxy";
    const KEYS: &'static [&'static str] = &[
        "url",
        "send",
        "username_field",
        "password_field",
        "success_status",
        "success_body_regex",
        "success_json_path",
        "success_json_value",
        "username_path",
        "groups_path",
    ];
    const CLAIMS: ClaimDefaults = ["username", "username", "email", "name", "groups"];

    fn validate(self, _env: &SecretVars) -> Result<Arc<dyn KindSettings>, Refused> {
        let url = self.url.ok_or("`url` is required for type proxy")?;
        let url = endpoint_url(&url).map_err(|m| Refused(format!("`url`: {m}")))?;
        let send = match self.send.as_deref().unwrap_or("form") {
            "form" => Send::Form,
            "json" => Send::Json,
            "basic" => Send::Basic,
            other => {
                return Err(Refused(format!(
                    "`send` {other:?}: allowed form, json, basic"
                )));
            }
        };
        if send == Send::Basic && (self.username_field.is_some() || self.password_field.is_some()) {
            return Err(
                "`username_field` and `password_field` apply to send = form or json, not basic"
                    .into(),
            );
        }
        let success_status = self.success_status.unwrap_or_else(|| vec![200]);
        if success_status.is_empty()
            || success_status.len() > 16
            || success_status.iter().any(|s| !(200..500).contains(s))
        {
            return Err("`success_status`: 1..=16 status codes of 200..=499 (redirects are not followed: a 3xx can mean success)".into());
        }
        let regex = match &self.success_body_regex {
            Some(r) => Some(
                regex::RegexBuilder::new(r)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| Refused(format!("`success_body_regex`: {e}")))?,
            ),
            None => None,
        };
        let success_json_value = self.success_json_value.unwrap_or(Value::Bool(true));
        let success_json_path = path("success_json_path", self.success_json_path)?;
        if success_json_path.is_none() && success_json_value != Value::Bool(true) {
            return Err("`success_json_value` needs `success_json_path`".into());
        }
        Ok(Arc::new(ProxySettings {
            url,
            send,
            username_field: field_name("username_field", self.username_field, "username")?,
            password_field: field_name("password_field", self.password_field, "password")?,
            success_status,
            success_body_regex: self.success_body_regex,
            regex,
            success_json_path,
            success_json_value,
            username_path: path("username_path", self.username_path)?,
            groups_path: path("groups_path", self.groups_path)?,
        }))
    }
}

impl KindSettings for ProxySettings {
    fn type_name(&self) -> &'static str {
        ProxyConfig::TYPE
    }
    fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Login, Refused> {
        Ok(Login::Credentials(Arc::new(ProxyProvider {
            s: Arc::new(self.clone()),
            http: ctx.http.clone(),
        })))
    }
    fn endpoints(&self, base: &str, id: &str) -> (String, Option<String>) {
        (format!("{base}/sso/login?provider={id}"), None)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub struct ProxyProvider {
    s: Arc<ProxySettings>,
    http: Outbound,
}

impl ProxyProvider {
    async fn check(&self, username: &str, password: &str) -> Result<Value, ProviderError> {
        let client = self.http.client();
        let req = match self.s.send {
            Send::Form => client.post(&self.s.url).form(&[
                (self.s.username_field.as_str(), username),
                (self.s.password_field.as_str(), password),
            ]),
            Send::Json => {
                let mut body = Map::new();
                body.insert(
                    self.s.username_field.clone(),
                    Value::String(username.into()),
                );
                body.insert(
                    self.s.password_field.clone(),
                    Value::String(password.into()),
                );
                client.post(&self.s.url).json(&Value::Object(body))
            }
            Send::Basic => client.get(&self.s.url).basic_auth(username, Some(password)),
        }
        .header("Accept", "application/json");
        let (status, body) = self
            .http
            .send("credentials", req)
            .await
            .map_err(|e| match e {
                OutboundError::Timeout => ProviderError::Directory(
                    "proxy_timeout",
                    "the upstream did not answer in time".into(),
                ),
                OutboundError::TooLarge => ProviderError::Directory(
                    "proxy_unavailable",
                    "the upstream's answer is larger than 256 KiB".into(),
                ),
                other => ProviderError::Directory("proxy_unavailable", other.to_string()),
            })?;
        if status >= 500 {
            return Err(ProviderError::Directory(
                "proxy_unavailable",
                format!("the upstream answered HTTP {status}"),
            ));
        }
        if !self.s.success_status.contains(&status) {
            return Err(ProviderError::InvalidCredentials);
        }
        if let Some(re) = &self.s.regex
            && !re.is_match(&String::from_utf8_lossy(&body))
        {
            return Err(ProviderError::InvalidCredentials);
        }
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if let Some(p) = &self.s.success_json_path {
            let found = json.as_ref().and_then(|j| crate::roles::lookup(j, p));
            if found != Some(&self.s.success_json_value) {
                return Err(ProviderError::InvalidCredentials);
            }
        }
        let mut claims = match json {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let whole = Value::Object(claims.clone());
        let name = match &self.s.username_path {
            Some(p) => crate::roles::lookup(&whole, p)
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .ok_or_else(|| ProviderError::NoSubject(p.clone()))?,
            None => username.to_string(),
        };
        claims.insert("username".into(), Value::String(name));
        if let Some(p) = &self.s.groups_path {
            let groups = crate::roles::extract(&whole, p, Some(","));
            claims.insert(
                "groups".into(),
                Value::Array(groups.into_iter().take(1000).map(Value::String).collect()),
            );
        }
        Ok(Value::Object(claims))
    }
}

impl CredentialsForm for ProxyProvider {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async move {
            let pw = password.expose();
            if username.is_empty()
                || username.chars().count() > 256
                || username.chars().any(char::is_control)
                || pw.is_empty()
                || pw.len() > 1024
                || pw.contains('\0')
            {
                return Err(ProviderError::InvalidCredentials);
            }
            self.check(username, pw).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(extra: &str) -> Result<Arc<dyn KindSettings>, Refused> {
        let c: ProxyConfig = toml::from_str(&format!(
            "url = \"https://auth.example.com/check\"\n{extra}"
        ))
        .unwrap();
        c.validate(&SecretVars::new())
    }

    #[test]
    fn settings_are_checked_by_name() {
        assert!(validate("").is_ok());
        assert!(validate("send = \"basic\"\nsuccess_status = [200, 204]").is_ok());
        for (extra, why) in [
            ("send = \"smtp\"", "send"),
            ("send = \"basic\"\nusername_field = \"u\"", "basic"),
            ("success_status = [199]", "200..=499"),
            ("success_status = [500]", "200..=499"),
            ("success_body_regex = \"(\"", "success_body_regex"),
            ("success_json_value = false", "success_json_path"),
            ("username_field = \"\"", "username_field"),
        ] {
            let e = validate(extra).unwrap_err().0;
            assert!(e.contains(why), "{extra}: {e}");
        }
        let c: ProxyConfig = toml::from_str("url = \"http://auth.example.com/check\"").unwrap();
        assert!(
            c.validate(&SecretVars::new())
                .unwrap_err()
                .0
                .contains("https")
        );
    }
}
