//! The SAML side of the login flow: the ACS (`POST /sso/sso-saml/acs` and the per-provider form), which
//! finds and consumes the login flow named by RelayState (or, when the provider allows it, accepts an
//! unsolicited response) and hands the response to the provider's checks, and the SP metadata.

use super::session::BROWSER_COOKIE;
use crate::providers::oidc::constant_time_eq;
use crate::providers::saml::MAX_RESPONSE_BYTES;
use crate::providers::{FlowSecrets, Kind, ProviderError};
use crate::sso::{hash, valid_return_to};
use crate::store;
use crate::web::AppState;
use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::flow::*;

#[derive(Deserialize)]
struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

/// `POST /sso/sso-saml/acs` and `/sso/sso-saml/{provider}/acs`: the SAML assertion consumer (HTTP-POST).
pub async fn saml_acs(req: HttpRequest, body: web::Bytes, st: web::Data<AppState>) -> HttpResponse {
    let mut provider_id = None;
    match consume_saml(&req, &body, &st, &mut provider_id).await {
        Ok(resp) => resp,
        Err(e) => failed(&st, e, provider_id.as_deref()).await,
    }
}

pub(super) async fn consume_saml(
    req: &HttpRequest,
    body: &[u8],
    st: &AppState,
    provider_id: &mut Option<String>,
) -> Result<HttpResponse, LoginError> {
    // base64 inflates by 4/3; anything bigger than that bound is refused before parsing.
    if body.len() > MAX_RESPONSE_BYTES * 2 {
        return Err(LoginError::BadRequest);
    }
    let form: AcsForm = serde_urlencoded::from_bytes(body).map_err(|_| LoginError::BadRequest)?;
    let relay = form.relay_state.as_deref().filter(|s| !s.is_empty());
    // Consume first: this RelayState (and the request ID it carries) can never be used again.
    let flow = match relay {
        Some(r) => store::login::consume_flow(&st.pool, &hash(r)).await?,
        None => None,
    };
    let path_provider = req.match_info().get("provider");
    let (provider, secrets, return_to) = match flow {
        Some(flow) => {
            *provider_id = Some(flow.provider_id.clone());
            if flow.expires_at <= st.clock.now() {
                return Err(LoginError::FlowExpired);
            }
            if flow.kind != Kind::Saml.as_str()
                || path_provider.is_some_and(|p| p != flow.provider_id)
            {
                return Err(LoginError::WrongCallback);
            }
            // The browser cookie reaches a cross-site POST only as SameSite=None, which needs Secure (https).
            if st.web.secure_cookies {
                let browser = req
                    .cookie(BROWSER_COOKIE)
                    .map(|c| hash(c.value()))
                    .unwrap_or_default();
                if !constant_time_eq(browser.as_bytes(), flow.browser_hash.as_bytes()) {
                    return Err(LoginError::StateNotThisBrowser);
                }
            }
            let provider = st
                .providers
                .get(&flow.provider_id)
                .filter(|p| p.settings.enabled)
                .ok_or(LoginError::ProviderUnavailable)?;
            let secrets: FlowSecrets =
                serde_json::from_str(&flow.secrets).map_err(|_| LoginError::Internal)?;
            (provider, Some(secrets), flow.return_to)
        }
        None => {
            // No login flow of ours: an unsolicited (IdP-initiated) response. Accepted only by a provider
            // that allows it: the one named in the ACS path, or the only such provider.
            let candidates: Vec<_> = st
                .providers
                .enabled()
                .into_iter()
                .filter(|p| p.settings.kind == Kind::Saml && p.allows_idp_initiated())
                .filter(|p| path_provider.is_none_or(|id| p.id() == id))
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
    let saml_response = form
        .saml_response
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or(LoginError::BadRequest)?;
    // Every check of the response, the replay cache included, is the provider's.
    let identity = provider
        .complete_saml_once(&st.pool, st.clock.now(), secrets, saml_response.to_string())
        .await
        .map_err(|e| match e {
            ProviderError::Internal(detail) => {
                tracing::error!(provider = %provider.id(), detail = %detail, "SAML response check failed");
                LoginError::Internal
            }
            other => other.into(),
        })?;
    finish_login(req, st, &provider, identity, &return_to).await
}

/// `GET /sso/sso-saml/metadata` (the first enabled SAML provider) and `/sso/sso-saml/{provider}/metadata`.
pub async fn saml_metadata(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let provider = match req.match_info().get("provider") {
        Some(id) => st
            .providers
            .get(id)
            .filter(|p| p.settings.kind == Kind::Saml),
        None => st.providers.default_saml(),
    };
    let Some(provider) = provider else {
        return LoginError::UnknownProvider.page(None);
    };
    match provider.saml_metadata() {
        Ok(xml) => HttpResponse::Ok()
            .content_type("application/samlmetadata+xml")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"sts-saml-sp-metadata.xml\"",
            ))
            .insert_header((CACHE_CONTROL, "public, max-age=300"))
            .body(xml),
        Err(e) => LoginError::Provider(e).page(Some(provider.id())),
    }
}
