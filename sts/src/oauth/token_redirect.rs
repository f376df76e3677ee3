//! The encrypted token redirect without HTTP (Token2go's flow, on standards): a program on the user's
//! machine listens on a loopback port, generates a key pair, and opens
//! `GET /sso/flow/redirect/token?redirect_uri=http://127.0.0.1:PORT/…&jwk=…&state=…[&audience=…][&scope=…]`.
//! The request is checked ([`Op::check_token_redirect`], in this order: the built-in application
//! enabled, the redirect URI, `state`, the key, scopes and audience; every refusal is an error page in
//! the browser, never a redirect, so the STS cannot be used to send a browser to a loopback port before
//! a user has confirmed anything),
//! stored under a fresh id bound to the browser ([`Op::start_token_redirect`]), and shown on a confirmation
//! page once the user has an SSO session ([`Op::pending_token_redirect`]). Only the user's click
//! ([`Op::complete_token_redirect`], a POST, single use, same browser) issues tokens — to the built-in
//! application, with a refresh token, audited — and sends them to the loopback URI as a compact JWE
//! encrypted to the program's key (`response`), with `state` unchanged.
//!
//! Redirect URIs: exactly `http://127.0.0.1:PORT` or `http://[::1]:PORT` followed by an optional path of
//! unreserved characters and `/` ([`loopback_target`]): no host name (`localhost` resolves through DNS
//! and `localhost.evil.example` is anyone's), no other spelling of the address (`127.1`, `0x7f.0.0.1`,
//! `2130706433`, `127.000.000.001`, `[::ffff:127.0.0.1]`), no user information (`127.0.0.1@evil`), no
//! query, no fragment, no dot segments. The URL parser must read the same host and port. Any other
//! target only when an admin registered it exactly on the built-in application.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Op;
use super::authorize::{Refusal, ResponseMode, Target};
use super::builtin::BUILTIN_CLIENT_ID;
use super::clients::Client;
use super::grants::GrantData;
use super::issue::{requested_audience, requested_scope, standard_scopes_of};
use crate::crypto::constant_time_eq;
use crate::jwe::ClientKey;
use crate::sso::login::SessionUser;
use crate::sso::{hash, random_token};
use crate::store;

/// A confirmed request waits this long for the user (seconds).
const PENDING_TTL: i64 = 600;

/// The checked request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedirectRequest {
    pub redirect_uri: String,
    pub jwk: String,
    pub state: String,
    pub scope: Vec<String>,
    pub audience: Option<Vec<String>>,
    #[serde(default)]
    browser_hash: String,
}

impl RedirectRequest {
    /// The loopback port, or None for an admin-registered target.
    pub fn port(&self) -> Option<u16> {
        loopback_target(&self.redirect_uri)
    }

    /// The key's kind and size, for the page and the audit log.
    pub fn key_description(&self) -> String {
        ClientKey::parse(&self.jwk)
            .map(|k| k.describe())
            .unwrap_or_default()
    }
}

/// The port of an exact loopback redirect URI (see the module doc); None for anything else.
pub fn loopback_target(u: &str) -> Option<u16> {
    let rest = u
        .strip_prefix("http://127.0.0.1:")
        .or_else(|| u.strip_prefix("http://[::1]:"))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 5 || rest.starts_with('0') {
        return None;
    }
    let port: u16 = rest[..digits].parse().ok()?;
    let path = &rest[digits..];
    if !(path.is_empty() || path.starts_with('/'))
        || path.len() > 256
        || path.contains("/.")
        || !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
    {
        return None;
    }
    let url = url::Url::parse(u).ok()?;
    let host_ok = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    };
    (host_ok
        && url.scheme() == "http"
        && url.port() == Some(port)
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none())
    .then_some(port)
}

fn ns(id: &str) -> String {
    // (Callers check `token_shaped` first, so an id from the other flow never maps onto this one.)
    // Its own namespace in the pending-request table: an id of one flow is never found by the other.
    hash(&format!("token-redirect:{id}"))
}

fn db(e: sqlx::Error) -> Refusal {
    tracing::error!(error = %e, "database error in the token redirect");
    Refusal::Internal
}

impl Op<'_> {
    /// The request's parameters checked, in the order of the module doc.
    pub fn check_token_redirect(
        &self,
        p: &HashMap<String, String>,
    ) -> Result<(Arc<Client>, RedirectRequest), Refusal> {
        let page = |m: &str| Refusal::Page(m.to_string());
        let client = self.clients.get(BUILTIN_CLIENT_ID).ok_or_else(|| {
            page("getting tokens for programs (the built-in sts-login application) is disabled on this server")
        })?;
        let redirect_uri = p
            .get("redirect_uri")
            .ok_or_else(|| page("redirect_uri is missing"))?;
        if loopback_target(redirect_uri).is_none()
            && !client
                .settings
                .redirect_uris
                .iter()
                .any(|r| r == redirect_uri)
        {
            return Err(page(
                "redirect_uri must be http://127.0.0.1:PORT/… or http://[::1]:PORT/… (or a target an admin registered)",
            ));
        }
        let state = match p.get("state") {
            Some(s) if !s.is_empty() && s.len() <= 512 && !s.chars().any(char::is_control) => {
                s.clone()
            }
            Some(_) => return Err(page("state must be 1..=512 characters")),
            None => return Err(page("state is missing")),
        };
        let jwk = p
            .get("jwk")
            .ok_or_else(|| page("jwk (the program's public key) is missing"))?;
        ClientKey::parse(jwk).map_err(|e| page(&e.0))?;
        let oauth = |e: super::error::OAuthError| page(&format!("{}: {}", e.error, e.description));
        let scope = requested_scope(p, &client, &standard_scopes_of(&client)).map_err(oauth)?;
        let audience = requested_audience(p, &client).map_err(oauth)?;
        Ok((
            client,
            RedirectRequest {
                redirect_uri: redirect_uri.clone(),
                jwk: jwk.clone(),
                state,
                scope,
                audience,
                browser_hash: String::new(),
            },
        ))
    }

    /// Store the checked request under a fresh id bound to this browser (a new browser id when it has
    /// none): (id, new browser id).
    pub async fn start_token_redirect(
        &self,
        mut rr: RedirectRequest,
        browser: Option<&str>,
    ) -> Result<(String, Option<String>), Refusal> {
        let (browser_id, new) = match browser {
            Some(b) if b.len() == 43 => (b.to_string(), false),
            _ => (random_token(), true),
        };
        rr.browser_hash = hash(&browser_id);
        let id = random_token();
        let json = serde_json::to_string(&rr).map_err(|_| Refusal::Internal)?;
        store::oauth::insert_authorize_request(
            self.pool,
            &ns(&id),
            &json,
            self.now,
            self.now + PENDING_TTL,
        )
        .await
        .map_err(db)?;
        Ok((id, new.then_some(browser_id)))
    }

    fn bound(rr: &RedirectRequest, browser: Option<&str>) -> Result<(), Refusal> {
        let b = browser.map(hash).unwrap_or_default();
        if constant_time_eq(rr.browser_hash.as_bytes(), b.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::Page(
                "this request was started in another browser; run the program again".into(),
            ))
        }
    }

    /// The stored request (not consumed), for this browser only.
    pub async fn pending_token_redirect(
        &self,
        id: &str,
        browser: Option<&str>,
    ) -> Result<RedirectRequest, Refusal> {
        if !crate::sso::token_shaped(id) {
            return Err(unknown());
        }
        let json = store::device::pending_request(self.pool, &ns(id), self.now)
            .await
            .map_err(db)?
            .ok_or_else(unknown)?;
        let rr: RedirectRequest = serde_json::from_str(&json).map_err(|_| Refusal::Internal)?;
        Self::bound(&rr, browser)?;
        Ok(rr)
    }

    /// The user's answer: the request consumed (single use, this browser); on approval the tokens are
    /// issued and encrypted to the program's key. Returns where to send the browser.
    pub async fn complete_token_redirect(
        &self,
        id: &str,
        browser: Option<&str>,
        user: &SessionUser,
        approve: bool,
    ) -> Result<String, Refusal> {
        if !crate::sso::token_shaped(id) {
            return Err(unknown());
        }
        let (json, _) = store::oauth::consume_authorize_request(self.pool, &ns(id), self.now)
            .await
            .map_err(db)?
            .ok_or_else(unknown)?;
        let rr: RedirectRequest = serde_json::from_str(&json).map_err(|_| Refusal::Internal)?;
        Self::bound(&rr, browser)?;
        let target = Box::new(Target {
            redirect_uri: rr.redirect_uri.clone(),
            state: Some(rr.state.clone()),
            mode: ResponseMode::Query,
        });
        let client = self.clients.get(BUILTIN_CLIENT_ID).ok_or_else(|| {
            Refusal::Page("the built-in sts-login application was disabled meanwhile".into())
        })?;
        if !approve {
            tracing::info!(
                client = BUILTIN_CLIENT_ID,
                "token redirect denied by the user"
            );
            return Err(Refusal::Redirect(
                target,
                "access_denied",
                "the user denied the request".into(),
            ));
        }
        let s = &client.settings;
        if !s.providers.is_empty() && !s.providers.contains(&user.provider_id) {
            return Err(Refusal::Page(
                "this application does not accept the identity provider you signed in with".into(),
            ));
        }
        let key = ClientKey::parse(&rr.jwk).map_err(|e| Refusal::Page(e.0))?;
        let grant = GrantData {
            redirect_uri: rr.redirect_uri.clone(),
            scope: rr.scope.clone(),
            nonce: None,
            code_challenge: None,
            subject: super::authorize::public_subject(&user.provider_id, &user.subject),
            idp: user.provider_id.clone(),
            roles: user.roles.clone(),
            identity: user.identity.clone(),
            auth_time: user.auth_time,
            acr: user.acr.clone(),
            amr: user.amr.clone(),
            sid: user.sid.clone(),
            audience: rr.audience.clone(),
        };
        let details = serde_json::json!({
            "scope": rr.scope,
            "audience": rr.audience,
            "redirect_uri": rr.redirect_uri,
            "key": key.describe(),
            "sid": user.sid,
        });
        let body = self
            .issue_user_grant(&client, &grant, "token.redirect", details)
            .await
            .map_err(|e| match e.error {
                "invalid_grant" => Refusal::Redirect(
                    target.clone(),
                    "login_required",
                    "the single sign-on session has ended".into(),
                ),
                _ => Refusal::Internal,
            })?;
        let jwe = key
            .encrypt(body.to_string().as_bytes())
            .map_err(|_| Refusal::Internal)?;
        Ok(super::params::with_params(
            &rr.redirect_uri,
            &[("response", &jwe), ("state", &rr.state)],
        ))
    }
}

fn unknown() -> Refusal {
    Refusal::Page(
        "this request is unknown, was already answered or has expired; run the program again"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::loopback_target;

    #[test]
    fn only_exact_loopback_targets() {
        for (u, port) in [
            ("http://127.0.0.1:8765/callback", 8765),
            ("http://127.0.0.1:1", 1),
            ("http://[::1]:65535/a/b-c_d.e~f", 65535),
            ("http://127.0.0.1:5000/", 5000),
        ] {
            assert_eq!(loopback_target(u), Some(port), "{u}");
        }
        for u in [
            "http://localhost:8765/callback",
            "http://localhost.evil.example:8765/",
            "http://127.0.0.1.evil.example:8765/",
            "http://127.0.0.1@evil.example:8765/",
            "http://127.0.0.1:8765@evil.example/",
            "http://user@127.0.0.1:8765/",
            "http://user:pw@127.0.0.1:8765/",
            "http://evil.example/@127.0.0.1:8765/",
            "http://127.1:8765/",
            "http://0x7f.0.0.1:8765/",
            "http://0x7f000001:8765/",
            "http://2130706433:8765/",
            "http://017700000001:8765/",
            "http://127.000.000.001:8765/",
            "http://127.0.0.2:8765/",
            "http://0.0.0.0:8765/",
            "http://[::ffff:127.0.0.1]:8765/",
            "http://[0:0:0:0:0:0:0:1]:8765/",
            "https://127.0.0.1:8765/",
            "HTTP://127.0.0.1:8765/",
            "http://127.0.0.1/",
            "http://127.0.0.1:/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:08765/",
            "http://127.0.0.1:65536/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:8765/cb?x=1",
            "http://127.0.0.1:8765/cb#f",
            "http://127.0.0.1:8765/../evil",
            "http://127.0.0.1:8765/a/./b",
            "http://127.0.0.1:8765/%2e%2e/",
            "http://127.0.0.1:8765\\@evil.example/",
            "http://127.0.0.1:8765/\u{0}",
            "http://127.0.0.1:8765 /",
            "http://127.0.0.1:8765evil",
            " http://127.0.0.1:8765/",
            "http://[::1]/",
            "//127.0.0.1:8765/",
            "javascript://127.0.0.1:8765/%0aalert(1)",
        ] {
            assert_eq!(loopback_target(u), None, "{u}");
        }
    }
}
