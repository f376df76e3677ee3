//! The security token service (STS): delegated login, short-lived signed JWTs, a JWKS for offline
//! verification, and the signing keys behind them.
//!
//! Module map (see docs/architecture.md):
//! - [`config`]: typed configuration, defaults < `conf/sts.toml` < `STS_*` environment.
//! - [`store`]: the SQLite pool and migrations; one file per aggregate.
//! - [`keys`]: signing keys (generate, import PKCS#12, encrypt at rest, rotate, JWKS).
//! - [`tokens`]: the token issuer (RS256 JWTs signed through aws-lc-rs).
//! - [`http`]: routes, request ids, security headers.
//! - [`sso`]: browser login through identity providers, the SSO session.
//! - [`oauth`]: the STS as OpenID Provider / OAuth 2.0 server for applications and machines.
//! - [`startup`]: `Application::build` / `run_until_stopped` (binds first, so port 0 works).
//! - [`admin`]: the server side of the admin console and API (`admin-ui` crate).
//! - [`cli`]: the `sts` command line.

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod declared;
pub mod export;
pub mod keys;
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
