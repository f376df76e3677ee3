//! SQL for the `signing_keys` and `key_events` tables.

use sqlx::Row;

use super::Pool;

/// A signing-key row without its sealed private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub source: String,
    pub state: String,
    pub public_jwk: String,
    pub master_key_id: String,
    pub created_at: i64,
    pub deactivated_at: Option<i64>,
    pub publish_until: Option<i64>,
    pub retired_at: Option<i64>,
    /// `next`: the earliest time it becomes active.
    pub activate_after: Option<i64>,
}

fn row(r: &sqlx::any::AnyRow) -> KeyRow {
    KeyRow {
        kid: r.get("kid"),
        alg: r.get("alg"),
        source: r.get("source"),
        state: r.get("state"),
        public_jwk: r.get("public_jwk"),
        master_key_id: r.get("master_key_id"),
        created_at: r.get("created_at"),
        deactivated_at: r.get("deactivated_at"),
        publish_until: r.get("publish_until"),
        retired_at: r.get("retired_at"),
        activate_after: r.get("activate_after"),
    }
}

/// A new key to insert as the active one.
pub struct NewKey<'a> {
    pub kid: &'a str,
    pub alg: &'a str,
    pub source: &'a str,
    pub public_jwk: &'a str,
    pub sealed: &'a str,
    pub master_key_id: &'a str,
    pub now: i64,
}

pub async fn all(pool: &Pool) -> Result<Vec<KeyRow>, sqlx::Error> {
    let q = "SELECT kid, alg, source, state, public_jwk, master_key_id, created_at, deactivated_at, publish_until, retired_at, activate_after \
             FROM signing_keys ORDER BY created_at DESC, kid";
    Ok(sqlx::query(q)
        .fetch_all(pool)
        .await?
        .iter()
        .map(row)
        .collect())
}

pub async fn count(pool: &Pool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
        .fetch_one(pool)
        .await
}

pub async fn master_key_ids(pool: &Pool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT master_key_id FROM signing_keys ORDER BY master_key_id")
        .fetch_all(pool)
        .await
}

pub async fn has_active(pool: &Pool) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE state = 'active'")
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}

/// Keys that belong in the JWKS at `now`: the active one, the staged next one, and published ones not yet
/// past `publish_until`.
pub async fn visible(pool: &Pool, now: i64) -> Result<Vec<KeyRow>, sqlx::Error> {
    let q = "SELECT kid, alg, source, state, public_jwk, master_key_id, created_at, deactivated_at, publish_until, retired_at, activate_after \
             FROM signing_keys WHERE state IN ('active', 'next') OR (state = 'published' AND publish_until > $1) \
             ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, created_at DESC, kid";
    Ok(sqlx::query(q)
        .bind(now)
        .fetch_all(pool)
        .await?
        .iter()
        .map(row)
        .collect())
}

/// The sealed private key of the active key, if any.
pub async fn active_sealed(pool: &Pool) -> Result<Option<(String, String)>, sqlx::Error> {
    let r = sqlx::query("SELECT kid, private_key_sealed FROM signing_keys WHERE state = 'active'")
        .fetch_optional(pool)
        .await?;
    Ok(r.map(|r| (r.get("kid"), r.get("private_key_sealed"))))
}

/// Insert the first active key. Returns false when another process created an active key first.
pub async fn insert_first_active(
    pool: &Pool,
    k: &NewKey<'_>,
    actor: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    let res = insert_active(&mut tx, k).await;
    match res {
        Ok(()) => {
            event(&mut tx, k.now, actor, "generated", k.kid, "first key").await?;
            tx.commit().await?;
            Ok(true)
        }
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Make `k` the active key; the previous active key becomes `published` until `now + grace`.
/// One transaction: both changes, their key events and (when given) the admin's audit entry land, or
/// nothing does. Returns the previous active kid.
pub async fn rotate_to(
    pool: &Pool,
    k: &NewKey<'_>,
    grace: i64,
    actor: &str,
    action: &str,
    audit: Option<(&str, &str)>,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    let previous: Option<String> = sqlx::query_scalar(
        "UPDATE signing_keys SET state = 'published', deactivated_at = $1, publish_until = $2 \
         WHERE state = 'active' RETURNING kid",
    )
    .bind(k.now)
    .bind(k.now + grace)
    .fetch_optional(&mut *tx)
    .await?;
    insert_active(&mut tx, k).await?;
    if let Some(prev) = &previous {
        event(
            &mut tx,
            k.now,
            actor,
            "deactivated",
            prev,
            &format!("published until {}", k.now + grace),
        )
        .await?;
    }
    event(
        &mut tx,
        k.now,
        actor,
        action,
        k.kid,
        &format!("source {}", k.source),
    )
    .await?;
    // The admin change's own audit entry (who asked), in the same transaction.
    if let Some((who, what)) = audit {
        crate::store::admin::audit(
            &mut tx,
            k.now,
            who,
            what,
            Some(k.kid),
            &serde_json::json!({"source": k.source}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(previous)
}

/// The staged next key, if any: (kid, activate_after).
pub async fn next_key(pool: &Pool) -> Result<Option<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT kid, activate_after FROM signing_keys WHERE state = 'next'")
        .fetch_optional(pool)
        .await
}

/// Stage `k` as the next key: in the JWKS from now on, active no earlier than `activate_after`. One
/// transaction with its key event and (when given) the admin's audit entry. A next key staged already
/// stays, and nothing is written.
pub async fn insert_next(
    pool: &Pool,
    k: &NewKey<'_>,
    activate_after: i64,
    actor: &str,
    action: &str,
    audit: Option<(&str, &str)>,
) -> Result<Staged, sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    let staged: Option<String> =
        sqlx::query_scalar("SELECT kid FROM signing_keys WHERE state = 'next'")
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(kid) = staged {
        return Ok(Staged::AlreadyStaged(kid));
    }
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, source, state, public_jwk, private_key_sealed, master_key_id, created_at, activate_after) \
         VALUES ($1, $2, $3, 'next', $4, $5, $6, $7, $8)",
    )
    .bind(k.kid)
    .bind(k.alg)
    .bind(k.source)
    .bind(k.public_jwk)
    .bind(k.sealed)
    .bind(k.master_key_id)
    .bind(k.now)
    .bind(activate_after)
    .execute(&mut *tx)
    .await?;
    event(
        &mut tx,
        k.now,
        actor,
        action,
        k.kid,
        &format!(
            "next key, source {}, active from {activate_after}",
            k.source
        ),
    )
    .await?;
    if let Some((who, what)) = audit {
        crate::store::admin::audit(
            &mut tx,
            k.now,
            who,
            what,
            Some(k.kid),
            &serde_json::json!({"source": k.source, "state": "next", "activate_after": activate_after}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Staged::Staged)
}

/// What [`insert_next`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Staged {
    Staged,
    /// This key is staged already.
    AlreadyStaged(String),
}

/// Make the next key active when its time has come: the active key becomes `published` until
/// `now + grace`, the next one `active`, with their key events, in one write transaction (so replicas
/// doing this at the same moment promote it once, and exactly one key is active before and after).
/// Returns (the previous active kid, the new active kid) when a key was promoted.
pub async fn promote_due(
    pool: &Pool,
    now: i64,
    grace: i64,
    actor: &str,
) -> Result<Option<(Option<String>, String)>, sqlx::Error> {
    // Most calls find nothing to do: look before taking the write lock.
    let due: Option<String> = sqlx::query_scalar(
        "SELECT kid FROM signing_keys WHERE state = 'next' AND activate_after <= $1",
    )
    .bind(now)
    .fetch_optional(pool)
    .await?;
    if due.is_none() {
        return Ok(None);
    }
    let mut tx = crate::store::begin_write(pool).await?;
    let Some(next): Option<String> = sqlx::query_scalar(
        "SELECT kid FROM signing_keys WHERE state = 'next' AND activate_after <= $1",
    )
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let previous: Option<String> = sqlx::query_scalar(
        "UPDATE signing_keys SET state = 'published', deactivated_at = $1, publish_until = $2 \
         WHERE state = 'active' RETURNING kid",
    )
    .bind(now)
    .bind(now + grace)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query("UPDATE signing_keys SET state = 'active' WHERE kid = $1 AND state = 'next'")
        .bind(&next)
        .execute(&mut *tx)
        .await?;
    if let Some(prev) = &previous {
        event(
            &mut tx,
            now,
            actor,
            "deactivated",
            prev,
            &format!("published until {}", now + grace),
        )
        .await?;
    }
    event(
        &mut tx,
        now,
        actor,
        "activated",
        &next,
        "the staged next key",
    )
    .await?;
    tx.commit().await?;
    Ok(Some((previous, next)))
}

async fn insert_active(tx: &mut sqlx::AnyConnection, k: &NewKey<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, source, state, public_jwk, private_key_sealed, master_key_id, created_at) \
         VALUES ($1, $2, $3, 'active', $4, $5, $6, $7)",
    )
    .bind(k.kid)
    .bind(k.alg)
    .bind(k.source)
    .bind(k.public_jwk)
    .bind(k.sealed)
    .bind(k.master_key_id)
    .bind(k.now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Move published keys whose time is up to `retired`. Nothing is deleted.
pub async fn retire_expired(
    pool: &Pool,
    now: i64,
    actor: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = crate::store::begin_write(pool).await?;
    let kids: Vec<String> = sqlx::query_scalar(
        "UPDATE signing_keys SET state = 'retired', retired_at = $1 \
         WHERE state = 'published' AND publish_until <= $2 RETURNING kid",
    )
    .bind(now)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for kid in &kids {
        event(&mut tx, now, actor, "retired", kid, "left the JWKS").await?;
    }
    tx.commit().await?;
    Ok(kids)
}

async fn event(
    tx: &mut sqlx::AnyConnection,
    at: i64,
    actor: &str,
    action: &str,
    kid: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO key_events (id, at, actor, action, kid, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(kid)
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
