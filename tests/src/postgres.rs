//! A real PostgreSQL for the tests (no mock database): one cluster per test process, made by
//! `tests/peers/postgres/cluster.sh` (initdb in a temp dir, `postgres` on a random 127.0.0.1 port, as
//! `nobody` when the tests run as root, SCRAM password), stopped and removed when the process exits.
//! Each app gets its own database. `STS_TEST_DATABASE=postgres` runs the black-box suite on it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Cluster {
    pub port: u16,
    password: String,
    bin: String,
    next: AtomicU32,
}

/// Whether this run of the suite puts the apps' databases on PostgreSQL (`STS_TEST_DATABASE=postgres`).
pub fn selected() -> bool {
    match std::env::var("STS_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("STS_TEST_DATABASE={other}: expected `sqlite` or `postgres`"),
    }
}

/// The cluster of this test process, started on first use. Panics (loudly) when it cannot start.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(start)
}

fn start() -> Cluster {
    let dir = tempfile::Builder::new()
        .prefix("sts-pg-")
        .tempdir()
        .expect("temp dir for PostgreSQL")
        .keep();
    let port = crate::saml_idp::free_port();
    let password = format!("pw-{}", uuid_like());
    let script = crate::repo_root().join("tests/peers/postgres/cluster.sh");
    let mut child = std::process::Command::new(&script)
        .arg(&dir)
        .arg(port.to_string())
        .arg(&password)
        .arg(std::process::id().to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
    let stdout = child.stdout.take().expect("cluster.sh stdout");
    let mut bin = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read cluster.sh");
        if let Some(b) = line.strip_prefix("BIN=") {
            bin = Some(b.to_string());
        }
        if line == "READY" {
            // The script lives on (it stops the server when this process exits); nothing reads it now.
            std::mem::forget(child);
            return Cluster {
                port,
                password,
                bin: bin.expect("cluster.sh names its binaries"),
                next: AtomicU32::new(0),
            };
        }
    }
    let out = child.wait_with_output().expect("cluster.sh exit");
    panic!(
        "PostgreSQL did not start (scripts/install-deps --peers installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn uuid_like() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Cluster {
    /// A URL with the password (what an operator writes in `database.url`).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://sts:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// A new empty database; its URL.
    pub fn create_database(&self) -> String {
        let name = format!(
            "sts_{}_{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Run SQL with `psql` (for setup and for what a test inspects); stdout, unaligned.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = std::process::Command::new(Path::new(&self.bin).join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "sts"])
            .args(["-d", database, "-c", sql])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The database URL an app in `dir` uses: SQLite `dir/data/sts.db`, or with `STS_TEST_DATABASE=postgres`
/// a PostgreSQL database made for `dir` on first use (kept in `dir/pg-url`, so a restart on the same
/// dir finds the same data).
pub fn database_url_for(dir: &Path) -> String {
    if !selected() {
        return format!("sqlite://{}/data/sts.db", dir.display());
    }
    let file = dir.join("pg-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    let url = cluster().create_database();
    std::fs::write(&file, &url).expect("write pg-url");
    url
}
