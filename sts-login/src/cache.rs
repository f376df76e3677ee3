//! The token cache shared with the Python helper (clients/PROTOCOL.md): `tokens.json` in
//! `$STS_LOGIN_HOME`, else `$XDG_CONFIG_HOME/sts-login`, else `~/.config/sts-login`; the directory 0700,
//! the file 0600, written to a new file and renamed; refreshes serialised across processes by an
//! exclusive lock on `tokens.lock` (refresh tokens rotate: one presented twice revokes the grant).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde_json::{Value, json};

pub fn dir() -> Result<PathBuf, String> {
    let d = if let Some(h) = std::env::var_os("STS_LOGIN_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(h)
    } else if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(x).join("sts-login")
    } else {
        let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
        PathBuf::from(home).join(".config").join("sts-login")
    };
    fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    fs::set_permissions(&d, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", d.display()))?;
    Ok(d)
}

/// Held while the cache is read, refreshed over HTTP and written back.
pub struct Lock(#[allow(dead_code)] File);

pub fn lock() -> Result<Lock, String> {
    let path = dir()?.join("tokens.lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    f.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(Lock(f))
}

pub fn read() -> Result<Value, String> {
    let path = dir()?.join("tokens.json");
    match fs::read(&path) {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not valid JSON ({e}); remove it", path.display()))?;
            if v["version"] != 1 || !v["sessions"].is_object() {
                return Err(format!(
                    "{} has an unknown format; remove it",
                    path.display()
                ));
            }
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(json!({"version": 1, "sessions": {}}))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub fn write(v: &Value) -> Result<(), String> {
    let d = dir()?;
    let tmp = d.join(format!("tokens.json.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let text = serde_json::to_vec_pretty(v).map_err(|e| e.to_string())?;
    f.write_all(&text)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, d.join("tokens.json")).map_err(|e| format!("cannot replace the cache: {e}"))
}
