//! The whole configuration as one versioned JSON document: `sts export` / `sts import` and the admin API
//! (`GET /admin/api/v1/export`, `POST /admin/api/v1/import`).
//!
//! Contents (format `sts-export`, version 1): identity providers (their settings, never client secrets),
//! applications (settings, source, enabled; secret hashes only with `with_secrets`, and they only work
//! under the same master key), signing-key metadata (kid, algorithm, source, state, created; never private
//! keys). Import validates every entry first and then applies them in one transaction: applications are
//! upserted (an existing one is replaced), and so are the providers added in the admin console (their TOML
//! `source`; their client secret only with `with_secrets`, sealed, so it opens only under the same master
//! key). Nothing is half-applied. Providers of the configuration file and key metadata are informational:
//! they come from the file, and keys cannot move without their private halves (use a PKCS#12 import).

use serde_json::{Value, json};

use crate::keys::KeyService;
use crate::oauth::clients::ClientRefused;
use crate::oauth::clients::{ClientSettings, RawClient};
use crate::store::{self, Pool};

pub const FORMAT: &str = "sts-export";
pub const VERSION: i64 = 1;

/// Why an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("a stored setting is not readable JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub async fn export(
    pool: &Pool,
    keys: &KeyService,
    with_secrets: bool,
    now: i64,
) -> Result<Value, ExportError> {
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        String,
        String,
        String,
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT id, kind, display_name, enabled, settings, managed_by, source, secret_sealed \
             FROM identity_providers ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    let providers: Vec<Value> = rows
        .into_iter()
        .map(|(id, kind, name, enabled, settings, managed_by, source, sealed)| {
            let mut p = json!({
                "id": id, "type": kind, "display_name": name, "enabled": enabled == 1, "managed_by": managed_by,
                "settings": serde_json::from_str::<Value>(&settings).unwrap_or(Value::Null),
            });
            if managed_by == "admin" {
                p["source"] = json!(source.unwrap_or_default());
                if with_secrets && let Some(s) = sealed {
                    p["secret_sealed"] = json!(s);
                }
            }
            p
        })
        .collect();
    let mut applications = Vec::new();
    for row in store::oauth::load_clients(pool).await? {
        let settings: Value = serde_json::from_str(&row.settings)?;
        let mut a =
            json!({"managed_by": row.managed_by, "enabled": row.enabled, "settings": settings});
        if with_secrets && let (Some(h), Some(k)) = (&row.secret_hash, &row.secret_key_id) {
            a["secret_hash"] = json!(h);
            a["secret_key_id"] = json!(k);
        }
        applications.push(a);
    }
    let keys: Vec<Value> = keys
        .list()
        .await?
        .into_iter()
        .map(|k| json!({"kid": k.kid, "algorithm": k.alg, "source": k.source, "state": k.state, "created_at": k.created_at}))
        .collect();
    Ok(json!({
        "format": FORMAT,
        "version": VERSION,
        "exported_at": now,
        "providers": providers,
        "applications": applications,
        "keys": keys,
    }))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportSummary {
    pub applications: usize,
    /// Applications of the configuration file (informational: they come from the file).
    pub applications_skipped: usize,
    /// Console providers added or replaced.
    pub providers: usize,
    /// Providers of the configuration file (informational: they come from the file).
    pub providers_skipped: usize,
    pub keys_skipped: usize,
}

struct ConsoleProvider {
    settings: crate::providers::ProviderSettings,
    enabled: bool,
    source: String,
    sealed: Option<String>,
}

struct App {
    settings: ClientSettings,
    managed_by: String,
    enabled: bool,
    secret: Option<(String, String)>,
}

/// Validate the whole document, then apply it in one transaction. Errors name the entry. Returns the
/// summary and the console providers applied (for a running server to register them at once).
pub async fn import(
    pool: &Pool,
    keys: &KeyService,
    config_ids: &[String],
    doc: &Value,
    max_lifetime: u64,
    now: i64,
    actor: &str,
) -> Result<(ImportSummary, Vec<crate::providers::ProviderSettings>), ImportError> {
    let bad = |m: String| ImportError::Invalid(m);
    if doc["format"] != FORMAT {
        return Err(bad(format!(
            "not an STS export (format must be {FORMAT:?})"
        )));
    }
    if doc["version"] != VERSION {
        return Err(bad(format!(
            "unsupported version {} (this STS reads version {VERSION})",
            doc["version"]
        )));
    }
    let list = |k: &str| -> Result<Vec<Value>, ImportError> {
        match &doc[k] {
            Value::Null => Ok(vec![]),
            Value::Array(a) => Ok(a.clone()),
            _ => Err(bad(format!("`{k}` must be an array"))),
        }
    };
    let mut apps = Vec::new();
    let mut apps_skipped = 0;
    let config_clients: Vec<String> =
        sqlx::query_scalar("SELECT client_id FROM oauth_clients WHERE managed_by = 'config'")
            .fetch_all(pool)
            .await
            .map_err(ImportError::Db)?;
    for (i, a) in list("applications")?.iter().enumerate() {
        let at = |m: String| bad(format!("applications[{i}]: {m}"));
        let settings: ClientSettings =
            serde_json::from_value(a["settings"].clone()).map_err(|e| at(e.to_string()))?;
        // Validated exactly like a [[clients]] entry.
        let again = revalidate(&settings, max_lifetime).map_err(|e| at(e.0))?;
        let managed_by = match a["managed_by"].as_str() {
            Some(m @ ("config" | "admin")) => m.to_string(),
            _ => return Err(at("managed_by must be \"config\" or \"admin\"".into())),
        };
        if managed_by == "config" {
            // The configuration file's entries come from the file of the server that reads it.
            apps_skipped += 1;
            continue;
        }
        let enabled = a["enabled"]
            .as_bool()
            .ok_or_else(|| at("enabled must be true or false".into()))?;
        let secret = match (a["secret_hash"].as_str(), a["secret_key_id"].as_str()) {
            (Some(h), Some(k)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some((h.to_string(), k.to_string()))
            }
            (None, None) => None,
            _ => {
                return Err(at(
                    "secret_hash (64 hex) and secret_key_id go together".into()
                ));
            }
        };
        if config_clients.contains(&again.id) {
            return Err(at(format!(
                "{:?} is managed by this server's configuration file",
                again.id
            )));
        }
        if apps.iter().any(|x: &App| x.settings.id == again.id) {
            return Err(at(format!("client id {:?} appears twice", again.id)));
        }
        apps.push(App {
            settings: again,
            managed_by,
            enabled,
            secret,
        });
    }
    let mut console = Vec::new();
    let mut skipped = 0;
    for (i, p) in list("providers")?.iter().enumerate() {
        let at = |m: String| bad(format!("providers[{i}]: {m}"));
        if p["managed_by"] != "admin" {
            skipped += 1;
            continue;
        }
        let source = p["source"]
            .as_str()
            .ok_or_else(|| at("a console provider needs its `source`".into()))?;
        let sealed = p["secret_sealed"].as_str().map(str::to_string);
        let id = p["id"].as_str().unwrap_or_default();
        let secret = match &sealed {
            Some(s) => Some(
                keys.open_sealed(s, &crate::providers::managed::secret_aad(id))
                    .map_err(|_| at("secret_sealed cannot be opened with this master key (export and import need the same one)".into()))
                    .and_then(|b| String::from_utf8(b.to_vec()).map_err(|_| at("secret_sealed is not text".into())))?,
            ),
            None => None,
        };
        let settings = crate::providers::managed::settings_from_source(source, secret.as_deref())
            .map_err(|e| {
            at(format!(
                "{e} (export with --with-secrets to carry client secrets)"
            ))
        })?;
        if settings.id != id {
            return Err(at(format!(
                "id {id:?} differs from the id in `source` ({:?})",
                settings.id
            )));
        }
        if config_ids.contains(&settings.id) {
            return Err(at(format!(
                "{:?} is declared in this server's configuration file",
                settings.id
            )));
        }
        let enabled = p["enabled"]
            .as_bool()
            .ok_or_else(|| at("enabled must be true or false".into()))?;
        console.push(ConsoleProvider {
            settings,
            enabled,
            source: source.to_string(),
            sealed,
        });
    }
    let keys_n = list("keys")?.len();
    let mut tx = crate::store::begin_write(pool)
        .await
        .map_err(ImportError::Db)?;
    for c in &console {
        let json = serde_json::to_string(&c.settings)
            .map_err(|e| ImportError::Invalid(format!("provider `{}`: {e}", c.settings.id)))?;
        sqlx::query(
            "INSERT INTO identity_providers (id, kind, display_name, enabled, settings, managed_by, source, secret_sealed, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'admin', $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, display_name = excluded.display_name, enabled = excluded.enabled, \
             settings = excluded.settings, managed_by = 'admin', source = excluded.source, \
             secret_sealed = COALESCE(excluded.secret_sealed, identity_providers.secret_sealed), updated_at = excluded.updated_at",
        )
        .bind(&c.settings.id)
        .bind(c.settings.kind.type_name())
        .bind(&c.settings.display_name)
        .bind(i64::from(c.enabled))
        .bind(json)
        .bind(&c.source)
        .bind(c.sealed.as_deref())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(ImportError::Db)?;
    }
    for a in &apps {
        let json = serde_json::to_string(&a.settings)
            .map_err(|e| ImportError::Invalid(format!("application `{}`: {e}", a.settings.id)))?;
        sqlx::query(
            "INSERT INTO oauth_clients (client_id, settings, managed_by, enabled, secret_hash, secret_key_id, secret_created_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (client_id) DO UPDATE SET settings = excluded.settings, \
             enabled = excluded.enabled, secret_hash = COALESCE(excluded.secret_hash, oauth_clients.secret_hash), \
             secret_key_id = COALESCE(excluded.secret_key_id, oauth_clients.secret_key_id), updated_at = excluded.updated_at \
             WHERE oauth_clients.managed_by = 'admin'",
        )
        .bind(&a.settings.id)
        .bind(json)
        .bind(&a.managed_by)
        .bind(i64::from(a.enabled))
        .bind(a.secret.as_ref().map(|s| s.0.clone()))
        .bind(a.secret.as_ref().map(|s| s.1.clone()))
        .bind(a.secret.as_ref().map(|_| now))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(ImportError::Db)?;
    }
    let summary = ImportSummary {
        applications: apps.len(),
        applications_skipped: apps_skipped,
        providers: console.len(),
        providers_skipped: skipped,
        keys_skipped: keys_n,
    };
    // The audit entry commits with the import.
    crate::store::admin::audit(
        &mut tx,
        now,
        actor,
        "config.import",
        None,
        &serde_json::to_value(&summary).unwrap_or_default(),
    )
    .await
    .map_err(ImportError::Db)?;
    tx.commit().await.map_err(ImportError::Db)?;
    let live = console
        .into_iter()
        .map(|c| {
            let mut s = c.settings;
            s.enabled = c.enabled;
            s
        })
        .collect();
    Ok((summary, live))
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(sqlx::Error),
}

/// Run stored settings through the same validation as the configuration file.
fn revalidate(s: &ClientSettings, max_lifetime: u64) -> Result<ClientSettings, ClientRefused> {
    let raw = RawClient {
        id: s.id.clone(),
        name: Some(s.name.clone()),
        client_type: s.client_type,
        redirect_uris: s.redirect_uris.clone(),
        post_logout_redirect_uris: s.post_logout_redirect_uris.clone(),
        grant_types: Some(s.grant_types.clone()),
        scopes: Some(s.scopes.clone()),
        audience: Some(s.audience.clone()),
        roles: s.roles.clone(),
        access_token_lifetime_seconds: s.access_token_lifetime.map(|v| v as i64),
        refresh_token_lifetime_seconds: Some(s.refresh_token_lifetime as i64),
        providers: s.providers.clone(),
        token_endpoint_auth_method: Some(s.auth_method),
        jwks: s.jwks.as_ref().map(|j| j.to_string()),
        enabled: s.enabled,
    };
    raw.validate(max_lifetime)
}
