//! The second SAML IdP peer: npm `samlify` in IdP mode (tests/peers/node/saml-idp2.mjs), an implementation
//! independent of SimpleSAMLphp (`saml_idp`). Flags (see the script's header): `--sign-response`,
//! `--no-sign-assertion`, `--encrypt-assertion`, `--enc-alg aes256-gcm|aes128-gcm|aes128-cbc|aes256-cbc`,
//! `--key-transport rsa-oaep-mgf1p|rsa-oaep`, `--key-layout inside|beside`, `--prefixes default|saml2`.
//! Users alice/alicepw and bob/bobpw as in start-idp.py; tests/peers/saml/login.py logs in at it unchanged.

use crate::{node_bin, repo_root};

/// A running samlify IdP; killed on drop.
pub struct Idp2 {
    /// `http://127.0.0.1:P/metadata` (also the entity ID).
    pub metadata_url: String,
    pub entity_id: String,
    pub port: u16,
    _child: tokio::process::Child,
    /// Holds the SP metadata file and the IdP's stderr (`idp2.log`).
    pub dir: tempfile::TempDir,
}

impl Idp2 {
    /// What the peer wrote to stderr so far (requests, refusals, errors): for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("idp2.log")).unwrap_or_default()
    }
}

/// Start the samlify IdP on a free port for the SP(s) in `sp_metadata` (XML) with `flags`.
pub async fn start_idp2(sp_metadata: &str, flags: &[&str]) -> Idp2 {
    start_idp2_on(0, sp_metadata, flags).await
}

/// [`start_idp2`] on a given port (0: a free one), e.g. to restart it under the same entity ID.
pub async fn start_idp2_on(port: u16, sp_metadata: &str, flags: &[&str]) -> Idp2 {
    use tokio::io::AsyncBufReadExt;
    let node_dir = repo_root().join("tests/peers/node");
    assert!(
        node_dir.join("node_modules/samlify").is_dir()
            && node_dir
                .join("node_modules/@authenio/samlify-node-xmllint")
                .is_dir(),
        "samlify peer missing in {}: run scripts/install-deps --peers",
        node_dir.display()
    );
    let script = node_dir.join("saml-idp2.mjs");
    assert!(script.is_file(), "{} missing", script.display());
    let dir = tempfile::tempdir().unwrap();
    let sp_file = dir.path().join("sp.xml");
    std::fs::write(&sp_file, sp_metadata).unwrap();
    let log_path = dir.path().join("idp2.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(node_bin())
        .current_dir(&node_dir)
        .arg(&script)
        .args(["--port", &port.to_string(), "--sp-metadata"])
        .arg(&sp_file)
        .args(flags)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start node saml-idp2.mjs ({e}); scripts/install-deps --peers installs node"
            )
        });
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("saml-idp2.mjs did not start within 30 s:\n{}", stderr()))
        .expect("read saml-idp2.mjs stdout")
        .unwrap_or_else(|| panic!("saml-idp2.mjs exited before READY:\n{}", stderr()));
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert!(
        parts.len() == 3 && parts[0] == "READY",
        "saml-idp2.mjs: unexpected first line {line:?}\n{}",
        stderr()
    );
    let port = url::Url::parse(parts[2])
        .ok()
        .and_then(|u| u.port())
        .unwrap_or_else(|| panic!("saml-idp2.mjs: no port in {line:?}"));
    Idp2 {
        entity_id: parts[1].to_string(),
        metadata_url: parts[2].to_string(),
        port,
        _child: child,
        dir,
    }
}
