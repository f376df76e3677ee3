//! SQL for the admin console: administrators, admin sessions, API tokens, the audit log, and the reads
//! behind the dashboard and the sessions page.

use sqlx::Row;

use super::Pool;

pub async fn admin_password_hash(
    pool: &Pool,
    username: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT password_hash FROM admin_users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(pool)
    .await?
    .flatten())
}

/// Create an administrator, or (with `replace`) set the password of an existing one. Returns false when
/// the administrator exists and `replace` is false, or does not exist and `replace` is true.
pub async fn upsert_admin(
    pool: &mut sqlx::AnyConnection,
    username: &str,
    password_hash: &str,
    now: i64,
    replace: bool,
) -> Result<bool, sqlx::Error> {
    let n = if replace {
        sqlx::query(
            "UPDATE admin_users SET password_hash = $1, updated_at = $2 WHERE username = $3",
        )
        .bind(password_hash)
        .bind(now)
        .bind(username)
        .execute(&mut *pool)
        .await?
        .rows_affected()
    } else {
        sqlx::query(
            "INSERT INTO admin_users (username, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now)
        .bind(now)
        .execute(&mut *pool)
        .await?
        .rows_affected()
    };
    if replace {
        // A new password ends the administrator's sessions.
        sqlx::query("DELETE FROM admin_sessions WHERE username = $1")
            .bind(username)
            .execute(&mut *pool)
            .await?;
    }
    Ok(n == 1)
}

pub async fn insert_session(
    pool: impl sqlx::AnyExecutor<'_>,
    s: &admin_ui::backend::NewAdminSession,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_sessions (id_hash, username, via, csrf, sso_sid, created_at, idle_expires_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id_hash)
    .bind(&s.username)
    .bind(s.via)
    .bind(&s.csrf)
    .bind(&s.sso_sid)
    .bind(s.now)
    .bind(s.idle_expires_at)
    .bind(s.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// (username, csrf) of a live session; its idle deadline pushed to `idle_until` (capped).
pub async fn touch_session(
    pool: &Pool,
    id_hash: &str,
    now: i64,
    idle_until: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    // A session from single sign-on lives only while its SSO session does; console activity is user
    // activity, so it keeps the SSO session's idle deadline moving too.
    let row: Option<(String, String, Option<String>)> = sqlx::query_as(
        "UPDATE admin_sessions SET idle_expires_at = CASE WHEN $1 < expires_at THEN $2 ELSE expires_at END \
         WHERE id_hash = $3 AND idle_expires_at > $4 AND expires_at > $5 \
         AND (sso_sid IS NULL OR EXISTS (SELECT 1 FROM sso_sessions s WHERE s.sid = admin_sessions.sso_sid \
              AND s.idle_expires_at > $6 AND s.expires_at > $7)) \
         RETURNING username, csrf, sso_sid",
    )
    .bind(idle_until)
    .bind(idle_until)
    .bind(id_hash)
    .bind(now)
    .bind(now)
    .bind(now)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    if let Some((_, _, Some(sid))) = &row {
        sqlx::query(
            "UPDATE sso_sessions SET idle_expires_at = CASE WHEN $1 < expires_at THEN $2 ELSE expires_at END WHERE sid = $3",
        )
        .bind(idle_until)
        .bind(idle_until)
        .bind(sid)
        .execute(pool)
        .await?;
    }
    Ok(row.map(|(u, c, _)| (u, c)))
}

pub async fn delete_session(
    pool: impl sqlx::AnyExecutor<'_>,
    id_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn purge_expired(pool: &Pool, now: i64) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1 OR idle_expires_at <= $2")
            .bind(now)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// One audit entry (`seq` the next number, in the same statement). Pass the transaction of the change it
/// records, so both commit together; an entry on its own gets a transaction of its own ([`audit_alone`]).
/// On PostgreSQL the transaction first takes [`super::AUDIT_LOCK`], so two entries never compute the same
/// `seq` (SQLite has one writer at a time anyway).
pub async fn audit(
    db: &mut sqlx::AnyConnection,
    at: i64,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    if db.backend_name().eq_ignore_ascii_case("postgresql") {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
            .bind(super::AUDIT_LOCK)
            .execute(&mut *db)
            .await?;
    }
    sqlx::query(
        "INSERT INTO audit_log (id, seq, at, actor, action, target, details) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6 FROM audit_log",
    )
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(details.to_string())
    .execute(db)
    .await?;
    Ok(())
}

/// An audit entry that records no change of its own (refusals, exports), in its own transaction.
pub async fn audit_alone(
    pool: &Pool,
    at: i64,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    audit(&mut tx, at, actor, action, target, details).await?;
    tx.commit().await
}

/// The audit log and the key events, newest first: (entries, total).
pub async fn audit_log(
    pool: &Pool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<admin_ui::backend::AuditEntry>, i64), sqlx::Error> {
    const UNION: &str = "SELECT at, seq, actor, action, target, details FROM audit_log \
         UNION ALL SELECT at, 0 AS seq, actor, 'key.' || action AS action, kid AS target, '{}' AS details FROM key_events";
    let total: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM audit_log) + (SELECT COUNT(*) FROM key_events)",
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{UNION} ORDER BY at DESC, seq DESC LIMIT $1 OFFSET $2"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok((
        rows.into_iter()
            .map(|r| admin_ui::backend::AuditEntry {
                at: r.get("at"),
                actor: r.get("actor"),
                action: r.get("action"),
                target: r.get("target"),
                details: serde_json::from_str(&r.get::<String, _>("details"))
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect(),
        total,
    ))
}

pub async fn insert_api_token(
    pool: impl sqlx::AnyExecutor<'_>,
    id: &str,
    name: &str,
    token_hash: &str,
    created_by: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_api_tokens (id, name, token_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(name)
    .bind(token_hash)
    .bind(created_by)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// The name of a valid (unrevoked) API token; records its use.
pub async fn use_api_token(
    pool: &Pool,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE admin_api_tokens SET last_used_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL RETURNING name",
    )
    .bind(now)
    .bind(token_hash)
    .fetch_optional(pool)
    .await
}

pub async fn api_tokens(pool: &Pool) -> Result<Vec<admin_ui::backend::ApiTokenInfo>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, created_by, created_at, last_used_at, revoked_at FROM admin_api_tokens ORDER BY created_at DESC",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| admin_ui::backend::ApiTokenInfo {
            id: r.get("id"),
            name: r.get("name"),
            created_by: r.get("created_by"),
            created_at: r.get("created_at"),
            last_used_at: r.get("last_used_at"),
            revoked: r.get::<Option<i64>, _>("revoked_at").is_some(),
        })
        .collect())
}

/// (name) of the token revoked now; None when unknown or already revoked.
pub async fn revoke_api_token(
    pool: impl sqlx::AnyExecutor<'_>,
    id: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE admin_api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING name",
    )
    .bind(now)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Live SSO sessions, newest first, with the applications of each.
pub async fn sso_sessions(
    pool: &Pool,
    now: i64,
) -> Result<Vec<admin_ui::backend::SsoSessionInfo>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sid, subject, provider_id, identity, created_at, expires_at FROM sso_sessions \
         WHERE sid IS NOT NULL AND idle_expires_at > $1 AND expires_at > $2 ORDER BY created_at DESC LIMIT 1000",
    )
    .bind(now)
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let sid: String = r.get("sid");
        let identity: serde_json::Value =
            serde_json::from_str(&r.get::<String, _>("identity")).unwrap_or_default();
        let applications = super::oauth::session_clients(pool, &sid)
            .await?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        out.push(admin_ui::backend::SsoSessionInfo {
            subject: r.get("subject"),
            provider: r.get("provider_id"),
            username: identity["username"].as_str().unwrap_or("").to_string(),
            created_at: r.get("created_at"),
            expires_at: r.get("expires_at"),
            applications,
            sid,
        });
    }
    Ok(out)
}

/// End the session with this `sid`; false when there is none.
pub async fn delete_sso_session(
    pool: impl sqlx::AnyExecutor<'_>,
    sid: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM sso_sessions WHERE sid = $1")
        .bind(sid)
        .execute(pool)
        .await?
        .rows_affected()
        > 0)
}

/// (enabled providers, enabled clients, live SSO sessions).
pub async fn counts(pool: &Pool, now: i64) -> Result<(i64, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM identity_providers WHERE enabled = 1), \
                (SELECT COUNT(*) FROM oauth_clients WHERE enabled = 1), \
                (SELECT COUNT(*) FROM sso_sessions WHERE idle_expires_at > $1 AND expires_at > $2)",
    )
    .bind(now)
    .bind(now)
    .fetch_one(pool)
    .await
}

pub async fn recent_logins(
    pool: &Pool,
) -> Result<Vec<(String, Option<String>, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT provider_id, subject, outcome, at FROM provider_last_logins ORDER BY at DESC LIMIT 20",
    )
    .fetch_all(pool)
    .await
}

pub async fn insert_client(
    pool: impl sqlx::AnyExecutor<'_>,
    client_id: &str,
    settings: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO oauth_clients (client_id, settings, managed_by, enabled, created_at, updated_at) \
         VALUES ($1, $2, 'admin', 1, $3, $4) ON CONFLICT (client_id) DO NOTHING",
    )
    .bind(client_id)
    .bind(settings)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Enable or disable an admin-managed client; false when there is no such admin-managed client.
pub async fn set_client_enabled(
    pool: impl sqlx::AnyExecutor<'_>,
    client_id: &str,
    enabled: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE oauth_clients SET enabled = $1, updated_at = $2 WHERE client_id = $3 AND managed_by = 'admin'",
    )
    .bind(i64::from(enabled))
    .bind(now)
    .bind(client_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Providers added in the console: (id, source TOML, sealed secret, enabled).
pub async fn admin_providers(
    pool: &Pool,
) -> Result<Vec<(String, String, Option<String>, bool)>, sqlx::Error> {
    let rows: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
        "SELECT id, source, secret_sealed, enabled FROM identity_providers WHERE managed_by = 'admin' ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, source, sealed, enabled)| (id, source.unwrap_or_default(), sealed, enabled == 1))
        .collect())
}

/// The sealed secret of a console provider (to keep it when an edit leaves the secret field empty).
pub async fn admin_provider_secret(
    pool: &Pool,
    id: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT secret_sealed FROM identity_providers WHERE id = $1 AND managed_by = 'admin'",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub struct SavedProvider<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub display_name: &'a str,
    pub enabled: bool,
    pub settings: &'a str,
    pub source: &'a str,
    pub secret_sealed: Option<&'a str>,
    pub now: i64,
}

/// Create (`create`) or update a console provider. False when creating an id that exists, or updating one
/// that is not a console provider.
pub async fn save_admin_provider(
    pool: impl sqlx::AnyExecutor<'_>,
    p: &SavedProvider<'_>,
    create: bool,
) -> Result<bool, sqlx::Error> {
    let n = if create {
        sqlx::query(
            "INSERT INTO identity_providers (id, kind, display_name, enabled, settings, managed_by, source, secret_sealed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'admin', $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(p.id)
        .bind(p.kind)
        .bind(p.display_name)
        .bind(i64::from(p.enabled))
        .bind(p.settings)
        .bind(p.source)
        .bind(p.secret_sealed)
        .bind(p.now)
        .bind(p.now)
        .execute(pool)
        .await?
        .rows_affected()
    } else {
        sqlx::query(
            "UPDATE identity_providers SET kind = $1, display_name = $2, settings = $3, source = $4, secret_sealed = $5, updated_at = $6 \
             WHERE id = $7 AND managed_by = 'admin'",
        )
        .bind(p.kind)
        .bind(p.display_name)
        .bind(p.settings)
        .bind(p.source)
        .bind(p.secret_sealed)
        .bind(p.now)
        .bind(p.id)
        .execute(pool)
        .await?
        .rows_affected()
    };
    Ok(n == 1)
}

/// Enable or disable a console provider; false when there is none with this id.
pub async fn set_provider_enabled(
    pool: impl sqlx::AnyExecutor<'_>,
    id: &str,
    enabled: bool,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE identity_providers SET enabled = $1, updated_at = $2 WHERE id = $3 AND managed_by = 'admin'",
    )
    .bind(i64::from(enabled))
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// (subject, outcome, at, claims JSON, external values JSON, roles JSON) of a provider's last login.
pub async fn last_login(
    pool: &Pool,
    id: &str,
) -> Result<Option<(Option<String>, String, i64, String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT subject, outcome, at, claims, external_values, roles FROM provider_last_logins WHERE provider_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Replace an admin-managed client's settings; false when there is no such admin-managed client.
pub async fn update_client(
    pool: impl sqlx::AnyExecutor<'_>,
    client_id: &str,
    settings: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE oauth_clients SET settings = $1, updated_at = $2 WHERE client_id = $3 AND managed_by = 'admin'",
    )
    .bind(settings)
    .bind(now)
    .bind(client_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}
