//! SQL for the admin sign-in limits: attempts counted in the database, so every replica sees the same
//! counts (`sign_in_attempts`).

use admin_ui::backend::AttemptLimit;

use super::Pool;

/// The longest window of any limit in the server (admin sign-in, our login form, the device codes).
pub const LONGEST_WINDOW: i64 = 15 * 60;

/// Record an attempt under every limit's key, unless one of them already holds `max` attempts within its
/// window: then nothing is recorded and the answer is `Err(seconds until the oldest of those attempts
/// leaves its window)` (at least 1). A refusal is decided by a plain read, without any lock (a flood of
/// refused attempts writes nothing); an attempt that may pass is checked again and recorded in one write
/// transaction of its own ([`super::begin_attempts`]: on PostgreSQL a lock apart from the one the token
/// endpoint's writes share), so concurrent attempts on any replica are counted one after the other. Rows
/// older than the longest window go first, so the table holds at most what the limits let in.
pub async fn record(
    pool: &Pool,
    limits: &[AttemptLimit],
    now: i64,
) -> Result<Result<(), i64>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if let Some(w) = refusal(&mut conn, limits, now).await? {
        return Ok(Err(w));
    }
    drop(conn);
    let mut tx = super::begin_attempts(pool).await?;
    // The table is shared by every limit: only rows older than the longest window of them all may go,
    // whatever the windows of this call (a 10-minute limit must not shorten a 15-minute one's memory).
    let longest = limits
        .iter()
        .map(|l| l.window)
        .max()
        .unwrap_or(0)
        .max(LONGEST_WINDOW);
    sqlx::query("DELETE FROM sign_in_attempts WHERE at <= $1")
        .bind(now - longest)
        .execute(&mut *tx)
        .await?;
    if let Some(w) = refusal(&mut tx, limits, now).await? {
        tx.commit().await?;
        return Ok(Err(w));
    }
    for l in limits {
        sqlx::query("INSERT INTO sign_in_attempts (id, limit_key, at) VALUES ($1, $2, $3)")
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(&l.key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// Seconds to wait when one of `limits` is full at `now`, else None.
async fn refusal(
    conn: &mut sqlx::AnyConnection,
    limits: &[AttemptLimit],
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let mut wait: Option<i64> = None;
    for l in limits {
        let (n, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM sign_in_attempts WHERE limit_key = $1 AND at > $2",
        )
        .bind(&l.key)
        .bind(now - l.window)
        .fetch_one(&mut *conn)
        .await?;
        if n >= l.max {
            let until = oldest.unwrap_or(now) + l.window;
            wait = Some(wait.map_or(until - now, |w| w.max(until - now)));
        }
    }
    Ok(wait.map(|w| w.max(1)))
}

/// A successful sign-in: forget every attempt under `forget`, and one (the newest) under `give_back`.
pub async fn succeeded(pool: &Pool, forget: &str, give_back: &str) -> Result<(), sqlx::Error> {
    let mut tx = super::begin_attempts(pool).await?;
    sqlx::query("DELETE FROM sign_in_attempts WHERE limit_key = $1")
        .bind(forget)
        .execute(&mut *tx)
        .await?;
    drop_newest(&mut tx, give_back).await?;
    tx.commit().await
}

/// Give back the newest attempt under each key (an attempt that turned out right does not count).
pub async fn give_back(pool: &Pool, keys: &[&str]) -> Result<(), sqlx::Error> {
    let mut tx = super::begin_attempts(pool).await?;
    for key in keys {
        drop_newest(&mut tx, key).await?;
    }
    tx.commit().await
}

async fn drop_newest(conn: &mut sqlx::AnyConnection, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM sign_in_attempts WHERE id IN \
         (SELECT id FROM sign_in_attempts WHERE limit_key = $1 ORDER BY at DESC, id LIMIT 1)",
    )
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use admin_ui::auth::{RateLimiter, TOTAL_WINDOW_SECONDS, WINDOW_SECONDS};

    async fn pool() -> (tempfile::TempDir, Pool) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::for_tests(
            format!("sqlite://{}/sts.db", dir.path().display()),
            dir.path().join("master.key"),
        );
        let pool = crate::store::connect(&config).await.unwrap();
        (dir, pool)
    }

    async fn attempt(p: &Pool, account: &str, ip: &str, now: i64) -> Result<(), i64> {
        record(p, &RateLimiter::limits(account, ip), now)
            .await
            .unwrap()
    }

    /// Class: limits with different windows share the table. A call with a short window must not purge
    /// the attempts a longer window still counts.
    #[tokio::test]
    async fn a_short_window_does_not_purge_a_longer_ones_attempts() {
        let (_d, p) = pool().await;
        for _ in 0..5 {
            assert!(attempt(&p, "admin", "1.2.3.4", 1000).await.is_ok());
        }
        let short = admin_ui::backend::AttemptLimit {
            key: "devauth:ip:5.6.7.8".into(),
            max: 60,
            window: 600,
        };
        // 11 minutes later: outside the short window, inside the admin's 15 minutes.
        assert!(record(&p, &[short], 1000 + 660).await.unwrap().is_ok());
        assert!(
            attempt(&p, "admin", "9.9.9.9", 1000 + 670).await.is_err(),
            "the admin's five attempts are still counted"
        );
        // Right, then given back: not held against anyone.
        let one = admin_ui::backend::AttemptLimit {
            key: "device:sid:s".into(),
            max: 1,
            window: 900,
        };
        assert!(
            record(&p, std::slice::from_ref(&one), 2000)
                .await
                .unwrap()
                .is_ok()
        );
        give_back(&p, &["device:sid:s"]).await.unwrap();
        assert!(
            record(&p, std::slice::from_ref(&one), 2001)
                .await
                .unwrap()
                .is_ok()
        );
        assert!(record(&p, &[one], 2002).await.unwrap().is_err());
    }

    #[tokio::test]
    async fn rate_limit_per_account_and_ip() {
        let (_d, p) = pool().await;
        for _ in 0..5 {
            assert!(attempt(&p, "admin", "1.2.3.4", 1000).await.is_ok());
        }
        assert_eq!(
            attempt(&p, "admin", "9.9.9.9", 1001).await,
            Err(WINDOW_SECONDS - 1),
            "per account, counted at the start; the wait runs to the oldest attempt's end"
        );
        assert!(attempt(&p, "other", "1.2.3.4", 1001).await.is_ok());
        assert!(
            attempt(&p, "admin", "1.2.3.4", 1000 + WINDOW_SECONDS + 1)
                .await
                .is_ok(),
            "window passes"
        );
        let (forget, give_back) = RateLimiter::success_keys("admin");
        succeeded(&p, &forget, &give_back).await.unwrap();
        for _ in 0..4 {
            assert!(
                attempt(&p, "admin", "5.5.5.5", 2000).await.is_ok(),
                "a success forgets the account's attempts"
            );
        }
        // Per address: 20 attempts from one address over many names.
        for i in 0..20 {
            assert!(attempt(&p, &format!("n{i}"), "7.7.7.7", 3000).await.is_ok());
        }
        assert!(attempt(&p, "fresh", "7.7.7.7", 3001).await.is_err());
    }

    #[tokio::test]
    async fn the_total_limit_holds_for_unknown_names_and_many_addresses() {
        let (_d, p) = pool().await;
        for i in 0..admin_ui::auth::MAX_TOTAL {
            assert!(
                attempt(
                    &p,
                    &format!("nobody{i}"),
                    &format!("10.0.{}.{}", i / 250, i % 250),
                    1000
                )
                .await
                .is_ok()
            );
        }
        assert!(attempt(&p, "fresh-name", "192.0.2.1", 1001).await.is_err());
        assert!(
            attempt(
                &p,
                "fresh-name",
                "192.0.2.1",
                1000 + TOTAL_WINDOW_SECONDS + 1
            )
            .await
            .is_ok()
        );
        // Old rows leave the table: only the last attempt (3 rows) is left after the longest window.
        assert!(
            attempt(&p, "late", "192.0.2.9", 1000 + 10 * WINDOW_SECONDS)
                .await
                .is_ok()
        );
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sign_in_attempts")
            .fetch_one(&p)
            .await
            .unwrap();
        assert_eq!(rows, 3);
    }
}
