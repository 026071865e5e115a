//! The change feed of a PostgreSQL store: `LISTEN clavis_changes` on a
//! connection of its own, turned into a [`FeedState`] watch channel.
//!
//! Every commit runs `pg_notify('clavis_changes', '')` inside its
//! transaction, so PostgreSQL delivers the notification to every listening
//! node if, and only if, the change committed. A background task holds the
//! listening connection:
//! - each notification moves `seq`;
//! - any error on that connection sets `live = false` at once (the node may
//!   be missing changes), and the task reconnects every [`RETRY_EVERY`];
//! - once it listens again it sets `live = true` and moves `seq`, since
//!   changes may have been committed while it was away;
//! - after [`HEARTBEAT_AFTER`] without a notification it sends `SELECT 1`
//!   on the same connection and gives up on it if no answer comes within
//!   [`HEARTBEAT_TIMEOUT`]. A connection that died without a word (a
//!   network partition, no RST) is thereby noticed within about a second,
//!   not when TCP gives up. PostgreSQL sends pending notifications before
//!   a query's answer, so an answered heartbeat also means that every
//!   change committed before it was sent has been seen.
//!
//! The task stops when the [`Feed`] is stopped or dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::Executor;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::db;
use crate::FeedState;

/// The notification channel every commit notifies.
pub(crate) const CHANNEL: &str = "clavis_changes";
/// `application_name` of the listening connection (visible in
/// `pg_stat_activity`).
pub(crate) const APPLICATION_NAME: &str = "clavis-feed";
/// Pause between two attempts to listen again.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// How long one attempt to connect may take (a refused connection is
/// retried within it, with a growing backoff).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Silence after which the connection is probed.
const HEARTBEAT_AFTER: Duration = Duration::from_millis(500);
/// How long a probe may take before the connection is given up.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a stopping task waits for its connection to close cleanly.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The feed of one store: its state, and the task that keeps it.
pub(crate) struct Feed {
    state: Arc<watch::Sender<FeedState>>,
    /// `true` (or dropped): the task stops.
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// Listen on `options`' database, then keep listening in a background
    /// task. Fails if the first `LISTEN` does: the feed starts live.
    pub(crate) async fn start(options: &PgConnectOptions) -> Result<Feed, sqlx::Error> {
        let options = options.clone().application_name(APPLICATION_NAME);
        let first = Subscription::open(&options).await?;
        let state = Arc::new(watch::Sender::new(FeedState { seq: 0, live: true }));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(options, first, state.clone(), stopped));
        Ok(Feed {
            state,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<FeedState> {
        self.state.subscribe()
    }

    /// The state, for a commit to move `seq` as soon as it is durable (its
    /// own notification follows a moment later).
    pub(crate) fn state(&self) -> Arc<watch::Sender<FeedState>> {
        self.state.clone()
    }

    /// Stop the task and wait until its connection is closed. The feed
    /// stays where it was, but not live.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task {
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "change feed task failed");
            }
        }
        self.state.send_modify(|state| state.live = false);
    }
}

/// Move `seq`: whatever a cache holds may be stale now.
pub(crate) fn bump(state: &watch::Sender<FeedState>) {
    state.send_modify(|state| state.seq = state.seq.wrapping_add(1));
}

/// A listening connection, in a one-connection pool of its own so that a
/// broken connection is never handed back to the store's pool.
struct Subscription {
    listener: PgListener,
    pool: PgPool,
}

impl Subscription {
    async fn open(options: &PgConnectOptions) -> Result<Subscription, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.ignore_pool_close_event(true);
        // A lost connection is this module's to handle: no silent reconnect.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok(Subscription { listener, pool })
    }

    /// Return the connection and close it (bounded: a dead peer does not
    /// hold the caller up).
    async fn close(self) {
        drop(self.listener);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.pool.close()).await;
    }

    /// Move `seq` on every notification until the connection fails or
    /// stops answering heartbeats; the reason is returned.
    async fn follow(&mut self, state: &watch::Sender<FeedState>) -> String {
        loop {
            match tokio::time::timeout(HEARTBEAT_AFTER, self.listener.try_recv()).await {
                Ok(Ok(Some(_))) => bump(state),
                Ok(Ok(None)) => return "the connection was lost".to_owned(),
                Ok(Err(err)) => return db(err).to_string(),
                Err(_silence) => {
                    let probe = (&mut self.listener).execute("SELECT 1");
                    match tokio::time::timeout(HEARTBEAT_TIMEOUT, probe).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return db(err).to_string(),
                        Err(_) => return "the heartbeat went unanswered".to_owned(),
                    }
                }
            }
        }
    }
}

/// Resolves once the feed is told to stop (or its owner is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn run(
    options: PgConnectOptions,
    first: Subscription,
    state: Arc<watch::Sender<FeedState>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut subscription = Some(first);
    loop {
        let Some(mut current) = subscription.take() else {
            tokio::select! {
                biased;
                () = stopped(&mut stop) => return,
                opened = Subscription::open(&options) => match opened {
                    Ok(opened) => {
                        // Whatever committed while we were away is unknown.
                        state.send_modify(|state| {
                            state.live = true;
                            state.seq = state.seq.wrapping_add(1);
                        });
                        tracing::info!("change feed listening again");
                        subscription = Some(opened);
                        continue;
                    }
                    Err(err) => {
                        tracing::debug!(error = %db(err), "change feed: listening again failed");
                    }
                },
            }
            tokio::select! {
                biased;
                () = stopped(&mut stop) => return,
                () = tokio::time::sleep(RETRY_EVERY) => {}
            }
            continue;
        };
        let reason = tokio::select! {
            biased;
            () = stopped(&mut stop) => {
                current.close().await;
                return;
            }
            reason = current.follow(&state) => reason,
        };
        state.send_modify(|state| state.live = false);
        tracing::warn!(
            reason = %reason,
            "change feed lost its connection; caches are not trusted until it is back"
        );
        // Closing a dead connection may take a moment: not on this path.
        tokio::spawn(current.close());
    }
}
