//! Login start, callbacks, `/sso/me` and `/sso/logout`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::pages::{self, ChooserEntry, ChooserPage, MePage};
use super::session::{self, BROWSER_COOKIE, SESSION_COOKIE, SessionIdentity};
use crate::providers::oidc::constant_time_eq;
use crate::providers::{Callback, FlowSecrets, Kind, ProviderError};
use crate::roles::ConstraintError;
use crate::sso::{hash, random_token, valid_return_to};
use crate::store;
use crate::tokens::{TokenKind, TokenRequest};
use crate::web::AppState;

pub(super) const DEFAULT_RETURN_TO: &str = "/sso/me";

/// Why a login did not complete. Each has a reason code (logs, pages) and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the request is malformed")]
    BadRequest,
    #[error("`return_to` must be a path on this site")]
    ReturnToRefused,
    #[error("no such identity provider")]
    UnknownProvider,
    #[error("no identity provider is configured")]
    NoProvider,
    #[error("the response from the identity provider has no `state`")]
    StateMissing,
    #[error("this sign-in attempt is unknown or was already used; start again")]
    StateUnknown,
    #[error("this sign-in attempt took too long; start again")]
    FlowExpired,
    #[error("this sign-in attempt was started in another browser")]
    StateNotThisBrowser,
    #[error("the response arrived at the wrong callback")]
    WrongCallback,
    #[error("the identity provider is no longer available")]
    ProviderUnavailable,
    #[error("sign-in was cancelled at the identity provider")]
    Cancelled,
    #[error("the identity provider answered with an error: {0}")]
    IdpError(String),
    #[error("{0}")]
    Provider(#[from] ProviderError),
    #[error("{0}")]
    Constraint(#[from] ConstraintError),
    #[error("internal error")]
    Internal,
}

impl From<serde_json::Error> for LoginError {
    fn from(e: serde_json::Error) -> Self {
        tracing::error!(error = %e, "could not serialise login state");
        LoginError::Internal
    }
}

impl From<sqlx::Error> for LoginError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error during login");
        LoginError::Internal
    }
}

impl LoginError {
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::BadRequest => "bad_request",
            LoginError::ReturnToRefused => "return_to_refused",
            LoginError::UnknownProvider => "unknown_provider",
            LoginError::NoProvider => "no_provider",
            LoginError::StateMissing => "state_missing",
            LoginError::StateUnknown => "state_unknown_or_used",
            LoginError::FlowExpired => "flow_expired",
            LoginError::StateNotThisBrowser => "state_browser_mismatch",
            LoginError::WrongCallback => "wrong_callback",
            LoginError::ProviderUnavailable => "provider_unavailable",
            LoginError::Cancelled => "login_cancelled",
            LoginError::IdpError(_) => "idp_error",
            LoginError::Provider(e) => e.code(),
            LoginError::Constraint(e) => e.code(),
            LoginError::Internal => "internal_error",
        }
    }

    fn status(&self) -> StatusCode {
        use crate::providers::http::OutboundError as O;
        match self {
            LoginError::UnknownProvider => StatusCode::NOT_FOUND,
            LoginError::NoProvider => StatusCode::SERVICE_UNAVAILABLE,
            LoginError::Cancelled => StatusCode::UNAUTHORIZED,
            LoginError::IdpError(_) => StatusCode::BAD_GATEWAY,
            LoginError::Provider(ProviderError::Outbound(O::Timeout)) => {
                StatusCode::GATEWAY_TIMEOUT
            }
            LoginError::Provider(ProviderError::Outbound(_) | ProviderError::Discovery(_)) => {
                StatusCode::BAD_GATEWAY
            }
            LoginError::Provider(_) => StatusCode::UNAUTHORIZED,
            LoginError::Constraint(_) => StatusCode::FORBIDDEN,
            LoginError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            LoginError::Constraint(_) => "Access denied",
            LoginError::Cancelled => "Sign-in cancelled",
            LoginError::Provider(ProviderError::Outbound(_) | ProviderError::Discovery(_))
            | LoginError::IdpError(_) => "The identity provider is not answering correctly",
            _ => "Sign-in failed",
        }
    }

    pub(super) fn page(&self, provider: Option<&str>) -> HttpResponse {
        tracing::warn!(provider = ?provider.unwrap_or("-"), reason = self.code(), detail = ?self.to_string(), "login failed");
        // Why a decryption failed (key unwrap, padding, UTF-8, structure) stays in the log: told to the
        // sender, the difference would be an oracle for whoever can get a modified ciphertext signed.
        let message = match self {
            LoginError::Provider(ProviderError::Saml("saml_decrypt", _)) => {
                "the SAML response was refused: the encrypted assertion could not be decrypted (the reason is in the STS log)"
                    .to_string()
            }
            other => other.to_string(),
        };
        pages::error(self.status(), self.title(), &message, self.code())
    }
}

/// The error page, after recording the failure for the dashboard (unknown providers are not recorded: anyone
/// can make up ids).
pub(super) async fn failed(st: &AppState, e: LoginError, provider: Option<&str>) -> HttpResponse {
    let known = provider.filter(|p| st.providers.get(p).is_some());
    // Requests that never reached a login flow of ours (made-up provider ids or `state`s, malformed
    // requests) are not recorded: anyone could fill the dashboard with them.
    if !matches!(
        e,
        LoginError::UnknownProvider
            | LoginError::BadRequest
            | LoginError::StateMissing
            | LoginError::StateUnknown
            | LoginError::ReturnToRefused
    ) && let Err(err) =
        store::login::record_login_event(&st.pool, st.clock.now(), known, None, e.code()).await
    {
        tracing::warn!(error = %err, "recording a login failure failed");
    }
    e.page(known)
}

pub(super) fn redirect(location: &str) -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::SeeOther();
    r.insert_header((LOCATION, location.to_string()))
        .insert_header((CACHE_CONTROL, "no-store"));
    r
}

#[derive(Deserialize)]
pub struct StartQuery {
    provider: Option<String>,
    return_to: Option<String>,
    login_hint: Option<String>,
    /// `1`: ask the identity provider for a fresh authentication (an application sent prompt=login or
    /// max_age).
    force: Option<String>,
}

/// `GET /sso/login`
pub async fn start(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let q = match web::Query::<StartQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(_) => return LoginError::BadRequest.page(None),
    };
    let provider_id = q.provider.clone();
    match start_login(&req, &st, q).await {
        Ok(resp) => resp,
        Err(e) => failed(&st, e, provider_id.as_deref()).await,
    }
}

pub(super) async fn start_login(
    req: &HttpRequest,
    st: &AppState,
    q: StartQuery,
) -> Result<HttpResponse, LoginError> {
    let return_to = q.return_to.unwrap_or_else(|| DEFAULT_RETURN_TO.into());
    if !valid_return_to(&return_to) {
        return Err(LoginError::ReturnToRefused);
    }
    if q.login_hint
        .as_deref()
        .is_some_and(|h| h.len() > 256 || h.chars().any(char::is_control))
    {
        return Err(LoginError::BadRequest);
    }
    let provider = match q.provider {
        Some(id) => st
            .providers
            .get(&id)
            .filter(|p| p.settings.enabled)
            .ok_or(LoginError::UnknownProvider)?,
        None => {
            let enabled: Vec<_> = st.providers.enabled();
            match enabled.len() {
                0 => return Err(LoginError::NoProvider),
                1 => enabled[0].clone(),
                _ => {
                    let entries = enabled
                        .iter()
                        .map(|p| ChooserEntry {
                            name: p.settings.display_name.clone(),
                            href: {
                                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                                ser.append_pair("provider", p.id())
                                    .append_pair("return_to", &return_to);
                                if let Some(h) = &q.login_hint {
                                    ser.append_pair("login_hint", h);
                                }
                                if let Some(f) = &q.force {
                                    ser.append_pair("force", f);
                                }
                                format!("/sso/login?{}", ser.finish())
                            },
                        })
                        .collect();
                    return Ok(pages::render(
                        StatusCode::OK,
                        &ChooserPage { providers: entries },
                    ));
                }
            }
        }
    };

    let (browser_id, new_browser) = match req.cookie(BROWSER_COOKIE) {
        Some(c) if c.value().len() == 43 => (c.value().to_string(), false),
        _ => (random_token(), true),
    };
    let state = random_token();
    let mut secrets = FlowSecrets {
        nonce: random_token(),
        pkce_verifier: random_token(),
        saml_request_id: None,
    };
    let redirect_uri = redirect_uri(st, provider.settings.kind);
    let url = provider
        .authorization_url(
            &state,
            &mut secrets,
            &redirect_uri,
            q.login_hint.as_deref(),
            q.force.as_deref() == Some("1"),
        )
        .await?;
    let now = st.clock.now();
    store::login::insert_flow(
        &st.pool,
        &store::login::NewFlow {
            state_hash: &hash(&state),
            browser_hash: &hash(&browser_id),
            provider_id: provider.id(),
            kind: provider.settings.kind.as_str(),
            secrets: &serde_json::to_string(&secrets)?,
            return_to: &return_to,
            now,
            expires_at: now + st.web.flow_ttl as i64,
        },
    )
    .await?;
    tracing::info!(provider = provider.id(), "login started");
    let mut resp = redirect(&url);
    if new_browser {
        resp.cookie(session::cookie(
            BROWSER_COOKIE,
            browser_id,
            "/sso",
            st.web.secure_cookies,
            None,
        ));
    }
    Ok(resp.finish())
}

pub(super) fn redirect_uri(st: &AppState, kind: Kind) -> String {
    match kind {
        Kind::Oidc => st.web.oidc_redirect_uri.clone(),
        Kind::Oauth2 => st.web.oauth_redirect_uri.clone(),
        Kind::Saml => st.web.saml_acs_url.clone(),
    }
}

/// `GET /sso/sso-openid/openid-login`
pub async fn oidc_callback(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    callback(req, st, Kind::Oidc).await
}

/// `GET /sso/sso-oauth/oauth-login`
pub async fn oauth_callback(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    callback(req, st, Kind::Oauth2).await
}

pub(super) async fn callback(
    req: HttpRequest,
    st: web::Data<AppState>,
    kind: Kind,
) -> HttpResponse {
    let mut provider_id = None;
    match complete_login(&req, &st, kind, &mut provider_id).await {
        Ok(resp) => resp,
        Err(e) => failed(&st, e, provider_id.as_deref()).await,
    }
}

pub(super) async fn complete_login(
    req: &HttpRequest,
    st: &AppState,
    kind: Kind,
    provider_id: &mut Option<String>,
) -> Result<HttpResponse, LoginError> {
    let cb: Callback = web::Query::<Callback>::from_query(req.query_string())
        .map_err(|_| LoginError::BadRequest)?
        .into_inner();
    let state = cb
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(LoginError::StateMissing)?;
    // Consume first: whatever happens next, this state can never be used again.
    let flow = store::login::consume_flow(&st.pool, &hash(state))
        .await?
        .ok_or(LoginError::StateUnknown)?;
    *provider_id = Some(flow.provider_id.clone());
    if flow.expires_at <= st.clock.now() {
        return Err(LoginError::FlowExpired);
    }
    let browser = req
        .cookie(BROWSER_COOKIE)
        .map(|c| hash(c.value()))
        .unwrap_or_default();
    if !constant_time_eq(browser.as_bytes(), flow.browser_hash.as_bytes()) {
        return Err(LoginError::StateNotThisBrowser);
    }
    if flow.kind != kind.as_str() {
        return Err(LoginError::WrongCallback);
    }
    let provider = st
        .providers
        .get(&flow.provider_id)
        .filter(|p| p.settings.enabled)
        .ok_or(LoginError::ProviderUnavailable)?;
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
    let secrets: FlowSecrets =
        serde_json::from_str(&flow.secrets).map_err(|_| LoginError::Internal)?;
    let identity = provider
        .complete(&secrets, &cb, &redirect_uri(st, kind))
        .await?;

    finish_login(req, st, &provider, identity, &flow.return_to).await
}

/// Roles, constraints, the last-login record, then a fresh SSO session and the redirect to `return_to`.
pub(super) async fn finish_login(
    req: &HttpRequest,
    st: &AppState,
    provider: &crate::providers::Provider,
    identity: crate::providers::Identity,
    return_to: &str,
) -> Result<HttpResponse, LoginError> {
    let s = &provider.settings;
    let external = s.roles.external_values(&identity.claims);
    let roles = s.roles.map(&external);
    // A SAML IdP asserts the mail attribute in a signed assertion: that is its verification.
    let email_verified = if s.kind == Kind::Saml {
        Some(true)
    } else {
        identity.email_verified
    };
    let verdict = s
        .constraints
        .check(identity.email.as_deref(), email_verified, &identity.groups);
    let now = st.clock.now();
    store::login::record_last_login(
        &st.pool,
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
    if verdict.is_ok() {
        store::login::record_login_event(
            &st.pool,
            now,
            Some(provider.id()),
            Some(&identity.subject),
            "ok",
        )
        .await?;
    }
    verdict?;

    // A fresh session id (cookie) at every login; the previous session of this browser ends. When the same
    // user signed in again (prompt=login, max_age), the session keeps its `sid`, and the applications keep
    // their grants; a different user ends the previous user's grants.
    let mut sid = None;
    if let Some(old) = req.cookie(SESSION_COOKIE)
        && let Some(ended) = store::login::delete_session(&st.pool, &hash(old.value())).await?
        && let Some(old_sid) = ended.sid
    {
        if ended.provider_id == provider.id() && ended.subject == identity.subject {
            sid = Some(old_sid);
        } else {
            store::oauth::revoke_session_tokens(&st.pool, &old_sid, now).await?;
        }
    }
    let session_id = random_token();
    let sid = sid.unwrap_or_else(random_token);
    // The upstream OpenID Provider's `auth_time`, when plausible; else now.
    let auth_time = identity
        .claims
        .get("auth_time")
        .and_then(|v| v.as_i64())
        .filter(|t| *t <= now + 60 && *t > now - st.web.session_absolute as i64)
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
        &st.pool,
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
            idle_expires_at: now + st.web.session_idle as i64,
            expires_at: now + st.web.session_absolute as i64,
        },
    )
    .await?;
    tracing::info!(provider = provider.id(), subject = ?identity.subject, roles = ?roles, "login succeeded");
    Ok(redirect(return_to)
        .cookie(session::cookie(
            SESSION_COOKIE,
            session_id,
            "/",
            st.web.secure_cookies,
            Some(st.web.session_absolute),
        ))
        .finish())
}

/// `GET /sso/me`
pub async fn me(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let user = match session::current(&req, &st).await {
        Ok(Some(u)) => u,
        Ok(None) => return redirect("/sso/login?return_to=%2Fsso%2Fme").finish(),
        Err(e) => return LoginError::from(e).page(None),
    };
    let issued = st.tokens.issue(&TokenRequest {
        kind: TokenKind::Access,
        subject: crate::tokens::public_subject(&user.provider_id, &user.subject),
        audience: vec![st.issuer.clone()],
        roles: user.roles.clone(),
        client_id: "sts-me".into(),
        idp: Some(user.provider_id.clone()),
        ttl: None,
        extra: Default::default(),
    });
    let token = match issued {
        Ok(t) => t.token,
        Err(e) => {
            tracing::error!(error = %e, "cannot issue a token for /sso/me");
            return LoginError::Internal.page(Some(&user.provider_id));
        }
    };
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or_default();
    let apps = match store::oauth::session_clients(&st.pool, &user.sid).await {
        Ok(list) => list
            .into_iter()
            .map(|(id, _)| {
                let name = st
                    .clients
                    .get(&id)
                    .map(|c| c.settings.name.clone())
                    .unwrap_or_else(|| id.clone());
                (name, id)
            })
            .collect(),
        Err(e) => return LoginError::from(e).page(Some(&user.provider_id)),
    };
    let logout_token = req
        .cookie(SESSION_COOKIE)
        .map(|c| session::logout_confirmation_token(c.value()))
        .unwrap_or_default();
    let expires = time::OffsetDateTime::from_unix_timestamp(user.expires_at)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    pages::render(
        StatusCode::OK,
        &MePage {
            subject: &user.subject,
            username: &user.identity.username,
            email: user.identity.email.as_deref().unwrap_or("-"),
            display_name: user.identity.display_name.as_deref().unwrap_or("-"),
            provider: &user.provider_id,
            roles: &user.roles,
            groups: &user.identity.groups,
            token: &token,
            claims: &claims,
            session_expires: &expires,
            apps,
            logout_token: &logout_token,
        },
    )
}
