//! The OpenID Provider's errors (RFC 6749 section 5.2, RFC 7009, RFC 7662): an error code and a
//! description. `web::oauth` answers them as JSON with the status the code implies.

/// An RFC 6749 / OIDC error.
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    pub error: &'static str,
    /// Escaped and bounded (`text::display_safe`): descriptions may quote client input.
    pub description: String,
    /// The client tried HTTP Basic authentication (answered with `WWW-Authenticate: Basic`).
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: crate::text::display_safe(
                &description.into(),
                crate::text::MAX_DISPLAY_CHARS,
            ),
            basic_challenge: false,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }
    /// Our failure, not the client's: the detail is logged, the client reads "internal error".
    pub fn internal() -> Self {
        Self::new("server_error", "internal error")
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error in an OAuth endpoint");
        OAuthError::internal()
    }
}
