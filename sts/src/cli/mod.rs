//! The `sts` command line. Every command uses the same configuration, database and master key as the
//! server; a running server picks up key changes within `keys.reload_interval_seconds`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use zeroize::Zeroizing;

use crate::clock;
use crate::config::{Config, strip_newline};
use crate::declared::Declared;
use crate::keys::{KeyInfo, KeyRing, KeyService, import::MAX_KEYSTORE_BYTES};
use crate::startup::Application;
use crate::store;
use crate::tokens::{TokenIssuer, TokenKind, TokenRequest};

mod args;
pub use args::*;

mod migrate;

/// Entry point for the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let extra_env: Vec<String> = match &cli.command {
        Some(Command::Keys(KeysCommand::Import { args: a, .. }))
        | Some(Command::Saml(SamlCommand::ImportKey(a))) => {
            a.password_env.iter().cloned().collect()
        }
        Some(Command::Admin(AdminCommand::Create(a) | AdminCommand::Passwd(a))) => {
            a.password_env.iter().cloned().collect()
        }
        _ => vec![],
    };
    let extra: Vec<&str> = extra_env.iter().map(String::as_str).collect();
    let config = match Config::load(cli.config.as_deref(), &extra) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let declared = match crate::declared::Declared::from_config(&config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&config.log_filter, config.log_format);
    let command = cli.command.unwrap_or(Command::Serve);
    let at = config.locations();
    if matches!(command, Command::Serve) {
        tracing::info!(config_file = %at.config_file, database = %at.database, master_key = %at.master_key, "configuration");
    } else if cli.verbose {
        eprintln!(
            "config file: {}\ndatabase: {}\nmaster key: {}",
            at.config_file, at.database, at.master_key
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, config, declared)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes in one line, each cause once: a cause whose text the line already holds (many
/// errors repeat their source's message in their own) is left out.
pub fn describe(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        // A cause that repeats the line so far (and adds to it) replaces it.
        if !line.is_empty() && text.contains(&line) {
            line = text;
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

async fn run(command: Command, config: Config, declared: Declared) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build_declared(config, declared).await?;
            app.stop_on_signals()?;
            app.run_until_stopped().await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Keys(k) => keys(k, &config).await,
        Command::Clients(c) => clients(c, &config, &declared).await,
        Command::Admin(a) => admin(a, &config).await,
        Command::Export { out, with_secrets } => {
            let service = open_existing(&config).await?;
            let doc = crate::export::export(service.pool(), &service, with_secrets, service.now())
                .await?;
            let text = serde_json::to_string_pretty(&doc)? + "\n";
            match out {
                Some(path) => {
                    use std::io::Write;
                    let mut opts = std::fs::OpenOptions::new();
                    opts.write(true).create(true).truncate(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                    opts.open(&path)
                        .and_then(|mut f| f.write_all(text.as_bytes()))
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("exported to {}", path.display());
                }
                None => print!("{text}"),
            }
            store::admin::audit_alone(
                service.pool(),
                service.now(),
                "cli",
                "config.export",
                None,
                &serde_json::json!({"with_secrets": with_secrets}),
            )
            .await?;
            Ok(())
        }
        Command::Migrate { from, to } => migrate::migrate(&config, &from, &to).await,
        Command::Backup { out } => {
            let pool = store::connect_existing(&config).await?;
            store::copy::backup_sqlite(&pool, &out).await?;
            eprintln!(
                "backed up {} to {}",
                config.locations().database,
                out.display()
            );
            Ok(())
        }
        Command::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let service = open_service(&config).await?;
            let config_ids = declared.provider_ids();
            let (summary, providers) = crate::export::import(
                service.pool(),
                &service,
                &config_ids,
                &doc,
                config.token_max_lifetime,
                service.now(),
                "cli",
            )
            .await
            .map_err(|e| anyhow::anyhow!("import refused, nothing changed: {e}"))?;
            if !providers.is_empty() {
                eprintln!(
                    "note: a running server registers imported providers at its next start (the admin API's import applies them at once)"
                );
            }
            let summary = serde_json::to_value(&summary)?;
            println!("{summary}");
            Ok(())
        }
        Command::Saml(SamlCommand::ImportKey(args)) => {
            let password = read_password(&args)?;
            let data = read_keystore(&args.keystore)?;
            let service = open_service(&config).await?;
            let kid = crate::providers::saml::SpCredentials::import_pkcs12(
                &service,
                service.pool(),
                &data,
                &password,
            )
            .await
            .with_context(|| {
                format!(
                    "keystore {} refused; SAML SP key unchanged",
                    args.keystore.display()
                )
            })?;
            println!(
                "imported the SAML SP key {kid}; a running server uses it from its next key reload; give IdP admins the new SP metadata"
            );
            Ok(())
        }
        Command::Token(TokenCommand::Issue {
            sub,
            roles,
            aud,
            ttl,
        }) => {
            let service = Arc::new(open_service(&config).await?);
            service.ensure_active().await?;
            let ring = Arc::new(KeyRing::load(service, config.jwks_max_age).await?);
            let issuer = TokenIssuer::new(
                config.public_url.clone(),
                ring,
                clock::system(),
                config.token_lifetime,
                config.token_max_lifetime,
            );
            let roles = roles
                .into_iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect();
            let req = TokenRequest {
                kind: TokenKind::Access,
                subject: sub,
                audience: vec![aud.unwrap_or_else(|| config.public_url.clone())],
                roles,
                client_id: "sts-cli".into(),
                idp: None,
                ttl,
                extra: Default::default(),
            };
            let token = issuer.issue(&req)?;
            println!("{}", token.token);
            Ok(())
        }
    }
}

async fn open_service(config: &Config) -> anyhow::Result<KeyService> {
    let pool = store::connect(config).await?;
    Ok(KeyService::open(pool, config, clock::system(), "cli").await?)
}

/// For commands that only read: the database must exist already (see `store::connect_existing`).
async fn open_existing(config: &Config) -> anyhow::Result<KeyService> {
    let pool = store::connect_existing(config).await?;
    Ok(KeyService::open(pool, config, clock::system(), "cli").await?)
}

async fn admin(cmd: AdminCommand, config: &Config) -> anyhow::Result<()> {
    let (args, replace) = match cmd {
        AdminCommand::Create(a) => (a, false),
        AdminCommand::Passwd(a) => (a, true),
    };
    let username = args.username.trim().to_lowercase();
    if username.is_empty()
        || username.len() > 64
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        bail!("--username must be 1..=64 of a-z 0-9 . _ - @");
    }
    let password = Zeroizing::new(match (&args.password_env, &args.password_file) {
        (Some(var), _) => {
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?
        }
        (None, Some(path)) => strip_newline(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        (None, None) => {
            let first = rpassword::prompt_password(format!("Password for {username}: ")).context(
                "cannot read the password (no terminal? use --password-env or --password-file)",
            )?;
            let again = rpassword::prompt_password("Repeat it: ")?;
            if first != again {
                bail!("the passwords differ");
            }
            first
        }
    });
    admin_ui::auth::check_password_rules(&password).map_err(anyhow::Error::msg)?;
    let hash = admin_ui::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
    let service = open_service(config).await?;
    let now = service.now();
    // The administrator and the audit entry commit together.
    let mut tx = store::begin_write(service.pool()).await?;
    if !store::admin::upsert_admin(&mut tx, &username, &hash, now, replace).await? {
        if replace {
            bail!("there is no administrator {username} (create one with sts admin create)");
        }
        bail!("the administrator {username} exists already (sts admin passwd sets a new password)");
    }
    store::admin::audit(
        &mut tx,
        now,
        "cli",
        if replace {
            "admin.passwd"
        } else {
            "admin.create"
        },
        Some(&username),
        &serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    println!(
        "{} administrator {username}; sign in at {}/admin",
        if replace { "updated" } else { "created" },
        config.public_url
    );
    Ok(())
}

async fn clients(cmd: ClientsCommand, config: &Config, declared: &Declared) -> anyhow::Result<()> {
    use crate::oauth::clients::{AuthMethod, ClientRegistry, SecretHasher, generate_secret};
    let service = match cmd {
        ClientsCommand::List { .. } => open_existing(config).await?,
        ClientsCommand::Secret { .. } => open_service(config).await?,
    };
    let pool = service.pool().clone();
    if matches!(cmd, ClientsCommand::Secret { .. }) {
        crate::startup::sync_clients(&pool, declared, service.now(), false).await?;
    }
    let registry = ClientRegistry::load(pool.clone(), SecretHasher::new(&service)).await?;
    match cmd {
        ClientsCommand::List { json } => {
            let rows = store::oauth::load_clients(&pool).await?;
            let list: Vec<serde_json::Value> = rows
                .iter()
                .filter_map(|r| {
                    let s: crate::oauth::clients::ClientSettings =
                        serde_json::from_str(&r.settings).ok()?;
                    Some(serde_json::json!({
                        "id": s.id,
                        "name": s.name,
                        "type": s.client_type,
                        "grant_types": s.grant_types,
                        "auth_method": s.auth_method.as_str(),
                        "secret_set": r.secret_hash.is_some(),
                        "enabled": r.enabled,
                        "managed_by": r.managed_by,
                    }))
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<24} {:<13} {:<20} {:<7} {:<8} SOURCE",
                    "ID", "TYPE", "AUTH", "SECRET", "ENABLED"
                );
                for c in &list {
                    println!(
                        "{:<24} {:<13} {:<20} {:<7} {:<8} {}",
                        c["id"].as_str().unwrap_or(""),
                        c["type"].as_str().unwrap_or(""),
                        c["auth_method"].as_str().unwrap_or(""),
                        if c["secret_set"] == true { "yes" } else { "no" },
                        if c["enabled"] == true { "yes" } else { "no" },
                        c["managed_by"].as_str().unwrap_or("")
                    );
                }
            }
        }
        ClientsCommand::Secret { id } => {
            let rows = store::oauth::load_clients(&pool).await?;
            let Some(row) = rows.iter().find(|r| r.client_id == id) else {
                bail!("no client `{id}` (declare it in [[clients]] of the configuration)");
            };
            let s: crate::oauth::clients::ClientSettings = serde_json::from_str(&row.settings)?;
            if !matches!(
                s.auth_method,
                AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
            ) {
                bail!(
                    "client `{id}` authenticates with {}: it has no secret",
                    s.auth_method.as_str()
                );
            }
            let secret = generate_secret();
            let hash = registry.hasher.hash(&secret);
            // The new secret and its audit entry commit together.
            let mut tx = store::begin_write(&pool).await?;
            store::oauth::set_client_secret(
                &mut *tx,
                &id,
                &hash,
                registry.hasher.key_id(),
                service.now(),
            )
            .await?;
            store::admin::audit(
                &mut tx,
                service.now(),
                "cli",
                "application.rotate_secret",
                Some(&id),
                &serde_json::json!({}),
            )
            .await?;
            tx.commit().await?;
            tracing::info!(client = %id, "client secret replaced");
            println!("{}", secret.as_str());
            eprintln!(
                "a running server accepts the new secret at once; the previous one keeps working until it reloads the applications (within keys.reload_interval_seconds = {} s)",
                config.key_reload_interval.as_secs()
            );
        }
    }
    Ok(())
}

async fn keys(cmd: KeysCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List { json } => {
            let keys = open_existing(config).await?.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print_table(&keys);
            }
        }
        KeysCommand::Regenerate => {
            let info = open_service(config).await?.regenerate().await?;
            println!(
                "generated key {} (active); the previous key stays published until its tokens expire",
                info.kid
            );
        }
        KeysCommand::Rotate => {
            let info = open_service(config).await?.stage_next(None).await?;
            println!(
                "staged key {} as the next key: published now, active from {} (unix time; a running server switches at its first key reload after it)",
                info.kid,
                info.activate_after.unwrap_or_default()
            );
        }
        KeysCommand::Import { args, next } => {
            // Read and check the inputs before touching the database.
            let password = read_password(&args)?;
            let data = read_keystore(&args.keystore)?;
            let service = open_service(config).await?;
            let refused = || {
                format!(
                    "keystore {} refused; keys unchanged",
                    args.keystore.display()
                )
            };
            if next {
                let info = service
                    .stage_next_pkcs12(&data, &password, None)
                    .await
                    .with_context(refused)?;
                println!(
                    "imported key {} as the next key ({} certificate(s)): published now, active from {} (unix time)",
                    info.kid,
                    info.certificates,
                    info.activate_after.unwrap_or_default()
                );
            } else {
                let info = service
                    .import_pkcs12(&data, &password)
                    .await
                    .with_context(refused)?;
                println!(
                    "imported key {} (active, {} certificate(s)); the previous key stays published until its tokens expire",
                    info.kid, info.certificates
                );
            }
        }
    }
    Ok(())
}

/// Read a keystore file (bounded size), before anything touches the database.
fn read_keystore(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("keystore {}", path.display()))?;
    if meta.len() > MAX_KEYSTORE_BYTES as u64 {
        bail!(
            "keystore {}: larger than {MAX_KEYSTORE_BYTES} bytes",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("keystore {}", path.display()))
}

fn read_password(args: &ImportArgs) -> anyhow::Result<Zeroizing<String>> {
    let pw =
        match (&args.password_env, &args.password_file) {
            (Some(var), None) => Zeroizing::new(std::env::var(var).with_context(|| {
                format!("--password-env: environment variable {var} is not set")
            })?),
            (None, Some(path)) => Zeroizing::new(strip_newline(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--password-file {}", path.display()))?,
            )),
            _ => bail!("give exactly one of --password-env or --password-file"),
        };
    if pw.is_empty() {
        bail!("the keystore password is empty; a password-protected keystore is required");
    }
    Ok(pw)
}

fn fmt_time(t: Option<i64>) -> String {
    let Some(t) = t else { return "-".into() };
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

fn print_table(keys: &[KeyInfo]) {
    println!(
        "{:<44}  {:<6}  {:<13}  {:<9}  {:<20}  {:<20}",
        "KID", "ALG", "SOURCE", "STATE", "CREATED", "IN JWKS UNTIL"
    );
    for k in keys {
        let until = match k.state.as_str() {
            "active" => "-".to_string(),
            "next" => format!("active from {}", fmt_time(k.activate_after)),
            _ => fmt_time(k.publish_until),
        };
        println!(
            "{:<44}  {:<6}  {:<13}  {:<9}  {:<20}  {:<20}",
            k.kid,
            k.alg,
            k.source,
            k.state,
            fmt_time(Some(k.created_at)),
            until
        );
    }
}
