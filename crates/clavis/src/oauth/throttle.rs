//! Throttling of failed client authentication (what Entra does with 429 and
//! `Retry-After`): failures are counted per source address and per
//! application within a tenant, over a sliding minute; a key over its limit
//! is refused *before* the presented secret is hashed. Pure logic and state:
//! no HTTP, no database (`crate::throttle_sync` shares the counts between
//! nodes).
//!
//! - Per address (IPv6 grouped by /64): stops one attacker, whatever it aims at.
//! - Per application: stops a distributed flood of wrong secrets, except for
//!   addresses that recently got a token for that application ("known good"
//!   addresses, from this node's successes and from the shared sign-in log):
//!   the real holder of the secret keeps getting tokens. No lockout outlives
//!   the flood: counts age out within two minutes.
//! - Memory is bounded: at most [`MAX_KEYS`] counted keys (oldest dropped
//!   first) and [`KNOWN_GOOD_PER_APP`] addresses per application.
//!
//! Counting is a sliding-window estimate over fixed minutes (the previous
//! minute's count weighted by how much of it still lies within the last 60
//! seconds, plus the current minute's count).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use clavis_store::AuthFailureCount;
use time::OffsetDateTime;
use uuid::Uuid;

/// Most keys counted at once; the oldest go first beyond it.
pub const MAX_KEYS: usize = 100_000;
/// Most known-good addresses kept per application.
pub const KNOWN_GOOD_PER_APP: usize = 16;
/// How long a success makes an address known good for its application.
pub const KNOWN_GOOD_FOR: i64 = 600;
/// Most applications with known-good addresses kept at once.
const MAX_KNOWN_GOOD_APPS: usize = 100_000;

/// Failures allowed per minute; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_address: u32,
    pub per_app: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_address: 20,
            per_app: 60,
        }
    }
}

/// What failures are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A source address in a tenant (IPv6 grouped by /64, see [`group`]).
    Address(Uuid, IpAddr),
    /// An application (by appId) in a tenant.
    App(Uuid, Uuid),
}

/// The address a limit applies to: IPv4 as is, IPv6 by its /64 (one
/// subscriber's allocation), IPv4-mapped IPv6 as IPv4.
pub fn group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Stored form (`addr:{tenant}:{ip}`, `app:{tenant}:{appId}`): names no secret.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Address(t, ip) => write!(f, "addr:{t}:{ip}"),
            Key::App(t, app) => write!(f, "app:{t}:{app}"),
        }
    }
}

impl FromStr for Key {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (kind, rest) = s.split_once(':').ok_or(())?;
        let (tenant, tail) = rest.split_once(':').ok_or(())?;
        let tenant = Uuid::try_parse(tenant).map_err(|_| ())?;
        match kind {
            "addr" => Ok(Key::Address(tenant, group(tail.parse().map_err(|_| ())?))),
            "app" => Ok(Key::App(tenant, Uuid::try_parse(tail).map_err(|_| ())?)),
            _ => Err(()),
        }
    }
}

/// One minute's count of one key.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    /// Failures this node saw.
    local: u64,
    /// The shared total when last read (includes this node's sent failures).
    shared: u64,
    /// Failures this node saw and has not sent yet.
    pending: u64,
}

impl Window {
    fn total(&self) -> u64 {
        self.local.max(self.shared + self.pending)
    }
}

#[derive(Debug)]
struct Entry {
    /// Minute of `cur`.
    minute: i64,
    cur: Window,
    prev: Window,
    /// Insertion number (to match `Counters::order`).
    seq: u64,
}

impl Entry {
    fn new(minute: i64, seq: u64) -> Self {
        Self {
            minute,
            cur: Window::default(),
            prev: Window::default(),
            seq,
        }
    }

    /// Move to `minute` (never back).
    fn roll(&mut self, minute: i64) {
        if minute == self.minute + 1 {
            self.prev = self.cur;
            self.cur = Window::default();
        } else if minute > self.minute + 1 {
            self.prev = Window::default();
            self.cur = Window::default();
        } else {
            return;
        }
        self.minute = minute;
    }

    /// Estimated failures in the 60 seconds before `at` (unix seconds),
    /// with no further failure.
    fn estimate(&self, at: f64) -> f64 {
        let minute = (at / 60.0).floor() as i64;
        let weight = 1.0 - (at - minute as f64 * 60.0) / 60.0;
        if minute <= self.minute {
            self.prev.total() as f64 * weight + self.cur.total() as f64
        } else if minute == self.minute + 1 {
            self.cur.total() as f64 * weight
        } else {
            0.0
        }
    }

    /// `None` if under `limit` at `at`, else whole seconds until it is.
    fn over(&self, limit: u32, at: f64) -> Option<u64> {
        if limit == 0 || self.estimate(at) < f64::from(limit) {
            return None;
        }
        Some(
            (1..=120u64)
                .find(|s| self.estimate(at + *s as f64) < f64::from(limit))
                .unwrap_or(120),
        )
    }

    fn idle(&self, minute: i64) -> bool {
        self.minute + 1 < minute
    }
}

#[derive(Debug, Default)]
struct Counters {
    entries: HashMap<Key, Entry>,
    /// Keys oldest first, with the `seq` they were inserted with.
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
}

impl Counters {
    fn entry(&mut self, key: Key, minute: i64) -> &mut Entry {
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= MAX_KEYS {
                self.evict();
            }
            self.next_seq += 1;
            self.order.push_back((key, self.next_seq));
            self.entries.insert(key, Entry::new(minute, self.next_seq));
        }
        let entry = self.entries.get_mut(&key).expect("just inserted");
        entry.roll(minute);
        entry
    }

    /// Make room: drop the oldest keys (idle ones go every second anyway,
    /// in [`Throttle::take_pending`]).
    fn evict(&mut self) {
        while self.entries.len() >= MAX_KEYS {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&key);
            }
        }
    }

    /// Forget keys with nothing in the last two minutes.
    fn sweep(&mut self, minute: i64) {
        self.entries.retain(|_, e| !e.idle(minute));
        let entries = &self.entries;
        self.order
            .retain(|(k, seq)| entries.get(k).is_some_and(|e| e.seq == *seq));
    }
}

/// Grouped addresses with their latest success (unix seconds), newest first.
type KnownGood = Vec<(IpAddr, i64)>;

/// Why a request is refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the limit lifts if the failures stop (`Retry-After`).
    pub retry_after: u64,
}

/// The throttle of one node (in `AppState`).
#[derive(Debug)]
pub struct Throttle {
    limits: Limits,
    counters: Mutex<Counters>,
    /// Per (tenant, app): grouped addresses with their latest success.
    known_good: RwLock<HashMap<(Uuid, Uuid), KnownGood>>,
    /// Requests refused by the throttle (for `/metrics`).
    pub throttled: AtomicU64,
    /// Keys counted (so a request skips the lock while nothing fails).
    tracked: AtomicUsize,
}

fn seconds(at: OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

fn minute_of(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

impl Throttle {
    /// A throttle with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            counters: Mutex::default(),
            known_good: RwLock::default(),
            throttled: AtomicU64::new(0),
            tracked: AtomicUsize::new(0),
        }
    }

    /// Whether any limit is on.
    pub fn enabled(&self) -> bool {
        self.limits.per_address > 0 || self.limits.per_app > 0
    }

    /// Check a request before anything is looked up or hashed: refused if
    /// its address is over the limit, or if `app` is over its limit and the
    /// address is not known good for it.
    pub fn check(
        &self,
        tenant: Uuid,
        ip: Option<IpAddr>,
        app: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<(), Throttled> {
        if !self.enabled() || self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let at = seconds(now);
        let ip = ip.map(group);
        let refused = {
            let counters = lock(&self.counters);
            let over = |key, limit| counters.entries.get(&key)?.over(limit, at);
            let by_address =
                ip.and_then(|ip| over(Key::Address(tenant, ip), self.limits.per_address));
            by_address.or_else(|| {
                let app = app?;
                let retry = over(Key::App(tenant, app), self.limits.per_app)?;
                let good = ip.is_some_and(|ip| self.known_good(tenant, app, ip, now));
                (!good).then_some(retry)
            })
        };
        match refused {
            None => Ok(()),
            Some(retry_after) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                Err(Throttled {
                    retry_after: retry_after.max(1),
                })
            }
        }
    }

    /// Count a failed client authentication (`app`: `None` when the
    /// application does not exist, which only its address pays for).
    pub fn failed(&self, tenant: Uuid, ip: Option<IpAddr>, app: Option<Uuid>, now: OffsetDateTime) {
        if !self.enabled() {
            return;
        }
        let minute = minute_of(now);
        let mut counters = lock(&self.counters);
        let keys = [
            ip.filter(|_| self.limits.per_address > 0)
                .map(|ip| Key::Address(tenant, group(ip))),
            app.filter(|_| self.limits.per_app > 0)
                .map(|app| Key::App(tenant, app)),
        ];
        for key in keys.into_iter().flatten() {
            let entry = counters.entry(key, minute);
            entry.cur.local += 1;
            entry.cur.pending += 1;
        }
        self.tracked
            .store(counters.entries.len(), Ordering::Relaxed);
    }

    /// Remember that `ip` got a token for `app` (cheap: a read lock when
    /// the address was seen in the last minute).
    pub fn succeeded(&self, tenant: Uuid, app: Uuid, ip: Option<IpAddr>, now: OffsetDateTime) {
        let (Some(ip), true) = (ip, self.limits.per_app > 0) else {
            return;
        };
        let ip = group(ip);
        let now_s = now.unix_timestamp();
        let fresh = read(&self.known_good)
            .get(&(tenant, app))
            .is_some_and(|v| v.iter().any(|(a, t)| *a == ip && now_s - *t < 60));
        if !fresh {
            self.remember_good(tenant, app, &[(ip, now_s)], now_s);
        }
    }

    /// Add known-good addresses of `app` with when they last succeeded
    /// (unix seconds), keeping the most recent ones.
    pub fn remember_good(&self, tenant: Uuid, app: Uuid, seen: &[(IpAddr, i64)], now_s: i64) {
        let mut map = write(&self.known_good);
        if map.len() >= MAX_KNOWN_GOOD_APPS && !map.contains_key(&(tenant, app)) {
            map.retain(|_, v| v.iter().any(|(_, t)| now_s - *t < KNOWN_GOOD_FOR));
            if map.len() >= MAX_KNOWN_GOOD_APPS {
                return;
            }
        }
        let list = map.entry((tenant, app)).or_default();
        for &(ip, at) in seen {
            let ip = group(ip);
            match list.iter_mut().find(|(a, _)| *a == ip) {
                Some(slot) => slot.1 = slot.1.max(at),
                None => list.push((ip, at)),
            }
        }
        list.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        list.truncate(KNOWN_GOOD_PER_APP);
    }

    fn known_good(&self, tenant: Uuid, app: Uuid, ip: IpAddr, now: OffsetDateTime) -> bool {
        let now_s = now.unix_timestamp();
        read(&self.known_good).get(&(tenant, app)).is_some_and(|v| {
            v.iter()
                .any(|(a, t)| *a == ip && now_s - *t < KNOWN_GOOD_FOR)
        })
    }

    /// Applications over their limit now (whose known-good addresses are
    /// worth loading from the shared sign-in log).
    pub fn throttled_apps(&self, now: OffsetDateTime) -> Vec<(Uuid, Uuid)> {
        if self.limits.per_app == 0 {
            return Vec::new();
        }
        let at = seconds(now);
        lock(&self.counters)
            .entries
            .iter()
            .filter_map(|(k, e)| match k {
                Key::App(t, a) => e.over(self.limits.per_app, at).map(|_| (*t, *a)),
                Key::Address(..) => None,
            })
            .collect()
    }

    /// The failures not yet shared, to add to the store; drops idle keys.
    pub fn take_pending(&self, now: OffsetDateTime) -> Vec<AuthFailureCount> {
        let minute = minute_of(now);
        let mut counters = lock(&self.counters);
        counters.sweep(minute);
        self.tracked
            .store(counters.entries.len(), Ordering::Relaxed);
        let mut out = Vec::new();
        for (key, e) in counters.entries.iter_mut() {
            for (w, window) in [(e.minute - 1, &mut e.prev), (e.minute, &mut e.cur)] {
                if window.pending > 0 {
                    out.push(AuthFailureCount {
                        key: key.to_string(),
                        window: w,
                        count: window.pending,
                    });
                    window.shared += window.pending;
                    window.pending = 0;
                }
            }
        }
        out
    }

    /// Put back counts whose sending failed (to try again next time).
    pub fn restore_pending(&self, counts: &[AuthFailureCount], now: OffsetDateTime) {
        let minute = minute_of(now);
        let mut counters = lock(&self.counters);
        for c in counts {
            let Ok(key) = c.key.parse::<Key>() else {
                continue;
            };
            if let Some(window) = window_of(counters.entry(key, minute), c.window) {
                window.pending += c.count;
                window.shared = window.shared.saturating_sub(c.count);
            }
        }
        self.tracked
            .store(counters.entries.len(), Ordering::Relaxed);
    }

    /// Smallest shared total worth reading back: a quarter of the lowest
    /// limit (a key under it cannot be near a limit on any node).
    pub fn share_threshold(&self) -> u64 {
        let lowest = [self.limits.per_address, self.limits.per_app]
            .into_iter()
            .filter(|l| *l > 0)
            .min()
            .unwrap_or(0);
        u64::from(lowest / 4).max(1)
    }

    /// Take in the shared totals read from the store.
    pub fn absorb(&self, totals: &[AuthFailureCount], now: OffsetDateTime) {
        let minute = minute_of(now);
        let mut counters = lock(&self.counters);
        for c in totals {
            let Ok(key) = c.key.parse::<Key>() else {
                continue;
            };
            if let Some(window) = window_of(counters.entry(key, minute), c.window) {
                window.shared = window.shared.max(c.count);
            }
        }
        self.tracked
            .store(counters.entries.len(), Ordering::Relaxed);
    }
}

/// The window of `entry` for `minute`, if it is the current or previous one.
fn window_of(entry: &mut Entry, minute: i64) -> Option<&mut Window> {
    if minute == entry.minute {
        Some(&mut entry.cur)
    } else if minute == entry.minute - 1 {
        Some(&mut entry.prev)
    } else {
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[path = "throttle_tests.rs"]
mod tests;
