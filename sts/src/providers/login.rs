//! What a provider asks of the user, as capabilities over one [`Identity`](super::Identity) (the way
//! Dex's connectors work). A kind implements one of these traits and its `open` returns it as a
//! [`Login`]; the web layer drives each capability the same way for every kind that has it:
//!
//! - [`RedirectLogin`]: send the browser to the IdP, take the code back at a callback (OIDC, OAuth 2.0).
//! - [`SamlPost`]: send an AuthnRequest, take a signed SAMLResponse back by HTTP POST (SAML 2.0).
//! - [`CredentialsForm`]: a username and password typed into our own form, checked by the source and
//!   never stored (LDAP / Active Directory, a credential proxy).
//! - [`RequestIdentity`]: the identity a trusted front end has already established, read from the
//!   request (a trusted gateway).
//!
//! Each method returns the claims (a JSON object) the identity is built from; the claim paths, roles and
//! constraints are then applied the same way for every kind.

use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::{Callback, FlowSecrets, ProviderError};
use crate::config::Secret;

/// A provider opened for logins: its one capability.
#[derive(Clone)]
pub enum Login {
    Redirect(Arc<dyn RedirectLogin>),
    SamlPost(Arc<dyn SamlPost>),
    Credentials(Arc<dyn CredentialsForm>),
    Request(Arc<dyn RequestIdentity>),
}

impl Login {
    /// The callback a login flow of this provider must come back to (recorded with the flow).
    pub fn callback(&self) -> CallbackRoute {
        match self {
            Login::Redirect(r) => r.callback(),
            Login::SamlPost(_) => CallbackRoute::SamlAcs,
            Login::Credentials(_) => CallbackRoute::Form,
            Login::Request(_) => CallbackRoute::None,
        }
    }
}

/// The callback endpoints of the web layer. The name is what a login flow records, so a response that
/// arrives at another callback is refused (`wrong_callback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackRoute {
    /// `/sso/sso-openid/openid-login`
    OpenId,
    /// `/sso/sso-oauth/oauth-login`
    OAuth,
    /// `/sso/sso-saml/acs` (or the provider's own ACS)
    SamlAcs,
    /// `POST /sso/login/form`: our own username and password form.
    Form,
    /// No browser round trip.
    None,
}

impl CallbackRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackRoute::OpenId => "oidc",
            CallbackRoute::OAuth => "oauth2",
            CallbackRoute::SamlAcs => "saml",
            CallbackRoute::Form => "form",
            CallbackRoute::None => "none",
        }
    }
}

/// The start of a redirect login.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizeRequest<'a> {
    /// The single-use `state` (bound to the browser by the caller).
    pub state: &'a str,
    pub redirect_uri: &'a str,
    pub login_hint: Option<&'a str>,
    /// An application asked for a fresh authentication (prompt=login, max_age): ask upstream too.
    pub force: bool,
}

/// Authorization code flow towards an IdP.
pub trait RedirectLogin: Send + Sync {
    fn callback(&self) -> CallbackRoute;
    /// Where to send the browser.
    fn authorization_url<'a>(
        &'a self,
        req: AuthorizeRequest<'a>,
        secrets: &'a FlowSecrets,
    ) -> BoxFuture<'a, Result<String, ProviderError>>;
    /// Exchange the code of a callback (whose `state` the caller has consumed) and check what comes back.
    fn complete<'a>(
        &'a self,
        secrets: &'a FlowSecrets,
        callback: &'a Callback,
        redirect_uri: &'a str,
    ) -> BoxFuture<'a, Result<Value, ProviderError>>;
}

/// A checked SAML response: its claims, the assertion ID, and until when that ID must be remembered.
pub struct SamlAssertion {
    pub claims: Value,
    pub assertion_id: String,
    pub keep_until: i64,
}

/// SAML 2.0 Web Browser SSO: HTTP-Redirect AuthnRequest, HTTP-POST response.
pub trait SamlPost: Send + Sync {
    /// The IdP-bound redirect carrying a (signed) AuthnRequest; returns (url, request id).
    fn authn_request_url(
        &self,
        relay_state: &str,
        force: bool,
    ) -> Result<(String, String), ProviderError>;
    /// Every check of a SAMLResponse except the single use of its assertion ID (the provider's
    /// `complete_saml_once` does that). CPU work: run it on the blocking pool.
    fn validate(
        &self,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> Result<SamlAssertion, ProviderError>;
    /// Install (or replace, on refresh) the IdP metadata; refused unless usable.
    fn set_idp_metadata(&self, xml: &str) -> Result<(), ProviderError>;
    /// Our SP metadata for this provider.
    fn metadata_xml(&self) -> Result<String, ProviderError>;
    /// The configured clock skew in seconds.
    fn clock_skew(&self) -> i64;
    /// Whether unsolicited (IdP-initiated) responses are accepted.
    fn allows_idp_initiated(&self) -> bool;
}

/// A username and password checked by the identity source (never stored, never logged).
pub trait CredentialsForm: Send + Sync {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Value, ProviderError>>;
}

/// What a trusted front end tells us about a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The TCP peer (the front end itself, not a forwarded address).
    pub peer: IpAddr,
    /// The client address as `server.trusted_proxies` resolve it (the peer when it is not a trusted
    /// proxy): a gateway behind a load balancer.
    pub client: IpAddr,
    /// The request headers, names in lower case.
    pub headers: &'a [(String, String)],
}

/// An identity established by a trusted front end, read from the request.
pub trait RequestIdentity: Send + Sync {
    fn identify(&self, request: RequestFacts<'_>) -> Result<Value, ProviderError>;
}
