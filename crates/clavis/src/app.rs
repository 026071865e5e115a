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
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    /// Longest wait for a request's headers (and on an idle keep-alive
    /// connection), and for a TLS handshake.
    header_read_timeout: std::time::Duration,
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

        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let base_url = config.base_url(local_addr);

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
        });
        Ok(App {
            listener,
            local_addr,
            state,
            tls,
            header_read_timeout: config.header_read_timeout,
            bootstrapped,
            ca_file,
            _lock: lock,
        })
    }

    /// The bound address (the real port when the config asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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
        let router = crate::http::router(self.state.clone());
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
        });
        // TCP_NODELAY: without it, a TLS handshake's small writes wait on
        // the client's delayed ACK (~40 ms per new connection).
        let nodelay = axum_server::accept::NoDelayAcceptor::new();
        let mut server = axum_server::from_tcp(self.listener).handle(handle);
        // Slow clients (slowloris): a connection that has not sent a whole
        // request head within the limit, or sits idle between keep-alive
        // requests that long, is closed. HTTP/2 pings idle connections.
        server
            .http_builder()
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.header_read_timeout);
        server
            .http_builder()
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(self.header_read_timeout)
            .keep_alive_timeout(self.header_read_timeout);
        let state = self.state.clone();
        match self.tls {
            Some(tls) => {
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                    .handshake_timeout(self.header_read_timeout)
                    .acceptor(nodelay);
                server.acceptor(acceptor).serve(service).await?
            }
            None => server.acceptor(nodelay).serve(service).await?,
        }
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
