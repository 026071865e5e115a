//! The bucket logic with an injected time: limits, sliding minute,
//! known-good addresses, sharing, bounded memory.

use super::*;
use time::Duration;

fn t0() -> OffsetDateTime {
    // The start of a minute, so windows are easy to reason about.
    OffsetDateTime::from_unix_timestamp(1_800_000_000 / 60 * 60).unwrap()
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

const T: Uuid = Uuid::from_u128(1);
const APP: Uuid = Uuid::from_u128(2);

#[test]
fn an_address_over_its_limit_is_refused_then_lifts() {
    let th = Throttle::new(Limits {
        per_address: 3,
        per_app: 0,
    });
    let now = t0();
    for _ in 0..3 {
        assert!(th.check(T, ip("10.0.0.1"), Some(APP), now).is_ok());
        th.failed(T, ip("10.0.0.1"), Some(APP), now);
    }
    let refused = th.check(T, ip("10.0.0.1"), Some(APP), now).unwrap_err();
    assert!(
        refused.retry_after >= 1 && refused.retry_after <= 120,
        "{refused:?}"
    );
    // Another address is not concerned.
    assert!(th.check(T, ip("10.0.0.2"), Some(APP), now).is_ok());
    // Nor the same address in another tenant.
    assert!(th
        .check(Uuid::from_u128(9), ip("10.0.0.1"), Some(APP), now)
        .is_ok());
    // Retry-After is honest: at that time it is lifted, a second before not.
    let later = now + Duration::seconds(refused.retry_after as i64);
    assert!(th.check(T, ip("10.0.0.1"), Some(APP), later).is_ok());
    let before = later - Duration::seconds(1);
    assert!(th.check(T, ip("10.0.0.1"), Some(APP), before).is_err());
    assert_eq!(th.throttled.load(Ordering::Relaxed), 2);
}

#[test]
fn the_minute_slides_no_permanent_lockout() {
    let th = Throttle::new(Limits {
        per_address: 10,
        per_app: 0,
    });
    let now = t0() + Duration::seconds(50);
    for _ in 0..10 {
        th.failed(T, ip("10.0.0.1"), None, now);
    }
    assert!(th.check(T, ip("10.0.0.1"), None, now).is_err());
    // 10 s later, in the next minute, the old failures still weigh ~all.
    assert!(th
        .check(T, ip("10.0.0.1"), None, now + Duration::seconds(10))
        .is_err());
    // Two minutes later, nothing is left.
    assert!(th
        .check(T, ip("10.0.0.1"), None, now + Duration::seconds(120))
        .is_ok());
}

#[test]
fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
    let th = Throttle::new(Limits {
        per_address: 2,
        per_app: 0,
    });
    th.failed(T, ip("2001:db8:1:2::1"), None, t0());
    th.failed(T, ip("2001:db8:1:2:ffff::9"), None, t0());
    assert!(th.check(T, ip("2001:db8:1:2::77"), None, t0()).is_err());
    assert!(th.check(T, ip("2001:db8:1:3::1"), None, t0()).is_ok());
    assert_eq!(
        group("::ffff:10.1.2.3".parse().unwrap()),
        "10.1.2.3".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn the_app_limit_spares_known_good_addresses() {
    let th = Throttle::new(Limits {
        per_address: 100,
        per_app: 5,
    });
    let now = t0();
    th.succeeded(T, APP, ip("192.0.2.7"), now);
    for i in 0..5 {
        th.failed(T, ip(&format!("198.51.100.{i}")), Some(APP), now);
    }
    // A new address is refused (no hash), the real client's is not.
    assert!(th.check(T, ip("198.51.100.99"), Some(APP), now).is_err());
    assert!(th.check(T, ip("192.0.2.7"), Some(APP), now).is_ok());
    // Other applications are not concerned.
    assert!(th
        .check(T, ip("198.51.100.99"), Some(Uuid::from_u128(3)), now)
        .is_ok());
    assert_eq!(th.throttled_apps(now), vec![(T, APP)]);
    // A success long ago does not count.
    let much_later = now + Duration::seconds(KNOWN_GOOD_FOR + 1);
    for i in 0..5 {
        th.failed(T, ip(&format!("198.51.100.{i}")), Some(APP), much_later);
    }
    assert!(th.check(T, ip("192.0.2.7"), Some(APP), much_later).is_err());
    // Addresses learnt from the shared sign-in log count too.
    th.remember_good(
        T,
        APP,
        &[(ip("192.0.2.8").unwrap(), much_later.unix_timestamp())],
        much_later.unix_timestamp(),
    );
    assert!(th.check(T, ip("192.0.2.8"), Some(APP), much_later).is_ok());
}

#[test]
fn unknown_applications_cost_only_their_address() {
    let th = Throttle::new(Limits::default());
    th.failed(T, ip("10.0.0.1"), None, t0());
    let pending = th.take_pending(t0());
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].key, format!("addr:{T}:10.0.0.1"));
}

#[test]
fn shared_totals_count_what_other_nodes_saw() {
    let limits = Limits {
        per_address: 4,
        per_app: 0,
    };
    let (a, b) = (Throttle::new(limits), Throttle::new(limits));
    let now = t0();
    // Each node sees two failures: neither alone is over the limit.
    for _ in 0..2 {
        a.failed(T, ip("10.0.0.1"), None, now);
        b.failed(T, ip("10.0.0.1"), None, now);
    }
    assert!(a.check(T, ip("10.0.0.1"), None, now).is_ok());
    // What the store would hold after both sent theirs.
    let mut total: HashMap<(String, i64), u64> = HashMap::new();
    for c in a.take_pending(now).into_iter().chain(b.take_pending(now)) {
        *total.entry((c.key, c.window)).or_default() += c.count;
    }
    let totals: Vec<_> = total
        .into_iter()
        .filter(|(_, n)| *n >= a.share_threshold())
        .map(|((key, window), count)| AuthFailureCount { key, window, count })
        .collect();
    a.absorb(&totals, now);
    assert!(a.check(T, ip("10.0.0.1"), None, now).is_err());
    // Nothing is sent twice.
    assert!(a.take_pending(now).is_empty());
    // A failed send is tried again.
    a.failed(T, ip("10.0.0.2"), None, now);
    let p = a.take_pending(now);
    a.restore_pending(&p, now);
    assert_eq!(a.take_pending(now), p);
}

#[test]
fn keys_stored_round_trip() {
    for key in [
        Key::Address(T, "10.0.0.1".parse().unwrap()),
        Key::Address(T, group("2001:db8::1".parse().unwrap())),
        Key::App(T, APP),
    ] {
        assert_eq!(key.to_string().parse::<Key>(), Ok(key));
    }
    assert!("addr:x:1.2.3.4".parse::<Key>().is_err());
}

#[test]
fn memory_is_bounded() {
    let th = Throttle::new(Limits::default());
    let now = t0();
    for i in 0..(MAX_KEYS as u128 + 500) {
        let v6 = Ipv6Addr::from(i << 64);
        th.failed(T, Some(IpAddr::V6(v6)), None, now);
    }
    let counters = lock(&th.counters);
    assert!(counters.entries.len() <= MAX_KEYS);
    assert!(counters.order.len() <= MAX_KEYS + 1);
}

#[test]
fn off_means_off() {
    let th = Throttle::new(Limits {
        per_address: 0,
        per_app: 0,
    });
    for _ in 0..1000 {
        th.failed(T, ip("10.0.0.1"), Some(APP), t0());
    }
    assert!(th.check(T, ip("10.0.0.1"), Some(APP), t0()).is_ok());
    assert!(th.take_pending(t0()).is_empty());
}
