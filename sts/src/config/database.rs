//! `database.url`: which storage engine it chooses, its checks, and its form fit for logs (no password).

use super::{ConfigError, invalid};

/// The storage engine a database URL chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `sqlite://PATH`, `sqlite:PATH` or a bare path: the embedded default, one process.
    Sqlite,
    /// `postgres://…` or `postgresql://…`: shared by several replicas.
    Postgres,
}

impl Engine {
    pub fn of_url(url: &str) -> Engine {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgresql",
        }
    }
}

/// A database URL fit for logs and errors: a PostgreSQL URL without its password and query (which may
/// carry one); an SQLite URL as it is (it holds no secret).
pub fn redact_url(url: &str) -> String {
    if Engine::of_url(url) != Engine::Postgres {
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                u.set_query(Some("..."));
            }
            u.to_string()
        }
        Err(_) => "postgres://(unparseable URL)".to_string(),
    }
}

/// `database.url` after trimming: SQLite (a path, or `sqlite:`) or a PostgreSQL URL naming a host and a
/// database. Errors never show a password.
pub(super) fn check_url(url: &str) -> Result<(), ConfigError> {
    if url.is_empty() || url == "sqlite://" {
        return Err(invalid(
            "database.url",
            "must not be empty (env STS_DATABASE_URL)",
        ));
    }
    if Engine::of_url(url) == Engine::Sqlite {
        if !url.starts_with("sqlite:") && url.contains("://") {
            return Err(invalid(
                "database.url",
                format!(
                    "`{}`: `sqlite://PATH` (or a file path) or `postgres://USER@HOST/DATABASE`",
                    url.split("://").next().unwrap_or_default()
                ),
            ));
        }
        return Ok(());
    }
    let shown = redact_url(url);
    let parsed = url::Url::parse(url)
        .map_err(|e| invalid("database.url", format!("`{shown}`: not a URL ({e})")))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "database.url",
            format!("`{shown}`: names no host (postgres://USER@HOST:PORT/DATABASE)"),
        ));
    }
    if parsed.path().trim_start_matches('/').is_empty() {
        return Err(invalid(
            "database.url",
            format!("`{shown}`: names no database (postgres://USER@HOST:PORT/DATABASE)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_follows_the_scheme_and_the_password_never_shows() {
        assert_eq!(Engine::of_url("sqlite://data/sts.db"), Engine::Sqlite);
        assert_eq!(Engine::of_url("data/sts.db"), Engine::Sqlite);
        assert_eq!(Engine::of_url("postgres://a@h/db"), Engine::Postgres);
        assert_eq!(Engine::of_url("postgresql://a@h/db"), Engine::Postgres);
        for url in [
            "postgres://sts:s3cret@db.example:5432/sts",
            "postgres://sts@db.example/sts?password=s3cret",
            "postgresql://sts:s3cret@/sts",
            "postgres://sts:s3cret@db.example",
            "postgres://sts:s3cret@[::1/sts",
        ] {
            assert!(!redact_url(url).contains("s3cret"), "{url}");
            if let Err(e) = check_url(url) {
                assert!(!e.to_string().contains("s3cret"), "{e}");
            }
        }
        assert!(check_url("postgres://sts:s3cret@db.example:5432/sts").is_ok());
        assert!(check_url("postgres://sts:s3cret@db.example").is_err());
        assert!(check_url("postgresql://sts:s3cret@/sts").is_err());
        assert!(check_url("mysql://sts:s3cret@db/sts").is_err());
        assert!(
            !check_url("mysql://sts:s3cret@db/sts")
                .unwrap_err()
                .to_string()
                .contains("s3cret")
        );
        assert!(check_url("").is_err());
        assert!(check_url("sqlite://data/sts.db").is_ok());
    }
}
