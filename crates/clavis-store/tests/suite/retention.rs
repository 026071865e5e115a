//! The logs stay within their budgets: failed sign-ins of one bucket add up
//! in one row (whichever batch or node counts them), a tenant's sign-in log
//! is trimmed to its newest rows, old audit events and expired revoked
//! tokens are deleted, and the rows are counted per tenant.

use clavis_store::{AuditResult, LogRows, Mutation, SignIn, SignInQuery, Store};
use uuid::Uuid;

use super::fixtures::{apply, at, event, given_tenant, stored};

fn failure(tenant: Uuid, id: Uuid, secs: i64, agent: &str) -> SignIn {
    SignIn {
        id,
        tenant_id: tenant,
        at: at(secs, 0),
        last_at: at(secs, 0),
        count: 1,
        app_id: None,
        key_id: None,
        resource: None,
        client_ip: Some("198.51.100.7".into()),
        user_agent: Some(agent.into()),
        result: AuditResult::Failure,
        error_code: Some(700016),
    }
}

fn all(tenant: Uuid) -> SignInQuery {
    SignInQuery {
        tenant_id: tenant,
        app_id: None,
        key_id: None,
        result: None,
        since: None,
        until: None,
        before: None,
        limit: 999,
    }
}

pub async fn failed_sign_ins_of_one_bucket_add_up(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let bucket = Uuid::new_v4();
    let mut first = failure(tenant.id, bucket, 10, "agent/1");
    first.count = 3;
    first.last_at = at(12, 0);
    store.record_sign_ins(&[first]).await.expect("record");
    // A later batch (or another node) counts more of the same, and one
    // earlier refusal that it had kept back.
    let mut more = failure(tenant.id, bucket, 9, "agent/2");
    more.count = 2;
    more.last_at = at(40, 0);
    let other = failure(tenant.id, Uuid::new_v4(), 41, "agent/3");
    let mut success = failure(tenant.id, Uuid::new_v4(), 42, "agent/4");
    success.result = AuditResult::Success;
    success.error_code = None;
    store
        .record_sign_ins(&[more, other, success.clone()])
        .await
        .expect("record again");
    // Successes are never merged, even with a reused id.
    store.record_sign_ins(&[success]).await.expect("success");

    let rows = store.sign_ins(&all(tenant.id)).await.expect("read");
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let merged = rows.iter().find(|r| r.id == bucket).expect("the bucket");
    assert_eq!(merged.count, 5);
    assert_eq!(merged.at, stored(at(9, 0)), "the earliest");
    assert_eq!(merged.last_at, stored(at(40, 0)), "the latest");
    assert_eq!(merged.user_agent.as_deref(), Some("agent/2"), "the newest");
    assert_eq!(
        store.log_rows(tenant.id).await.expect("rows"),
        LogRows {
            sign_ins: 4,
            audit_events: 0
        }
    );
}

pub async fn logs_are_trimmed_to_budget_and_purged_by_age(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let batch: Vec<SignIn> = (0..10)
        .map(|i| failure(tenant.id, Uuid::new_v4(), i * 10, "a"))
        .chain((0..3).map(|i| failure(other.id, Uuid::new_v4(), i, "b")))
        .collect();
    store.record_sign_ins(&batch).await.expect("record");
    // Two rows at the same time: the budget cuts between them by id.
    let twins = [
        failure(tenant.id, Uuid::from_u128(1), 55, "c"),
        failure(tenant.id, Uuid::from_u128(2), 55, "c"),
    ];
    store.record_sign_ins(&twins).await.expect("record");

    assert_eq!(store.trim_sign_ins(tenant.id, 20).await.expect("trim"), 0);
    assert_eq!(store.trim_sign_ins(tenant.id, 5).await.expect("trim"), 7);
    let kept = store.sign_ins(&all(tenant.id)).await.expect("read");
    let times: Vec<_> = kept.iter().map(|s| (s.at, s.id)).collect();
    assert_eq!(
        times,
        [
            (stored(at(90, 0)), batch[9].id),
            (stored(at(80, 0)), batch[8].id),
            (stored(at(70, 0)), batch[7].id),
            (stored(at(60, 0)), batch[6].id),
            (stored(at(55, 0)), Uuid::from_u128(2)),
        ],
        "the newest, in reading order"
    );
    assert_eq!(store.log_rows(other.id).await.expect("rows").sign_ins, 3);
    assert_eq!(store.trim_sign_ins(tenant.id, 0).await.expect("trim"), 5);
    assert_eq!(store.log_rows(tenant.id).await.expect("rows").sign_ins, 0);

    // Audit events: older than the cut-off go, per tenant.
    let events = [
        event(&tenant, "Add application", "a", at(100, 0)),
        event(&tenant, "Add application", "b", at(200, 0)),
        event(&other, "Add application", "c", at(100, 0)),
    ];
    store.record_audit(&events).await.expect("audit");
    assert_eq!(
        store.log_rows(tenant.id).await.expect("rows").audit_events,
        2
    );
    assert_eq!(
        store
            .purge_audit_events(tenant.id, at(150, 0))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(
        store.log_rows(tenant.id).await.expect("rows"),
        LogRows {
            sign_ins: 0,
            audit_events: 1
        }
    );
    assert_eq!(
        store.log_rows(other.id).await.expect("rows").audit_events,
        1
    );
}

pub async fn expired_revoked_tokens_are_purged(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let (expired, live, theirs) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let revoke = |tenant_id, jti, secs| Mutation::RevokeToken {
        tenant_id,
        jti,
        expires_at: at(secs, 0),
    };
    apply(
        store,
        vec![
            revoke(tenant.id, expired, 100),
            revoke(tenant.id, live, 3600),
            revoke(other.id, theirs, 200),
        ],
    )
    .await;
    assert_eq!(
        store
            .purge_revoked_tokens(at(1000, 0))
            .await
            .expect("purge"),
        2
    );
    assert!(!store.token_revoked(tenant.id, expired).await.expect("read"));
    assert!(!store.token_revoked(other.id, theirs).await.expect("read"));
    assert!(store.token_revoked(tenant.id, live).await.expect("read"));
    assert_eq!(
        store
            .purge_revoked_tokens(at(1000, 0))
            .await
            .expect("purge"),
        0
    );
}
