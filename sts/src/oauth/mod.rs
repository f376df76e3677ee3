//! The OpenID Provider's domain without HTTP: registered applications (`clients`: settings, redirect-URI
//! matching, secrets and their registry), client authentication (`client_auth`), the token endpoint's
//! grants (`grants`), our own tokens coming back (`own_tokens`), errors and parameters. The endpoints
//! are in `web::oauth`, which builds an [`Op`] per request and answers what it returns.

pub mod authorize;
pub mod builtin;
pub mod client_auth;
pub mod clients;
pub mod device;
pub mod error;
pub mod exchange;
pub mod grants;
pub mod issue;
pub mod own_tokens;
pub mod params;
pub mod token_redirect;

use crate::keys::KeyRing;
use crate::store::Pool;
use crate::tokens::TokenIssuer;

/// What the OpenID Provider's rules need from the server, for one request.
pub struct Op<'a> {
    pub pool: &'a Pool,
    pub clients: &'a clients::ClientRegistry,
    pub tokens: &'a TokenIssuer,
    pub keys: &'a KeyRing,
    /// Our issuer (the public URL).
    pub issuer: &'a str,
    pub now: i64,
    /// The SSO session's idle timeout (a refresh extends the session by this much).
    pub session_idle: u64,
}
