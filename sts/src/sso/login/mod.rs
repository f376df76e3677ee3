//! The browser login flow as a service without HTTP. The web layer parses the request, calls one method
//! per step and turns the outcome (or a [`LoginError`]) into a response; everything between the request
//! and the store is here:
//!
//! 1. [`Logins::start`]: `return_to` and `login_hint` checked, the provider chosen (or a choice offered),
//!    a login flow stored under a fresh single-use `state` bound to the browser, with the nonce, PKCE
//!    verifier and SAML request ID it needs, and the URL to send the browser to.
//! 2. [`Logins::complete_redirect`] (OIDC, OAuth 2.0 callbacks) and [`Logins::complete_saml`] (the ACS):
//!    the flow named by `state`/RelayState is consumed before anything else, then must be unexpired, bound
//!    to this browser, and of this callback; the provider must still be enabled; the provider performs
//!    all of its own checks (replay included).
//! 3. [`Logins::finish`]: roles mapped, constraints checked, the last login recorded, the previous session
//!    of this browser ended, a fresh session stored.

mod error;
mod form;

pub use super::session::{SessionIdentity, SessionUser};
use super::{hash, random_token, valid_return_to};
use crate::crypto::constant_time_eq;
use crate::providers::login::AuthorizeRequest;
use crate::providers::{
    Callback, CallbackRoute, FlowSecrets, Identity, Login, Provider, ProviderError, Registry,
};
use crate::store::{self, Pool};
pub use error::LoginError;
pub use form::{FormOutcome, FormPage, FormRequest};

pub const DEFAULT_RETURN_TO: &str = "/sso/me";

/// Lifetimes and our callback URLs, from the configuration.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    pub session_idle: u64,
    pub session_absolute: u64,
    pub flow_ttl: u64,
    pub oidc_redirect_uri: String,
    pub oauth_redirect_uri: String,
    pub saml_acs_url: String,
}

impl LoginPolicy {
    /// The URL of a callback route (what the IdP sends the browser back to).
    pub fn callback_url(&self, route: CallbackRoute) -> &str {
        match route {
            CallbackRoute::OpenId => &self.oidc_redirect_uri,
            CallbackRoute::OAuth => &self.oauth_redirect_uri,
            CallbackRoute::SamlAcs => &self.saml_acs_url,
            CallbackRoute::Form | CallbackRoute::None => "",
        }
    }
}

/// One request's view of the login service.
pub struct Logins<'a> {
    pub pool: &'a Pool,
    pub providers: &'a Registry,
    pub policy: &'a LoginPolicy,
    pub now: i64,
}

/// The start of a login, as the browser asked for it.
#[derive(Debug, Default, Clone, Copy)]
pub struct StartRequest<'a> {
    pub provider: Option<&'a str>,
    pub return_to: Option<&'a str>,
    pub login_hint: Option<&'a str>,
    /// Ask the IdP for a fresh authentication (an application sent prompt=login or max_age).
    pub force: bool,
    /// The browser-binding cookie, when the browser has one.
    pub browser: Option<&'a str>,
    /// The browser's current session cookie (a gateway login replaces that session).
    pub old_session: Option<&'a str>,
    /// Who sent the request and its headers (for a trusted gateway's identity).
    pub facts: Option<crate::providers::login::RequestFacts<'a>>,
}

pub enum Started {
    /// Several providers and none named: offer (id, display name) for this `return_to`.
    Choose {
        providers: Vec<(String, String)>,
        return_to: String,
    },
    /// Send the browser to the IdP; `new_browser`: set this browser-binding cookie first.
    Redirect {
        url: String,
        new_browser: Option<String>,
    },
    /// Show our username and password form for this flow (`state`, single use, bound to the browser).
    Form(FormPage),
    /// Signed in without a round trip (a trusted gateway's identity).
    SignedIn(SignedIn),
}

/// A completed login: the new session's cookie value and where the browser goes next.
pub struct SignedIn {
    pub session_id: String,
    pub return_to: String,
}

/// The SAML ACS request.
#[derive(Debug, Clone, Copy)]
pub struct AcsRequest<'a> {
    pub relay_state: Option<&'a str>,
    pub saml_response: Option<&'a str>,
    pub browser: Option<&'a str>,
    /// Whether the browser cookie can reach this cross-site POST (SameSite=None needs https).
    pub check_browser: bool,
    /// The provider named by a per-provider ACS path.
    pub path_provider: Option<&'a str>,
    /// The cookie of this browser's current session, if any.
    pub old_session: Option<&'a str>,
}

impl Logins<'_> {
    pub async fn start(&self, req: StartRequest<'_>) -> Result<Started, LoginError> {
        let return_to = req.return_to.unwrap_or(DEFAULT_RETURN_TO).to_string();
        if !valid_return_to(&return_to) {
            return Err(LoginError::ReturnToRefused);
        }
        if req
            .login_hint
            .is_some_and(|h| h.len() > 256 || h.chars().any(char::is_control))
        {
            return Err(LoginError::BadRequest);
        }
        let provider = match req.provider {
            Some(id) => self
                .providers
                .get(id)
                .filter(|p| p.settings.enabled)
                .ok_or(LoginError::UnknownProvider)?,
            None => {
                let enabled = self.providers.enabled();
                match enabled.as_slice() {
                    [] => return Err(LoginError::NoProvider),
                    [only] => only.clone(),
                    several => {
                        return Ok(Started::Choose {
                            providers: several
                                .iter()
                                .map(|p| (p.id().to_string(), p.settings.display_name.clone()))
                                .collect(),
                            return_to,
                        });
                    }
                }
            }
        };
        let (browser_id, new_browser) = match req.browser {
            Some(b) if b.len() == 43 => (b.to_string(), false),
            _ => (random_token(), true),
        };
        let state = random_token();
        let mut secrets = FlowSecrets {
            nonce: random_token(),
            pkce_verifier: random_token(),
            saml_request_id: None,
        };
        let login = provider.login()?;
        let route = login.callback();
        let url = match login {
            Login::Redirect(r) => {
                r.authorization_url(
                    AuthorizeRequest {
                        state: &state,
                        redirect_uri: self.policy.callback_url(route),
                        login_hint: req.login_hint,
                        force: req.force,
                    },
                    &secrets,
                )
                .await?
            }
            Login::SamlPost(s) => {
                let (url, request_id) = s.authn_request_url(&state, req.force)?;
                secrets.saml_request_id = Some(request_id);
                url
            }
            Login::Credentials(_) => {
                self.insert_flow(&state, &browser_id, &provider, route, &secrets, &return_to)
                    .await?;
                tracing::info!(provider = provider.id(), "login started (form)");
                return Ok(Started::Form(FormPage {
                    state,
                    provider_name: provider.settings.display_name.clone(),
                    username: req.login_hint.unwrap_or_default().to_string(),
                    error: None,
                    new_browser: new_browser.then_some(browser_id),
                }));
            }
            Login::Request(r) => {
                // No round trip: the gateway has authenticated the user; believe it only if it is the
                // gateway (the provider's checks), then a session at once.
                let facts = req.facts.ok_or(LoginError::BadRequest)?;
                let claims = r.identify(facts).inspect_err(|e| {
                    tracing::warn!(
                        provider = provider.id(),
                        peer = %facts.peer,
                        client = %facts.client,
                        reason = e.code(),
                        "identity headers refused"
                    );
                })?;
                let identity =
                    crate::providers::identity::identity_from_claims(&provider.settings, claims)?;
                let done = self
                    .finish(&provider, identity, &return_to, req.old_session)
                    .await?;
                return Ok(Started::SignedIn(done));
            }
        };
        self.insert_flow(&state, &browser_id, &provider, route, &secrets, &return_to)
            .await?;
        tracing::info!(provider = provider.id(), "login started");
        Ok(Started::Redirect {
            url,
            new_browser: new_browser.then_some(browser_id),
        })
    }

    async fn insert_flow(
        &self,
        state: &str,
        browser_id: &str,
        provider: &Provider,
        route: CallbackRoute,
        secrets: &FlowSecrets,
        return_to: &str,
    ) -> Result<(), LoginError> {
        store::login::insert_flow(
            self.pool,
            &store::login::NewFlow {
                state_hash: &hash(state),
                browser_hash: &hash(browser_id),
                provider_id: provider.id(),
                kind: route.as_str(),
                secrets: &serde_json::to_string(secrets)?,
                return_to,
                now: self.now,
                expires_at: self.now + self.policy.flow_ttl as i64,
            },
        )
        .await?;
        Ok(())
    }

    /// Consume the flow named by `state`, then check it: unexpired, of this callback, bound to this
    /// browser (unless `check_browser` is off), its provider still enabled. `provider_id` is set as soon
    /// as the flow is known (for the failure record).
    async fn resume(
        &self,
        state: &str,
        route: CallbackRoute,
        browser: Option<&str>,
        check_browser: bool,
        path_provider: Option<&str>,
        provider_id: &mut Option<String>,
    ) -> Result<Option<(std::sync::Arc<Provider>, FlowSecrets, String)>, LoginError> {
        // Consume first: whatever happens next, this state can never be used again.
        let Some(flow) = store::login::consume_flow(self.pool, &hash(state)).await? else {
            return Ok(None);
        };
        *provider_id = Some(flow.provider_id.clone());
        if flow.expires_at <= self.now {
            return Err(LoginError::FlowExpired);
        }
        let browser_ok = || {
            let b = browser.map(hash).unwrap_or_default();
            constant_time_eq(b.as_bytes(), flow.browser_hash.as_bytes())
        };
        // The redirect callbacks check the browser before the callback; the ACS after (as before).
        if route != CallbackRoute::SamlAcs && check_browser && !browser_ok() {
            return Err(LoginError::StateNotThisBrowser);
        }
        if flow.kind != route.as_str() || path_provider.is_some_and(|p| p != flow.provider_id) {
            return Err(LoginError::WrongCallback);
        }
        if route == CallbackRoute::SamlAcs && check_browser && !browser_ok() {
            return Err(LoginError::StateNotThisBrowser);
        }
        let provider = self
            .providers
            .get(&flow.provider_id)
            .filter(|p| p.settings.enabled)
            .ok_or(LoginError::ProviderUnavailable)?;
        let secrets: FlowSecrets =
            serde_json::from_str(&flow.secrets).map_err(|_| LoginError::Internal)?;
        Ok(Some((provider, secrets, flow.return_to)))
    }

    /// A redirect callback (`route`): the flow, the IdP's error if it sent one, the provider's checks,
    /// then [`Self::finish`].
    pub async fn complete_redirect(
        &self,
        cb: &Callback,
        route: CallbackRoute,
        browser: Option<&str>,
        old_session: Option<&str>,
        provider_id: &mut Option<String>,
    ) -> Result<SignedIn, LoginError> {
        let state = cb
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(LoginError::StateMissing)?;
        let (provider, secrets, return_to) = self
            .resume(state, route, browser, true, None, provider_id)
            .await?
            .ok_or(LoginError::StateUnknown)?;
        if let Some(err) = cb.error.as_deref() {
            let err: String = err
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(if err == "access_denied" {
                LoginError::Cancelled
            } else {
                LoginError::IdpError(err)
            });
        }
        let identity = provider
            .complete(&secrets, cb, self.policy.callback_url(route))
            .await?;
        self.finish(&provider, identity, &return_to, old_session)
            .await
    }

    /// The ACS: the flow named by RelayState, or, with none, an unsolicited response for the one provider
    /// that allows them (the one named in the ACS path, or the only such provider); then every check of
    /// the response by the provider, the replay cache included, and [`Self::finish`].
    pub async fn complete_saml(
        &self,
        req: AcsRequest<'_>,
        provider_id: &mut Option<String>,
    ) -> Result<SignedIn, LoginError> {
        let relay = req.relay_state.filter(|s| !s.is_empty());
        let resumed = match relay {
            Some(r) => {
                self.resume(
                    r,
                    CallbackRoute::SamlAcs,
                    req.browser,
                    req.check_browser,
                    req.path_provider,
                    provider_id,
                )
                .await?
            }
            None => None,
        };
        let (provider, secrets, return_to) = match resumed {
            Some((p, s, r)) => (p, Some(s), r),
            None => {
                let candidates: Vec<_> = self
                    .providers
                    .enabled()
                    .into_iter()
                    .filter(|p| p.allows_idp_initiated())
                    .filter(|p| req.path_provider.is_none_or(|id| p.id() == id))
                    .collect();
                let [provider] = candidates.as_slice() else {
                    return Err(if relay.is_some() {
                        LoginError::StateUnknown
                    } else {
                        LoginError::StateMissing
                    });
                };
                *provider_id = Some(provider.id().to_string());
                // For IdP-initiated logins RelayState is a target hint: honoured only as a same-origin path.
                let return_to = relay
                    .filter(|r| valid_return_to(r))
                    .unwrap_or(DEFAULT_RETURN_TO)
                    .to_string();
                (provider.clone(), None, return_to)
            }
        };
        let saml_response = req
            .saml_response
            .filter(|s| !s.is_empty())
            .ok_or(LoginError::BadRequest)?;
        let identity = provider
            .complete_saml_once(self.pool, self.now, secrets, saml_response.to_string())
            .await
            .map_err(|e| match e {
                ProviderError::Internal(detail) => {
                    tracing::error!(provider = %provider.id(), detail = %detail, "SAML response check failed");
                    LoginError::Internal
                }
                other => other.into(),
            })?;
        self.finish(&provider, identity, &return_to, req.old_session)
            .await
    }

    /// Roles, constraints, the last-login record, then a fresh SSO session. A fresh session id at every
    /// login; the previous session of this browser ends. When the same user signed in again
    /// (prompt=login, max_age), the session keeps its `sid` and the applications keep their grants; a
    /// different user ends the previous user's grants.
    pub async fn finish(
        &self,
        provider: &Provider,
        identity: Identity,
        return_to: &str,
        old_session: Option<&str>,
    ) -> Result<SignedIn, LoginError> {
        let s = &provider.settings;
        let external = s.roles.external_values(&identity.claims);
        let roles = s.roles.map(&external);
        let email_verified = if s.kind.asserts_verified_email() {
            Some(true)
        } else {
            identity.email_verified
        };
        let verdict =
            s.constraints
                .check(identity.email.as_deref(), email_verified, &identity.groups);
        let now = self.now;
        store::login::record_last_login(
            self.pool,
            &store::login::LastLogin {
                provider_id: provider.id(),
                subject: Some(&identity.subject),
                outcome: verdict.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code()),
                at: now,
                claims: &identity.claims.to_string(),
                external_values: &serde_json::to_string(&external)?,
                roles: &serde_json::to_string(&roles)?,
            },
        )
        .await?;
        crate::measure::login(
            provider.id(),
            verdict.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code()),
        );
        if verdict.is_ok() {
            store::login::record_login_event(
                self.pool,
                now,
                Some(provider.id()),
                Some(&identity.subject),
                "ok",
            )
            .await?;
        }
        verdict?;

        let mut sid = None;
        if let Some(old) = old_session
            && let Some(ended) = store::login::delete_session(self.pool, &hash(old)).await?
            && let Some(old_sid) = ended.sid
        {
            if ended.provider_id == provider.id() && ended.subject == identity.subject {
                sid = Some(old_sid);
            } else {
                store::oauth::revoke_session_tokens(self.pool, &old_sid, now).await?;
            }
        }
        let session_id = random_token();
        let sid = sid.unwrap_or_else(random_token);
        let absolute = self.policy.session_absolute as i64;
        // The upstream OpenID Provider's `auth_time`, when plausible; else now.
        let auth_time = identity
            .claims
            .get("auth_time")
            .and_then(|v| v.as_i64())
            .filter(|t| *t <= now + 60 && *t > now - absolute)
            .map(|t| t.min(now))
            .unwrap_or(now);
        // How the user authenticated, as the upstream OpenID Provider said (passed on in our ID tokens).
        let acr = identity
            .claims
            .get("acr")
            .and_then(|v| v.as_str())
            .filter(|v| v.len() <= 256)
            .map(str::to_string);
        let amr = identity
            .claims
            .get("amr")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .filter(|x| x.len() <= 64)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|a| !a.is_empty())
            .map(|a| serde_json::to_string(&a))
            .transpose()?;
        let ident = SessionIdentity {
            username: identity.username.clone(),
            email: identity.email.clone(),
            email_verified,
            display_name: identity.display_name.clone(),
            groups: identity.groups.clone(),
        };
        store::login::insert_session(
            self.pool,
            &store::login::NewSession {
                id_hash: &hash(&session_id),
                subject: &identity.subject,
                provider_id: provider.id(),
                identity: &serde_json::to_string(&ident)?,
                roles: &serde_json::to_string(&roles)?,
                sid: &sid,
                acr: acr.as_deref(),
                amr: amr.as_deref(),
                auth_time,
                now,
                idle_expires_at: now + self.policy.session_idle as i64,
                expires_at: now + absolute,
            },
        )
        .await?;
        tracing::info!(provider = provider.id(), subject = ?identity.subject, roles = ?roles, "login succeeded");
        Ok(SignedIn {
            session_id,
            return_to: return_to.to_string(),
        })
    }

    /// Record a failure for the dashboard (not those that never reached a flow of ours, nor made-up
    /// provider ids); returns the provider id when it is one of ours.
    pub async fn record_failure(&self, e: &LoginError, provider: Option<&str>) -> Option<String> {
        let known = provider
            .filter(|p| self.providers.get(p).is_some())
            .map(str::to_string);
        // Only our providers' ids become label values (anyone can send a made-up one).
        crate::measure::login(known.as_deref().unwrap_or("-"), e.code());
        if e.worth_recording()
            && let Err(err) = store::login::record_login_event(
                self.pool,
                self.now,
                known.as_deref(),
                None,
                e.code(),
            )
            .await
        {
            tracing::warn!(error = %err, "recording a login failure failed");
        }
        known
    }
}
