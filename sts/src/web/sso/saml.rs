//! The SAML side of the login flow: the ACS (`POST /sso/sso-saml/acs` and the per-provider form), which
//! finds and consumes the login flow named by RelayState (or, when the provider allows it, accepts an
//! unsolicited response) and hands the response to the provider's checks, and the SP metadata.

use super::session::{BROWSER_COOKIE, SESSION_COOKIE};
use crate::providers::saml::MAX_RESPONSE_BYTES;
use crate::sso::login::AcsRequest;
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

async fn consume_saml(
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
    let browser = req.cookie(BROWSER_COOKIE);
    let old = req.cookie(SESSION_COOKIE);
    let done = logins(st)
        .complete_saml(
            AcsRequest {
                relay_state: form.relay_state.as_deref(),
                saml_response: form.saml_response.as_deref(),
                browser: browser.as_ref().map(|c| c.value()),
                // The browser cookie reaches a cross-site POST only as SameSite=None, which needs
                // Secure (https).
                check_browser: st.web.secure_cookies,
                path_provider: req.match_info().get("provider"),
                old_session: old.as_ref().map(|c| c.value()),
            },
            provider_id,
        )
        .await?;
    Ok(signed_in(st, done))
}

/// `GET /sso/sso-saml/metadata` (the first enabled SAML provider) and `/sso/sso-saml/{provider}/metadata`.
pub async fn saml_metadata(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let provider = match req.match_info().get("provider") {
        Some(id) => st
            .providers
            .get(id)
            .filter(|p| p.settings.kind.needs_sp_credentials()),
        None => st.providers.default_saml(),
    };
    let Some(provider) = provider else {
        return page(&LoginError::UnknownProvider, None);
    };
    match provider.saml().and_then(|s| s.metadata_xml()) {
        Ok(xml) => HttpResponse::Ok()
            .content_type("application/samlmetadata+xml")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"sts-saml-sp-metadata.xml\"",
            ))
            .insert_header((CACHE_CONTROL, "public, max-age=300"))
            .body(xml),
        Err(e) => page(&LoginError::Provider(e), Some(provider.id())),
    }
}
