//! The security token service (STS): delegated login, short-lived signed JWTs, a JWKS for offline
//! verification, and the signing keys behind them.
//!
//! Module map, top layer first (docs/architecture.md draws it; `tests/tests/architecture.rs` checks it):
//! - app: [`cli`] (the `sts` command line), [`startup`] (`Application::build`, the server), [`declared`]
//!   (the configured providers and applications), [`admin`] (the admin console's backend), [`export`].
//! - web: [`web`] (actix: routes, middleware, the login and OpenID Provider handlers, pages).
//! - domain: [`sso`] (login rules), [`oauth`] (applications).
//! - services: [`providers`] (identity providers), [`tokens`] (the RS256 issuer), [`roles`].
//! - [`keys`] (signing keys, master key, JWKS) → [`store`] (SQLite) → [`config`] → leaves ([`telemetry`],
//!   [`text`], [`clock`], [`crypto`]).
//!
//! Outside tests, `unwrap`, `expect`, `panic!`, `unreachable!`, `todo!` and `unimplemented!` are
//! refused by clippy; the few deliberate exceptions carry an `#[allow(..., reason = ...)]`.
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

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod declared;
pub mod export;
pub mod jwe;
pub mod keys;
pub mod measure;
pub mod oauth;
pub mod providers;
pub mod roles;
pub mod sso;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod text;
pub mod tokens;
pub mod web;

pub use config::Config;
pub use startup::Application;
