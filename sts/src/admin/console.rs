//! The console itself: sign-in (password and single sign-on), administrators' sessions, API-token checks,
//! audit entries outside a change, the dashboard.

use super::*;

impl admin_ui::backend::ConsoleAdmin for Backend {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    fn admin_password_hash(&self, username: &str) -> BoxFut<'_, Option<String>> {
        let username = username.to_string();
        Box::pin(async move {
            store::admin::admin_password_hash(&self.pool, &username)
                .await
                .map_err(db)
        })
    }

    fn insert_admin_session(&self, s: NewAdminSession) -> BoxFut<'_, ()> {
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            store::admin::insert_session(&mut *tx, &s)
                .await
                .map_err(db)?;
            self.log_in(
                &mut tx,
                &format!("admin:{}", s.username),
                "admin.login",
                None,
                s.audit_details.clone(),
            )
            .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn admin_session(&self, id_hash: &str, idle_until: i64) -> BoxFut<'_, Option<AdminSession>> {
        let id_hash = id_hash.to_string();
        Box::pin(async move {
            Ok(
                store::admin::touch_session(&self.pool, &id_hash, self.clock.now(), idle_until)
                    .await
                    .map_err(db)?
                    .map(|(username, csrf)| AdminSession { username, csrf }),
            )
        })
    }

    fn delete_admin_session(&self, id_hash: &str, logout_actor: Option<&str>) -> BoxFut<'_, ()> {
        let (id_hash, actor) = (id_hash.to_string(), logout_actor.map(str::to_string));
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            store::admin::delete_session(&mut *tx, &id_hash)
                .await
                .map_err(db)?;
            if let Some(actor) = actor {
                self.log_in(&mut tx, &actor, "admin.logout", None, json!({}))
                    .await?;
            }
            tx.commit().await.map_err(db)
        })
    }

    fn api_token(&self, token_hash: &str) -> BoxFut<'_, Option<String>> {
        let h = token_hash.to_string();
        Box::pin(async move {
            store::admin::use_api_token(&self.pool, &h, self.clock.now())
                .await
                .map_err(db)
        })
    }

    fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) -> BoxFut<'_, ()> {
        let (actor, action, target) = (
            actor.to_string(),
            action.to_string(),
            target.map(str::to_string),
        );
        Box::pin(async move { self.log(&actor, &action, target.as_deref(), details).await })
    }

    fn record_sign_in_attempt(
        &self,
        limits: Vec<admin_ui::backend::AttemptLimit>,
        now: i64,
    ) -> BoxFut<'_, Result<(), i64>> {
        Box::pin(async move {
            store::attempts::record(&self.pool, &limits, now)
                .await
                .map_err(db)
        })
    }

    fn sign_in_succeeded(&self, forget: String, give_back: String) -> BoxFut<'_, ()> {
        Box::pin(async move {
            store::attempts::succeeded(&self.pool, &forget, &give_back)
                .await
                .map_err(db)
        })
    }

    fn dashboard(&self) -> BoxFut<'_, Dashboard> {
        Box::pin(async move {
            let now = self.clock.now();
            let snap = self.ring.current();
            let active_kid = snap.active.as_ref().map(|k| k.kid.clone());
            let keys = self
                .keys
                .list()
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            let active = keys.iter().find(|k| Some(&k.kid) == active_kid.as_ref());
            let (providers, clients, sso_sessions) =
                store::admin::counts(&self.pool, now).await.map_err(db)?;
            Ok(Dashboard {
                database_ok: store::ping(&self.pool).await,
                active_key_source: active.map(|k| k.source.clone()),
                active_key_created_at: active.map(|k| k.created_at),
                active_kid,
                providers,
                clients,
                sso_sessions,
                recent_logins: store::admin::recent_logins(&self.pool).await.map_err(db)?,
                recent_events: store::login::recent_login_events(&self.pool, 20)
                    .await
                    .map_err(db)?,
            })
        })
    }

    fn sso_enabled(&self) -> bool {
        !self.sso_roles.is_empty()
    }

    fn sso_admin(&self, sso_session_cookie: &str) -> BoxFut<'_, SsoAdmin> {
        let h = crate::sso::hash(sso_session_cookie);
        Box::pin(async move {
            if self.sso_roles.is_empty() {
                return Err(BackendError::Invalid(
                    "single sign-on to the console is not enabled (admin.sso_roles)".into(),
                ));
            }
            let now = self.clock.now();
            let Some(s) = store::login::touch_session(&self.pool, &h, now, now + self.session_idle)
                .await
                .map_err(db)?
            else {
                return Err(BackendError::Invalid("no single sign-on session".into()));
            };
            let roles: Vec<String> = serde_json::from_str(&s.roles).unwrap_or_default();
            let sub = crate::tokens::public_subject(&s.provider_id, &s.subject);
            if !roles.iter().any(|r| self.sso_roles.contains(r)) {
                self.log(
                    &format!("sso:{sub}"),
                    "admin.login_refused",
                    None,
                    json!({"reason": "no admin role"}),
                )
                .await?;
                return Err(BackendError::Invalid(format!(
                    "{sub} does not hold an admin role ({})",
                    self.sso_roles.join(", ")
                )));
            }
            let sid = s
                .sid
                .ok_or_else(|| BackendError::Invalid("no single sign-on session".into()))?;
            Ok(SsoAdmin {
                name: format!("sso:{sub}"),
                sid,
                expires_at: s.expires_at,
            })
        })
    }
}
