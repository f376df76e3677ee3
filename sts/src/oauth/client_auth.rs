//! Client authentication at the token, introspection and revocation endpoints: exactly one method per
//! request (HTTP Basic, `client_secret` in the form, `client_assertion` with `private_key_jwt`, or a
//! public client's `client_id` alone).

use super::Op;
use super::clients::{AuthMethod, Client, ClientType};
use super::error::OAuthError;
use crate::store;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::collections::HashMap;
use std::sync::Arc;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A client assertion may live at most this long (seconds).
const MAX_ASSERTION_LIFETIME: i64 = 300;

impl Op<'_> {
    /// Authenticate the client by exactly one method: HTTP Basic, `client_secret` in the form,
    /// `client_assertion` (private_key_jwt), or — public clients only — `client_id` alone.
    /// `authorization`: the request's `Authorization` header, if any.
    pub async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        p: &HashMap<String, String>,
    ) -> Result<Arc<Client>, OAuthError> {
        let basic = authorization.and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case("basic"))
                .map(|(_, c)| c.trim().to_string())
        });
        let methods = usize::from(basic.is_some())
            + usize::from(p.contains_key("client_secret"))
            + usize::from(p.contains_key("client_assertion"));
        if methods > 1 {
            return Err(OAuthError::invalid_request(
                "use exactly one client authentication method",
            ));
        }
        let fail = |d: &str, basic_used: bool| {
            let mut e = OAuthError::invalid_client(d);
            e.basic_challenge = basic_used;
            e
        };
        if let Some(creds) = basic {
            // RFC 6749 2.3.1: client_id and secret are form-encoded before base64.
            let decoded = STANDARD
                .decode(creds.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| fail("malformed Basic credentials", true))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| fail("malformed Basic credentials", true))?;
            let id = form_decode(id);
            let secret = form_decode(secret);
            if p.get("client_id").is_some_and(|c| *c != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the authenticated client",
                ));
            }
            return self.check_secret(&id, &secret).await.map_err(|r| match r {
                Refused::Client(d) => fail(d, true),
                Refused::Db(e) => e.into(),
            });
        }
        let id = p.get("client_id").cloned().filter(|c| !c.is_empty());
        if let Some(secret) = p.get("client_secret") {
            let id = id.ok_or_else(|| fail("client_id is missing", false))?;
            return self.check_secret(&id, secret).await.map_err(|r| match r {
                Refused::Client(d) => fail(d, false),
                Refused::Db(e) => e.into(),
            });
        }
        if let Some(assertion) = p.get("client_assertion") {
            if p.get("client_assertion_type").map(String::as_str) != Some(ASSERTION_TYPE) {
                return Err(OAuthError::invalid_request(format!(
                    "client_assertion_type must be {ASSERTION_TYPE}"
                )));
            }
            return self
                .check_assertion(id.as_deref(), assertion)
                .await
                .map_err(|d| match d {
                    AssertionFailure::Client(d) => fail(&d, false),
                    AssertionFailure::Db(e) => e.into(),
                });
        }
        let id = id.ok_or_else(|| fail("client authentication is missing", false))?;
        match self.clients.get(&id) {
            Some(c) if c.settings.client_type == ClientType::Public => Ok(c),
            _ => Err(fail("unknown client or authentication required", false)),
        }
    }
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl Op<'_> {
    async fn check_secret(&self, id: &str, secret: &str) -> Result<Arc<Client>, Refused> {
        use crate::oauth::clients::SecretRefusal;
        self.clients
        .check_secret(id, secret)
        .await
        .map_err(|r| match r {
            SecretRefusal::UnknownOrWrong => Refused::Client("unknown client or wrong secret"),
            SecretRefusal::NotASecretClient => {
                Refused::Client("this client does not authenticate with a secret")
            }
            SecretRefusal::NoSecretYet => Refused::Client(
                "this client has no secret yet: set one with `sts clients secret ID`, in the admin console or the admin API",
            ),
            SecretRefusal::Db(e) => Refused::Db(e),
        })
    }
}

enum Refused {
    Client(&'static str),
    Db(sqlx::Error),
}

enum AssertionFailure {
    Client(String),
    Db(sqlx::Error),
}

/// private_key_jwt (RFC 7523): signed by a key in the client's JWKS with RS256, PS256 or ES256; `iss` and
/// `sub` are the client id; `aud` names our token endpoint or issuer; short-lived; `jti` single-use.
impl Op<'_> {
    async fn check_assertion(
        &self,
        form_id: Option<&str>,
        assertion: &str,
    ) -> Result<Arc<Client>, AssertionFailure> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::Jwk};
        let bad = |m: &str| AssertionFailure::Client(format!("client_assertion: {m}"));
        if assertion.len() > 8192 {
            return Err(bad("too large"));
        }
        sts_client::check_jws_header(assertion).map_err(|e| bad(&e))?;
        let header = decode_header(assertion).map_err(|_| bad("not a JWT"))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256
        ) {
            return Err(bad("algorithm not allowed (RS256, PS256, ES256)"));
        }
        // The issuer (unverified yet) names the client whose keys must verify it.
        let payload = assertion
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .ok_or_else(|| bad("unreadable claims"))?;
        let iss = payload["iss"].as_str().ok_or_else(|| bad("no iss"))?;
        if form_id.is_some_and(|f| f != iss) {
            return Err(bad("client_id differs from the assertion's issuer"));
        }
        let client = self
            .clients
            .get(iss)
            .filter(|c| c.settings.auth_method == AuthMethod::PrivateKeyJwt)
            .ok_or_else(|| bad("unknown client, or it does not use private_key_jwt"))?;
        let keys = client
            .settings
            .jwks
            .as_ref()
            .and_then(|j| j["keys"].as_array())
            .cloned()
            .unwrap_or_default();
        let candidates: Vec<&serde_json::Value> = keys
            .iter()
            .filter(|k| match (&header.kid, k["kid"].as_str()) {
                // A kid names one key; registered keys without a kid are tried for any assertion.
                (Some(kid), Some(k)) => k == kid,
                _ => true,
            })
            .collect();
        let token_endpoint = format!("{}/sso/token", self.issuer);
        let mut last = String::from("no registered key matches");
        for k in candidates {
            let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let mut v = Validation::new(header.alg);
            v.set_issuer(&[iss]);
            v.sub = Some(iss.to_string());
            v.set_audience(&[token_endpoint.as_str(), self.issuer]);
            v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            v.leeway = 30;
            match decode::<serde_json::Value>(assertion, &key, &v) {
                Ok(data) => {
                    let now = self.now;
                    let exp = data.claims["exp"].as_i64().unwrap_or(0);
                    if exp <= now - 30 {
                        return Err(bad("expired"));
                    }
                    if exp > now + MAX_ASSERTION_LIFETIME {
                        return Err(bad(&format!(
                            "exp is more than {MAX_ASSERTION_LIFETIME} s ahead"
                        )));
                    }
                    let jti = data.claims["jti"]
                        .as_str()
                        .filter(|j| !j.is_empty() && j.len() <= 256)
                        .ok_or_else(|| bad("jti is required"))?;
                    if !store::oauth::consume_assertion_jti(self.pool, iss, jti, exp + 60)
                        .await
                        .map_err(AssertionFailure::Db)?
                    {
                        return Err(bad("this assertion was already used (jti replay)"));
                    }
                    return Ok(client);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(bad(&last))
    }
}
