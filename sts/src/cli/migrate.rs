//! `sts migrate --from URL --to URL`: a whole installation copied into an empty database, checked before
//! it commits.

use anyhow::{Context, bail};

use crate::clock;
use crate::config::{Config, redact_url};
use crate::keys::KeyService;
use crate::store;

/// `env:NAME` → the variable's value (a URL with a password stays out of the process list).
fn url_arg(value: &str) -> anyhow::Result<String> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name).with_context(|| {
            format!("the environment variable {name} (named by {value}) is not set")
        }),
        None => Ok(value.to_string()),
    }
}

pub async fn migrate(config: &Config, from: &str, to: &str) -> anyhow::Result<()> {
    let (from, to) = (url_arg(from)?, url_arg(to)?);
    let source_config = config.with_database_url(&from).context("--from")?;
    let target_config = config.with_database_url(&to).context("--to")?;
    let (shown_from, shown_to) = (redact_url(&from), redact_url(&to));
    if source_config.locations().database == target_config.locations().database {
        bail!("--from and --to name the same database ({shown_from})");
    }
    let source = store::connect_existing(&source_config)
        .await
        .with_context(|| format!("the source {shown_from}"))?;
    // The master key must be the one the source's keys were sealed under (checked here); the copy is
    // proved to open under it before it commits.
    let keys = KeyService::open(source.clone(), &source_config, clock::system(), "cli")
        .await
        .context("the master key does not fit the source")?;
    let target = store::connect(&target_config)
        .await
        .with_context(|| format!("the target {shown_to}"))?;
    let tables = store::copy::tables(&source).await?;
    let target_tables = store::copy::tables(&target).await?;
    if tables != target_tables {
        bail!(
            "the two databases have different tables (source: {tables:?}; target: {target_tables:?}): \
             run the same version of sts on both"
        );
    }
    let mut tx = store::begin_write(&target).await?;
    if let Some(t) = store::copy::first_non_empty(&mut tx, &tables).await? {
        bail!(
            "the target {shown_to} is not empty (table {t} has rows): sts migrate only copies into an empty database, nothing was written"
        );
    }
    let mut snapshot = store::copy::begin_snapshot(&source).await?;
    let mut total = 0u64;
    for t in &tables {
        let copied = store::copy::copy_table(&mut snapshot, &mut tx, t)
            .await
            .with_context(|| format!("copying {t}"))?;
        let (in_source, in_target) = (
            store::copy::count(&mut snapshot, t).await?,
            store::copy::count(&mut tx, t).await?,
        );
        if in_source != in_target || copied != in_source as u64 {
            bail!(
                "table {t}: {in_source} rows in the source, {copied} copied, {in_target} in the target: nothing was written"
            );
        }
        if in_source > 0 {
            eprintln!("{t}: {in_source} rows");
        }
        total += copied;
    }
    drop(snapshot);
    // Every sealed key of the copy opens under the master key.
    let sealed = store::copy::sealed(&mut tx).await?;
    for (kid, s) in &sealed.signing_keys {
        keys.check_signing_key(kid, s).with_context(|| {
            format!("signing key {kid} does not open in the copy: nothing was written")
        })?;
    }
    if let Some(s) = &sealed.sp_key {
        keys.open_sealed(s, crate::providers::saml::SP_KEY_AAD)
            .context("the SAML SP key does not open in the copy: nothing was written")?;
    }
    for (id, s) in &sealed.provider_secrets {
        keys.open_sealed(s, &crate::providers::managed::secret_aad(id))
            .with_context(|| {
                format!(
                    "the secret of provider {id} does not open in the copy: nothing was written"
                )
            })?;
    }
    if let Some(other) = sealed
        .client_secret_key_ids
        .iter()
        .find(|id| *id != keys.master_key_id())
    {
        bail!(
            "application secrets were hashed under another master key ({other}): nothing was written"
        );
    }
    tx.commit().await?;
    eprintln!(
        "copied {total} rows in {} tables from {shown_from} to {shown_to}; {} signing keys, {} provider secrets{} open under master key {}",
        tables.len(),
        sealed.signing_keys.len(),
        sealed.provider_secrets.len(),
        if sealed.sp_key.is_some() {
            " and the SAML SP key"
        } else {
            ""
        },
        keys.master_key_id()
    );
    Ok(())
}
