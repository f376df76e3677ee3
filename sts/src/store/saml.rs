//! SQL for the SAML SP credentials and the assertion-ID replay cache.

use sqlx::Row;

use super::Pool;

/// (certificate DER base64, sealed private key, master key id) of the SP credentials.
pub async fn sp_credentials(pool: &Pool) -> Result<Option<(String, String, String)>, sqlx::Error> {
    let r = sqlx::query("SELECT certificate_der, private_key_sealed, master_key_id FROM saml_sp_credentials WHERE id = 'default'")
        .fetch_optional(pool)
        .await?;
    Ok(r.map(|r| {
        (
            r.get("certificate_der"),
            r.get("private_key_sealed"),
            r.get("master_key_id"),
        )
    }))
}

/// Store the SP credentials: `replace` = false keeps existing ones (first start, racing processes keep the
/// winner's); true overwrites them (import).
pub async fn store_sp_credentials(
    pool: impl sqlx::AnyExecutor<'_>,
    cert: &str,
    sealed: &str,
    master_key_id: &str,
    now: i64,
    replace: bool,
) -> Result<(), sqlx::Error> {
    const KEEP: &str = "INSERT INTO saml_sp_credentials (id, certificate_der, private_key_sealed, master_key_id, created_at) \
         VALUES ('default', $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
    const REPLACE: &str = "INSERT INTO saml_sp_credentials (id, certificate_der, private_key_sealed, master_key_id, created_at) \
         VALUES ('default', $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET certificate_der = excluded.certificate_der, \
         private_key_sealed = excluded.private_key_sealed, master_key_id = excluded.master_key_id, \
         created_at = excluded.created_at";
    sqlx::query(if replace { REPLACE } else { KEEP })
        .bind(cert)
        .bind(sealed)
        .bind(master_key_id)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// Record an assertion ID; false when it was seen before (a replay).
pub async fn consume_assertion_id(
    pool: &Pool,
    id: &str,
    provider_id: &str,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO saml_assertion_ids (assertion_id, provider_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (assertion_id) DO NOTHING",
    )
    .bind(id)
    .bind(provider_id)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn purge_assertion_ids(pool: &Pool, now: i64) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM saml_assertion_ids WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
