//! The sign-in log: appended in batches without moving the change feed,
//! read newest first with filters and keyset pages, per tenant.

use clavis_store::{AuditResult, SignIn, SignInCount, SignInQuery, Store};
use uuid::Uuid;

use super::fixtures::{at, given_tenant, stored};

fn sign_in(tenant: Uuid, app: Uuid, secs: i64, ok: bool) -> SignIn {
    SignIn {
        id: Uuid::new_v4(),
        tenant_id: tenant,
        at: at(secs, 123_456_789),
        last_at: at(secs, 123_456_789),
        count: 1,
        app_id: Some(app),
        key_id: ok.then(Uuid::new_v4),
        resource: ok.then(Uuid::new_v4),
        client_ip: Some("127.0.0.1".into()),
        user_agent: Some("curl/8".into()),
        result: if ok {
            AuditResult::Success
        } else {
            AuditResult::Failure
        },
        error_code: (!ok).then_some(7000215),
    }
}

pub async fn sign_ins_are_logged_filtered_and_paged(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    // Let the notifications of the commits above arrive (PostgreSQL delivers
    // them asynchronously), then the feed must stay still.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let seq = store.change_feed().borrow().seq;
    let mut repeated = sign_in(tenant.id, a, 20, false);
    repeated.count = 3;
    repeated.last_at = at(20, 923_456_789);
    let batch = vec![
        sign_in(tenant.id, a, 10, true),
        repeated,
        sign_in(tenant.id, b, 30, true),
        sign_in(other.id, a, 40, true),
    ];
    store.record_sign_ins(&batch).await.expect("record");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        store.change_feed().borrow().seq,
        seq,
        "sign-ins are not changes"
    );

    let query = |f: &dyn Fn(&mut SignInQuery)| {
        let mut q = SignInQuery {
            tenant_id: tenant.id,
            app_id: None,
            key_id: None,
            result: None,
            since: None,
            until: None,
            before: None,
            limit: 10,
        };
        f(&mut q);
        q
    };
    let all = store.sign_ins(&query(&|_| {})).await.expect("read");
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].app_id, Some(b), "newest first");
    let mut expected = batch[1].clone();
    expected.at = stored(expected.at);
    expected.last_at = stored(expected.last_at);
    assert_eq!(all[1], expected, "every field round-trips");
    let of_a = store
        .sign_ins(&query(&|q| q.app_id = Some(a)))
        .await
        .expect("read");
    assert_eq!(of_a.len(), 2);
    let failed = store
        .sign_ins(&query(&|q| q.result = Some(AuditResult::Failure)))
        .await
        .expect("read");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error_code, Some(7000215));
    let key = batch[2].key_id;
    assert_eq!(
        store
            .sign_ins(&query(&|q| q.key_id = key))
            .await
            .expect("read")
            .len(),
        1
    );
    let window = store
        .sign_ins(&query(&|q| {
            q.since = Some(at(15, 0));
            q.until = Some(at(30, 0));
        }))
        .await
        .expect("read");
    assert_eq!(window.len(), 1);
    let first = store
        .sign_ins(&query(&|q| q.limit = 2))
        .await
        .expect("read");
    let last = first.last().expect("two");
    let rest = store
        .sign_ins(&query(&|q| q.before = Some((last.at, last.id))))
        .await
        .expect("read");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].app_id, Some(a));
    assert_eq!(rest[0].result, AuditResult::Success);
}

/// A batch moves each credential's `last_used_at` to its latest success,
/// never back, and skips credentials that are gone.
pub async fn sign_ins_move_last_used_forward(store: &dyn Store) {
    use super::fixtures::{credential, given_app};
    use clavis_store::Mutation;
    let tenant = given_tenant(store, "default").await;
    let app = given_app(store, &tenant, "client").await;
    let (used, unused) = (credential(1, 0), credential(2, 0));
    for c in [&used, &unused] {
        let add = Mutation::AddPassword {
            tenant_id: tenant.id,
            application_id: app.id,
            credential: c.clone(),
        };
        store.commit(&[add], &[]).await.expect("add");
    }
    let success = |secs: i64, key: Uuid| {
        let mut s = sign_in(tenant.id, app.app_id, secs, true);
        s.key_id = Some(key);
        s
    };
    let mut failure = sign_in(tenant.id, app.app_id, 90, false);
    failure.key_id = Some(unused.key_id);
    let gone = success(95, Uuid::new_v4());
    let batch = [
        success(50, used.key_id),
        success(70, used.key_id),
        failure,
        gone,
    ];
    store.record_sign_ins(&batch).await.expect("record");
    // An older batch arriving late does not move it back.
    store
        .record_sign_ins(&[success(60, used.key_id)])
        .await
        .expect("record");
    let read = store
        .application(tenant.id, app.id)
        .await
        .expect("read")
        .expect("there");
    let last = |key: Uuid| {
        read.password_credentials
            .iter()
            .find(|c| c.key_id == key)
            .expect("credential")
            .last_used_at
    };
    assert_eq!(last(used.key_id), Some(stored(at(70, 123_456_789))));
    assert_eq!(last(unused.key_id), None, "failures are not uses");
}

/// Retention: a purge removes one tenant's sign-ins older than the cutoff.
pub async fn old_sign_ins_are_purged(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let app = Uuid::new_v4();
    let batch = [
        sign_in(tenant.id, app, 10, true),
        sign_in(tenant.id, app, 20, false),
        sign_in(tenant.id, app, 30, true),
        sign_in(other.id, app, 10, true),
    ];
    store.record_sign_ins(&batch).await.expect("record");
    let gone = store
        .purge_sign_ins(tenant.id, at(25, 0))
        .await
        .expect("purge");
    assert_eq!(gone, 2);
    let query = |tenant_id| SignInQuery {
        tenant_id,
        app_id: None,
        key_id: None,
        result: None,
        since: None,
        until: None,
        before: None,
        limit: 10,
    };
    let left = store.sign_ins(&query(tenant.id)).await.expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].at, stored(at(30, 123_456_789)));
    assert_eq!(
        store.sign_ins(&query(other.id)).await.expect("read").len(),
        1,
        "another tenant's log is its own"
    );
}

pub async fn sign_ins_are_counted_per_address(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let from = |mut s: SignIn, ip: Option<&str>| {
        s.client_ip = ip.map(str::to_owned);
        s
    };
    let key = Uuid::new_v4();
    let with_key = |mut s: SignIn| {
        s.key_id = Some(key);
        s
    };
    store
        .record_sign_ins(&[
            from(with_key(sign_in(tenant.id, a, 10, true)), Some("192.0.2.1")),
            from(with_key(sign_in(tenant.id, a, 30, true)), Some("192.0.2.1")),
            from(with_key(sign_in(tenant.id, a, 20, true)), Some("192.0.2.9")),
            from(sign_in(tenant.id, a, 40, true), Some("192.0.2.9")),
            from(sign_in(tenant.id, a, 50, false), None),
            from(sign_in(tenant.id, a, 60, false), Some("198.51.100.7")),
            from(sign_in(tenant.id, a, 70, false), Some("198.51.100.7")),
            from(sign_in(tenant.id, b, 80, false), Some("198.51.100.7")),
            from(sign_in(other.id, a, 90, false), Some("198.51.100.7")),
        ])
        .await
        .expect("record");
    let query = |f: &dyn Fn(&mut SignInQuery)| {
        let mut q = SignInQuery {
            tenant_id: tenant.id,
            app_id: Some(a),
            key_id: None,
            result: None,
            since: None,
            until: None,
            before: None,
            limit: 1,
        };
        f(&mut q);
        q
    };
    let count = |ip: &str, n: u64, first: i64, last: i64| SignInCount {
        client_ip: Some(ip.to_owned()),
        count: n,
        first: stored(at(first, 123_456_789)),
        last: stored(at(last, 123_456_789)),
    };

    let of_key = store
        .sign_in_counts(&query(&|q| q.key_id = Some(key)))
        .await
        .expect("counts");
    assert_eq!(
        of_key,
        [count("192.0.2.1", 2, 10, 30), count("192.0.2.9", 1, 20, 20)],
        "most first, ties by address; limit is ignored"
    );

    let failed = store
        .sign_in_counts(&query(&|q| q.result = Some(AuditResult::Failure)))
        .await
        .expect("counts");
    let mut unknown = count("x", 1, 50, 50);
    unknown.client_ip = None;
    assert_eq!(
        failed,
        [count("198.51.100.7", 2, 60, 70), unknown],
        "only this application's, in this tenant; no address last"
    );

    let window = store
        .sign_in_counts(&query(&|q| {
            q.since = Some(at(20, 0));
            q.until = Some(at(60, 0));
        }))
        .await
        .expect("counts");
    let total: u64 = window.iter().map(|c| c.count).sum();
    assert_eq!(total, 4, "{window:?}");
    assert!(store
        .sign_in_counts(&query(&|q| q.app_id = Some(Uuid::new_v4())))
        .await
        .expect("counts")
        .is_empty());

    // A merged entry counts as the requests it stands for, up to its last.
    let c = Uuid::new_v4();
    let mut merged = sign_in(tenant.id, c, 100, true);
    merged.count = 4;
    merged.last_at = at(101, 0);
    store.record_sign_ins(&[merged]).await.expect("record");
    let counts = store
        .sign_in_counts(&query(&|q| q.app_id = Some(c)))
        .await
        .expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].count, 4);
    assert_eq!(counts[0].first, stored(at(100, 123_456_789)));
    assert_eq!(counts[0].last, at(101, 0));
}
