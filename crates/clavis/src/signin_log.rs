//! The sign-in log, written off the token path: the endpoint pushes each
//! sign-in onto a shared buffer (a short lock, never a wait, no task woken),
//! and one task writes the buffer to the store in batches — every second, or
//! as soon as 10,000 are waiting. Identical successful requests in one batch
//! (same tenant, client, secret, resource, address, user agent) become one
//! entry with their count, first and last time: under load the store writes
//! a handful of rows a second, not thousands, which is what keeps the log's
//! cost to a few percent of the token path. Failures are aggregated per
//! minute across batches and nodes, and each tenant's itemised failures are
//! capped per minute ([`failures`]). What a crash can lose is what was
//! buffered since the last write: at most one second of sign-ins. If the
//! store falls behind and 50,000 are waiting, further sign-ins are counted as
//! dropped rather than slowing tokens down. `--sign-in-log off` turns it off
//! (no sign-ins, no last-used times).
//!
//! Retention and size budget: see [`crate::log_retention`].

mod failures;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clavis_store::{AuditResult, SignIn, Store};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, Notify};
use uuid::Uuid;

use self::failures::FailureBudget;

const QUEUE: usize = 50_000;
const BATCH: usize = 10_000;
const EVERY: Duration = Duration::from_secs(1);

/// Sign-ins waiting for the writer.
#[derive(Default)]
struct Buffer {
    waiting: Mutex<Vec<SignIn>>,
    /// Woken when a batch is full.
    full: Notify,
}

/// The handle the endpoints use.
#[derive(Debug)]
pub struct SignInLog {
    /// `None` when the log is off.
    buffer: Option<Arc<Buffer>>,
    /// Asks the writer to write now and say when it is done.
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    /// Sign-ins lost to a full buffer (exported in /metrics).
    pub dropped: Arc<AtomicU64>,
    /// Failures counted in an overflow entry rather than itemised (the
    /// tenant's per-minute budget was full; exported in /metrics).
    pub not_itemised: Arc<AtomicU64>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Buffer")
    }
}

impl SignInLog {
    /// Start the writer task for `store`, itemising at most
    /// `failure_entries_per_minute` failure entries per tenant and minute.
    pub fn start(store: Arc<dyn Store>, failure_entries_per_minute: u32) -> Self {
        let buffer = Arc::new(Buffer::default());
        let (flushes, mut flush_rx) = mpsc::channel::<oneshot::Sender<()>>(16);
        let dropped = Arc::new(AtomicU64::new(0));
        let not_itemised = Arc::new(AtomicU64::new(0));
        let writer = (buffer.clone(), dropped.clone());
        let mut budget = FailureBudget::new(failure_entries_per_minute, not_itemised.clone());
        tokio::spawn(async move {
            let (buffer, dropped) = writer;
            // What a failed write left, tried again first.
            let mut batch: Vec<SignIn> = Vec::with_capacity(BATCH);
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let mut flushed = None;
                tokio::select! {
                    request = flush_rx.recv() => match request {
                        Some(ack) => flushed = Some(ack),
                        None => {
                            take(&buffer, &mut batch, &mut budget);
                            write(store.as_ref(), &mut batch, &dropped).await;
                            return;
                        }
                    },
                    _ = buffer.full.notified() => {}
                    _ = tick.tick() => {}
                }
                take(&buffer, &mut batch, &mut budget);
                write(store.as_ref(), &mut batch, &dropped).await;
                if let Some(ack) = flushed {
                    let _ = ack.send(());
                }
            }
        });
        Self {
            buffer: Some(buffer),
            flushes,
            dropped,
            not_itemised,
        }
    }

    /// A log that records nothing (`--sign-in-log off`).
    pub fn off() -> Self {
        let (flushes, _) = mpsc::channel(1);
        Self {
            buffer: None,
            flushes,
            dropped: Arc::default(),
            not_itemised: Arc::default(),
        }
    }

    /// Queue a sign-in; never waits.
    pub fn record(&self, sign_in: SignIn) {
        let Some(buffer) = &self.buffer else { return };
        let waiting = {
            let mut waiting = buffer.waiting.lock().unwrap_or_else(|e| e.into_inner());
            if waiting.len() >= QUEUE {
                drop(waiting);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            waiting.push(sign_in);
            waiting.len()
        };
        if waiting == BATCH {
            buffer.full.notify_one();
        }
    }

    /// Write everything queued so far (shutdown, tests).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.flushes.send(ack).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Move what is waiting behind what a failed write left, give failures
/// their buckets, and merge.
fn take(buffer: &Buffer, batch: &mut Vec<SignIn>, budget: &mut FailureBudget) {
    let mut waiting = buffer.waiting.lock().unwrap_or_else(|e| e.into_inner());
    if batch.is_empty() {
        std::mem::swap(batch, &mut waiting);
        waiting.reserve(BATCH);
    } else {
        batch.append(&mut waiting);
    }
    drop(waiting);
    budget.assign(batch);
    merge(batch);
}

/// What makes two sign-ins one entry: a failure's bucket (its id, given by
/// [`FailureBudget::assign`]), or everything about a success.
#[derive(PartialEq, Eq, Hash)]
enum Sameness<'a> {
    Failure(Uuid),
    Success(
        Uuid,
        Option<Uuid>,
        Option<Uuid>,
        Option<Uuid>,
        Option<&'a str>,
        Option<&'a str>,
    ),
}

fn sameness(s: &SignIn) -> Sameness<'_> {
    if s.result == AuditResult::Failure {
        return Sameness::Failure(s.id);
    }
    Sameness::Success(
        s.tenant_id,
        s.app_id,
        s.key_id,
        s.resource,
        s.client_ip.as_deref(),
        s.user_agent.as_deref(),
    )
}

/// What merged entries add up to: the sum of the counts, the first `at`,
/// the last `last_at`, and (failures) the user agent of the latest.
struct Total {
    count: u32,
    at: OffsetDateTime,
    last_at: OffsetDateTime,
    latest: usize,
}

/// Merge the entries that are the same into one each (the first one's id
/// and fields, the sum of the counts, the first `at` and the last
/// `last_at`; a failure keeps the latest user agent), in the order each
/// first appeared.
fn merge(batch: &mut Vec<SignIn>) {
    if batch.len() < 2 {
        return;
    }
    let items = std::mem::take(batch);
    let mut totals: Vec<Option<Total>> = (0..items.len()).map(|_| None).collect();
    {
        let mut first_of: HashMap<Sameness<'_>, usize> = HashMap::new();
        for (i, s) in items.iter().enumerate() {
            let first = *first_of.entry(sameness(s)).or_insert(i);
            let total = totals[first].get_or_insert(Total {
                count: 0,
                at: s.at,
                last_at: s.last_at,
                latest: i,
            });
            total.count = total.count.saturating_add(s.count.max(1));
            total.at = total.at.min(s.at);
            if s.last_at >= total.last_at {
                total.last_at = s.last_at;
                total.latest = i;
            }
        }
    }
    let agents: Vec<Option<String>> = totals
        .iter()
        .map(|t| t.as_ref().and_then(|t| items[t.latest].user_agent.clone()))
        .collect();
    batch.extend(
        items
            .into_iter()
            .zip(totals.into_iter().zip(agents))
            .filter_map(|(s, (total, agent))| {
                total.map(|t| SignIn {
                    count: t.count,
                    at: t.at,
                    last_at: t.last_at,
                    user_agent: if s.result == AuditResult::Failure {
                        agent
                    } else {
                        s.user_agent
                    },
                    ..s
                })
            }),
    );
}

async fn write(store: &dyn Store, batch: &mut Vec<SignIn>, dropped: &AtomicU64) {
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
                dropped.fetch_add(excess as u64, Ordering::Relaxed);
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sign_in(secs: i64, ip: &str, ok: bool) -> SignIn {
        let at = datetime!(2026-01-01 0:00 UTC) + time::Duration::seconds(secs);
        SignIn {
            id: Uuid::new_v4(),
            tenant_id: Uuid::nil(),
            at,
            last_at: at,
            count: 1,
            app_id: Some(Uuid::from_u128(1)),
            key_id: ok.then(|| Uuid::from_u128(2)),
            resource: ok.then(|| Uuid::from_u128(3)),
            client_ip: Some(ip.into()),
            user_agent: Some("curl/8".into()),
            result: if ok {
                AuditResult::Success
            } else {
                AuditResult::Failure
            },
            error_code: (!ok).then_some(7000215),
        }
    }

    #[test]
    fn identical_requests_become_one_entry_with_their_count_and_times() {
        let mut batch = vec![
            sign_in(3, "10.0.0.1", true),
            sign_in(1, "10.0.0.1", true),
            sign_in(2, "10.0.0.2", true),
            sign_in(4, "10.0.0.1", false),
            sign_in(5, "10.0.0.1", true),
            sign_in(6, "10.0.0.1", false),
        ];
        let first_id = batch[0].id;
        let mut budget = FailureBudget::new(100, Arc::default());
        budget.assign(&mut batch);
        batch[5].user_agent = Some("later/1".into());
        merge(&mut batch);
        assert_eq!(batch.len(), 3);
        let a = &batch[0];
        assert_eq!((a.id, a.count), (first_id, 3));
        assert_eq!(a.at, sign_in(1, "", true).at);
        assert_eq!(a.last_at, sign_in(5, "", true).at);
        assert_eq!(batch[1].client_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(batch[1].count, 1);
        assert_eq!((batch[2].count, batch[2].error_code), (2, Some(7000215)));
        assert_eq!(
            batch[2].user_agent.as_deref(),
            Some("later/1"),
            "a failure keeps the latest user agent"
        );
        // Merging merged entries adds their counts.
        let mut again = vec![batch[0].clone(), batch[0].clone()];
        merge(&mut again);
        assert_eq!(again[0].count, 6);
    }
}
