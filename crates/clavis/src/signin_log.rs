//! The sign-in log, written off the token path: the endpoint hands each
//! sign-in to a bounded channel (never waiting), and one task writes them to
//! the store in batches — every second, or at 1,000. What a crash can lose
//! is what was queued since the last write: at most one second of
//! sign-ins. If the store falls behind and the queue (50,000) is full,
//! sign-ins are counted as dropped rather than slowing tokens down.
//!
//! Retention: every hour each node deletes sign-ins older than
//! `--sign-in-retention-days` (30 by default).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clavis_store::{SignIn, Store};
use tokio::sync::{mpsc, oneshot};

const QUEUE: usize = 50_000;
const BATCH: usize = 1_000;
const EVERY: Duration = Duration::from_secs(1);

enum Message {
    SignIn(Box<SignIn>),
    Flush(oneshot::Sender<()>),
}

/// The handle the endpoints use.
#[derive(Debug)]
pub struct SignInLog {
    queue: mpsc::Sender<Message>,
    /// Sign-ins lost to a full queue (exported in /metrics).
    pub dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

impl SignInLog {
    /// Start the writer task for `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (queue, mut rx) = mpsc::channel::<Message>(QUEUE);
        tokio::spawn(async move {
            let mut batch: Vec<SignIn> = Vec::with_capacity(BATCH);
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let mut flushed = None;
                tokio::select! {
                    message = rx.recv() => match message {
                        Some(Message::SignIn(s)) => {
                            batch.push(*s);
                            if batch.len() < BATCH {
                                continue;
                            }
                        }
                        Some(Message::Flush(ack)) => flushed = Some(ack),
                        None => {
                            write(store.as_ref(), &mut batch).await;
                            return;
                        }
                    },
                    _ = tick.tick() => {}
                }
                write(store.as_ref(), &mut batch).await;
                if let Some(ack) = flushed {
                    let _ = ack.send(());
                }
            }
        });
        Self {
            queue,
            dropped: Arc::default(),
        }
    }

    /// Queue a sign-in; never waits.
    pub fn record(&self, sign_in: SignIn) {
        if self
            .queue
            .try_send(Message::SignIn(Box::new(sign_in)))
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Write everything queued so far (shutdown, tests).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.queue.send(Message::Flush(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

async fn write(store: &dyn Store, batch: &mut Vec<SignIn>) {
    if batch.is_empty() {
        return;
    }
    match store.record_sign_ins(batch).await {
        Ok(()) => batch.clear(),
        Err(e) => {
            // Keep them for the next round, but never more than one queue's worth.
            tracing::warn!(error = %e, pending = batch.len(), "could not write the sign-in log; retrying");
            if batch.len() > QUEUE {
                let excess = batch.len() - QUEUE;
                batch.drain(..excess);
            }
        }
    }
}

/// How often old sign-ins are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Delete every tenant's sign-ins that are older than the retention period
/// (by the server's clock); returns how many went.
pub async fn purge_expired(state: &crate::app::AppState) -> clavis_store::StoreResult<u64> {
    let store = state.directory.store();
    let cutoff = state.clock.now() - state.sign_in_retention;
    let mut gone = 0;
    for tenant in store.tenants().await? {
        gone += store.purge_sign_ins(tenant.id, cutoff).await?;
    }
    Ok(gone)
}

/// Purge old sign-ins now and every hour, for as long as the server runs.
pub async fn keep_retention(state: std::sync::Weak<crate::app::AppState>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        match purge_expired(&state).await {
            Ok(0) => {}
            Ok(gone) => tracing::info!(gone, "deleted sign-ins past their retention period"),
            Err(e) => tracing::warn!(error = %e, "could not delete old sign-ins; will retry"),
        }
    }
}
