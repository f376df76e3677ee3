//! SQL for the device authorization grant (RFC 8628, table `device_grants`). Every change of state is one
//! conditional UPDATE, so two replicas (or two polls) can never both move the same grant.

use sqlx::Row;

use super::Pool;

pub struct NewDeviceGrant<'a> {
    pub device_code_hash: &'a str,
    pub user_code_hash: &'a str,
    pub client_id: &'a str,
    pub request: &'a str,
    pub interval: i64,
    pub now: i64,
    pub expires_at: i64,
}

/// Store a new pending grant; false when the user code hash is taken (the caller draws another code).
pub async fn insert(pool: &Pool, g: &NewDeviceGrant<'_>) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO device_grants (device_code_hash, user_code_hash, client_id, request, status, interval_seconds, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(g.device_code_hash)
    .bind(g.user_code_hash)
    .bind(g.client_id)
    .bind(g.request)
    .bind(g.interval)
    .bind(g.now)
    .bind(g.expires_at)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// A pending, unexpired grant by its user code: (client id, request JSON).
pub async fn pending_by_user_code(
    pool: &Pool,
    user_code_hash: &str,
    now: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT client_id, request FROM device_grants WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2",
    )
    .bind(user_code_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.get("client_id"), r.get("request"))))
}

/// The user's decision on a pending, unexpired grant, with its audit entry, in one transaction. False when
/// the grant is no longer pending (decided in another tab or replica, or expired).
pub async fn decide(
    pool: &Pool,
    user_code_hash: &str,
    approved: Option<(&str, &str)>,
    now: i64,
    audit: (&str, &str, &str, &serde_json::Value),
) -> Result<bool, sqlx::Error> {
    let mut tx = super::begin_write(pool).await?;
    let n = match approved {
        Some((sid, grant)) => sqlx::query(
            "UPDATE device_grants SET status = 'approved', sid = $1, grant_data = $2 \
             WHERE user_code_hash = $3 AND status = 'pending' AND expires_at > $4",
        )
        .bind(sid)
        .bind(grant)
        .bind(user_code_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        None => sqlx::query(
            "UPDATE device_grants SET status = 'denied' \
             WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2",
        )
        .bind(user_code_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected(),
    };
    if n != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    let (actor, action, client_id, details) = audit;
    super::admin::audit(&mut tx, now, actor, action, Some(client_id), details).await?;
    tx.commit().await?;
    Ok(true)
}

/// What a poll finds.
pub enum Poll {
    Unknown,
    Expired,
    /// Polled before its interval was over: the interval is now this much longer.
    SlowDown,
    Pending,
    Denied,
    /// Approved and now used: (sid, grant JSON). Only one poll ever gets this.
    Approved(String, String),
    AlreadyUsed,
}

/// One poll of the device code: paced by the interval (a poll that comes too early makes it 5 s longer
/// and is answered `slow_down`), and an approved grant handed out once.
pub async fn poll(
    pool: &Pool,
    device_code_hash: &str,
    client_id: &str,
    now: i64,
) -> Result<Poll, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT client_id, status, interval_seconds, expires_at FROM device_grants WHERE device_code_hash = $1",
    )
    .bind(device_code_hash)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(Poll::Unknown);
    };
    if row.get::<String, _>("client_id") != client_id {
        return Ok(Poll::Unknown);
    }
    if row.get::<i64, _>("expires_at") <= now {
        return Ok(Poll::Expired);
    }
    // Final answers need no pacing.
    match row.get::<String, _>("status").as_str() {
        "used" => return Ok(Poll::AlreadyUsed),
        "denied" => return Ok(Poll::Denied),
        _ => {}
    }
    let interval: i64 = row.get("interval_seconds");
    // The pacing is claimed with a conditional update: two concurrent polls cannot both pass.
    let paced = sqlx::query(
        "UPDATE device_grants SET last_poll_at = $1 WHERE device_code_hash = $2 \
         AND (last_poll_at IS NULL OR last_poll_at <= $3)",
    )
    .bind(now)
    .bind(device_code_hash)
    .bind(now - interval)
    .execute(pool)
    .await?
    .rows_affected()
        == 1;
    if !paced {
        sqlx::query(
            "UPDATE device_grants SET interval_seconds = interval_seconds + 5, last_poll_at = $1 \
             WHERE device_code_hash = $2 AND interval_seconds < 60",
        )
        .bind(now)
        .bind(device_code_hash)
        .execute(pool)
        .await?;
        return Ok(Poll::SlowDown);
    }
    match row.get::<String, _>("status").as_str() {
        "pending" => Ok(Poll::Pending),
        _ => {
            let used = sqlx::query(
                "UPDATE device_grants SET status = 'used' WHERE device_code_hash = $1 AND status = 'approved' \
                 RETURNING sid, grant_data",
            )
            .bind(device_code_hash)
            .fetch_optional(pool)
            .await?;
            Ok(match used {
                Some(r) => Poll::Approved(r.get("sid"), r.get("grant_data")),
                None => Poll::AlreadyUsed,
            })
        }
    }
}

/// Expired grants go (one hour after expiry).
pub async fn purge_expired(pool: &Pool, now: i64) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM device_grants WHERE expires_at + 3600 <= $1")
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// A pending request's stored JSON, left in place (the confirmation page shows it before the POST
/// consumes it with `oauth::consume_authorize_request`).
pub async fn pending_request(
    pool: &Pool,
    id_hash: &str,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT params FROM authorize_requests WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await
}
