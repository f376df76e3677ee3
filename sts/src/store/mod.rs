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
    /// Opening the file or running the migrations failed: the message names the file and the likely cause
    /// ([`explain`]); the SQLite error is in it once, not repeated as a source.
    #[error("database {0}")]
    Open(String),
    #[error("cannot create database directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    /// A command that only reads found no database file: it does not create an empty one.
    #[error(
        "no database at {0}: this command only reads and does not create one (check --config, database.url or STS_DATABASE_URL; `sts serve` creates the database)"
    )]
    Missing(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// One sentence for an SQLite failure on the database `path`: the file, what probably went wrong (by the
/// primary result code: full disk, I/O error, read-only, cannot open, not a database, locked), and the code.
pub fn explain(e: &sqlx::Error, path: &str) -> String {
    let code = e
        .as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i64>().ok());
    let hint = match code.map(|c| c & 0xff) {
        Some(13) => "the disk is full",
        Some(10) => "disk I/O error: the disk may be full, failing or gone",
        Some(8) => "it is read-only (file or directory permissions, or a read-only filesystem)",
        Some(14) => "it cannot be opened (missing directory, permissions, or a full disk)",
        Some(26) => "it is not an SQLite database",
        Some(5 | 6) => "it is locked by another process",
        _ => {
            return format!(
                "{path}: {}",
                e.as_database_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string())
            );
        }
    };
    let os = match code.map(|c| c & 0xff) {
        Some(8 | 10 | 14) => os_reason(path),
        _ => None,
    };
    match os {
        Some(os) => format!(
            "{path}: {hint}: {os} (SQLite code {})",
            code.unwrap_or_default()
        ),
        None => format!("{path}: {hint} (SQLite code {})", code.unwrap_or_default()),
    }
}

/// What the operating system says when the file (or, for a file not there yet, its directory) is opened
/// for writing: "Read-only file system", "Permission denied", "Is a directory", "No space left"...
fn os_reason(path: &str) -> Option<String> {
    let p = std::path::Path::new(path);
    if p.exists() {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .err()
            .map(|e| e.to_string());
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        return Some(format!("the directory {} does not exist", dir.display()));
    }
    // The WAL journal needs files beside the database: can one be created there?
    let probe = dir.join(format!(".sts-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!("{}: {e}", dir.display())),
    }
}

/// Open (creating when missing) the database and run pending migrations.
pub async fn connect(config: &Config) -> Result<Pool, StoreError> {
    open(config, true).await
}

/// For commands that only read (`export`, `keys list`, `clients list`): the database must exist; a
/// missing file is an error that names the path looked for, not a new empty database.
pub async fn connect_existing(config: &Config) -> Result<Pool, StoreError> {
    open(config, false).await
}

async fn open(config: &Config, create: bool) -> Result<Pool, StoreError> {
    let path = config.database_path();
    let in_memory = config.database_file().is_none();
    if !create
        && let Some(file) = config.database_file()
        && !file.exists()
    {
        let shown = std::path::absolute(&file).unwrap_or(file);
        return Err(StoreError::Missing(shown.display().to_string()));
    }
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
    let file = path.split('?').next().unwrap_or(path).to_string();
    let open_err = |e: sqlx::Error| StoreError::Open(explain(&e, &file));
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(open_err)?
        .create_if_missing(create)
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
        .map_err(open_err)?;
    sqlx::migrate!("../migrations")
        .run(&pool)
        .await
        .map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => StoreError::Open(explain(&e, &file)),
            other => StoreError::Open(format!("{file}: migration failed: {other}")),
        })?;
    Ok(pool)
}

/// A transaction for a change and its audit entry: `BEGIN IMMEDIATE` takes SQLite's write lock at the
/// start (waiting up to the busy timeout), so a transaction that reads before it writes never fails to
/// upgrade its lock under concurrent writers. Dropped without `commit`, it rolls back; a process killed
/// meanwhile leaves nothing of it (SQLite's journal).
pub async fn begin_write(
    pool: &Pool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// For `sts serve` at start: the database takes a write (a read-only file opens and reads fine, and a
/// full disk may still allow reads); the error names the file and the cause. CLI commands that only read
/// do not call it.
pub async fn check_writable(pool: &Pool, config: &Config) -> Result<(), StoreError> {
    let path = config.database_path();
    let file = path.split('?').next().unwrap_or(path);
    writable(pool, 0)
        .await
        .map_err(|e| StoreError::Open(explain(&e, file)))
}

/// Liveness of the database.
pub async fn ping(pool: &Pool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// Below this many free bytes on the database's filesystem, `/ready` reports the database not writable
/// (before writes start to fail: a small probe write can still succeed in space the journal already has).
pub const MIN_FREE_BYTES: u64 = 512 * 1024;

/// Bytes available to this process on the filesystem holding the database file (None: in memory, or
/// unknown).
pub fn free_space(pool: &Pool) -> Option<u64> {
    let options = pool.connect_options();
    let file = options.get_filename();
    if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
        return None;
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid NUL-terminated string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether the database takes a write now: a committed one-row upsert (used by `/ready` and at start).
/// Fails on a full disk, a read-only file or filesystem, an I/O error.
pub async fn writable(pool: &Pool, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO health_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
    )
    .bind(now)
    .execute(pool)
    .await
    .map(|_| ())
}
