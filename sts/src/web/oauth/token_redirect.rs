//! `GET|POST /sso/flow/redirect/token`: the encrypted token redirect (`oauth::token_redirect`).
//!
//! - `GET` with the program's parameters: checked, stored, and answered `303` to `?request=ID` (so a
//!   reload does not start another request), with a browser-binding cookie when the browser has none.
//! - `GET ?request=ID`: without an SSO session, a login that comes back here; with one, the confirmation
//!   page (program port, audience, scopes, user). Nothing is issued.
//! - `POST` (`request`, `decision`), same origin only: the tokens, encrypted, to the loopback URI, or
//!   `error=access_denied`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::authorize::fail;
use super::{op, parse_params};
use crate::oauth::authorize::Refusal;
use crate::web::AppState;
use crate::web::sso::session::{self, BROWSER_COOKIE};

#[derive(Template)]
#[template(path = "token_confirm.html")]
struct ConfirmPage<'a> {
    request: &'a str,
    program: &'a str,
    audience: &'a str,
    /// Every audience the program may later ask for with the refresh token.
    reach: &'a str,
    scopes: &'a str,
    user: &'a str,
    provider: &'a str,
    key: &'a str,
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location.to_string()))
        .insert_header((CACHE_CONTROL, "no-store"))
        // The loopback URL carries the encrypted tokens: no Referer from here on.
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish()
}

pub async fn get(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    let p = match parse_params(req.query_string().as_bytes()) {
        Ok(p) => p,
        Err(e) => return fail(&st, Refusal::Page(e.to_string())),
    };
    let result = match p.get("request") {
        Some(id) if p.len() == 1 => show(&req, &st, id).await,
        _ => start(&req, &st, &p).await,
    };
    result.unwrap_or_else(|r| fail(&st, r))
}

async fn start(
    req: &HttpRequest,
    st: &AppState,
    p: &HashMap<String, String>,
) -> Result<HttpResponse, Refusal> {
    let op = op(st);
    let (_, rr) = op.check_token_redirect(p)?;
    // Each request that passes stores a row until it expires: at most 60 per client address (an IPv6
    // /64) in 10 minutes.
    let limit = admin_ui::backend::AttemptLimit {
        key: format!("redirect:ip:{}", super::device::client_addr(req)),
        max: 60,
        window: 600,
    };
    match crate::store::attempts::record(&st.pool, &[limit], st.clock.now()).await {
        Ok(Ok(())) => {}
        Ok(Err(wait)) => {
            return Err(Refusal::Page(format!(
                "too many sign-in requests from this address; try again in {wait} seconds"
            )));
        }
        Err(e) => {
            tracing::error!(error = %e, "database error in the token redirect");
            return Err(Refusal::Internal);
        }
    }
    let browser = req.cookie(BROWSER_COOKIE);
    let (id, new_browser) = op
        .start_token_redirect(rr, browser.as_ref().map(|c| c.value()))
        .await?;
    let mut resp = see_other(&format!("/sso/flow/redirect/token?request={id}"));
    if let Some(b) = new_browser {
        let _ = resp.add_cookie(&session::cookie(
            BROWSER_COOKIE,
            b,
            "/sso",
            st.web.secure_cookies,
            None,
        ));
    }
    Ok(resp)
}

async fn show(req: &HttpRequest, st: &AppState, id: &str) -> Result<HttpResponse, Refusal> {
    let browser = req.cookie(BROWSER_COOKIE);
    let op = op(st);
    let rr = op
        .pending_token_redirect(id, browser.as_ref().map(|c| c.value()))
        .await?;
    let user = session::current(req, st).await.map_err(|e| {
        tracing::error!(error = %e, "database error in the token redirect");
        Refusal::Internal
    })?;
    let client = st
        .clients
        .get(crate::oauth::builtin::BUILTIN_CLIENT_ID)
        .ok_or_else(|| Refusal::Page("the built-in sts-login application is disabled".into()))?;
    let providers = &client.settings.providers;
    let Some(user) = user else {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair(
            "return_to",
            &format!("/sso/flow/redirect/token?request={id}"),
        );
        if let [only] = providers.as_slice() {
            q.append_pair("provider", only);
        }
        return Ok(see_other(&format!("/sso/login?{}", q.finish())));
    };
    if !providers.is_empty() && !providers.contains(&user.provider_id) {
        return Err(Refusal::Page(format!(
            "this application accepts sign-ins through {} only; sign out and sign in with one of them",
            providers.join(", ")
        )));
    }
    let program = match rr.port() {
        Some(port) => format!("listening on this computer, port {port}"),
        None => format!("at {}", rr.redirect_uri),
    };
    let audience = rr
        .audience
        .as_ref()
        .unwrap_or(&client.settings.audience)
        .join(", ");
    let who = user
        .identity
        .display_name
        .clone()
        .unwrap_or_else(|| user.identity.username.clone());
    let mut resp = crate::web::sso::render_page(
        StatusCode::OK,
        &ConfirmPage {
            request: id,
            program: &program,
            audience: &audience,
            reach: &client.settings.audience.join(", "),
            scopes: &rr.scope.join(" "),
            user: &who,
            provider: &user.provider_id,
            key: &rr.key_description(),
        },
    );
    // The form posts here and is answered with a redirect to the program's loopback address: browsers
    // apply `form-action` to that redirect too, and CSP cannot name an IPv6 literal, so this page has no
    // `form-action` (the form's action is fixed and the page holds no other input). The POST's Origin must
    // be ours, which needs a Referrer-Policy that keeps it.
    resp.headers_mut().insert(
        actix_web::http::header::CONTENT_SECURITY_POLICY,
        actix_web::http::header::HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    resp.headers_mut().insert(
        actix_web::http::header::REFERRER_POLICY,
        actix_web::http::header::HeaderValue::from_static("same-origin"),
    );
    Ok(resp)
}

#[derive(serde::Deserialize)]
pub struct Decision {
    request: Option<String>,
    decision: Option<String>,
}

pub async fn post(
    req: HttpRequest,
    st: web::Data<AppState>,
    form: Result<web::Form<Decision>, actix_web::Error>,
) -> HttpResponse {
    let result = async {
        if !super::same_origin(&req, &st) {
            return Err(Refusal::Page(
                "this form was posted from another site".into(),
            ));
        }
        let form = form
            .map_err(|_| Refusal::Page("the form is malformed".into()))?
            .into_inner();
        let (Some(id), Some(decision)) = (form.request, form.decision) else {
            return Err(Refusal::Page("the form is incomplete".into()));
        };
        let approve = match decision.as_str() {
            "allow" => true,
            "deny" => false,
            _ => return Err(Refusal::Page("decision must be allow or deny".into())),
        };
        let user = session::current(&req, &st)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "database error in the token redirect");
                Refusal::Internal
            })?
            .ok_or_else(|| Refusal::Page("your session has ended; run the program again".into()))?;
        let browser = req.cookie(BROWSER_COOKIE);
        let location = op(&st)
            .complete_token_redirect(&id, browser.as_ref().map(|c| c.value()), &user, approve)
            .await?;
        crate::measure::token_issued("token_redirect", crate::oauth::builtin::BUILTIN_CLIENT_ID);
        Ok(see_other(&location))
    }
    .await;
    result.unwrap_or_else(|r| fail(&st, r))
}
