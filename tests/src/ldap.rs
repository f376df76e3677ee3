//! A real OpenLDAP directory for the tests (no mock): one per test process, made by
//! `tests/peers/ldap/directory.sh` (a test CA, slapd on random 127.0.0.1 ports for ldap:// and ldaps://,
//! the memberOf overlay, the people and groups of `tests/peers/ldap/seed.ldif`), stopped and removed when
//! the process exits. `binds_for` counts the binds slapd's stats log recorded for a DN.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct Directory {
    /// `ldap://127.0.0.1:PORT` (plain, and StartTLS).
    pub ldap_url: String,
    /// `ldaps://127.0.0.1:PORT`.
    pub ldaps_url: String,
    /// The test CA that signed the server's certificate (PEM file).
    pub ca_file: PathBuf,
    log: PathBuf,
}

pub const BASE: &str = "dc=example,dc=org";
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
pub const SERVICE_DN: &str = "cn=sts-reader,ou=services,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "reader-pw-123";

/// The directory of this test process, started on first use. Panics (loudly) when it cannot start.
pub fn directory() -> &'static Directory {
    static DIR: OnceLock<Directory> = OnceLock::new();
    DIR.get_or_init(start)
}

fn start() -> Directory {
    let dir = tempfile::Builder::new()
        .prefix("sts-ldap-")
        .tempdir()
        .expect("temp dir for slapd")
        .keep();
    let (p1, p2) = (crate::saml_idp::free_port(), crate::saml_idp::free_port());
    let script = crate::repo_root().join("tests/peers/ldap/directory.sh");
    let mut child = std::process::Command::new(&script)
        .arg(&dir)
        .arg(p1.to_string())
        .arg(p2.to_string())
        .arg(std::process::id().to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
    let stdout = child.stdout.take().expect("directory.sh stdout");
    let (mut ca, mut log) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read directory.sh");
        if let Some(v) = line.strip_prefix("CA=") {
            ca = Some(PathBuf::from(v));
        }
        if let Some(v) = line.strip_prefix("LOG=") {
            log = Some(PathBuf::from(v));
        }
        if line == "READY" {
            // The script lives on (it stops slapd when this process exits).
            std::mem::forget(child);
            return Directory {
                ldap_url: format!("ldap://127.0.0.1:{p1}"),
                ldaps_url: format!("ldaps://127.0.0.1:{p2}"),
                ca_file: ca.expect("directory.sh names its CA"),
                log: log.expect("directory.sh names its log"),
            };
        }
    }
    let out = child.wait_with_output().expect("directory.sh exit");
    panic!(
        "slapd did not start (scripts/install-deps --peers installs slapd and ldap-utils): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Directory {
    /// How many simple binds slapd has logged for `dn` so far (case-insensitive).
    pub fn binds_for(&self, dn: &str) -> usize {
        let needle = format!("bind dn=\"{}\"", dn.to_lowercase());
        self.bind_lines()
            .iter()
            .filter(|l| l.to_lowercase().contains(&needle))
            .count()
    }

    /// Every bind request slapd has logged so far (`BIND dn="…" method=128`; a successful bind logs a
    /// second `BIND … mech=SIMPLE` line, which is not counted).
    pub fn bind_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" BIND dn=") && l.contains(" method="))
            .map(str::to_string)
            .collect()
    }
}

/// `uid=NAME,ou=people,dc=example,dc=org`
pub fn user_dn(uid: &str) -> String {
    format!("uid={uid},{PEOPLE}")
}
