//! Login start, callbacks, `/sso/me` and `/sso/logout`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::pages::{self, ChooserEntry, ChooserPage, LoginFormPage, MePage};
use super::session::{self, BROWSER_COOKIE, SESSION_COOKIE};
use crate::providers::{Callback, CallbackRoute, ProviderError};
pub use crate::sso::login::LoginError;
use crate::sso::login::{
    FormOutcome, FormPage, FormRequest, Logins, SignedIn, StartRequest, Started,
};
use crate::store;
use crate::tokens::{TokenKind, TokenRequest};
use crate::web::AppState;

/// Login errors as HTTP: the status, a title, and the error page (the reason code is the domain's).
impl actix_web::ResponseError for LoginError {
    fn status_code(&self) -> StatusCode {
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
            LoginError::Provider(ProviderError::Directory(code, _))
                if code.ends_with("_timeout") =>
            {
                StatusCode::GATEWAY_TIMEOUT
            }
            LoginError::Provider(ProviderError::Directory(..)) => StatusCode::BAD_GATEWAY,
            LoginError::Provider(ProviderError::Gateway("gateway_no_user", _)) => {
                StatusCode::UNAUTHORIZED
            }
            LoginError::Provider(ProviderError::Gateway("gateway_invalid_header", _)) => {
                StatusCode::BAD_REQUEST
            }
            LoginError::Provider(ProviderError::Gateway(..)) => StatusCode::FORBIDDEN,
            LoginError::Provider(_) => StatusCode::UNAUTHORIZED,
            LoginError::Constraint(_) => StatusCode::FORBIDDEN,
            LoginError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Why a decryption failed (key unwrap, padding, UTF-8, structure) stays in the log: told to the
        // sender, the difference would be an oracle for whoever can get a modified ciphertext signed.
        let message = match self {
            LoginError::Provider(ProviderError::Saml("saml_decrypt", _)) => {
                "the SAML response was refused: the encrypted assertion could not be decrypted (the reason is in the STS log)"
                    .to_string()
            }
            other => other.to_string(),
        };
        pages::error(self.status_code(), title(self), &message, self.code())
    }
}

fn title(e: &LoginError) -> &'static str {
    match e {
        LoginError::Constraint(_) => "Access denied",
        LoginError::Cancelled => "Sign-in cancelled",
        LoginError::Provider(
            ProviderError::Outbound(_) | ProviderError::Discovery(_) | ProviderError::Directory(..),
        )
        | LoginError::IdpError(_) => "The identity provider is not answering correctly",
        _ => "Sign-in failed",
    }
}

/// The error page of a failed login, logged with the provider id.
pub(super) fn page(e: &LoginError, provider: Option<&str>) -> HttpResponse {
    tracing::warn!(provider = ?provider.unwrap_or("-"), reason = e.code(), detail = ?e.to_string(), "login failed");
    actix_web::ResponseError::error_response(e)
}

/// The login service for this request.
pub(super) fn logins(st: &AppState) -> Logins<'_> {
    Logins {
        pool: &st.pool,
        providers: &st.providers,
        policy: &st.web.login,
        now: st.clock.now(),
    }
}

/// The error page, after recording the failure for the dashboard.
pub(super) async fn failed(st: &AppState, e: LoginError, provider: Option<&str>) -> HttpResponse {
    let known = logins(st).record_failure(&e, provider).await;
    page(&e, known.as_deref())
}

pub(super) fn redirect(location: &str) -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::SeeOther();
    r.insert_header((LOCATION, location.to_string()))
        .insert_header((CACHE_CONTROL, "no-store"));
    r
}

/// The redirect to `return_to` with the new session's cookie.
pub(super) fn signed_in(st: &AppState, done: SignedIn) -> HttpResponse {
    redirect(&done.return_to)
        .cookie(session::cookie(
            SESSION_COOKIE,
            done.session_id,
            "/",
            st.web.secure_cookies,
            Some(st.web.login.session_absolute),
        ))
        .finish()
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
        Err(_) => return page(&LoginError::BadRequest, None),
    };
    match start_login(&req, &st, &q).await {
        Ok(resp) => resp,
        Err(e) => failed(&st, e, q.provider.as_deref()).await,
    }
}

pub(super) async fn start_login(
    req: &HttpRequest,
    st: &AppState,
    q: &StartQuery,
) -> Result<HttpResponse, LoginError> {
    let browser = req.cookie(BROWSER_COOKIE);
    let old = req.cookie(SESSION_COOKIE);
    // A trusted gateway's identity is read from the request: its headers (names in lower case; a value
    // that is not visible ASCII or UTF-8 text is left out) and who sent it.
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(n, v)| {
            Some((
                n.as_str().to_ascii_lowercase(),
                std::str::from_utf8(v.as_bytes()).ok()?.to_string(),
            ))
        })
        .collect();
    let peer = req.peer_addr().map(|a| a.ip());
    let client = req
        .extensions()
        .get::<admin_ui::ClientAddr>()
        .map(|c| c.0)
        .or(peer);
    let facts = match (peer, client) {
        (Some(peer), Some(client)) => Some(crate::providers::login::RequestFacts {
            peer,
            client,
            headers: &headers,
        }),
        _ => None,
    };
    let started = logins(st)
        .start(StartRequest {
            provider: q.provider.as_deref(),
            return_to: q.return_to.as_deref(),
            login_hint: q.login_hint.as_deref(),
            force: q.force.as_deref() == Some("1"),
            browser: browser.as_ref().map(|c| c.value()),
            old_session: old.as_ref().map(|c| c.value()),
            facts,
        })
        .await?;
    match started {
        Started::Choose {
            providers,
            return_to,
        } => {
            let entries = providers
                .into_iter()
                .map(|(id, name)| ChooserEntry {
                    name,
                    href: {
                        let mut ser = url::form_urlencoded::Serializer::new(String::new());
                        ser.append_pair("provider", &id)
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
            Ok(pages::render(
                StatusCode::OK,
                &ChooserPage { providers: entries },
            ))
        }
        Started::Redirect { url, new_browser } => {
            let mut resp = redirect(&url);
            if let Some(browser_id) = new_browser {
                resp.cookie(browser_cookie(st, browser_id));
            }
            Ok(resp.finish())
        }
        Started::Form(page) => Ok(form_page(st, StatusCode::OK, page, None)),
        Started::SignedIn(done) => Ok(signed_in(st, done)),
    }
}

fn browser_cookie(st: &AppState, browser_id: String) -> actix_web::cookie::Cookie<'static> {
    session::cookie(
        BROWSER_COOKIE,
        browser_id,
        "/sso",
        st.web.secure_cookies,
        None,
    )
}

/// The username and password form of a flow (with the browser-binding cookie when it is new).
fn form_page(
    st: &AppState,
    status: StatusCode,
    page: FormPage,
    retry_after: Option<i64>,
) -> HttpResponse {
    let mut resp = pages::render(
        status,
        &LoginFormPage {
            provider: &page.provider_name,
            state: &page.state,
            username: &page.username,
            error: page.error.as_deref(),
        },
    );
    if let Some(browser_id) = page.new_browser {
        let _ = resp.add_cookie(&browser_cookie(st, browser_id));
    }
    // The form's POST must carry our Origin (checked in `form_login`); under the site-wide
    // `no-referrer` a browser sends `Origin: null` instead.
    resp.headers_mut().insert(
        actix_web::http::header::REFERRER_POLICY,
        actix_web::http::header::HeaderValue::from_static("same-origin"),
    );
    if let Some(wait) = retry_after
        && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&wait.to_string())
    {
        resp.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, v);
    }
    resp
}

#[derive(Deserialize)]
pub struct FormLogin {
    state: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// `POST /sso/login/form`: our username and password form. The `state` in the form is the flow's,
/// single use and bound to this browser's cookie, so it is also the form's CSRF token; a cross-origin
/// `Origin` is refused before anything else.
pub async fn form_login(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: Result<web::Form<FormLogin>, actix_web::Error>,
) -> HttpResponse {
    let mut provider_id = None;
    let result = async {
        if let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) {
            let ours = url::Url::parse(&st.issuer)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            if origin.to_str().ok() != Some(ours.as_str()) {
                return Err(LoginError::BadRequest);
            }
        }
        let form = form.map_err(|_| LoginError::BadRequest)?.into_inner();
        let browser = req.cookie(BROWSER_COOKIE);
        let old = req.cookie(SESSION_COOKIE);
        let client = req
            .extensions()
            .get::<admin_ui::ClientAddr>()
            .map(|c| c.0.to_string())
            .unwrap_or_else(|| "-".into());
        logins(&st)
            .complete_form(
                FormRequest {
                    state: form.state.as_deref().unwrap_or_default(),
                    username: form.username.as_deref().unwrap_or_default(),
                    password: crate::config::Secret::new(form.password.unwrap_or_default()),
                    browser: browser.as_ref().map(|c| c.value()),
                    client: &client,
                    old_session: old.as_ref().map(|c| c.value()),
                },
                &mut provider_id,
            )
            .await
    }
    .await;
    match result {
        Ok(FormOutcome::SignedIn(done)) => signed_in(&st, done),
        Ok(FormOutcome::Retry { page, retry_after }) => {
            let status = if retry_after.is_some() {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            form_page(&st, status, page, retry_after)
        }
        Err(e) => failed(&st, e, provider_id.as_deref()).await,
    }
}

/// `GET /sso/sso-openid/openid-login`
pub async fn oidc_callback(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    callback(req, st, CallbackRoute::OpenId).await
}

/// `GET /sso/sso-oauth/oauth-login`
pub async fn oauth_callback(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    callback(req, st, CallbackRoute::OAuth).await
}

async fn callback(req: HttpRequest, st: web::Data<AppState>, route: CallbackRoute) -> HttpResponse {
    let mut provider_id = None;
    let result = match web::Query::<Callback>::from_query(req.query_string()) {
        Err(_) => Err(LoginError::BadRequest),
        Ok(cb) => {
            let browser = req.cookie(BROWSER_COOKIE);
            let old = req.cookie(SESSION_COOKIE);
            logins(&st)
                .complete_redirect(
                    &cb,
                    route,
                    browser.as_ref().map(|c| c.value()),
                    old.as_ref().map(|c| c.value()),
                    &mut provider_id,
                )
                .await
        }
    };
    match result {
        Ok(done) => signed_in(&st, done),
        Err(e) => failed(&st, e, provider_id.as_deref()).await,
    }
}
/// Headers whose values `/sso/echo` never shows.
const ECHO_REDACTED: &[&str] = &["cookie", "authorization", "proxy-authorization"];

/// `GET /sso/echo`, only with `server.echo = true` (else the JSON 404 of an unknown path): what reaches
/// the STS from a gateway, for an admin setting one up. The TCP peer, the client address as
/// `server.trusted_proxies` resolve it, and the request headers in order, with the values of `Cookie`,
/// `Authorization`, `Proxy-Authorization` and every header a `type = "header"` provider takes its shared
/// secret from replaced by `<redacted>`. Never cached.
pub async fn echo(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    if !st.web.echo {
        return HttpResponse::NotFound().json(serde_json::json!({"error": "not_found"}));
    }
    let secret_headers: Vec<String> = st
        .providers
        .all()
        .iter()
        .filter_map(|p| {
            p.settings
                .kind
                .as_any()
                .downcast_ref::<crate::providers::header::HeaderSettings>()
                .and_then(|h| h.shared_secret_header.clone())
        })
        .collect();
    let headers: Vec<serde_json::Value> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            let name = n.as_str().to_ascii_lowercase();
            let value = if ECHO_REDACTED.contains(&name.as_str()) || secret_headers.contains(&name)
            {
                "<redacted>".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            };
            serde_json::json!([name, value])
        })
        .collect();
    let client = req
        .extensions()
        .get::<admin_ui::ClientAddr>()
        .map(|c| c.0.to_string());
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "peer": req.peer_addr().map(|a| a.ip().to_string()),
            "client": client,
            "method": req.method().as_str(),
            "path": req.path(),
            "headers": headers,
        }))
}

/// `GET /sso/me`
pub async fn me(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let user = match session::current(&req, &st).await {
        Ok(Some(u)) => u,
        Ok(None) => return redirect("/sso/login?return_to=%2Fsso%2Fme").finish(),
        Err(e) => return page(&LoginError::from(e), None),
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
            return page(&LoginError::Internal, Some(&user.provider_id));
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
        Err(e) => return page(&LoginError::from(e), Some(&user.provider_id)),
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
