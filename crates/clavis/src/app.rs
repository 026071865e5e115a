//! `App::build(config, clock)`: opens the data directory, key file and store,
//! bootstraps an empty store, binds the listener (port 0 in tests) and
//! returns a server ready to [`run`](App::run). No globals: a test can start
//! as many as it likes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use clavis_store::Store;
use time::Duration;

use crate::bootstrap::{add_missing_management_roles, bootstrap_if_empty, Bootstrapped};
use crate::clock::Clock;
use crate::config::{Config, Tls};
use crate::data_dir;
use crate::directory::Directory;
use crate::http::metrics_auth::MetricsToken;
use crate::http::tls;
use crate::keys::{KeyProvider, Keyring};
use crate::secret::SecretHasher;

/// Everything a request handler may use.
#[derive(Debug)]
pub struct AppState {
    pub directory: Directory,
    pub keyring: Keyring,
    /// The key provider: seals new records, opens stored ones, rewraps.
    pub key_provider: Arc<KeyProvider>,
    pub hasher: SecretHasher,
    pub clock: Arc<dyn Clock>,
    /// Public base URL without trailing slash.
    pub base_url: String,
    pub token_lifetime: Duration,
    pub max_body_bytes: usize,
    /// Counters for `/metrics`.
    pub counters: crate::http::metrics::Counters,
    /// Every token request, written in batches.
    pub sign_ins: crate::signin_log::SignInLog,
    /// How long the sign-in log keeps a sign-in.
    pub sign_in_retention: time::Duration,
    /// Secret expiry warnings (webhooks, the "expired" audit event).
    pub expiry: crate::expiry::ExpiryNotifier,
    /// Throttling of failed client authentication (shared through the store).
    pub throttle: crate::oauth::throttle::Throttle,
    /// Trusted proxies, security headers and the request time limit.
    pub transport: crate::http::transport::Transport,
    /// Serialises changes that may remove the last administrator.
    pub last_admin: crate::graph::last_admin::Guard,
    /// What the sign-in and audit logs may hold.
    pub log_budgets: crate::log_retention::Budgets,
    /// Refused management calls of callers without a role, past the budget.
    pub refusals: crate::audit_refusals::RefusalBudget,
    /// This server as a node of the installation (its heartbeat row).
    pub node: crate::node::Node,
    /// The main listener's connection limit and counts.
    pub connections: Arc<crate::http::server::Connections>,
    /// The secrets' expiry lines of `/metrics`, rebuilt after changes.
    pub expiry_gauge: crate::http::expiry_gauge::ExpiryGauge,
}

impl AppState {
    /// What the protocol code needs to authenticate clients and issue or
    /// check tokens.
    pub fn issuer(&self) -> crate::oauth::client_credentials::Issuer<'_> {
        crate::oauth::client_credentials::Issuer {
            directory: &self.directory,
            keyring: &self.keyring,
            hasher: &self.hasher,
            throttle: &self.throttle,
            clock: self.clock.as_ref(),
            base_url: &self.base_url,
            token_lifetime: self.token_lifetime,
        }
    }
}

/// A built, bound, not yet running server.
#[derive(Debug)]
pub struct App {
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    state: Arc<AppState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Longest wait for a request's headers (and on an idle keep-alive
    /// connection), and for a TLS handshake.
    header_read_timeout: std::time::Duration,
    /// The metrics listener (plain HTTP), when on, and its bearer token.
    metrics: Option<(std::net::TcpListener, Option<MetricsToken>)>,
    /// Set when this start created the bootstrap admin.
    pub bootstrapped: Option<Bootstrapped>,
    /// The CA certificate clients should trust, when Clavis made one.
    pub ca_file: Option<PathBuf>,
    /// Held while the server lives: one process per data directory.
    _lock: std::fs::File,
}

impl App {
    /// Prepare a server from `config`.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let lock = data_dir::prepare(&config.data_dir)?;
        let kek_path = config.data_dir.join("kek.key");
        let (kek, kek_is_new) = KeyProvider::start(&config.kek, &config.data_dir)?;
        let kek = Arc::new(kek);
        tracing::info!(provider = kek.kind().as_str(), active_kek = %kek.active_kek_id(), "key provider ready");
        let store = clavis_store::connect(&config.database_url)
            .await
            .with_context(|| "cannot open the database (check --database-url)".to_string())?;
        if kek_is_new && !store.tenants().await?.is_empty() {
            // A fresh key cannot open anything already stored: stop before
            // anything is sealed under it, and leave no stray key behind.
            let _ = std::fs::remove_file(&kek_path);
            anyhow::bail!(
                "{} is missing but the database already holds data sealed under it: restore that key file (from your backup) and start again",
                kek_path.display()
            );
        }
        // Seal under the installation's key-encryption key when this node
        // holds it, so that every node can open what any node seals.
        let installation_kek = store
            .installation_kek_or_insert(&kek.configured_active_kek_id(), clock.now())
            .await?;
        kek.follow_installation_kek(&installation_kek);
        let hasher = load_secret_hasher(store.as_ref(), &kek).await?;

        let listener =
            crate::http::server::bind(config.listen).map_err(|e| listen_error(config.listen, e))?;
        let local_addr = listener.local_addr()?;
        let base_url = config.base_url(local_addr);
        let metrics = metrics_listener(&config)?;

        let (tls, ca_file) = match &config.tls {
            Tls::Off => (None, None),
            Tls::Files { cert, key } => (Some(tls::rustls_config(cert, key).await?), None),
            Tls::LocalCa => {
                let ca = tls::ensure_local_ca(&config.data_dir)?;
                let rustls = tls::rustls_config(&ca.server_cert, &ca.server_key).await?;
                (Some(rustls), Some(ca.ca_cert))
            }
        };

        let node = crate::node::Node::new(local_addr, &base_url, clock.now());
        node.beat(store.as_ref(), &kek, clock.now()).await?;
        let directory = Directory::load(store.clone()).await?;
        let bootstrapped = bootstrap_if_empty(
            &directory,
            &hasher,
            clock.as_ref(),
            &config.data_dir,
            &base_url,
            ca_file.as_deref(),
        )
        .await?;
        if bootstrapped.is_none() {
            match crate::bootstrap::follow_base_url(&config.data_dir, &base_url, ca_file.as_deref())
            {
                Ok(Some(authority)) => tracing::info!(
                    %authority,
                    "{} now names this server's authority",
                    crate::bootstrap::BOOTSTRAP_FILE
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "could not update the authority in {}",
                    crate::bootstrap::BOOTSTRAP_FILE
                ),
            }
        }
        // Another node may have bootstrapped while this one looked.
        directory.reload_tenants().await?;
        add_missing_management_roles(&directory, clock.as_ref()).await?;
        let directory_store = directory.store().clone();
        let expiry = crate::expiry::ExpiryNotifier::new(
            store.clone(),
            kek.clone(),
            clock.clone(),
            config.expiry_check_interval,
            config.allow_internal_webhooks,
        );
        let connections = Arc::new(crate::http::server::Connections::new(max_connections(
            config.max_connections,
        )));
        let keyring = Keyring::new(store, kek.clone(), clock.clone(), config.token_lifetime)
            .with_schedule(config.signing_keys);
        let state = Arc::new(AppState {
            directory,
            keyring,
            key_provider: kek,
            hasher,
            clock,
            base_url,
            token_lifetime: config.token_lifetime,
            max_body_bytes: config.max_body_bytes,
            counters: Default::default(),
            sign_ins: if config.sign_in_log {
                crate::signin_log::SignInLog::start(
                    directory_store,
                    config.log_budgets.sign_in_failure_entries_per_minute,
                )
            } else {
                crate::signin_log::SignInLog::off()
            },
            sign_in_retention: config.sign_in_retention,
            expiry,
            throttle: crate::oauth::throttle::Throttle::new(config.throttle),
            transport: crate::http::transport::Transport {
                trusted_proxies: config.trusted_proxies.clone(),
                hsts: tls.is_some(),
                request_timeout: config.request_timeout,
            },
            last_admin: Default::default(),
            log_budgets: config.log_budgets,
            refusals: Default::default(),
            node,
            connections,
            expiry_gauge: Default::default(),
        });
        Ok(App {
            listener,
            local_addr,
            state,
            tls,
            header_read_timeout: config.header_read_timeout,
            metrics,
            bootstrapped,
            ca_file,
            _lock: lock,
        })
    }

    /// The bound address (the real port when the config asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served (`None`: `--metrics-listen off`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Public base URL (issuer base).
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// Shared state (tests inspect the directory through it).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serve until `shutdown` completes, then finish in-flight requests
    /// (for at most 10 seconds).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tokio::spawn(crate::directory::Directory::follow(Arc::downgrade(
            &self.state,
        )));
        tokio::spawn(crate::log_retention::keep_within_budgets(Arc::downgrade(
            &self.state,
        )));
        tokio::spawn(crate::throttle_sync::follow(Arc::downgrade(&self.state)));
        if self.state.keyring.schedule().rotate_after.is_some() {
            tokio::spawn(crate::keys::rotation::keep_rotating(Arc::downgrade(
                &self.state,
            )));
        }
        let expiry = self.state.expiry.check_interval.map(|every| {
            tokio::spawn(crate::expiry::ExpiryNotifier::follow(
                Arc::downgrade(&self.state),
                every,
            ))
        });
        // Tasks that end with the server (aborted if this future is dropped).
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(crate::node::keep_beating(self.state.clone()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let main = crate::http::server::Listener {
            name: "main",
            tls: self.tls,
            idle_timeout: self.header_read_timeout,
            connections: self.state.connections.clone(),
            base_url: self.state.base_url.as_str().into(),
        };
        let metrics = self.metrics.map(|(listener, token)| {
            let config = crate::http::server::Listener {
                name: "metrics",
                tls: None,
                idle_timeout: self.header_read_timeout,
                connections: Arc::new(crate::http::server::Connections::new(
                    METRICS_MAX_CONNECTIONS,
                )),
                base_url: self.state.base_url.as_str().into(),
            };
            let router = crate::http::metrics::router(self.state.clone(), token);
            tokio::spawn(crate::http::server::serve(
                listener,
                router,
                config,
                stopped.clone(),
            ))
        });
        let router = crate::http::router(self.state.clone());
        let state = self.state.clone();
        let served = crate::http::server::serve(self.listener, router, main, stopped).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        served?;
        if let Some(expiry) = expiry {
            expiry.abort();
        }
        // Requests have finished: write the sign-ins still queued.
        state.sign_ins.flush().await;
        let store = state.directory.store().as_ref();
        state.refusals.flush(store, state.clock.now()).await;
        tasks.shutdown().await;
        // A clean stop: this node no longer counts as live.
        if let Err(e) = state.directory.store().remove_node(state.node.id).await {
            tracing::warn!(error = %e, "could not remove this node's heartbeat row");
        }
        Ok(())
    }
}

/// Why the main listener could not be bound, with what to do about it.
fn listen_error(addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "cannot listen on {addr}: the address is already in use (is another Clavis, or \
             another program, serving there?). Stop it, or choose another address with \
             --listen (e.g. --listen 127.0.0.1:8444)"
        ),
        std::io::ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "cannot listen on {addr}: this machine has no such address; give one of its own \
             addresses (or 0.0.0.0) to --listen"
        ),
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "cannot listen on {addr}: permission denied (ports below 1024 need privileges); \
             choose a port above 1023 with --listen"
        ),
        _ => anyhow::Error::new(e).context(format!("cannot listen on {addr} (--listen)")),
    }
}

/// Connections the metrics listener serves at once (a scraper needs one).
const METRICS_MAX_CONNECTIONS: usize = 16;

/// Bind the metrics listener, if on. Off loopback it needs the bearer token:
/// the ids of every tenant, application and secret are not for the network.
fn metrics_listener(
    config: &Config,
) -> anyhow::Result<Option<(std::net::TcpListener, Option<MetricsToken>)>> {
    let token = config
        .metrics_token
        .as_ref()
        .map(|t| MetricsToken::parse(t.0.clone()))
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let Some(addr) = config.metrics_listen else {
        return Ok(None);
    };
    if !addr.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "--metrics-listen {addr} is not a loopback address: set {} (a bearer token \
             Prometheus sends with `authorization: credentials_file`) or listen on 127.0.0.1",
            crate::http::metrics_auth::METRICS_TOKEN_ENV
        );
    }
    let listener = crate::http::server::bind(addr).with_context(|| {
        format!(
            "cannot serve metrics on {addr} (--metrics-listen): is another Clavis running on \
             this host? Choose another port, or `off`"
        )
    })?;
    Ok(Some((listener, token)))
}

/// `--max-connections`, or the default derived from the open-file limit.
fn max_connections(configured: Option<usize>) -> usize {
    use crate::http::file_limit::{default_max_connections, soft_limit};
    let files = soft_limit();
    match configured {
        Some(max) => {
            if u64::try_from(max).unwrap_or(u64::MAX) >= files {
                tracing::warn!(
                    max_connections = max,
                    open_file_limit = files,
                    "--max-connections is above the open-file limit: connections past it fail \
                     to be accepted (raise `ulimit -n` / LimitNOFILE, or lower --max-connections)"
                );
            }
            max
        }
        None => default_max_connections(files),
    }
}

/// The key behind the secrets' keyed hash: 32 random bytes sealed under the
/// KEK and kept in the store, so every node (and every restart) shares it.
async fn load_secret_hasher(store: &dyn Store, kek: &KeyProvider) -> anyhow::Result<SecretHasher> {
    const NAME: &str = crate::keys::provider::SECRET_HASH_KEY;
    let context = crate::keys::provider::server_secret_context(NAME);
    let mut fresh = zeroize::Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut fresh[..])
        .map_err(|_| anyhow::anyhow!("the OS random source failed"))?;
    let candidate = kek.seal(&context, &fresh[..])?;
    let sealed = store.server_secret_or_insert(NAME, &candidate.blob).await?;
    let key = kek.open(&context, &sealed).map_err(|e| match e {
        crate::keys::ProviderError::UnknownKek(id) => anyhow::anyhow!(
            "the database was sealed with another key-encryption key ({id}): start with the kek.key (or CLAVIS_KEK) that belongs to this database"
        ),
        other => anyhow::anyhow!(
            "the database's hash key cannot be opened ({other}): start with the kek.key (or CLAVIS_KEK) that belongs to this database"
        ),
    })?;
    Ok(SecretHasher::new(&key))
}
