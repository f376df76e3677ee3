//! Users' SSO sessions (list, revoke with their refresh tokens), the audit log and API tokens.

use super::*;

impl admin_ui::backend::SessionsAdmin for Backend {
    fn sso_sessions(&self) -> BoxFut<'_, Vec<SsoSessionInfo>> {
        Box::pin(async move {
            store::admin::sso_sessions(&self.pool, self.clock.now())
                .await
                .map_err(db)
        })
    }

    fn revoke_sso_session(&self, actor: &str, sid: &str) -> BoxFut<'_, ()> {
        let (actor, sid) = (actor.to_string(), sid.to_string());
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            if !store::admin::delete_sso_session(&mut *tx, &sid)
                .await
                .map_err(db)?
            {
                return Err(BackendError::NotFound);
            }
            store::oauth::revoke_session_tokens_in(&mut tx, &sid, self.clock.now())
                .await
                .map_err(db)?;
            self.log_in(&mut tx, &actor, "session.revoke", Some(&sid), json!({}))
                .await?;
            tx.commit().await.map_err(db)
        })
    }

    fn audit_log(&self, limit: i64, offset: i64) -> BoxFut<'_, (Vec<AuditEntry>, i64)> {
        Box::pin(async move {
            store::admin::audit_log(&self.pool, limit, offset)
                .await
                .map_err(db)
        })
    }

    fn api_tokens(&self) -> BoxFut<'_, Vec<ApiTokenInfo>> {
        Box::pin(async move { store::admin::api_tokens(&self.pool).await.map_err(db) })
    }

    fn create_api_token(&self, actor: &str, name: &str) -> BoxFut<'_, (String, String)> {
        let (actor, name) = (actor.to_string(), name.to_string());
        Box::pin(async move {
            if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(BackendError::Invalid(
                    "the name must be 1..=64 characters without control characters".into(),
                ));
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            let token = format!("stsadm_{}", crate::sso::random_token());
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            store::admin::insert_api_token(
                &mut *tx,
                &id,
                &name,
                &admin_ui::auth::hash(&token),
                &actor,
                self.clock.now(),
            )
            .await
            .map_err(db)?;
            self.log_in(
                &mut tx,
                &actor,
                "api_token.create",
                Some(&name),
                json!({"id": id}),
            )
            .await?;
            tx.commit().await.map_err(db)?;
            Ok((id, token))
        })
    }

    fn revoke_api_token(&self, actor: &str, id: &str) -> BoxFut<'_, ()> {
        let (actor, id) = (actor.to_string(), id.to_string());
        Box::pin(async move {
            let mut tx = store::begin_write(&self.pool).await.map_err(db)?;
            let Some(name) = store::admin::revoke_api_token(&mut *tx, &id, self.clock.now())
                .await
                .map_err(db)?
            else {
                return Err(BackendError::NotFound);
            };
            self.log_in(
                &mut tx,
                &actor,
                "api_token.revoke",
                Some(&name),
                json!({"id": id}),
            )
            .await?;
            tx.commit().await.map_err(db)
        })
    }
}
