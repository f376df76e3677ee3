//! SQL for the OpenID Provider: clients, pending authorization requests, codes, refresh tokens, the
//! applications of a session, revoked access tokens and single-use client assertions.

use sqlx::Row;

use super::Pool;

pub struct ClientRow {
    pub client_id: String,
    pub settings: String,
    pub managed_by: String,
    pub enabled: bool,
    pub secret_hash: Option<String>,
    pub secret_key_id: Option<String>,
}

/// Upsert the clients declared in the configuration (secrets are kept); config-managed clients no longer
/// declared are disabled. `rows`: (client_id, settings JSON, enabled).
pub async fn sync_config_clients(
    pool: &Pool,
    rows: &[(String, String, bool)],
    now: i64,
    disable_missing: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    for (id, settings, enabled) in rows {
        sqlx::query(
            "INSERT INTO oauth_clients (client_id, settings, managed_by, enabled, created_at, updated_at) \
             VALUES ($1, $2, 'config', $3, $4, $5) \
             ON CONFLICT (client_id) DO UPDATE SET settings = excluded.settings, managed_by = 'config', \
             enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(settings)
        .bind(i64::from(*enabled))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT client_id FROM oauth_clients WHERE managed_by = 'config' AND enabled = 1",
    )
    .fetch_all(&mut *tx)
    .await?;
    for id in ids
        .iter()
        .filter(|id| disable_missing && !rows.iter().any(|r| &r.0 == *id))
    {
        sqlx::query("UPDATE oauth_clients SET enabled = 0, updated_at = $1 WHERE client_id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tracing::warn!(client = %id, "client no longer in the configuration: disabled");
    }
    tx.commit().await
}

/// The stored secret hash of one client and the master key id it was made under (`None`: no row or no
/// secret).
pub async fn client_secret(
    pool: &Pool,
    client_id: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT secret_hash, secret_key_id FROM oauth_clients WHERE client_id = $1 AND secret_hash IS NOT NULL",
    )
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.get("secret_hash"), r.get("secret_key_id"))))
}

pub async fn load_clients(pool: &Pool) -> Result<Vec<ClientRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT client_id, settings, managed_by, enabled, secret_hash, secret_key_id FROM oauth_clients ORDER BY client_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ClientRow {
            client_id: r.get("client_id"),
            settings: r.get("settings"),
            managed_by: r.get("managed_by"),
            enabled: r.get::<i64, _>("enabled") == 1,
            secret_hash: r.get("secret_hash"),
            secret_key_id: r.get("secret_key_id"),
        })
        .collect())
}

/// Store a new secret hash; false when there is no such client.
pub async fn set_client_secret(
    pool: impl sqlx::AnyExecutor<'_>,
    client_id: &str,
    hash: &str,
    key_id: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE oauth_clients SET secret_hash = $1, secret_key_id = $2, secret_created_at = $3, updated_at = $4 WHERE client_id = $5",
    )
    .bind(hash)
    .bind(key_id)
    .bind(now)
    .bind(now)
    .bind(client_id)
    .execute(pool)
    .await?
    .rows_affected()
        > 0)
}

// ------------------------------------------------------------------ pending authorization requests

pub async fn insert_authorize_request(
    pool: &Pool,
    id_hash: &str,
    params: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO authorize_requests (id_hash, params, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(params)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Delete and return (params, created_at) of an unexpired pending request.
pub async fn consume_authorize_request(
    pool: &Pool,
    id_hash: &str,
    now: i64,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let row = sqlx::query(
        "DELETE FROM authorize_requests WHERE id_hash = $1 RETURNING params, created_at, expires_at",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row
        .filter(|r| r.get::<i64, _>("expires_at") > now)
        .map(|r| (r.get("params"), r.get("created_at"))))
}

// ------------------------------------------------------------------ authorization codes

pub async fn insert_code(
    pool: &Pool,
    code_hash: &str,
    client_id: &str,
    sid: &str,
    grant_data: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO authorization_codes (code_hash, client_id, sid, grant_data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(code_hash)
    .bind(client_id)
    .bind(sid)
    .bind(grant_data)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub struct CodeRow {
    pub client_id: String,
    pub sid: String,
    pub grant_data: String,
    pub expires_at: i64,
}

pub enum Redeem {
    Ok(CodeRow),
    /// Already redeemed: what it produced, to revoke.
    Reused {
        access_jti: Option<String>,
        access_exp: Option<i64>,
        family_id: Option<String>,
    },
    Unknown,
}

/// Mark a code of `client_id` used, recording the refresh-token family it will start; whoever marks it
/// first owns it. A code of another client is `Unknown` to this one (and stays usable by its own).
pub async fn redeem_code(
    pool: &Pool,
    code_hash: &str,
    client_id: &str,
    family_id: &str,
    now: i64,
) -> Result<Redeem, sqlx::Error> {
    if let Some(r) = sqlx::query(
        "UPDATE authorization_codes SET used_at = $1, family_id = $2 \
         WHERE code_hash = $3 AND client_id = $4 AND used_at IS NULL \
         RETURNING client_id, sid, grant_data, expires_at",
    )
    .bind(now)
    .bind(family_id)
    .bind(code_hash)
    .bind(client_id)
    .fetch_optional(pool)
    .await?
    {
        return Ok(Redeem::Ok(CodeRow {
            client_id: r.get("client_id"),
            sid: r.get("sid"),
            grant_data: r.get("grant_data"),
            expires_at: r.get("expires_at"),
        }));
    }
    let used = sqlx::query(
        "UPDATE authorization_codes SET reused_at = $1 WHERE code_hash = $2 AND client_id = $3 \
         RETURNING access_jti, access_exp, family_id",
    )
    .bind(now)
    .bind(code_hash)
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    Ok(match used {
        Some(r) => Redeem::Reused {
            access_jti: r.get("access_jti"),
            access_exp: r.get("access_exp"),
            family_id: r.get("family_id"),
        },
        None => Redeem::Unknown,
    })
}

/// Remember the access token a code produced (revoked if the code is presented again). Returns true when
/// the code was presented a second time meanwhile (the caller then revokes what it just issued).
pub async fn record_code_result(
    pool: &Pool,
    code_hash: &str,
    access_jti: &str,
    access_exp: i64,
) -> Result<bool, sqlx::Error> {
    let reused: Option<Option<i64>> = sqlx::query_scalar(
        "UPDATE authorization_codes SET access_jti = $1, access_exp = $2 WHERE code_hash = $3 RETURNING reused_at",
    )
    .bind(access_jti)
    .bind(access_exp)
    .bind(code_hash)
    .fetch_optional(pool)
    .await?;
    Ok(reused.flatten().is_some())
}

// ------------------------------------------------------------------ refresh tokens

pub struct NewRefresh<'a> {
    pub token_hash: &'a str,
    pub family_id: &'a str,
    pub client_id: &'a str,
    pub sid: &'a str,
    pub grant_data: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub access_jti: &'a str,
    pub access_exp: i64,
}

pub async fn insert_refresh(
    pool: impl sqlx::AnyExecutor<'_>,
    r: &NewRefresh<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, client_id, sid, grant_data, created_at, expires_at, access_jti, access_exp) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(r.token_hash)
    .bind(r.family_id)
    .bind(r.client_id)
    .bind(r.sid)
    .bind(r.grant_data)
    .bind(r.now)
    .bind(r.expires_at)
    .bind(r.access_jti)
    .bind(r.access_exp)
    .execute(pool)
    .await?;
    Ok(())
}

pub struct RefreshRow {
    pub family_id: String,
    pub client_id: String,
    pub sid: String,
    pub grant_data: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn refresh_row(r: sqlx::any::AnyRow) -> RefreshRow {
    RefreshRow {
        family_id: r.get("family_id"),
        client_id: r.get("client_id"),
        sid: r.get("sid"),
        grant_data: r.get("grant_data"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
        used_at: r.get("used_at"),
        revoked_at: r.get("revoked_at"),
    }
}

pub async fn find_refresh(
    pool: &Pool,
    token_hash: &str,
) -> Result<Option<RefreshRow>, sqlx::Error> {
    Ok(sqlx::query(
        "SELECT family_id, client_id, sid, grant_data, created_at, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?
    .map(refresh_row))
}

/// Rotation in one transaction: mark the presented token used (only if unused and unrevoked) and insert
/// its successor. False when someone else used it first. Being one transaction, a concurrent reuse that
/// revokes the family sees the successor too.
pub async fn rotate_refresh(
    pool: &Pool,
    old_hash: &str,
    new: &NewRefresh<'_>,
) -> Result<bool, sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    let n = sqlx::query(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(new.now)
    .bind(old_hash)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, client_id, sid, grant_data, created_at, expires_at, access_jti, access_exp) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new.token_hash)
    .bind(new.family_id)
    .bind(new.client_id)
    .bind(new.sid)
    .bind(new.grant_data)
    .bind(new.now)
    .bind(new.expires_at)
    .bind(new.access_jti)
    .bind(new.access_exp)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Keep an SSO session alive while its applications refresh tokens (idle deadline pushed, capped by the
/// absolute one). False when the session has ended.
pub async fn touch_session_by_sid(
    pool: &Pool,
    sid: &str,
    now: i64,
    new_idle: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE sso_sessions SET idle_expires_at = CASE WHEN $1 < expires_at THEN $2 ELSE expires_at END \
         WHERE sid = $3 AND idle_expires_at > $4 AND expires_at > $5",
    )
    .bind(new_idle)
    .bind(new_idle)
    .bind(sid)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Revoke every refresh token of a family and the access tokens they were issued with.
pub async fn revoke_family(pool: &Pool, family_id: &str, now: i64) -> Result<u64, sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    let n = revoke_refresh_in(&mut tx, Scope::Family, family_id, now).await?;
    tx.commit().await?;
    Ok(n)
}

/// Revoke every refresh token bound to an SSO session and its unused codes (logout).
pub async fn revoke_session_tokens(pool: &Pool, sid: &str, now: i64) -> Result<u64, sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    let n = revoke_session_tokens_in(&mut tx, sid, now).await?;
    tx.commit().await?;
    Ok(n)
}

/// [`revoke_session_tokens`] inside the caller's transaction.
pub async fn revoke_session_tokens_in(
    tx: &mut sqlx::AnyConnection,
    sid: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM authorization_codes WHERE sid = $1 AND used_at IS NULL")
        .bind(sid)
        .execute(&mut *tx)
        .await?;
    revoke_refresh_in(tx, Scope::Session, sid, now).await
}

enum Scope {
    Family,
    Session,
}

async fn revoke_refresh_in(
    tx: &mut sqlx::AnyConnection,
    scope: Scope,
    value: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let (select, update) = match scope {
        Scope::Family => (
            "SELECT access_jti, access_exp FROM refresh_tokens WHERE family_id = $1",
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        ),
        Scope::Session => (
            "SELECT access_jti, access_exp FROM refresh_tokens WHERE sid = $1",
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE sid = $2 AND revoked_at IS NULL",
        ),
    };
    let jtis: Vec<(Option<String>, Option<i64>)> = sqlx::query_as(select)
        .bind(value)
        .fetch_all(&mut *tx)
        .await?;
    for (jti, exp) in jtis {
        if let (Some(jti), Some(exp)) = (jti, exp)
            && exp > now
        {
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(exp)
            .execute(&mut *tx)
            .await?;
        }
    }
    let n = sqlx::query(update)
        .bind(now)
        .bind(value)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    Ok(n)
}

// ------------------------------------------------------------------ access tokens, sessions, assertions

pub async fn revoke_access(pool: &Pool, jti: &str, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn is_revoked(pool: &Pool, jti: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_one(pool)
            .await?
            > 0,
    )
}

/// Is the SSO session with this `sid` still alive?
pub async fn session_alive(pool: &Pool, sid: &str, now: i64) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM sso_sessions WHERE sid = $1 AND idle_expires_at > $2 AND expires_at > $3",
    )
    .bind(sid)
    .bind(now)
    .bind(now)
    .fetch_one(pool)
    .await?
        > 0)
}

/// (provider id, subject, identity JSON, roles JSON) of a live session by its `sid`.
pub async fn session_by_sid(
    pool: &Pool,
    sid: &str,
    now: i64,
) -> Result<Option<(String, String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT provider_id, subject, identity, roles FROM sso_sessions WHERE sid = $1 AND idle_expires_at > $2 AND expires_at > $3",
    )
    .bind(sid)
    .bind(now)
    .bind(now)
    .fetch_optional(pool)
    .await
}

/// Remember that a client was given tokens in a session.
pub async fn touch_session_client(
    pool: &Pool,
    sid: &str,
    client_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO session_clients (sid, client_id, first_at, last_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sid, client_id) DO UPDATE SET last_at = excluded.last_at",
    )
    .bind(sid)
    .bind(client_id)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn session_clients(pool: &Pool, sid: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT client_id, first_at FROM session_clients WHERE sid = $1 ORDER BY first_at",
    )
    .bind(sid)
    .fetch_all(pool)
    .await
}

/// Record a client assertion's `jti`; false when it was seen before (a replay).
pub async fn consume_assertion_jti(
    pool: &Pool,
    client_id: &str,
    jti: &str,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(client_id)
    .bind(jti)
    .bind(expires_at)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Remove expired rows. Used codes are kept until they expire (reuse detection), refresh tokens until theirs.
pub async fn purge_expired(pool: &Pool, now: i64) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    for sql in [
        "DELETE FROM authorize_requests WHERE expires_at <= $1",
        "DELETE FROM authorization_codes WHERE expires_at + 3600 <= $1", // reuse detection outlives the code
        "DELETE FROM refresh_tokens WHERE expires_at <= $1",
        "DELETE FROM revoked_tokens WHERE expires_at <= $1",
        "DELETE FROM client_assertion_jtis WHERE expires_at <= $1",
        "DELETE FROM session_clients WHERE sid NOT IN (SELECT sid FROM sso_sessions WHERE sid IS NOT NULL) AND last_at <= $1",
    ] {
        n += sqlx::query(sql)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(n)
}
