//! `Application`: open the store, check the master key, make sure a signing key exists, bind the listener
//! (port 0 works, for tests), then serve until stopped.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::App;
use actix_web::dev::{Server, ServerHandle};

use crate::clock::{self, SharedClock};
use crate::config::Config;
use crate::declared::Declared;
use crate::keys::{KeyRing, KeyService};
use crate::providers::Registry;
use crate::store;
use crate::store::Pool;
use crate::tokens::TokenIssuer;
use crate::web::{self, AppState, WebSettings};

mod metrics;
mod tls;
use tls::rustls_config;

/// Why the server could not start. Each variant says what was being done; the cause is its source (the
/// CLI prints the chain once, `cli::describe`).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the declared providers or applications could not be recorded: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    SamlSp(#[from] crate::providers::saml::SpCredentialsError),
    #[error("{what}")]
    Tls {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("TLS: the certificate chain is empty")]
    TlsEmptyChain,
    #[error("the listener: {0}")]
    Io(#[from] std::io::Error),
}

impl StartError {
    fn tls(what: String) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Self {
        move |source| StartError::Tls { what, source }
    }
}

pub struct Application {
    port: u16,
    server: Server,
    /// `metrics.listen`: its own small server, stopped with the main one.
    metrics_server: Option<Server>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    draining: Arc<std::sync::atomic::AtomicBool>,
    shutdown_grace: std::time::Duration,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, clock::system()).await
    }

    pub async fn build_with_clock(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        let listener = TcpListener::bind(config.listen).map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        Self::build_on(config, clock, listener).await
    }

    /// Build with the providers and applications the caller already validated (`sts serve`: the CLI
    /// checks them right after loading the configuration, so they are not read twice).
    pub async fn build_declared(config: Config, declared: Declared) -> Result<Self, StartError> {
        let listener = TcpListener::bind(config.listen).map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        Self::start(config, declared, clock::system(), listener).await
    }

    /// Build on an already-bound listener (tests bind port 0 first so the public URL can name the port).
    pub async fn build_on(
        config: Config,
        clock: SharedClock,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        let declared = Declared::from_config(&config)?;
        Self::start(config, declared, clock, listener).await
    }

    async fn start(
        config: Config,
        declared: Declared,
        clock: SharedClock,
        listener: TcpListener,
    ) -> Result<Self, StartError> {
        if !config.public_url.starts_with("https://") {
            tracing::warn!(public_url = %config.public_url,
                "public URL is not https: fine on loopback or behind a TLS-terminating proxy, not otherwise");
        }
        let pool = store::connect(&config).await?;
        store::check_writable(&pool, &config).await?;
        let service =
            Arc::new(KeyService::open(pool.clone(), &config, clock.clone(), "server").await?);
        service.ensure_active().await?;
        service.retire_expired().await?;
        let keys = Arc::new(KeyRing::load(service.clone(), config.jwks_max_age).await?);
        let reloader = keys.spawn_reloader(config.key_reload_interval);
        sync_providers(&pool, &declared, clock.now()).await?;
        let console_providers = load_console_providers(&pool, &declared, &service).await?;
        let saml = if declared
            .providers
            .iter()
            .chain(console_providers.iter())
            .any(|p| p.kind.needs_sp_credentials())
        {
            let credentials =
                crate::providers::saml::SpCredentials::load_or_create(&service, &pool).await?;
            Some(crate::providers::SamlContext {
                credentials: Arc::new(credentials),
                entity_id: config.saml_metadata_url(),
                acs_url: config.saml_acs_url(),
                base_url: format!("{}/sso/sso-saml", config.public_url),
            })
        } else {
            None
        };
        let providers = Arc::new(Registry::new(
            declared
                .providers
                .iter()
                .cloned()
                .chain(console_providers)
                .collect(),
            clock.clone(),
            saml.as_ref(),
        ));
        let tokens = Arc::new(TokenIssuer::new(
            config.public_url.clone(),
            keys.clone(),
            clock.clone(),
            config.token_lifetime,
            config.token_max_lifetime,
        ));
        sync_clients(&pool, &declared, clock.now(), true).await?;
        crate::oauth::builtin::ensure(&pool, clock.now()).await?;
        let clients = Arc::new(
            crate::oauth::clients::ClientRegistry::load(
                pool.clone(),
                crate::oauth::clients::SecretHasher::new(&service),
            )
            .await?,
        );
        let client_reloader = clients.spawn_reloader(config.key_reload_interval);
        let purger = spawn_purger(pool.clone(), clock.clone());
        let mut tasks = vec![reloader, client_reloader, purger];
        for p in providers.enabled() {
            if let Some(task) = crate::providers::metadata::start_saml_metadata(&p).await {
                tasks.push(task);
            }
        }

        let backend = Arc::new(crate::admin::Backend {
            pool: pool.clone(),
            keys: service.clone(),
            ring: keys.clone(),
            clients: clients.clone(),
            clock: clock.clone(),
            secure_cookies: config.public_url.starts_with("https://"),
            token_max_lifetime: config.token_max_lifetime,
            providers: providers.clone(),
            public_url: config.public_url.clone(),
            config_provider_ids: declared.provider_ids(),
            sso_roles: config.admin_sso_roles.clone(),
            provider_changes: tokio::sync::Mutex::new(()),
            session_idle: config.session_idle_timeout as i64,
            console_seen: tokio::sync::Mutex::new(Default::default()),
        });
        // Record what was just built, before any request can change it.
        if let Err(e) = backend.pick_up_console_changes().await {
            tracing::warn!(error = %e, "recording the console providers failed; the first reload rebuilds them");
        }
        // Console providers changed through another replica (shared database) are picked up on the
        // same interval as keys and applications.
        tasks.push(
            backend
                .clone()
                .spawn_console_sync(config.key_reload_interval),
        );
        let admin: Arc<dyn admin_ui::AdminBackend> = backend;
        let limiter = Arc::new(admin_ui::auth::RateLimiter::default());
        let port = listener.local_addr()?.port();
        let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = actix_web::web::Data::new(AppState {
            draining: draining.clone(),
            keys: keys.clone(),
            issuer: config.public_url.clone(),
            jwks_uri: config.jwks_uri(),
            pool,
            providers,
            clients,
            tokens,
            clock,
            web: WebSettings {
                secure_cookies: config.public_url.starts_with("https://"),
                echo: config.echo,
                login: crate::sso::login::LoginPolicy {
                    session_idle: config.session_idle_timeout,
                    session_absolute: config.session_absolute_timeout,
                    flow_ttl: config.login_flow_ttl,
                    oidc_redirect_uri: config.oidc_redirect_uri(),
                    oauth_redirect_uri: config.oauth_redirect_uri(),
                    saml_acs_url: config.saml_acs_url(),
                },
                device: crate::oauth::device::DevicePolicy {
                    code_lifetime: config.device_code_lifetime,
                    poll_interval: config.device_poll_interval,
                },
            },
        });
        let https_public = config.public_url.starts_with("https://");
        let body_timeout = config.request_body_timeout;
        let trusted_proxies: Arc<[ipnet::IpNet]> = config.trusted_proxies.clone().into();
        let metrics_on_main = config.metrics_on_main;
        crate::measure::install();
        let metrics_server = match config.metrics_listen {
            Some(addr) => Some(metrics::serve(addr, state.clone())?),
            None => None,
        };
        let make_app = move || {
            let trusted = trusted_proxies.clone();
            App::new()
                .app_data(state.clone())
                .wrap(web::security_headers(https_public))
                .wrap_fn(move |req, srv| web::body_deadline(req, srv, body_timeout))
                .wrap_fn(move |req, srv| web::request_span(req, srv, &trusted))
                .configure(|cfg| admin_ui::configure(cfg, admin.clone(), limiter.clone()))
                .configure(move |cfg| web::routes_with(cfg, metrics_on_main))
        };
        let tls = match &config.tls {
            None => None,
            Some(tls) => Some(rustls_config(tls)?),
        };
        let server = serve(listener, &config, tls, make_app)?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(listen = %format!("{scheme}://{}:{port}", config.listen.ip()), issuer = %config.public_url,
            active_kid = keys.current().active.as_ref().map(|k| k.kid.as_str()).unwrap_or("-"), "sts started");
        Ok(Self {
            port,
            server,
            metrics_server,
            tasks,
            draining,
            shutdown_grace: config.shutdown_grace,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// `sts serve`: at SIGTERM or SIGINT, `/ready` answers 503 for `server.shutdown_grace_seconds` while
    /// requests are still served; then the server stops accepting, finishes the requests in flight (at
    /// most 30 s) and returns. A second signal ends the grace period at once. (Not for tests, which run
    /// several servers in one process: signal handlers belong to the process.)
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (handle, draining, grace) = (
            self.server.handle(),
            self.draining.clone(),
            self.shutdown_grace,
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(
                grace_seconds = grace.as_secs(),
                "shutting down: /ready answers 503, then the requests in flight finish"
            );
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            handle.stop(true).await;
        });
        Ok(())
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|s| {
            let handle = s.handle();
            (tokio::spawn(s), handle)
        });
        let res = self.server.await;
        if let Some((task, handle)) = metrics {
            handle.stop(false).await;
            let _ = task.await;
        }
        self.tasks.iter().for_each(|t| t.abort());
        res
    }
}

/// Record the config-declared providers in the database (the admin UI will edit the same rows).
async fn sync_providers(pool: &Pool, declared: &Declared, now: i64) -> Result<(), StartError> {
    let rows: Vec<(String, String, String, bool, String)> = declared
        .providers
        .iter()
        .map(|p| {
            Ok((
                p.id.clone(),
                p.kind.type_name().to_string(),
                p.display_name.clone(),
                p.enabled,
                serde_json::to_string(p)?,
            ))
        })
        .collect::<Result<_, serde_json::Error>>()?;
    store::login::sync_config_providers(pool, &rows, now).await?;
    for p in &declared.providers {
        tracing::info!(provider = %p.id, kind = p.kind.type_name(), enabled = p.enabled, "identity provider configured");
    }
    Ok(())
}

/// Record the config-declared applications (their secrets are set with `sts clients secret`).
/// `disable_missing`: config-managed clients no longer declared are disabled (the server does this; the
/// CLI, which may run with another file, only adds and updates).
pub async fn sync_clients(
    pool: &Pool,
    declared: &Declared,
    now: i64,
    disable_missing: bool,
) -> Result<(), StartError> {
    let rows: Vec<(String, String, bool)> = declared
        .clients
        .iter()
        .map(|c| Ok((c.id.clone(), serde_json::to_string(c)?, c.enabled)))
        .collect::<Result<_, serde_json::Error>>()?;
    store::oauth::sync_config_clients(pool, &rows, now, disable_missing).await?;
    Ok(())
}

/// Providers added in the admin console, validated again (a provider that no longer validates is logged
/// and left out; an id now declared in the configuration file is the file's).
async fn load_console_providers(
    pool: &Pool,
    declared: &Declared,
    keys: &KeyService,
) -> Result<Vec<crate::providers::ProviderSettings>, StartError> {
    let mut out = Vec::new();
    for (id, source, sealed, enabled) in store::admin::admin_providers(pool).await? {
        if declared.providers.iter().any(|p| p.id == id) {
            tracing::warn!(provider = %id, "a console provider has the id of a configured one: the configuration file wins");
            continue;
        }
        match crate::providers::managed::stored_settings(
            keys,
            &id,
            &source,
            sealed.as_deref(),
            enabled,
        ) {
            Ok(s) => {
                tracing::info!(provider = %id, kind = s.kind.type_name(), enabled, "identity provider from the admin console");
                out.push(s);
            }
            Err(e) => tracing::error!(provider = %id, error = %e, "console provider left out"),
        }
    }
    Ok(out)
}

/// Delete expired login flows and sessions every minute.
fn spawn_purger(pool: Pool, clock: SharedClock) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = store::saml::purge_assertion_ids(&pool, clock.now()).await {
                tracing::warn!(error = %e, "purging the SAML replay cache failed");
            }
            if let Err(e) = store::login::purge_expired(&pool, clock.now()).await {
                tracing::warn!(error = %e, "purging expired flows and sessions failed");
            }
            if let Err(e) = store::oauth::purge_expired(&pool, clock.now()).await {
                tracing::warn!(error = %e, "purging expired codes and tokens failed");
            }
            if let Err(e) = store::device::purge_expired(&pool, clock.now()).await {
                tracing::warn!(error = %e, "purging expired device grants failed");
            }
            if let Err(e) = store::admin::purge_expired(&pool, clock.now()).await {
                tracing::warn!(error = %e, "purging expired admin sessions failed");
            }
        }
    })
}

/// What `App::new()…` builds: the service factory each worker runs.
trait AppService:
    actix_service::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    > + 'static
{
}

impl<T> AppService for T where
    T: actix_service::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<actix_web::body::BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static
{
}

/// The HTTP server, assembled from actix-web's parts like `HttpServer::listen` does, with one change:
/// each connection's stream (the TCP stream, or the TLS stream above it) is wrapped in
/// [`web::conn::HeadDeadline`], so every request head on a kept-alive connection has the header
/// timeout, not only the first (actix-http's own head timer). Slow or silent clients: the head must
/// arrive within the header timeout, its body within the body timeout (`body_deadline`); idle kept-alive
/// connections close after `keep_alive`; at most `max_connections_per_worker` are open per worker and
/// at most 256 TLS handshakes run at once per worker. HTTP/1.1 only (TLS offers `http/1.1`).
fn serve<F, T>(
    listener: TcpListener,
    config: &Config,
    tls: Option<rustls::ServerConfig>,
    make_app: F,
) -> Result<Server, StartError>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: AppService,
{
    use actix_http::{HttpService, Protocol};
    use actix_service::{ServiceFactoryExt, fn_service, map_config};
    use actix_web::dev::AppConfig;
    use web::conn::HeadDeadline;

    let header_timeout = config.request_header_timeout;
    let keep_alive = if config.keep_alive.is_zero() {
        actix_http::KeepAlive::Disabled
    } else {
        actix_http::KeepAlive::Timeout(config.keep_alive)
    };
    let addr = listener.local_addr()?;
    // One HTTP/1.1 service per worker and listener, over the wrapped stream `Io`.
    fn http<Io, F, T>(
        make_app: &F,
        shutdown: actix_server::GracefulShutdownSignal,
        keep_alive: actix_http::KeepAlive,
        header_timeout: std::time::Duration,
        addr: std::net::SocketAddr,
    ) -> impl actix_service::ServiceFactory<
        (Io, Protocol, Option<std::net::SocketAddr>),
        Config = (),
        Response = (),
        Error = (),
        InitError = (),
    > + use<Io, F, T>
    where
        Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
        F: Fn() -> App<T>,
        T: AppService,
    {
        // Nothing reads AppConfig's host or scheme (URLs are built from `public_url`).
        let app = map_config(make_app(), |_| AppConfig::default());
        HttpService::<Io, _, _>::build()
            // On a graceful stop, kept-alive connections close after their current request.
            .graceful_shutdown_signal(move || {
                let signal = shutdown.clone();
                async move { signal.notified().await }
            })
            .keep_alive(keep_alive)
            .client_request_timeout(header_timeout)
            .client_disconnect_timeout(std::time::Duration::from_secs(1))
            .local_addr(addr)
            .finish(app.map_err(|err: actix_web::Error| err.error_response()))
            .map_err(|_| ())
    }
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let mut builder = builder
        .max_concurrent_connections(config.max_connections_per_worker)
        // Signals are `Application::stop_on_signals`' (readiness first, then a graceful stop).
        .disable_signals()
        .shutdown_timeout(30);
    if let Some(n) = config.workers {
        builder = builder.workers(n);
    }
    actix_tls::accept::max_concurrent_tls_connect(256);
    let builder = match tls {
        None => builder.listen("sts-http", listener, move || {
            fn_service(move |io: tokio::net::TcpStream| async move {
                let _ = io.set_nodelay(true);
                let peer = io.peer_addr().ok();
                Ok::<_, ()>((HeadDeadline::new(io, header_timeout), Protocol::Http1, peer))
            })
            .and_then(http(
                &make_app,
                shutdown.clone(),
                keep_alive,
                header_timeout,
                addr,
            ))
        })?,
        Some(mut tls) => {
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder.listen("sts-https", listener, move || {
                actix_tls::accept::rustls_0_23::Acceptor::new(tls.clone())
                    .map_init_err(|_| ())
                    .map_err(|_| ())
                    .and_then(fn_service(
                        move |io: actix_tls::accept::rustls_0_23::TlsStream<
                            tokio::net::TcpStream,
                        >| async move {
                            let _ = io.get_ref().0.set_nodelay(true);
                            let peer = io.get_ref().0.peer_addr().ok();
                            Ok::<_, ()>((
                                HeadDeadline::new(io, header_timeout),
                                Protocol::Http1,
                                peer,
                            ))
                        },
                    ))
                    .and_then(http(
                        &make_app,
                        shutdown.clone(),
                        keep_alive,
                        header_timeout,
                        addr,
                    ))
            })?
        }
    };
    Ok(builder.run())
}
