//! The bucket logic with an injected time: limits, sliding minute, IPv6
//! grouping, sharing, bounded memory.

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

fn limits(per_address: u32, per_app: u32) -> Limits {
    Limits {
        per_address,
        per_app,
        ..Limits::default()
    }
}

#[test]
fn an_address_over_its_limit_gets_429_then_it_lifts() {
    let th = Throttle::new(limits(3, 0));
    let now = t0();
    for _ in 0..3 {
        assert!(th.failed(T, ip("10.0.0.1"), Some(APP), now).is_ok());
    }
    let refused = th.failed(T, ip("10.0.0.1"), Some(APP), now).unwrap_err();
    assert!(
        refused.retry_after >= 1 && refused.retry_after <= 120,
        "{refused:?}"
    );
    // Another address is not concerned.
    assert!(th.failed(T, ip("10.0.0.2"), Some(APP), now).is_ok());
    // Nor the same address in another tenant.
    assert!(th
        .failed(Uuid::from_u128(9), ip("10.0.0.1"), Some(APP), now)
        .is_ok());
    assert_eq!(th.throttled.load(Ordering::Relaxed), 1);
}

#[test]
fn retry_after_is_honest_when_the_failures_stop() {
    let th = Throttle::new(limits(3, 0));
    let now = t0() + Duration::seconds(20);
    for _ in 0..3 {
        th.failed(T, ip("10.0.0.1"), None, now).unwrap();
    }
    let refused = th.failed(T, ip("10.0.0.1"), None, now).unwrap_err();
    // What the estimate says then, with the four failures counted.
    let counters = lock(&th.counters);
    let entry = &counters.entries[&Key::Address(T, "10.0.0.1".parse().unwrap())];
    let at = |d: u64| seconds(now) + d as f64;
    assert!(entry.estimate(at(refused.retry_after)) < 3.0);
    assert!(entry.estimate(at(refused.retry_after - 1)) >= 3.0);
}

#[test]
fn refused_failures_count_so_a_flood_that_keeps_going_stays_refused() {
    let th = Throttle::new(limits(10, 0));
    let mut now = t0() + Duration::seconds(50);
    for _ in 0..10 {
        th.failed(T, ip("10.0.0.1"), None, now).unwrap();
    }
    // One failure a second for three minutes: refused throughout, because
    // the refused ones keep the count over ten a minute.
    for _ in 0..180 {
        now += Duration::seconds(1);
        assert!(th.failed(T, ip("10.0.0.1"), None, now).is_err(), "{now}");
    }
    // Two minutes of silence and nothing is left.
    now += Duration::seconds(120);
    assert!(th.failed(T, ip("10.0.0.1"), None, now).is_ok());
}

#[test]
fn the_minute_slides_no_permanent_lockout() {
    let th = Throttle::new(limits(10, 0));
    let now = t0() + Duration::seconds(50);
    for _ in 0..10 {
        th.failed(T, ip("10.0.0.1"), None, now).unwrap();
    }
    let over = |th: &Throttle, at| {
        let counters = lock(&th.counters);
        counters.entries[&Key::Address(T, "10.0.0.1".parse().unwrap())]
            .over(10, seconds(at))
            .is_some()
    };
    assert!(over(&th, now));
    // 10 s later, in the next minute, the old failures still weigh ~all.
    assert!(over(&th, now + Duration::seconds(10)));
    // Two minutes later, nothing is left.
    assert!(!over(&th, now + Duration::seconds(120)));
}

#[test]
fn ipv6_counts_per_prefix_and_mapped_ipv4_as_ipv4() {
    let th = Throttle::new(limits(2, 0));
    th.failed(T, ip("2001:db8:1:2::1"), None, t0()).unwrap();
    th.failed(T, ip("2001:db8:1:2:ffff::9"), None, t0())
        .unwrap();
    assert!(th.failed(T, ip("2001:db8:1:2::77"), None, t0()).is_err());
    assert!(th.failed(T, ip("2001:db8:1:3::1"), None, t0()).is_ok());
    assert_eq!(
        group("::ffff:10.1.2.3".parse().unwrap(), 64),
        "10.1.2.3".parse::<IpAddr>().unwrap()
    );

    // A /48 groups a whole site; a /128 counts each address.
    let site = Throttle::new(Limits {
        ipv6_prefix: 48,
        ..limits(2, 0)
    });
    site.failed(T, ip("2001:db8:1:2::1"), None, t0()).unwrap();
    site.failed(T, ip("2001:db8:1:3::1"), None, t0()).unwrap();
    assert!(site
        .failed(T, ip("2001:db8:1:ffff::1"), None, t0())
        .is_err());
    assert!(site.failed(T, ip("2001:db8:2::1"), None, t0()).is_ok());
    let each = Throttle::new(Limits {
        ipv6_prefix: 128,
        ..limits(2, 0)
    });
    each.failed(T, ip("2001:db8::1"), None, t0()).unwrap();
    each.failed(T, ip("2001:db8::1"), None, t0()).unwrap();
    assert!(each.failed(T, ip("2001:db8::1"), None, t0()).is_err());
    assert!(each.failed(T, ip("2001:db8::2"), None, t0()).is_ok());
    // Out-of-range prefixes are clamped, never a panic.
    assert_eq!(
        group("2001:db8:1:2::1".parse().unwrap(), 0),
        "2001:db8::".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        group("2001:db8::1".parse().unwrap(), 200),
        "2001:db8::1".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn an_application_over_its_limit_gets_429_from_every_address() {
    let th = Throttle::new(limits(100, 5));
    let now = t0();
    for i in 0..5 {
        th.failed(T, ip(&format!("198.51.100.{i}")), Some(APP), now)
            .unwrap();
    }
    // A fresh address failing for this application is answered 429.
    assert!(th.failed(T, ip("198.51.100.99"), Some(APP), now).is_err());
    // Another application is not concerned, nor an unknown client id.
    assert!(th
        .failed(T, ip("198.51.100.98"), Some(Uuid::from_u128(3)), now)
        .is_ok());
    assert!(th.failed(T, ip("198.51.100.97"), None, now).is_ok());
}

#[test]
fn unknown_applications_cost_only_their_address() {
    let th = Throttle::new(Limits::default());
    th.failed(T, ip("10.0.0.1"), None, t0()).unwrap();
    let pending = th.take_pending(t0());
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].key, format!("addr:{T}:10.0.0.1"));
}

#[test]
fn shared_totals_count_what_other_nodes_saw() {
    let limits = limits(4, 0);
    let (a, b) = (Throttle::new(limits), Throttle::new(limits));
    let now = t0();
    // Each node sees two failures: neither alone is at the limit.
    for _ in 0..2 {
        a.failed(T, ip("10.0.0.1"), None, now).unwrap();
        b.failed(T, ip("10.0.0.1"), None, now).unwrap();
    }
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
    assert!(a.failed(T, ip("10.0.0.1"), None, now).is_err());
    // Only the new failure is pending: nothing is sent twice.
    let p = a.take_pending(now);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].count, 1);
    // A failed send is tried again.
    a.restore_pending(&p, now);
    assert_eq!(a.take_pending(now), p);
}

#[test]
fn shared_ipv6_keys_are_grouped_by_this_node_s_prefix() {
    let th = Throttle::new(Limits {
        ipv6_prefix: 48,
        ..limits(4, 0)
    });
    let now = t0();
    th.absorb(
        &[AuthFailureCount {
            key: format!("addr:{T}:2001:db8:1:2::"),
            window: minute_of(now),
            count: 4,
        }],
        now,
    );
    assert!(th.failed(T, ip("2001:db8:1:77::1"), None, now).is_err());
}

#[test]
fn keys_stored_round_trip() {
    for key in [
        Key::Address(T, "10.0.0.1".parse().unwrap()),
        Key::Address(T, group("2001:db8::1".parse().unwrap(), 64)),
        Key::App(T, APP),
    ] {
        assert_eq!(key.to_string().parse::<Key>(), Ok(key));
    }
    assert!("addr:x:1.2.3.4".parse::<Key>().is_err());
    assert!("addr:00000000-0000-0000-0000-000000000001:junk"
        .parse::<Key>()
        .is_err());
}

#[test]
fn memory_is_bounded() {
    let th = Throttle::new(Limits::default());
    let now = t0();
    for i in 0..(MAX_KEYS as u128 + 500) {
        let v6 = Ipv6Addr::from(i << 64);
        let _ = th.failed(T, Some(IpAddr::V6(v6)), None, now);
    }
    let counters = lock(&th.counters);
    assert!(counters.entries.len() <= MAX_KEYS);
    assert!(counters.order.len() <= MAX_KEYS + 1);
}

#[test]
fn off_means_off() {
    let th = Throttle::new(limits(0, 0));
    for _ in 0..1000 {
        assert!(th.failed(T, ip("10.0.0.1"), Some(APP), t0()).is_ok());
    }
    assert!(th.take_pending(t0()).is_empty());
}
