//! The accept loop every connection goes through, on the main listener and
//! the metrics listener alike: at most `max_connections` at once (the rest
//! wait in the kernel's listen backlog), the TLS handshake and every wait
//! for a request bounded from accept on, connections with no request open
//! for that long closed (HTTP/1 keep-alive and HTTP/2 alike: PINGs and
//! SETTINGS do not count as use), and a bounded drain on shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::Service;

use super::plain_on_tls;

/// How long a shutdown waits for connections to finish their requests.
const DRAIN: Duration = Duration::from_secs(10);
/// The connection-limit warning is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Backlog asked of the kernel (capped by `net.core.somaxconn`): where
/// connections past the limit wait.
pub const BACKLOG: u32 = 4096;

/// The connection limit of one listener, and what it counts (for `/metrics`).
#[derive(Debug)]
pub struct Connections {
    slots: Arc<Semaphore>,
    max: usize,
    /// Times a new connection had to wait because `max` were open.
    waited: AtomicU64,
}

impl Connections {
    /// A limit of `max` concurrent connections (at least one).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            waited: AtomicU64::new(0),
        }
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits().min(self.max)
    }

    /// Times the limit was reached (a new connection waited for a slot).
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }
}

/// What a listener serves and how long it waits for a client.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Which listener this is, for the log (`main`, `metrics`).
    pub name: &'static str,
    /// TLS settings; `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The longest a connection may go without an open request: from accept
    /// to its first request (TLS handshake included), and between requests.
    pub idle_timeout: Duration,
    pub connections: Arc<Connections>,
    /// The public base URL, named in the answer to plain HTTP sent to a
    /// TLS listener.
    pub base_url: Arc<str>,
}

/// A TCP listener with the backlog [`BACKLOG`] (std's is 128).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?;
    listener.into_std()
}

/// Serve `router` on `listener` until `stop` turns true; then stop
/// accepting, let open connections finish their requests (at most
/// [`DRAIN`]) and return.
pub async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    config: Listener,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let builder = http_builder(config.idle_timeout);
    let mut tasks = JoinSet::new();
    let mut limit_warning = Warning::default();
    let mut accept_warning = Warning::default();
    loop {
        while tasks.try_join_next().is_some() {}
        let slots = config.connections.slots.clone();
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                config.connections.waited.fetch_add(1, Ordering::Relaxed);
                limit_warning.note(|times| {
                    tracing::warn!(
                        listener = config.name,
                        max_connections = config.connections.max,
                        times,
                        "connection limit reached: new connections wait in the listen backlog \
                         until an open one closes (idle ones close after the header-read \
                         timeout); raise --max-connections (and the open-file limit) if this \
                         is real load"
                    )
                });
                tokio::select! {
                    permit = slots.acquire_owned() => permit.expect("the semaphore is never closed"),
                    _ = stopped(&mut stop) => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE/ENFILE and friends: pause rather than spin.
                    accept_warning.note(|times| {
                        tracing::warn!(listener = config.name, error = %e, times,
                            "cannot accept connections (is the open-file limit too low for --max-connections?)")
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        tasks.spawn(connection(
            tcp,
            peer,
            router.clone(),
            builder.clone(),
            config.clone(),
            stop.clone(),
            permit,
        ));
    }
    drop(listener);
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            listener = config.name,
            left = tasks.len(),
            "shutdown: closing connections whose requests did not finish in time"
        );
    }
    Ok(())
}

/// Completes once `stop` says so (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// hyper's HTTP/1 and HTTP/2 settings. Both also time out on their own: a
/// request head must arrive within the limit once it has begun, and an
/// HTTP/2 peer must answer PINGs (so a dead peer is noticed mid-request).
fn http_builder(idle: Duration) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(idle)
        .keep_alive_timeout(idle);
    builder
}

/// One connection, from accept to close; holds its slot until then.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: Builder<TokioExecutor>,
    config: Listener,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let accepted = Instant::now();
    // Without it, a TLS handshake's small writes wait on the client's
    // delayed ACK (~40 ms per new connection).
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &config.tls else {
        return serve_connection(
            TokioIo::new(tcp),
            peer,
            router,
            builder,
            &config,
            accepted,
            stop,
        )
        .await;
    };
    let deadline = accepted + config.idle_timeout;
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        peeked = tokio::time::timeout_at(deadline, tcp.peek(&mut first)) => peeked,
        _ = stopped(&mut stop) => return,
    };
    match peeked {
        Ok(Ok(1..)) if plain_on_tls::looks_like_http(first[0]) => {
            tracing::debug!(%peer, "plain HTTP on the TLS port");
            let _ = tokio::time::timeout_at(
                deadline + config.idle_timeout,
                plain_on_tls::refuse(tcp, &config.base_url),
            )
            .await;
            return;
        }
        Ok(Ok(1..)) => {}
        Ok(Ok(_)) => return,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "connection failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    }
    let handshake = tokio::select! {
        done = tokio::time::timeout_at(deadline, tokio_rustls::TlsAcceptor::from(tls.clone()).accept(tcp)) => done,
        _ = stopped(&mut stop) => return,
    };
    match handshake {
        Ok(Ok(tls)) => {
            serve_connection(
                TokioIo::new(tls),
                peer,
                router,
                builder,
                &config,
                accepted,
                stop,
            )
            .await
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

async fn serve_connection<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    router: Router,
    builder: Builder<TokioExecutor>,
    config: &Listener,
    accepted: Instant,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new(accepted);
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let open = activity.open();
            let response = router.clone().call(request.map(axum::body::Body::new));
            async move {
                let response = response.await;
                drop(open);
                response
            }
        })
    };
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        done = connection.as_mut() => {
            if let Err(e) = done {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = activity.idle_for(config.idle_timeout) => {
            tracing::debug!(%peer, "closing an idle connection");
        }
        _ = stopped(&mut stop) => {}
    }
    // HTTP/1: close once the response being written is out; HTTP/2: GOAWAY,
    // then close when the open streams are done. Bounded either way.
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(config.idle_timeout, connection).await;
}

/// Requests open on one connection, and since when none has been.
#[derive(Debug, Clone)]
struct Activity(Arc<watch::Sender<Open>>);

#[derive(Debug, Clone, Copy)]
struct Open {
    requests: usize,
    idle_since: Instant,
}

/// A request in progress (dropped when its handler has answered).
#[derive(Debug)]
struct OpenRequest(Activity);

impl Activity {
    fn new(since: Instant) -> Self {
        Self(Arc::new(watch::Sender::new(Open {
            requests: 0,
            idle_since: since,
        })))
    }

    fn open(&self) -> OpenRequest {
        self.0.send_modify(|o| o.requests += 1);
        OpenRequest(self.clone())
    }

    /// Completes once no request has been open for `limit`.
    async fn idle_for(&self, limit: Duration) {
        let mut changes = self.0.subscribe();
        loop {
            let now = *changes.borrow_and_update();
            if now.requests == 0 {
                tokio::select! {
                    _ = tokio::time::sleep_until(now.idle_since + limit) => return,
                    _ = changes.changed() => {}
                }
            } else {
                let _ = changes.changed().await;
            }
        }
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0 .0.send_modify(|o| {
            o.requests -= 1;
            if o.requests == 0 {
                o.idle_since = Instant::now();
            }
        });
    }
}

/// A warning logged at most once per [`WARN_EVERY`], with how often its
/// cause occurred since it was last logged.
#[derive(Debug, Default)]
struct Warning {
    last: Option<Instant>,
    times: u64,
}

impl Warning {
    fn note(&mut self, log: impl FnOnce(u64)) {
        self.times += 1;
        if self.last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            log(self.times);
            self.last = Some(Instant::now());
            self.times = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_no_request_open() {
        let activity = Activity::new(Instant::now());
        let limit = Duration::from_secs(10);
        // Nothing open since the start: idle after the limit.
        let started = Instant::now();
        activity.idle_for(limit).await;
        assert_eq!(started.elapsed(), limit);

        // A request open for a minute keeps it busy; the clock restarts
        // when it ends.
        let open = activity.open();
        let watcher = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_for(limit).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watcher.is_finished());
        let ended = Instant::now();
        drop(open);
        watcher.await.unwrap();
        assert_eq!(ended.elapsed(), limit);
    }

    #[test]
    fn the_limit_counts_open_connections() {
        let c = Connections::new(2);
        assert_eq!((c.max(), c.open()), (2, 0));
        let one = c.slots.clone().try_acquire_owned().unwrap();
        assert_eq!(c.open(), 1);
        drop(one);
        assert_eq!(c.open(), 0);
        assert_eq!(Connections::new(0).max(), 1);
    }

    #[test]
    fn a_warning_is_logged_once_a_minute_with_a_count() {
        let mut w = Warning::default();
        let mut logged = Vec::new();
        for _ in 0..5 {
            w.note(|n| logged.push(n));
        }
        assert_eq!(logged, [1]);
    }
}
