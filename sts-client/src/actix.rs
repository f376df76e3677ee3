//! actix-web integration: the [`Authenticated`] extractor and the [`RequireRole`] guard (middleware).
//!
//! Register the verifier as app data: `App::new().app_data(web::Data::new(verifier))`. A request without a
//! valid `Authorization: Bearer` token gets 401 with `WWW-Authenticate: Bearer ...` (RFC 6750; `error=
//! "invalid_token"` when a token was given); a valid token without the role gets 403
//! (`error="insufficient_scope"`).

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::{Claims, Error, Verifier};

/// The verified claims of the request's bearer token.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl std::ops::Deref for Authenticated {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

/// An authentication or authorisation failure, answered per RFC 6750.
#[derive(Debug)]
pub enum AuthError {
    /// No bearer token.
    Missing,
    /// The token was refused.
    Refused(Error),
    /// A valid token without the required role.
    Forbidden(String),
    /// No `Verifier` registered as app data.
    NotConfigured,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Missing => write!(f, "a bearer token is required"),
            AuthError::Refused(e) => write!(f, "{e}"),
            AuthError::Forbidden(r) => write!(f, "the role {r} is required"),
            AuthError::NotConfigured => write!(f, "no token verifier is configured"),
        }
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::Missing => StatusCode::UNAUTHORIZED,
            AuthError::Refused(Error::KeysUnavailable(_) | Error::Config(_))
            | AuthError::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::Refused(_) => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Only RFC 6750 codes go in the challenge; "temporarily_unavailable" (503) only in the body.
        let (challenge, code) = match self {
            AuthError::Missing => ("Bearer realm=\"api\"".to_string(), None),
            AuthError::Refused(e) if e.oauth_code() == "invalid_token" => (
                "Bearer realm=\"api\", error=\"invalid_token\"".to_string(),
                Some("invalid_token"),
            ),
            AuthError::Refused(e) => ("Bearer realm=\"api\"".to_string(), Some(e.oauth_code())),
            AuthError::Forbidden(_) => (
                "Bearer realm=\"api\", error=\"insufficient_scope\"".to_string(),
                Some("insufficient_scope"),
            ),
            AuthError::NotConfigured => (
                "Bearer realm=\"api\"".to_string(),
                Some("temporarily_unavailable"),
            ),
        };
        if let AuthError::Refused(e) = self {
            tracing::info!(reason = %e, "bearer token refused");
        }
        let mut r = HttpResponse::build(self.status_code());
        r.insert_header((WWW_AUTHENTICATE, challenge));
        match code {
            Some(c) => r.json(serde_json::json!({"error": c})),
            None => r.finish(),
        }
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

async fn authenticate(req: HttpRequest) -> Result<Authenticated, AuthError> {
    if let Some(a) = req.extensions().get::<Authenticated>() {
        return Ok(a.clone());
    }
    let verifier = req
        .app_data::<web::Data<Verifier>>()
        .map(|v| v.get_ref().clone())
        .ok_or(AuthError::NotConfigured)?;
    let token = bearer(&req).ok_or(AuthError::Missing)?;
    let claims = verifier.verify(&token).await.map_err(AuthError::Refused)?;
    let a = Authenticated(claims);
    req.extensions_mut().insert(a.clone());
    Ok(a)
}

impl FromRequest for Authenticated {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

/// Middleware: only requests whose bearer token verifies and holds `role` reach the service.
/// `App::new().service(web::scope("/admin").wrap(RequireRole::new("admin")).route(...))`
#[derive(Clone)]
pub struct RequireRole(Rc<String>);

impl RequireRole {
    pub fn new(role: impl Into<String>) -> Self {
        Self(Rc::new(role.into()))
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequireRole
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireRoleService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireRoleService {
            service: Rc::new(service),
            role: self.0.clone(),
        }))
    }
}

pub struct RequireRoleService<S> {
    service: Rc<S>,
    role: Rc<String>,
}

impl<S, B> Service<ServiceRequest> for RequireRoleService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let role = self.role.clone();
        Box::pin(async move {
            let outcome = authenticate(req.request().clone()).await.and_then(|a| {
                if a.has_role(&role) {
                    Ok(())
                } else {
                    Err(AuthError::Forbidden(role.to_string()))
                }
            });
            match outcome {
                Ok(()) => service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body),
                Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
            }
        })
    }
}
