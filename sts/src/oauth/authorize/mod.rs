//! The authorization request (`/sso/authorize`) without HTTP: its checks ([`Op::check_authorize`], in
//! the order of `validate.rs`), the pending request while the user logs in ([`Op::resume_authorize`]),
//! and the decision ([`Op::decide`]): a code at once when the SSO session fits, an error for the client,
//! or a login first. `web::oauth::authorize` reads the request and answers the [`Outcome`] or [`Refusal`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Op;
use super::clients::{Client, redirect_uri_matches};
use super::grants::GrantData;
use crate::crypto::constant_time_eq;
use crate::sso::login::SessionUser;
use crate::sso::{hash, random_token};
use crate::store;

mod validate;

/// Authorization codes live this long (seconds).
pub const CODE_TTL: i64 = 60;

/// A pending request waits this long for the user to log in (seconds).
const PENDING_TTL: i64 = 900;

/// A validated authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    state: Option<String>,
    response_mode: ResponseMode,
    scope: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: Vec<String>,
    max_age: Option<i64>,
    login_hint: Option<String>,
    /// `sub` of a valid `id_token_hint` ("" when the hint did not verify: it matches nobody).
    #[serde(default)]
    hint_sub: Option<String>,
    /// Set while the request waits for a login: the browser that must come back with it.
    #[serde(default)]
    browser_hash: Option<String>,
    /// Set while the request waits for a login: that login must be a fresh authentication.
    #[serde(default)]
    fresh: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// Where an error goes: a page (no trustworthy redirect URI yet: 400, or 500 for ours) or back to the
/// client with `error` and `error_description`.
#[derive(Debug)]
pub enum Refusal {
    Page(String),
    Internal,
    Redirect(Box<Target>, &'static str, String),
}

/// Where the client is answered.
#[derive(Debug, Clone)]
pub struct Target {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub mode: ResponseMode,
}

/// What the browser gets when the request is not refused.
#[derive(Debug)]
pub enum Outcome {
    /// Answer the client at its redirect URI with these parameters (a code, `state`, `iss`).
    Respond(Box<Target>, Vec<(&'static str, String)>),
    /// Log in first: `location` is our login URL; `new_browser`: set this browser-binding cookie.
    Login {
        location: String,
        new_browser: Option<String>,
    },
}

fn internal(e: serde_json::Error) -> Refusal {
    tracing::error!(error = %e, "could not serialise an authorization request");
    Refusal::Internal
}

fn db(e: sqlx::Error) -> Refusal {
    tracing::error!(error = %e, "database error in /sso/authorize");
    Refusal::Internal
}

fn target_of(ar: &AuthRequest) -> Box<Target> {
    Box::new(Target {
        redirect_uri: ar.redirect_uri.clone(),
        state: ar.state.clone(),
        mode: ar.response_mode,
    })
}

/// The `sub` of user tokens: the provider id and the provider's subject, so that two providers can never
/// issue the same `sub` (a subject is only unique within its IdP).
pub fn public_subject(provider_id: &str, subject: &str) -> String {
    crate::tokens::public_subject(provider_id, subject)
}

impl Op<'_> {
    /// Back from the login a request was waiting for: the pending request (single use, unexpired), only
    /// for the browser that started it, its client and redirect URI checked again. Returns when the
    /// request was made (a fresh authentication must be from after it).
    pub async fn resume_authorize(
        &self,
        id: &str,
        browser: Option<&str>,
    ) -> Result<(Arc<Client>, AuthRequest, i64), Refusal> {
        let gone = || {
            Refusal::Page("this sign-in request is unknown, was already used or has expired; go back to the application and start again".into())
        };
        if !crate::sso::token_shaped(id) {
            return Err(gone());
        }
        let pending = store::oauth::consume_authorize_request(self.pool, &hash(id), self.now)
            .await
            .map_err(db)?
            .ok_or_else(|| Refusal::Page("this sign-in request is unknown, was already used or has expired; go back to the application and start again".into()))?;
        let Ok(mut ar) = serde_json::from_str::<AuthRequest>(&pending.0) else {
            return Err(gone());
        };
        let browser = browser.map(hash).unwrap_or_default();
        if !ar
            .browser_hash
            .take()
            .is_some_and(|h| constant_time_eq(h.as_bytes(), browser.as_bytes()))
        {
            return Err(Refusal::Page("this sign-in request was started in another browser; go back to the application and start again".into()));
        }
        // The client may have changed meanwhile: check it again.
        let client = self
            .clients
            .get(&ar.client_id)
            .ok_or_else(|| Refusal::Page("unknown or disabled client".into()))?;
        if !redirect_uri_matches(&client.settings, &ar.redirect_uri) {
            return Err(Refusal::Page(
                "redirect_uri is not registered for this client".into(),
            ));
        }
        Ok((client, ar, pending.1))
    }

    /// With a suitable session: a code at once. Otherwise a login, then `resume`. `resumed_at`: set on resume
    /// (when the pending request was made); if the request demanded a fresh authentication (prompt=login,
    /// max_age), the session's `auth_time` must be from after it, else the client gets `login_required`.
    pub async fn decide(
        &self,
        client: &Client,
        mut ar: AuthRequest,
        user: Option<&SessionUser>,
        browser: Option<&str>,
        resumed_at: Option<i64>,
    ) -> Result<Outcome, Refusal> {
        let now = self.now;
        let s = &client.settings;
        let prompt = |x: &str| ar.prompt.iter().any(|p| p == x);
        let prompt_login = prompt("login") || prompt("select_account");
        let prompt_none = prompt("none");
        let provider_ok =
            |u: &SessionUser| s.providers.is_empty() || s.providers.contains(&u.provider_id);
        let hint_ok = |u: &SessionUser| {
            ar.hint_sub
                .as_deref()
                .is_none_or(|h| h == public_subject(&u.provider_id, &u.subject))
        };
        let fresh_enough = |u: &SessionUser| match resumed_at {
            // A few seconds of slack for the upstream IdP's clock.
            Some(t) => !ar.fresh || u.auth_time >= t - 5,
            None => !prompt_login && ar.max_age.is_none_or(|m| now - u.auth_time <= m),
        };
        let back = |e: &'static str, d: &str| Refusal::Redirect(target_of(&ar), e, d.to_string());
        match user {
            Some(u) if fresh_enough(u) && provider_ok(u) && hint_ok(u) => {
                return self.issue_code(client, &ar, u).await;
            }
            Some(u) if prompt_none => {
                return Err(back(
                    "login_required",
                    if !provider_ok(u) {
                        "this application does not accept the provider of the current session"
                    } else if !hint_ok(u) {
                        "the current session is not the user of id_token_hint"
                    } else {
                        "a new authentication is required (max_age)"
                    },
                ));
            }
            Some(u) if resumed_at.is_some() => {
                return Err(if !provider_ok(u) {
                    back(
                        "access_denied",
                        "this application does not accept the identity provider used",
                    )
                } else {
                    back(
                        "login_required",
                        "the identity provider did not authenticate the user again",
                    )
                });
            }
            None if resumed_at.is_some() => {
                return Err(back("login_required", "the sign-in did not complete"));
            }
            None if prompt_none => {
                return Err(back(
                    "login_required",
                    "no single sign-on session (prompt=none)",
                ));
            }
            _ => {}
        }
        // A fresh authentication is needed when asked for, or when the session is too old for max_age.
        ar.fresh =
            prompt_login || user.is_some_and(|u| ar.max_age.is_some_and(|m| now - u.auth_time > m));
        // Re-authenticating a user goes back to the provider they used, when this application accepts it.
        let provider = match client.settings.providers.as_slice() {
            [only] => Some(only.clone()),
            _ => user
                .filter(|u| provider_ok(u))
                .map(|u| u.provider_id.clone()),
        };
        self.start_login(ar, browser, provider).await
    }

    /// The pending request stored for `resume`, bound to this browser, and the login URL.
    async fn start_login(
        &self,
        mut ar: AuthRequest,
        browser: Option<&str>,
        provider: Option<String>,
    ) -> Result<Outcome, Refusal> {
        let now = self.now;
        let (browser_id, new_browser) = match browser {
            Some(b) if b.len() == 43 => (b.to_string(), false),
            _ => (random_token(), true),
        };
        ar.browser_hash = Some(hash(&browser_id));
        let id = random_token();
        let params = serde_json::to_string(&ar).map_err(internal)?;
        store::oauth::insert_authorize_request(
            self.pool,
            &hash(&id),
            &params,
            now,
            now + PENDING_TTL,
        )
        .await
        .map_err(db)?;
        let return_to = format!("/sso/authorize/resume?id={id}");
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("return_to", &return_to);
        if let Some(p) = &provider {
            q.append_pair("provider", p);
        }
        if let Some(h) = &ar.login_hint {
            q.append_pair("login_hint", h);
        }
        if ar.fresh {
            q.append_pair("force", "1");
        }
        Ok(Outcome::Login {
            location: format!("/sso/login?{}", q.finish()),
            new_browser: new_browser.then_some(browser_id),
        })
    }

    /// A single-use code for this grant, the application recorded in the session, the answer.
    async fn issue_code(
        &self,
        client: &Client,
        ar: &AuthRequest,
        u: &SessionUser,
    ) -> Result<Outcome, Refusal> {
        let now = self.now;
        let code = random_token();
        let grant = GrantData {
            redirect_uri: ar.redirect_uri.clone(),
            scope: ar.scope.clone(),
            nonce: ar.nonce.clone(),
            code_challenge: ar.code_challenge.clone(),
            subject: public_subject(&u.provider_id, &u.subject),
            idp: u.provider_id.clone(),
            roles: u.roles.clone(),
            identity: u.identity.clone(),
            auth_time: u.auth_time,
            acr: u.acr.clone(),
            amr: u.amr.clone(),
            sid: u.sid.clone(),
            audience: None,
        };
        store::oauth::insert_code(
            self.pool,
            &hash(&code),
            &client.settings.id,
            &u.sid,
            &serde_json::to_string(&grant).map_err(internal)?,
            now,
            now + CODE_TTL,
        )
        .await
        .map_err(db)?;
        store::oauth::touch_session_client(self.pool, &u.sid, &client.settings.id, now)
            .await
            .map_err(db)?;
        tracing::info!(client = %client.settings.id, subject = ?u.subject, "authorization code issued");
        let mut params: Vec<(&'static str, String)> = vec![("code", code)];
        if let Some(s) = &ar.state {
            params.push(("state", s.clone()));
        }
        params.push(("iss", self.issuer.to_string()));
        Ok(Outcome::Respond(target_of(ar), params))
    }
}
