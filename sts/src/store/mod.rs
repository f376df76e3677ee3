//! Persistence: the SQLite pool (WAL, foreign keys, busy timeout) and embedded migrations.
//! One file per aggregate; SQL is kept portable so PostgreSQL can follow.

pub mod admin;
pub mod keys;
pub mod login;
pub mod oauth;
pub mod saml;

use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::Config;

pub type Pool = SqlitePool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot create database directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Open (creating when missing) the database and run pending migrations.
pub async fn connect(config: &Config) -> Result<Pool, StoreError> {
    let url = &config.database_url;
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let in_memory = path.starts_with(":memory:") || path.contains("mode=memory");
    if !in_memory {
        let file_part = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(file_part)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            // The database holds sealed keys and (later) sessions: keep its directory private.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(parent).map_err(|e| StoreError::Dir {
                path: parent.display().to_string(),
                source: e,
            })?;
        }
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| StoreError::Open {
            url: url.clone(),
            source: e,
        })?
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(if in_memory {
            SqliteJournalMode::Memory
        } else {
            SqliteJournalMode::Wal
        })
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(config.database_busy_timeout);
    let pool = SqlitePoolOptions::new()
        .max_connections(if in_memory {
            1
        } else {
            config.database_max_connections
        })
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Open {
            url: url.clone(),
            source: e,
        })?;
    sqlx::migrate!("../migrations").run(&pool).await?;
    Ok(pool)
}

/// A transaction for a change and its audit entry: `BEGIN IMMEDIATE` takes SQLite's write lock at the
/// start (waiting up to the busy timeout), so a transaction that reads before it writes never fails to
/// upgrade its lock under concurrent writers. Dropped without `commit`, it rolls back; a process killed
/// meanwhile leaves nothing of it (SQLite's journal).
pub async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Liveness of the database (used by `/ready`).
pub async fn ping(pool: &Pool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}
