//! What an SSO session holds about its user (stored with the session, read back by `web::sso::session`
//! and carried into the grants of the applications the user signs in to).

use serde::{Deserialize, Serialize};

/// What the session remembers about the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionIdentity {
    pub username: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub display_name: Option<String>,
    pub groups: Vec<String>,
}

/// The user of a live SSO session.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub subject: String,
    pub provider_id: String,
    pub identity: SessionIdentity,
    pub roles: Vec<String>,
    /// Public id of the session (`sid` claim); never the cookie value.
    pub sid: String,
    pub acr: Option<String>,
    pub amr: Option<Vec<String>>,
    /// When the user authenticated (`auth_time`): the upstream IdP's `auth_time` when it gave one, else
    /// the time of the login at the STS.
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}
