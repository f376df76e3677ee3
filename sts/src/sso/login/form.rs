//! Our own username and password form (LDAP, the credential proxy: the `CredentialsForm` kinds): the
//! page's content, the posted form, and [`Logins::complete_form`], with the attempt limits it counts.

use super::{Logins, SignedIn};
use crate::providers::login::Login;
use crate::providers::{CallbackRoute, ProviderError};
use crate::sso::login::LoginError;
use crate::sso::random_token;
use crate::store;

/// What the username and password form shows.
pub struct FormPage {
    pub state: String,
    pub provider_name: String,
    pub username: String,
    /// Why the previous attempt failed, when it did.
    pub error: Option<String>,
    /// Set this browser-binding cookie first.
    pub new_browser: Option<String>,
}

/// A posted username and password form.
pub struct FormRequest<'a> {
    pub state: &'a str,
    pub username: &'a str,
    pub password: crate::config::Secret,
    pub browser: Option<&'a str>,
    /// The client's address (the TCP peer, or what a trusted proxy says), for the rate limit.
    pub client: &'a str,
    pub old_session: Option<&'a str>,
}

/// The outcome of a posted form: signed in, or the form again with a fresh `state` (a wrong password,
/// or too many attempts: `retry_after` seconds).
pub enum FormOutcome {
    SignedIn(SignedIn),
    Retry {
        page: FormPage,
        retry_after: Option<i64>,
    },
}

/// Sign-in attempts on our own form, counted in the database every replica shares (the admin console's
/// table and windows): per provider and username, per client address, and per provider in all (a cap on
/// the directory work unauthenticated callers can cause).
pub const FORM_MAX_PER_USER: i64 = 10;
pub const FORM_MAX_PER_ADDRESS: i64 = 30;
pub const FORM_MAX_PER_PROVIDER_MINUTE: i64 = 600;
const FORM_WINDOW_SECONDS: i64 = 15 * 60;

fn form_limits(
    provider: &str,
    username: &str,
    client: &str,
) -> Vec<admin_ui::backend::AttemptLimit> {
    use admin_ui::backend::AttemptLimit;
    // The username as typed is anyone's text (NUL, which PostgreSQL's TEXT cannot hold, included): the key
    // holds its SHA-256, lowercased first so that the limit is case-insensitive.
    let user = super::hash(&username.to_lowercase());
    vec![
        AttemptLimit {
            key: format!("login:{provider}:user:{user}"),
            max: FORM_MAX_PER_USER,
            window: FORM_WINDOW_SECONDS,
        },
        AttemptLimit {
            key: format!("login:ip:{}", client.chars().take(64).collect::<String>()),
            max: FORM_MAX_PER_ADDRESS,
            window: FORM_WINDOW_SECONDS,
        },
        AttemptLimit {
            key: format!("login:{provider}:*"),
            max: FORM_MAX_PER_PROVIDER_MINUTE,
            window: 60,
        },
    ]
}

impl Logins<'_> {
    /// A posted username and password form: the flow named by `state` is consumed first (unexpired, of
    /// the form, bound to this browser, its provider enabled); then the attempt is counted (refused, and
    /// the source never asked, beyond the limits); then the provider checks the credentials. A wrong or
    /// unknown username or password gives the form again under a fresh `state`, with one message for
    /// both.
    pub async fn complete_form(
        &self,
        req: FormRequest<'_>,
        provider_id: &mut Option<String>,
    ) -> Result<FormOutcome, LoginError> {
        if req.state.is_empty() {
            return Err(LoginError::StateMissing);
        }
        // Consumed first, whoever posts it: a state tried from another browser is spent.
        let (provider, secrets, return_to) = self
            .resume(
                req.state,
                CallbackRoute::Form,
                req.browser,
                true,
                None,
                provider_id,
            )
            .await?
            .ok_or(LoginError::StateUnknown)?;
        let browser = req.browser.ok_or(LoginError::StateNotThisBrowser)?;
        let Login::Credentials(form) = provider.login()? else {
            return Err(LoginError::WrongCallback);
        };
        let limits = form_limits(provider.id(), req.username, req.client);
        let (flow_provider, flow_secrets, flow_return_to) = (&provider, &secrets, &return_to);
        let again = |error: String| async move {
            let state = random_token();
            self.insert_flow(
                &state,
                browser,
                flow_provider,
                CallbackRoute::Form,
                flow_secrets,
                flow_return_to,
            )
            .await?;
            Ok::<_, LoginError>(FormPage {
                state,
                provider_name: flow_provider.settings.display_name.clone(),
                username: req
                    .username
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(256)
                    .collect(),
                error: Some(error),
                new_browser: None,
            })
        };
        if let Err(wait) = store::attempts::record(self.pool, &limits, self.now).await? {
            tracing::warn!(
                provider = provider.id(),
                client = req.client,
                "form sign-in refused: too many attempts"
            );
            crate::measure::login(provider.id(), "too_many_attempts");
            let minutes = (wait + 59) / 60;
            return Ok(FormOutcome::Retry {
                page: again(format!(
                    "Too many sign-in attempts. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ))
                .await?,
                retry_after: Some(wait),
            });
        }
        match form.authenticate(req.username, &req.password).await {
            Ok(claims) => {
                let identity =
                    crate::providers::identity::identity_from_claims(&provider.settings, claims)?;
                store::attempts::succeeded(self.pool, &limits[0].key, &limits[1].key).await?;
                self.finish(&provider, identity, &return_to, req.old_session)
                    .await
                    .map(FormOutcome::SignedIn)
            }
            Err(ProviderError::InvalidCredentials) => {
                tracing::info!(
                    provider = provider.id(),
                    client = req.client,
                    "form sign-in: wrong username or password"
                );
                crate::measure::login(provider.id(), "invalid_credentials");
                store::login::record_login_event(
                    self.pool,
                    self.now,
                    Some(provider.id()),
                    None,
                    "invalid_credentials",
                )
                .await?;
                Ok(FormOutcome::Retry {
                    page: again("Wrong username or password.".into()).await?,
                    retry_after: None,
                })
            }
            Err(other) => Err(other.into()),
        }
    }
}
