//! Throttling of failed client authentication (what Entra does with 429 and
//! `Retry-After`). Pure logic and state: no HTTP, no database
//! (`crate::throttle_sync` shares the counts between nodes).
//!
//! **What it is for.** Client secrets carry 256 random bits: no rate of
//! guessing gets anywhere near one, so throttling does not exist to
//! guess-proof them. It bounds what a flood of wrong secrets costs Clavis
//! (log rows, storage, work) and what the flood learns: once its address or
//! the application it aims at is over the limit, a wrong secret gets 429
//! instead of 401, so it no longer hears whether the client id exists or
//! which secret was wrong. It never refuses the right secret: the caller
//! checks the secret first (one HMAC, a fraction of a microsecond) and
//! consults the throttle only for a secret that matches none of the
//! application's credentials, or an unknown client id. Whatever anyone else
//! sends — from many addresses, from the same address, its /64 or NAT — a
//! request with a valid credential is served.
//!
//! Failures are counted per tenant over a sliding minute, by two keys:
//! - per source address (IPv6 grouped by a configurable prefix, /64 by
//!   default): one attacker, whatever it aims at;
//! - per application: a distributed flood against one application (unknown
//!   client ids have no application: only their address counts).
//!
//! A failure answered 429 is counted too, so a flood that keeps going stays
//! refused; counts age out within two minutes of the last failure. Memory is
//! bounded: at most [`MAX_KEYS`] keys (oldest dropped first).
//!
//! Counting is a sliding-window estimate over fixed minutes (the previous
//! minute's count weighted by how much of it still lies within the last 60
//! seconds, plus the current minute's count).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use clavis_store::AuthFailureCount;
use time::OffsetDateTime;
use uuid::Uuid;

/// Most keys counted at once; the oldest go first beyond it.
pub const MAX_KEYS: usize = 100_000;
/// The IPv6 grouping prefix by default: one subscriber's allocation.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// The IPv6 grouping prefixes accepted: from a large site (/32) down to
/// one address (/128).
pub const IPV6_PREFIXES: std::ops::RangeInclusive<u8> = 32..=128;

/// Failures allowed per minute (0 turns a limit off), and how IPv6
/// addresses are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_address: u32,
    pub per_app: u32,
    /// IPv6 addresses sharing this many leading bits count as one address
    /// (in [`IPV6_PREFIXES`]; other values are clamped into it).
    pub ipv6_prefix: u8,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_address: 20,
            per_app: 60,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }
}

/// What failures are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A source address in a tenant (IPv6 grouped, see [`group`]).
    Address(Uuid, IpAddr),
    /// An application (by appId) in a tenant.
    App(Uuid, Uuid),
}

/// The address a limit applies to: IPv4 as is, IPv6 by its first
/// `ipv6_prefix` bits (IPv4-mapped IPv6 as IPv4).
pub fn group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = ipv6_prefix.clamp(*IPV6_PREFIXES.start(), *IPV6_PREFIXES.end());
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
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

/// The stored form read back, addresses as written (a node groups them
/// with its own prefix when it takes them in).
impl FromStr for Key {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (kind, rest) = s.split_once(':').ok_or(())?;
        let (tenant, tail) = rest.split_once(':').ok_or(())?;
        let tenant = Uuid::try_parse(tenant).map_err(|_| ())?;
        match kind {
            "addr" => Ok(Key::Address(
                tenant,
                tail.parse::<IpAddr>().map_err(|_| ())?.to_canonical(),
            )),
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

/// Why a failure is answered 429, and for how long.
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
    /// Failures answered 429 (for `/metrics`).
    pub throttled: AtomicU64,
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
            throttled: AtomicU64::new(0),
        }
    }

    /// Whether any limit is on.
    pub fn enabled(&self) -> bool {
        self.limits.per_address > 0 || self.limits.per_app > 0
    }

    /// The key `key` is counted under here (addresses grouped by this
    /// node's prefix).
    fn normalise(&self, key: Key) -> Key {
        match key {
            Key::Address(t, ip) => Key::Address(t, group(ip, self.limits.ipv6_prefix)),
            app => app,
        }
    }

    /// A client authentication failed: a secret that matches none of the
    /// application's credentials, or an unknown client id (`app`: `None`,
    /// which only its address pays for). Counts it, and says whether it is
    /// to be answered 429 instead of its error: when its address or its
    /// application was already over the limit. Never call this for a secret
    /// that matched a credential: the right secret is always served.
    pub fn failed(
        &self,
        tenant: Uuid,
        ip: Option<IpAddr>,
        app: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<(), Throttled> {
        if !self.enabled() {
            return Ok(());
        }
        let (at, minute) = (seconds(now), minute_of(now));
        let keys = [
            ip.filter(|_| self.limits.per_address > 0).map(|ip| {
                (
                    self.normalise(Key::Address(tenant, ip)),
                    self.limits.per_address,
                )
            }),
            app.filter(|_| self.limits.per_app > 0)
                .map(|app| (Key::App(tenant, app), self.limits.per_app)),
        ];
        let mut retry_after = None;
        let mut counters = lock(&self.counters);
        for (key, limit) in keys.into_iter().flatten() {
            let entry = counters.entry(key, minute);
            // Over the limit with the failures before this one? Then wait
            // until it lifts with this one counted too.
            let was_over = entry.estimate(at) >= f64::from(limit);
            entry.cur.local += 1;
            entry.cur.pending += 1;
            if was_over {
                retry_after = retry_after.max(entry.over(limit, at));
            }
        }
        drop(counters);
        match retry_after {
            None => Ok(()),
            Some(retry_after) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                Err(Throttled {
                    retry_after: retry_after.max(1),
                })
            }
        }
    }

    /// The failures not yet shared, to add to the store; drops idle keys.
    pub fn take_pending(&self, now: OffsetDateTime) -> Vec<AuthFailureCount> {
        let minute = minute_of(now);
        let mut counters = lock(&self.counters);
        counters.sweep(minute);
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
            if let Some(window) = window_of(counters.entry(self.normalise(key), minute), c.window) {
                window.pending += c.count;
                window.shared = window.shared.saturating_sub(c.count);
            }
        }
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
            if let Some(window) = window_of(counters.entry(self.normalise(key), minute), c.window) {
                window.shared = window.shared.max(c.count);
            }
        }
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

#[cfg(test)]
#[path = "throttle_tests.rs"]
mod tests;
