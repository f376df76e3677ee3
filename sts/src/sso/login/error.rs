//! Why a login did not complete: [`LoginError`] and its reason codes.

use crate::providers::ProviderError;
use crate::roles::ConstraintError;

/// Why a login did not complete. Each has a stable reason code (logs, pages); `web` maps it to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the request is malformed")]
    BadRequest,
    #[error("`return_to` must be a path on this site")]
    ReturnToRefused,
    #[error("no such identity provider")]
    UnknownProvider,
    #[error("no identity provider is configured")]
    NoProvider,
    #[error("the response from the identity provider has no `state`")]
    StateMissing,
    #[error("this sign-in attempt is unknown or was already used; start again")]
    StateUnknown,
    #[error("this sign-in attempt took too long; start again")]
    FlowExpired,
    #[error("this sign-in attempt was started in another browser")]
    StateNotThisBrowser,
    #[error("the response arrived at the wrong callback")]
    WrongCallback,
    #[error("the identity provider is no longer available")]
    ProviderUnavailable,
    #[error("sign-in was cancelled at the identity provider")]
    Cancelled,
    #[error("the identity provider answered with an error: {0}")]
    IdpError(String),
    #[error("{0}")]
    Provider(#[from] ProviderError),
    #[error("{0}")]
    Constraint(#[from] ConstraintError),
    #[error("internal error")]
    Internal,
}

impl From<serde_json::Error> for LoginError {
    fn from(e: serde_json::Error) -> Self {
        tracing::error!(error = %e, "could not serialise login state");
        LoginError::Internal
    }
}

impl From<sqlx::Error> for LoginError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error during login");
        LoginError::Internal
    }
}

impl LoginError {
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::BadRequest => "bad_request",
            LoginError::ReturnToRefused => "return_to_refused",
            LoginError::UnknownProvider => "unknown_provider",
            LoginError::NoProvider => "no_provider",
            LoginError::StateMissing => "state_missing",
            LoginError::StateUnknown => "state_unknown_or_used",
            LoginError::FlowExpired => "flow_expired",
            LoginError::StateNotThisBrowser => "state_browser_mismatch",
            LoginError::WrongCallback => "wrong_callback",
            LoginError::ProviderUnavailable => "provider_unavailable",
            LoginError::Cancelled => "login_cancelled",
            LoginError::IdpError(_) => "idp_error",
            LoginError::Provider(e) => e.code(),
            LoginError::Constraint(e) => e.code(),
            LoginError::Internal => "internal_error",
        }
    }

    /// Failures that never reached a login flow of ours (made-up provider ids or `state`s, malformed
    /// requests): not recorded, since anyone could fill the dashboard with them.
    pub(super) fn worth_recording(&self) -> bool {
        !matches!(
            self,
            LoginError::UnknownProvider
                | LoginError::BadRequest
                | LoginError::StateMissing
                | LoginError::StateUnknown
                | LoginError::ReturnToRefused
                // Anyone can send identity headers: refused ones from outside the gateway are logged,
                // not written to the database.
                | LoginError::Provider(ProviderError::Gateway("gateway_untrusted_source", _))
        )
    }
}
