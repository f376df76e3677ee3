//! Persistence on SQLite (the embedded default: WAL, foreign keys, busy timeout) or PostgreSQL (replicas),
//! with embedded migrations per engine (migrations/sqlite, migrations/postgres, kept in step by a test).
//! One file per aggregate; the SQL is written once, in the subset both engines run.

pub mod admin;
pub mod attempts;
pub mod copy;
pub mod device;
pub mod keys;
pub mod login;
pub mod oauth;
pub mod saml;

use std::str::FromStr;

use sqlx::any::AnyPoolOptions;

use crate::config::Config;

/// A pool on either engine (sqlx's Any driver): the SQL in this module is written once, in the subset
/// both SQLite and PostgreSQL run (`$n` parameters, TEXT/BIGINT, `ON CONFLICT`, `RETURNING`).
pub type Pool = sqlx::AnyPool;

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
/// missing file is an error that names the path looked for, not a new empty database. (A PostgreSQL
/// database always exists once the server answers; its migrations run as for `connect`.)
pub async fn connect_existing(config: &Config) -> Result<Pool, StoreError> {
    open(config, false).await
}

pub use crate::config::{Engine, redact_url};

/// The engine of an open pool.
pub fn engine(pool: &Pool) -> Engine {
    Engine::of_url(pool.connect_options().database_url.as_str())
}

async fn open(config: &Config, create: bool) -> Result<Pool, StoreError> {
    sqlx::any::install_default_drivers();
    match config.database_engine() {
        Engine::Sqlite => open_sqlite(config, create).await,
        Engine::Postgres => open_postgres(config).await,
    }
}

async fn open_sqlite(config: &Config, create: bool) -> Result<Pool, StoreError> {
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
    // The Any driver takes a URL: the open mode goes in it (a later `mode` wins over one the operator
    // wrote), the rest is set per connection below.
    let mode = if in_memory {
        ""
    } else if create {
        "mode=rwc"
    } else {
        "mode=rw"
    };
    let url = match (path.contains('?'), mode.is_empty()) {
        (_, true) => format!("sqlite://{path}"),
        (true, false) => format!("sqlite://{path}&{mode}"),
        (false, false) => format!("sqlite://{path}?{mode}"),
    };
    let options = sqlx::any::AnyConnectOptions::from_str(&url).map_err(open_err)?;
    let journal = if in_memory { "MEMORY" } else { "WAL" };
    let busy_ms = config.database_busy_timeout.as_millis();
    let pool = AnyPoolOptions::new()
        .max_connections(if in_memory {
            1
        } else {
            config.database_max_connections
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = {journal}; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                )))
                .execute(conn)
                .await
                .map(|_| ())
            })
        })
        .connect_with(options)
        .await
        .map_err(open_err)?;
    sqlx::migrate!("../migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => StoreError::Open(explain(&e, &file)),
            other => StoreError::Open(format!("{file}: migration failed: {other}")),
        })?;
    Ok(pool)
}

/// PostgreSQL: replicas share it. Migrations take sqlx's advisory lock, so replicas starting together
/// apply each one once. Errors name the server without the password.
async fn open_postgres(config: &Config) -> Result<Pool, StoreError> {
    let shown = redact_url(&config.database_url);
    let open_err = |e: sqlx::Error| StoreError::Open(format!("{shown}: {}", describe(&e)));
    let options = sqlx::any::AnyConnectOptions::from_str(&config.database_url).map_err(open_err)?;
    let pool = AnyPoolOptions::new()
        .max_connections(config.database_max_connections)
        // A database that does not answer fails a request after this, not never.
        .acquire_timeout(
            config
                .database_busy_timeout
                .max(std::time::Duration::from_secs(1)),
        )
        .after_connect(|conn, _| {
            Box::pin(async move {
                // A replica frozen inside a transaction must not hold its row and advisory locks forever.
                sqlx::raw_sql("SET idle_in_transaction_session_timeout = '60s'")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(options)
        .await
        .map_err(open_err)?;
    sqlx::migrate!("../migrations/postgres")
        .run(&pool)
        .await
        .map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => open_err(e),
            other => StoreError::Open(format!("{shown}: migration failed: {other}")),
        })?;
    Ok(pool)
}

/// The database error's own message (not sqlx's wrapper), or the error.
fn describe(e: &sqlx::Error) -> String {
    e.as_database_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Every write transaction takes this lock on PostgreSQL (see [`begin_write`]).
const WRITE_LOCK: i64 = 0x5354_535f_7772_6974; // "STS_writ"

/// A write transaction, with the same guarantee on both engines: write transactions run one at a time,
/// so one that reads before it writes sees every committed change and none commits in between.
/// SQLite: `BEGIN IMMEDIATE` takes the write lock at the start (waiting up to the busy timeout), so it
/// never fails to upgrade its lock under concurrent writers. PostgreSQL: a transaction-scoped advisory
/// lock shared by every replica ([`WRITE_LOCK`]), released at commit or rollback. Dropped without
/// `commit`, it rolls back; a process killed meanwhile leaves nothing of it.
pub async fn begin_write(
    pool: &Pool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match engine(pool) {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Engine::Postgres => begin_locked(pool, WRITE_LOCK).await,
    }
}

/// A PostgreSQL transaction holding the advisory lock `key` until it ends. The wait for the lock is
/// bounded by `database.busy_timeout_ms` (`lock_timeout`, for this transaction only): a writer stuck
/// elsewhere makes requests fail after that, not hang with a pooled connection each.
async fn begin_locked(
    pool: &Pool,
    key: i64,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let timeout_ms = pool
        .options()
        .get_acquire_timeout()
        .as_millis()
        .clamp(1, 600_000);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = {timeout_ms}"
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The admin sign-in limits' own lock (PostgreSQL), so a flood of sign-in attempts does not queue behind
/// or ahead of the token endpoint's writes.
const ATTEMPTS_LOCK: i64 = 0x5354_535f_6174_7470; // "STS_attp"

/// A write transaction for `sign_in_attempts` only: SQLite `BEGIN IMMEDIATE` (one writer anyway);
/// PostgreSQL its own advisory lock ([`ATTEMPTS_LOCK`]) instead of the shared write lock.
pub async fn begin_attempts(
    pool: &Pool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match engine(pool) {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Engine::Postgres => begin_locked(pool, ATTEMPTS_LOCK).await,
    }
}

/// The audit log's lock (PostgreSQL): every insert into `audit_log` takes it inside its transaction, so
/// `seq` (the next number, computed in the insert) is unique also for entries written on their own.
pub const AUDIT_LOCK: i64 = 0x5354_535f_6175_6474; // "STS_audt"

/// For `sts serve` at start: the database takes a write (a read-only file opens and reads fine, and a
/// full disk may still allow reads); the error names the file and the cause. CLI commands that only read
/// do not call it.
pub async fn check_writable(pool: &Pool, config: &Config) -> Result<(), StoreError> {
    let path = config.database_path();
    let file = path.split('?').next().unwrap_or(path);
    writable(pool, 0).await.map_err(|e| {
        StoreError::Open(match engine(pool) {
            Engine::Sqlite => explain(&e, file),
            // Never the raw URL: it may hold the password.
            Engine::Postgres => format!("{}: {}", redact_url(&config.database_url), describe(&e)),
        })
    })
}

/// Whether a database error only says "busy, try later" (not a verdict on the database): SQLite's
/// primary codes 5 and 6 (busy, locked); PostgreSQL's lock timeouts, lock-not-available, serialization
/// failures and deadlocks (`55P03`, `40001`, `40P01`). Codes are read per engine: PostgreSQL's SQLSTATE
/// must never be taken for an SQLite number (42501, permission denied, is 5 modulo 256).
pub fn is_busy(pool: &Pool, e: &sqlx::Error) -> bool {
    let Some(code) = e.as_database_error().and_then(|d| d.code()) else {
        return false;
    };
    match engine(pool) {
        Engine::Sqlite => code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
        Engine::Postgres => matches!(code.as_ref(), "55P03" | "40001" | "40P01"),
    }
}

/// One sentence for a database error, fit for logs: SQLite's by [`explain`]; PostgreSQL's own message.
pub fn describe_for(pool: &Pool, e: &sqlx::Error, what: &str) -> String {
    match engine(pool) {
        Engine::Sqlite => explain(e, what),
        Engine::Postgres => format!("{what}: {}", describe(e)),
    }
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
    if engine(pool) != Engine::Sqlite {
        return None;
    }
    let options = pool.connect_options();
    let url = options.database_url.as_str();
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let file = std::path::Path::new(decoded.as_ref());
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
        "INSERT INTO health_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
    )
    .bind(now)
    .execute(pool)
    .await
    .map(|_| ())
}
