//! Copying a whole installation between databases (`sts migrate`, SQLite ↔ PostgreSQL) and the online
//! backup of an SQLite database (`sts backup`). The tables are read from the database itself, so a table
//! added by a later migration is copied without a change here.

use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::any::AnyTypeInfoKind;

use super::{Engine, Pool, engine};

/// Tables that are not part of an installation: sqlx's migration record (each side has its own) and the
/// readiness probe row.
const NOT_COPIED: [&str; 2] = ["_sqlx_migrations", "health_probe"];

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("table {table}, column {column}: type {kind} cannot be copied")]
    Type {
        table: String,
        column: String,
        kind: String,
    },
    #[error("unexpected table name {0:?}")]
    Name(String),
}

/// The installation's tables, sorted (no foreign keys between them, so any order loads).
pub async fn tables(pool: &Pool) -> Result<Vec<String>, CopyError> {
    let sql = match engine(pool) {
        Engine::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Engine::Postgres => {
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        }
    };
    let names: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await?;
    let mut out = Vec::new();
    for n in names {
        if NOT_COPIED.contains(&n.as_str()) {
            continue;
        }
        // The names go into SQL text below: only what our migrations create.
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(CopyError::Name(n));
        }
        out.push(n);
    }
    Ok(out)
}

/// Rows in `table`.
pub async fn count(conn: &mut sqlx::AnyConnection, table: &str) -> Result<i64, CopyError> {
    Ok(
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(conn)
            .await?,
    )
}

/// The first of `tables` that holds a row, if any.
pub async fn first_non_empty(
    conn: &mut sqlx::AnyConnection,
    tables: &[String],
) -> Result<Option<String>, CopyError> {
    for t in tables {
        if count(&mut *conn, t).await? > 0 {
            return Ok(Some(t.clone()));
        }
    }
    Ok(None)
}

/// A read transaction that sees one consistent state of the whole database: SQLite's snapshot (WAL) from
/// the first read; PostgreSQL `REPEATABLE READ, READ ONLY`.
pub async fn begin_snapshot(
    pool: &Pool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, CopyError> {
    Ok(match engine(pool) {
        Engine::Sqlite => pool.begin().await?,
        Engine::Postgres => {
            pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?
        }
    })
}

enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

/// Copy every row of `table` from `src` to `dst` (the same columns on both: the schema test keeps the
/// engines in step), streaming. Returns the number of rows copied.
pub async fn copy_table(
    src: &mut sqlx::AnyConnection,
    dst: &mut sqlx::AnyConnection,
    table: &str,
) -> Result<u64, CopyError> {
    let select = format!("SELECT * FROM {table}");
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(&mut *src);
    let mut insert: Option<String> = None;
    let mut n = 0u64;
    while let Some(row) = rows.try_next().await? {
        let mut values = Vec::with_capacity(row.columns().len());
        for (i, col) in row.columns().iter().enumerate() {
            use sqlx::{Column, TypeInfo};
            let kind = col.type_info().kind();
            values.push(match kind {
                AnyTypeInfoKind::BigInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::SmallInt => {
                    Value::Int(row.try_get(i)?)
                }
                AnyTypeInfoKind::Text => Value::Text(row.try_get(i)?),
                _ => {
                    return Err(CopyError::Type {
                        table: table.to_string(),
                        column: col.name().to_string(),
                        kind: col.type_info().name().to_string(),
                    });
                }
            });
        }
        let sql = insert.get_or_insert_with(|| {
            use sqlx::Column;
            let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
            let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                params.join(", ")
            )
        });
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
        for v in values {
            q = match v {
                Value::Int(x) => q.bind(x),
                Value::Text(x) => q.bind(x),
            };
        }
        q.execute(&mut *dst).await?;
        n += 1;
    }
    Ok(n)
}

/// What is sealed under the master key (or keyed by it), read from a copied database to prove the master
/// key still opens it: (signing keys: kid, sealed), the SAML SP key, (console providers: id, sealed
/// secret), and the master key ids the client-secret hashes were made under.
pub struct Sealed {
    pub signing_keys: Vec<(String, String)>,
    pub sp_key: Option<String>,
    pub provider_secrets: Vec<(String, String)>,
    pub client_secret_key_ids: Vec<String>,
}

pub async fn sealed(conn: &mut sqlx::AnyConnection) -> Result<Sealed, CopyError> {
    Ok(Sealed {
        signing_keys: sqlx::query_as("SELECT kid, private_key_sealed FROM signing_keys ORDER BY kid")
            .fetch_all(&mut *conn)
            .await?,
        sp_key: sqlx::query_scalar(
            "SELECT private_key_sealed FROM saml_sp_credentials WHERE id = 'default'",
        )
        .fetch_optional(&mut *conn)
        .await?,
        provider_secrets: sqlx::query_as(
            "SELECT id, secret_sealed FROM identity_providers WHERE secret_sealed IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await?,
        client_secret_key_ids: sqlx::query_scalar(
            "SELECT DISTINCT secret_key_id FROM oauth_clients WHERE secret_key_id IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await?,
    })
}

/// A consistent copy of a live SQLite database into `out` (`VACUUM INTO`: one read transaction, so
/// writers go on meanwhile). `out` must not exist; it is created first with mode 0600 (it holds sealed
/// keys and session hashes), so the copy is never readable by others, even for a moment.
pub async fn backup_sqlite(pool: &Pool, out: &std::path::Path) -> Result<(), BackupError> {
    if engine(pool) != Engine::Sqlite {
        return Err(BackupError::NotSqlite);
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(out).map_err(|e| BackupError::Create {
        path: out.display().to_string(),
        source: e,
    })?;
    let path = out.to_str().ok_or(BackupError::Path)?;
    if let Err(e) = sqlx::query("VACUUM INTO $1").bind(path).execute(pool).await {
        let _ = std::fs::remove_file(out);
        return Err(e.into());
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "`sts backup` copies an SQLite database; for PostgreSQL use its own tools (pg_dump, or a base backup with WAL archiving)"
    )]
    NotSqlite,
    #[error("cannot create {path}: {source} (the backup is never written over an existing file)")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("the backup path is not valid UTF-8")]
    Path,
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}
