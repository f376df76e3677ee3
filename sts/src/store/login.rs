//! SQL for identity providers, login flows, SSO sessions and the last login per provider.

use sqlx::Row;

use super::Pool;

/// Upsert the providers declared in the configuration; config-managed providers no longer declared are
/// disabled (never deleted). `rows`: (id, kind, display_name, enabled, settings JSON).
pub async fn sync_config_providers(
    pool: &Pool,
    rows: &[(String, String, String, bool, String)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    for (id, kind, name, enabled, settings) in rows {
        sqlx::query(
            "INSERT INTO identity_providers (id, kind, display_name, enabled, settings, managed_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'config', $6, $7) \
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, display_name = excluded.display_name, \
             enabled = excluded.enabled, settings = excluded.settings, managed_by = 'config', updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(kind)
        .bind(name)
        .bind(i64::from(*enabled))
        .bind(settings)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM identity_providers WHERE managed_by = 'config' AND enabled = 1",
    )
    .fetch_all(&mut *tx)
    .await?;
    for id in ids.iter().filter(|id| !rows.iter().any(|r| &r.0 == *id)) {
        sqlx::query("UPDATE identity_providers SET enabled = 0, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tracing::warn!(provider = %id, "provider no longer in the configuration: disabled");
    }
    tx.commit().await
}

pub struct NewFlow<'a> {
    pub state_hash: &'a str,
    pub browser_hash: &'a str,
    pub provider_id: &'a str,
    pub kind: &'a str,
    pub secrets: &'a str,
    pub return_to: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

pub async fn insert_flow(pool: &Pool, f: &NewFlow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO login_flows (state_hash, browser_hash, provider_id, kind, secrets, return_to, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(f.state_hash)
    .bind(f.browser_hash)
    .bind(f.provider_id)
    .bind(f.kind)
    .bind(f.secrets)
    .bind(f.return_to)
    .bind(f.now)
    .bind(f.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub struct Flow {
    pub browser_hash: String,
    pub provider_id: String,
    pub kind: String,
    pub secrets: String,
    pub return_to: String,
    pub expires_at: i64,
}

/// Delete and return the flow for `state_hash`: whoever deletes it first owns it, so it is single-use.
pub async fn consume_flow(pool: &Pool, state_hash: &str) -> Result<Option<Flow>, sqlx::Error> {
    let row = sqlx::query(
        "DELETE FROM login_flows WHERE state_hash = $1 \
         RETURNING browser_hash, provider_id, kind, secrets, return_to, expires_at",
    )
    .bind(state_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Flow {
        browser_hash: r.get("browser_hash"),
        provider_id: r.get("provider_id"),
        kind: r.get("kind"),
        secrets: r.get("secrets"),
        return_to: r.get("return_to"),
        expires_at: r.get("expires_at"),
    }))
}

pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub subject: &'a str,
    pub provider_id: &'a str,
    pub identity: &'a str,
    pub roles: &'a str,
    pub sid: &'a str,
    pub acr: Option<&'a str>,
    pub amr: Option<&'a str>,
    pub auth_time: i64,
    pub now: i64,
    pub idle_expires_at: i64,
    pub expires_at: i64,
}

pub async fn insert_session(pool: &Pool, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sso_sessions (id_hash, subject, provider_id, identity, roles, sid, acr, amr, auth_time, created_at, last_seen_at, idle_expires_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(s.id_hash)
    .bind(s.subject)
    .bind(s.provider_id)
    .bind(s.identity)
    .bind(s.roles)
    .bind(s.sid)
    .bind(s.acr)
    .bind(s.amr)
    .bind(s.auth_time)
    .bind(s.now)
    .bind(s.now)
    .bind(s.idle_expires_at)
    .bind(s.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub struct Session {
    pub subject: String,
    pub provider_id: String,
    pub identity: String,
    pub roles: String,
    pub sid: Option<String>,
    pub acr: Option<String>,
    pub amr: Option<String>,
    pub auth_time: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A live session (inside both timeouts), its idle deadline pushed to `new_idle` (capped by the absolute one).
pub async fn touch_session(
    pool: &Pool,
    id_hash: &str,
    now: i64,
    new_idle: i64,
) -> Result<Option<Session>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE sso_sessions SET last_seen_at = $1, idle_expires_at = CASE WHEN $2 < expires_at THEN $3 ELSE expires_at END \
         WHERE id_hash = $4 AND idle_expires_at > $5 AND expires_at > $6 \
         RETURNING subject, provider_id, identity, roles, sid, acr, amr, auth_time, created_at, expires_at",
    )
    .bind(now)
    .bind(new_idle)
    .bind(new_idle)
    .bind(id_hash)
    .bind(now)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Session {
        subject: r.get("subject"),
        provider_id: r.get("provider_id"),
        identity: r.get("identity"),
        roles: r.get("roles"),
        sid: r.get("sid"),
        acr: r.get("acr"),
        amr: r.get("amr"),
        auth_time: r.get("auth_time"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
    }))
}

/// What an ended session was: its `sid` (when it had one), provider and subject.
pub struct Ended {
    pub sid: Option<String>,
    pub provider_id: String,
    pub subject: String,
}

/// End a session.
pub async fn delete_session(pool: &Pool, id_hash: &str) -> Result<Option<Ended>, sqlx::Error> {
    let row: Option<(Option<String>, String, String)> = sqlx::query_as(
        "DELETE FROM sso_sessions WHERE id_hash = $1 RETURNING sid, provider_id, subject",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(sid, provider_id, subject)| Ended {
        sid,
        provider_id,
        subject,
    }))
}

/// Remove expired flows and sessions.
pub async fn purge_expired(pool: &Pool, now: i64) -> Result<u64, sqlx::Error> {
    let a = sqlx::query("DELETE FROM login_flows WHERE expires_at <= $1")
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM login_events WHERE at <= $1")
        .bind(now - 7 * 86_400)
        .execute(pool)
        .await?;
    let b = sqlx::query("DELETE FROM sso_sessions WHERE expires_at <= $1 OR idle_expires_at <= $2")
        .bind(now)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(a + b)
}

pub struct LastLogin<'a> {
    pub provider_id: &'a str,
    pub subject: Option<&'a str>,
    pub outcome: &'a str,
    pub at: i64,
    pub claims: &'a str,
    pub external_values: &'a str,
    pub roles: &'a str,
}

pub async fn record_last_login(pool: &Pool, l: &LastLogin<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO provider_last_logins (provider_id, subject, outcome, at, claims, external_values, roles) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (provider_id) DO UPDATE SET subject = excluded.subject, outcome = excluded.outcome, at = excluded.at, \
         claims = excluded.claims, external_values = excluded.external_values, roles = excluded.roles",
    )
    .bind(l.provider_id)
    .bind(l.subject)
    .bind(l.outcome)
    .bind(l.at)
    .bind(l.claims)
    .bind(l.external_values)
    .bind(l.roles)
    .execute(pool)
    .await?;
    Ok(())
}

/// One sign-in outcome for the dashboard (`ok` or a reason code).
pub async fn record_login_event(
    pool: &Pool,
    at: i64,
    provider_id: Option<&str>,
    subject: Option<&str>,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO login_events (id, at, provider_id, subject, outcome) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .bind(at)
    .bind(provider_id)
    .bind(subject)
    .bind(outcome)
    .execute(pool)
    .await?;
    Ok(())
}

/// The latest sign-in outcomes: (provider, subject, outcome, at).
pub async fn recent_login_events(
    pool: &Pool,
    limit: i64,
) -> Result<Vec<(String, Option<String>, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT COALESCE(provider_id, '-'), subject, outcome, at FROM login_events ORDER BY at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
