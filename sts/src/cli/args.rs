//! The command line's shape (clap): commands, subcommands and their arguments, with the help texts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sts",
    version,
    about = "Security token service: delegated login, signed JWTs, JWKS"
)]
pub struct Cli {
    /// Config file (default: conf/sts.toml when present; also STS_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the config file read, the database and the master key location before running the command
    /// (`sts serve` always logs them).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage token-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Operator tools for tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// SAML service-provider credentials.
    #[command(subcommand)]
    Saml(SamlCommand),
    /// Registered applications (OAuth clients).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Administrators of the admin console (/admin).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write the whole configuration (providers, applications, key metadata; no private keys, no secrets
    /// unless --with-secrets) as one versioned JSON document.
    Export {
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Include the applications' secret hashes (usable only with the same master key).
        #[arg(long)]
        with_secrets: bool,
    },
    /// Copy a whole installation into an empty database (SQLite → PostgreSQL and back): every table in
    /// one transaction on the target, then the row counts compared and every sealed key opened under the
    /// master key; nothing is written to the target unless all of it holds. URLs as in database.url;
    /// `env:NAME` reads one from an environment variable (keeps a password out of the process list).
    Migrate {
        /// The installation to copy (read in one consistent snapshot; a running server may go on).
        #[arg(long, value_name = "URL")]
        from: String,
        /// The empty database to copy into (created for SQLite; for PostgreSQL the database must exist).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// A consistent copy of the SQLite database, made while the server runs (VACUUM INTO): a new file,
    /// mode 0600. For PostgreSQL use pg_dump.
    Backup {
        /// The file to write (must not exist).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Read a document written by `sts export`: everything is validated first, then applied in one
    /// transaction (applications are replaced or added). A running server picks the changes up within
    /// keys.reload_interval_seconds.
    Import {
        /// The document (JSON).
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an administrator (password: prompted, or from --password-env / --password-file; 12+
    /// characters; stored as an argon2id hash).
    Create(AdminArgs),
    /// Set a new password for an existing administrator (ends their sessions).
    Passwd(AdminArgs),
}

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The administrator's user name (1..=64 of a-z 0-9 . _ - @; stored lowercase).
    #[arg(long)]
    pub username: String,
    /// Name of the environment variable holding the password.
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// File holding the password (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// List applications: id, name, type, grant types, secret set, source.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Generate a new secret for a confidential client and print it once; the previous secret stops
    /// working (a running server notices within keys.reload_interval_seconds). Only its keyed hash is stored.
    Secret {
        /// The client id.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SamlCommand {
    /// Replace the SAML SP key and certificate with a PKCS#12 keystore (exactly one RSA key pair with
    /// its certificate). Restart the server to use it; give IdP admins the new metadata.
    ImportKey(ImportArgs),
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List keys: kid, algorithm, source, state, created.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import a PKCS#12 keystore holding exactly one RSA key pair; it becomes the active key (with --next:
    /// it is staged as the next key instead, like `keys rotate`).
    Import {
        #[command(flatten)]
        args: ImportArgs,
        /// Stage the imported key as the next key: published at once, active after jwks.max_age_seconds
        /// + keys.reload_interval_seconds + tokens.leeway_seconds.
        #[arg(long)]
        next: bool,
    },
    /// Generate a new key and make it active at once; the previous one stays published until its tokens
    /// expire. For an emergency: verifiers with a cached JWKS meet the new kid before they refetch (use
    /// `keys rotate` for planned rotations).
    Regenerate,
    /// Stage a new key as the next key: it is published in the JWKS at once and signs nothing until
    /// jwks.max_age_seconds + keys.reload_interval_seconds + tokens.leeway_seconds have passed; then a
    /// running server makes it active (and the previous key stays published until its tokens expire).
    /// Verifiers with a cached JWKS never meet an unknown kid.
    Rotate,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The PKCS#12 file (.p12 / .pfx).
    #[arg(long, value_name = "PATH")]
    pub keystore: PathBuf,
    /// Name of the environment variable holding the keystore password.
    #[arg(
        long,
        value_name = "VAR",
        conflicts_with = "password_file",
        required_unless_present = "password_file"
    )]
    pub password_env: Option<String>,
    /// File holding the keystore password (one trailing newline is ignored).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a signed access token (to test verifiers).
    Issue {
        /// Subject (`sub`).
        #[arg(long)]
        sub: String,
        /// Comma-separated roles.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Audience (`aud`); default: the public URL.
        #[arg(long)]
        aud: Option<String>,
        /// Lifetime in seconds; default tokens.lifetime_seconds, at most tokens.max_lifetime_seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
}
