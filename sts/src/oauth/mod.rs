//! The OpenID Provider's domain without HTTP: registered applications (`clients`: settings, redirect-URI
//! matching, secrets and their registry). The endpoints are in `web::oauth`.

pub mod clients;
