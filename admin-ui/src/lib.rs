//! The STS admin console (`/admin`, askama templates, no JavaScript framework) and admin JSON API
//! (`/admin/api/v1`, OpenAPI document at `/admin/api/openapi.json`).
//!
//! This crate does not depend on the server: it defines [`AdminBackend`], the operations it needs, and
//! `sts` implements it. Authentication, sessions, CSRF and rate limiting live here ([`auth`]).
//!
//! Outside tests, `unwrap`, `expect`, `panic!`, `unreachable!`, `todo!` and `unimplemented!` are
//! refused by clippy; a deliberate exception carries an `#[allow(..., reason = ...)]`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

/// An error type that is a refusal with its reason (which names the key, element or field), made by
/// `refusal!(/// doc \n Name)`: `Display` is the reason; built from a `String` or a `&str`.
macro_rules! refusal {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{0}")]
        pub struct $name(pub String);

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }
    };
}
pub(crate) use refusal;

pub mod api;
pub mod auth;
pub mod backend;
pub mod pages;
pub mod presets;
mod upload;

use std::sync::Arc;

use actix_web::web;

pub use backend::AdminBackend;

/// The client's address as the server resolved it (the TCP peer, or behind a trusted proxy the address
/// the proxies name), put into each request's extensions; the sign-in limit counts attempts by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Mount the console and the API. `backend` is the server's implementation; `limiter` must be one per
/// process (not per worker), so create it once outside the app factory.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    backend: Arc<dyn AdminBackend>,
    limiter: Arc<auth::RateLimiter>,
) {
    let data: web::Data<dyn AdminBackend> = web::Data::from(backend);
    let limiter = web::Data::from(limiter);
    cfg.app_data(data.clone()).app_data(limiter.clone());
    cfg.configure(api::routes);
    let form = || web::PayloadConfig::new(pages::FORM_LIMIT);
    cfg.service(
        web::scope("/admin")
            .app_data(data)
            .app_data(limiter)
            .app_data(form())
            .route("", web::get().to(pages::dashboard))
            .route("/", web::get().to(pages::dashboard))
            .route("/login", web::get().to(pages::login_form))
            .route("/login", web::post().to(pages::login))
            .route("/logout", web::post().to(pages::logout))
            .route("/sso", web::get().to(pages::sso))
            .route("/keys", web::get().to(pages::keys))
            .route("/keys/regenerate", web::post().to(pages::regenerate_key))
            .route("/keys/rotate", web::post().to(pages::rotate_key))
            .route("/keys/import", web::post().to(pages::import_key))
            .route("/keys/saml-import", web::post().to(pages::import_saml_key))
            .route("/sessions", web::get().to(pages::sessions))
            .route(
                "/sessions/{sid}/revoke",
                web::post().to(pages::revoke_session),
            )
            .route("/applications", web::get().to(pages::applications))
            .route("/applications", web::post().to(pages::create_application))
            .route("/applications/{id}", web::get().to(pages::application))
            .route(
                "/applications/{id}",
                web::post().to(pages::update_application),
            )
            .route(
                "/applications/{id}/secret",
                web::post().to(pages::rotate_secret),
            )
            .route(
                "/applications/{id}/{action}",
                web::post().to(pages::set_enabled),
            )
            .route("/providers", web::get().to(pages::providers))
            .service(
                web::resource("/providers")
                    .app_data(web::PayloadConfig::new(pages::PROVIDER_FORM_LIMIT))
                    .route(web::post().to(pages::save_provider)),
            )
            .route("/providers/{id}", web::get().to(pages::provider))
            .service(
                web::resource("/providers/{id}")
                    .app_data(web::PayloadConfig::new(pages::PROVIDER_FORM_LIMIT))
                    .route(web::post().to(pages::save_provider)),
            )
            .route(
                "/providers/{id}/{action}",
                web::post().to(pages::provider_action),
            )
            .route("/tokens", web::get().to(pages::tokens))
            .route("/tokens", web::post().to(pages::create_token))
            .route("/tokens/{id}/revoke", web::post().to(pages::revoke_token))
            .route("/audit", web::get().to(pages::audit))
            .route("/static/admin.css", web::get().to(pages::css))
            .route("/static/admin.js", web::get().to(pages::js)),
    );
}

/// Every state-changing console route (method, path pattern), for tests that check CSRF and sessions.
pub const STATE_CHANGING_PAGES: &[&str] = &[
    "/admin/logout",
    "/admin/keys/regenerate",
    "/admin/keys/rotate",
    "/admin/keys/import",
    "/admin/keys/saml-import",
    "/admin/sessions/{sid}/revoke",
    "/admin/applications",
    "/admin/applications/{id}",
    "/admin/applications/{id}/secret",
    "/admin/applications/{id}/disable",
    "/admin/applications/{id}/enable",
    "/admin/tokens",
    "/admin/tokens/{id}/revoke",
    "/admin/providers",
    "/admin/providers/{provider}",
    "/admin/providers/{provider}/enable",
    "/admin/providers/{provider}/disable",
    "/admin/providers/{provider}/preview",
];
