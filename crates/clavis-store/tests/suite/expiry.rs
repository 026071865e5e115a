//! Secret expiry warnings: webhook subscriptions per tenant, credentials
//! near their end, notices recorded exactly once (with their deliveries and
//! audit in the same transaction), and deliveries claimed once, retried and
//! logged newest first.

use clavis_store::{
    DeliveryAttempt, DeliveryQuery, DeliveryStatus, ExpiryNotice, Mutation, NoticeKind, Store,
    StoreError, WebhookDelivery, WebhookSubscription,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::fixtures::*;

pub fn webhook(tenant: Uuid, created_secs: i64) -> WebhookSubscription {
    WebhookSubscription {
        id: Uuid::new_v4(),
        tenant_id: tenant,
        url: "https://hooks.example/clavis".into(),
        display_name: "ops".into(),
        threshold_days: vec![30, 7, 1],
        sealed_secret: vec![0xab; 40],
        kek_id: "file:v1".into(),
        created_at: at(created_secs, 5_000),
        paused_at: None,
    }
}

fn delivery(sub: &WebhookSubscription, key_id: Uuid, created: OffsetDateTime) -> WebhookDelivery {
    WebhookDelivery {
        id: Uuid::new_v4(),
        tenant_id: sub.tenant_id,
        subscription_id: sub.id,
        event_type: "secret.expiring".into(),
        key_id,
        payload: format!(r#"{{"keyId":"{key_id}"}}"#),
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_status: None,
        last_error: None,
        created_at: created,
        last_attempt_at: None,
        next_attempt_at: Some(created),
    }
}

pub async fn webhooks_are_per_tenant_and_deleted_with_their_log(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let (a, b) = (webhook(tenant.id, 1), webhook(tenant.id, 2));
    let theirs = webhook(other.id, 3);
    apply(
        store,
        vec![
            Mutation::InsertWebhook(b.clone()),
            Mutation::InsertWebhook(a.clone()),
            Mutation::InsertWebhook(theirs.clone()),
        ],
    )
    .await;
    let mut stored_a = a.clone();
    stored_a.created_at = stored(a.created_at);
    let mut stored_b = b.clone();
    stored_b.created_at = stored(b.created_at);
    assert_eq!(
        store.webhooks(tenant.id).await.unwrap(),
        vec![stored_a.clone(), stored_b]
    );
    assert_eq!(
        store.webhook(tenant.id, a.id).await.unwrap(),
        Some(stored_a)
    );
    assert_eq!(store.webhook(tenant.id, theirs.id).await.unwrap(), None);
    assert!(!format!("{a:?}").contains("171"), "sealed secret in Debug");

    // Missing tenant, other tenant's webhook: NotFound.
    let mut orphan = webhook(Uuid::new_v4(), 4);
    orphan.tenant_id = Uuid::new_v4();
    let err = store
        .commit(&[Mutation::InsertWebhook(orphan)], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store
        .commit(
            &[Mutation::DeleteWebhook {
                tenant_id: tenant.id,
                id: theirs.id,
            }],
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // Deleting a webhook deletes its delivery log.
    let app = holder(store, &tenant, at(86_400 * 40, 0)).await;
    let key = app.password_credentials[0].key_id;
    let d = delivery(&a, key, at(100, 0));
    assert!(store
        .record_expiry_notice(&notice(&app, key, NoticeKind::Threshold(30)), &[d], &[])
        .await
        .unwrap());
    assert_eq!(
        store.webhook_deliveries(&log(&a, 10)).await.unwrap().len(),
        1
    );
    apply(
        store,
        vec![Mutation::DeleteWebhook {
            tenant_id: tenant.id,
            id: a.id,
        }],
    )
    .await;
    assert!(store
        .webhook_deliveries(&log(&a, 10))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.webhooks(tenant.id).await.unwrap().len(), 1);
}

/// An application with one credential ending at `end`.
async fn holder(
    store: &dyn Store,
    tenant: &clavis_store::Tenant,
    end: OffsetDateTime,
) -> clavis_store::Application {
    let mut holder = app(tenant, "holder");
    let mut c = credential(Uuid::new_v4().as_bytes()[0], 0);
    c.secret_hash = *Uuid::new_v4().as_bytes().repeat(2).first_chunk().unwrap();
    c.end_at = end;
    holder.password_credentials = vec![c];
    apply(store, vec![Mutation::InsertApplication(holder.clone())]).await;
    holder
}

fn notice(app: &clavis_store::Application, key_id: Uuid, kind: NoticeKind) -> ExpiryNotice {
    ExpiryNotice {
        tenant_id: app.tenant_id,
        application_id: app.id,
        key_id,
        kind,
        at: at(1_000, 0),
    }
}

fn log(sub: &WebhookSubscription, limit: u32) -> DeliveryQuery {
    DeliveryQuery {
        tenant_id: sub.tenant_id,
        subscription_id: sub.id,
        before: None,
        limit,
    }
}

pub async fn expiry_notices_are_recorded_once(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let sub = webhook(tenant.id, 1);
    apply(store, vec![Mutation::InsertWebhook(sub.clone())]).await;
    let soon = holder(store, &tenant, at(86_400 * 10, 777)).await;
    let later = holder(store, &tenant, at(86_400 * 40, 0)).await;
    let _elsewhere = holder(store, &other, at(86_400, 0)).await;
    let key = soon.password_credentials[0].key_id;

    // Only this tenant's credentials ending by `until`, soonest first.
    let found = store
        .expiring_credentials(tenant.id, at(86_400 * 30, 0))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].key_id, found[0].application_id, found[0].app_id),
        (key, soon.id, soon.app_id)
    );
    assert_eq!(found[0].end_at, stored(at(86_400 * 10, 777)));
    assert_eq!(found[0].application_name, "holder");
    assert_eq!(found[0].hint, soon.password_credentials[0].hint);
    assert!(found[0].noticed.is_empty());
    let both = store
        .expiring_credentials(tenant.id, at(86_400 * 50, 0))
        .await
        .unwrap();
    assert_eq!(
        both.iter().map(|c| c.key_id).collect::<Vec<_>>(),
        vec![key, later.password_credentials[0].key_id]
    );

    // Two racing writers: exactly one wins, and only its deliveries and
    // audit are written.
    let thirty = notice(&soon, key, NoticeKind::Threshold(30));
    let (d1, d2) = (
        delivery(&sub, key, at(10, 0)),
        delivery(&sub, key, at(11, 0)),
    );
    let (e1, e2) = (
        event(&tenant, "Password credential expiring", "x", at(10, 0)),
        event(&tenant, "Password credential expiring", "x", at(11, 0)),
    );
    let (one, two) = tokio::join!(
        store.record_expiry_notice(
            &thirty,
            std::slice::from_ref(&d1),
            std::slice::from_ref(&e1)
        ),
        store.record_expiry_notice(
            &thirty,
            std::slice::from_ref(&d2),
            std::slice::from_ref(&e2)
        ),
    );
    assert!(one.unwrap() ^ two.unwrap(), "exactly one writer wins");
    assert_eq!(
        store
            .webhook_deliveries(&log(&sub, 10))
            .await
            .unwrap()
            .len(),
        1
    );
    let audit = store
        .audit_events(&clavis_store::AuditQuery {
            tenant_id: tenant.id,
            since: None,
            until: None,
            activity: None,
            target_id: None,
            actor_app_id: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);

    // Another threshold is another notice; a notice for a credential that
    // is gone (or given with the wrong application) is refused quietly.
    assert!(store
        .record_expiry_notice(&notice(&soon, key, NoticeKind::Threshold(7)), &[], &[])
        .await
        .unwrap());
    assert!(!store
        .record_expiry_notice(&notice(&later, key, NoticeKind::Threshold(1)), &[], &[])
        .await
        .unwrap());
    assert!(!store
        .record_expiry_notice(
            &notice(&soon, Uuid::new_v4(), NoticeKind::Expired),
            &[],
            &[]
        )
        .await
        .unwrap());

    let listed = store
        .expiring_credentials(tenant.id, at(86_400 * 30, 0))
        .await
        .unwrap();
    let mut noticed = listed[0].noticed.clone();
    noticed.sort_unstable();
    assert_eq!(noticed, vec![7, 30], "announced thresholds come with it");

    // Once announced as expired, a credential is no longer listed.
    assert!(store
        .record_expiry_notice(&notice(&soon, key, NoticeKind::Expired), &[], &[])
        .await
        .unwrap());
    let left = store
        .expiring_credentials(tenant.id, at(86_400 * 50, 0))
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|c| c.key_id).collect::<Vec<_>>(),
        vec![later.password_credentials[0].key_id]
    );

    // Removing the credential removes its notices: nothing left to block.
    apply(
        store,
        vec![Mutation::RemovePassword {
            tenant_id: tenant.id,
            application_id: soon.id,
            key_id: key,
        }],
    )
    .await;
    assert!(!store
        .record_expiry_notice(&notice(&soon, key, NoticeKind::Threshold(30)), &[], &[])
        .await
        .unwrap());
}

pub async fn webhook_deliveries_are_claimed_once_retried_and_logged(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let sub = webhook(tenant.id, 1);
    apply(store, vec![Mutation::InsertWebhook(sub.clone())]).await;
    let app = holder(store, &tenant, at(86_400 * 40, 0)).await;
    let key = app.password_credentials[0].key_id;
    let t0 = at(1_000, 0);
    let first = delivery(&sub, key, t0);
    let mut second = delivery(&sub, key, t0 + Duration::seconds(1));
    second.event_type = "secret.expired".into();
    let mut not_due = delivery(&sub, key, t0 + Duration::seconds(2));
    not_due.next_attempt_at = Some(t0 + Duration::hours(1));
    assert!(store
        .record_expiry_notice(
            &notice(&app, key, NoticeKind::Threshold(30)),
            &[first.clone(), second.clone(), not_due.clone()],
            &[],
        )
        .await
        .unwrap());

    // Due ones, oldest first, each taken once while leased.
    let now = t0 + Duration::seconds(5);
    let lease = now + Duration::minutes(5);
    let (a, b) = tokio::join!(
        store.claim_webhook_deliveries(now, lease, 10),
        store.claim_webhook_deliveries(now, lease, 10),
    );
    let mut taken: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    taken.sort_by_key(|d| d.delivery.created_at);
    assert_eq!(
        taken.iter().map(|d| d.delivery.id).collect::<Vec<_>>(),
        vec![first.id, second.id]
    );
    assert_eq!(taken[0].url, sub.url);
    assert_eq!(taken[0].sealed_secret, sub.sealed_secret);
    assert_eq!(taken[0].delivery.payload, first.payload);
    assert!(
        !format!("{:?}", taken[0]).contains("171"),
        "sealed secret in Debug"
    );
    assert!(store
        .claim_webhook_deliveries(now, lease, 10)
        .await
        .unwrap()
        .is_empty());

    // A failed first attempt: retried at its next time, not before.
    let retry_at = now + Duration::minutes(1);
    let failed = DeliveryAttempt {
        attempt: 1,
        status: DeliveryStatus::Pending,
        http_status: Some(500),
        error: None,
        at: now,
        next_attempt_at: Some(retry_at),
    };
    assert!(store
        .finish_webhook_delivery(first.id, &failed)
        .await
        .unwrap());
    // The same attempt recorded twice (a lease that ran out): ignored.
    assert!(!store
        .finish_webhook_delivery(first.id, &failed)
        .await
        .unwrap());
    let delivered = DeliveryAttempt {
        attempt: 1,
        status: DeliveryStatus::Delivered,
        http_status: Some(204),
        error: None,
        at: now,
        next_attempt_at: None,
    };
    assert!(store
        .finish_webhook_delivery(second.id, &delivered)
        .await
        .unwrap());
    assert!(store
        .claim_webhook_deliveries(retry_at - Duration::seconds(1), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let again = store
        .claim_webhook_deliveries(retry_at, retry_at + Duration::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery.attempts, 1);
    let gave_up = DeliveryAttempt {
        attempt: 2,
        status: DeliveryStatus::Failed,
        http_status: None,
        error: Some("connection refused".into()),
        at: retry_at,
        next_attempt_at: None,
    };
    assert!(store
        .finish_webhook_delivery(first.id, &gave_up)
        .await
        .unwrap());

    // The log: newest first, paged by (created_at, id).
    let page = store.webhook_deliveries(&log(&sub, 2)).await.unwrap();
    assert_eq!(
        page.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![not_due.id, second.id]
    );
    let mut q = log(&sub, 2);
    q.before = Some((page[1].created_at, page[1].id));
    let rest = store.webhook_deliveries(&q).await.unwrap();
    assert_eq!(rest.len(), 1);
    let f = &rest[0];
    assert_eq!(
        (
            f.id,
            f.status,
            f.attempts,
            f.last_status,
            f.last_error.as_deref()
        ),
        (
            first.id,
            DeliveryStatus::Failed,
            2,
            None,
            Some("connection refused")
        )
    );
    assert_eq!(f.last_attempt_at, Some(retry_at));
    assert_eq!(f.next_attempt_at, None);
    assert_eq!(page[1].status, DeliveryStatus::Delivered);
    assert_eq!(page[1].last_status, Some(204));
    assert_eq!(page[1].event_type, "secret.expired");
    // Another tenant sees nothing of it.
    let mut theirs = log(&sub, 10);
    theirs.tenant_id = Uuid::new_v4();
    assert!(store.webhook_deliveries(&theirs).await.unwrap().is_empty());
}

/// `credential_ends`: every password credential of every tenant, with its
/// end, ordered by tenant, client id and key id; removed ones are gone.
/// A paused subscription is read back paused (the first pause time kept),
/// its due deliveries are not taken until it is resumed, and pausing one of
/// another tenant is `NotFound`.
pub async fn paused_webhooks_get_no_deliveries_until_resumed(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let sub = webhook(tenant.id, 1);
    apply(store, vec![Mutation::InsertWebhook(sub.clone())]).await;
    let app = holder(store, &tenant, at(86_400 * 40, 0)).await;
    let key = app.password_credentials[0].key_id;
    let t0 = at(1_000, 0);
    let due = delivery(&sub, key, t0);
    assert!(store
        .record_expiry_notice(
            &notice(&app, key, NoticeKind::Threshold(30)),
            std::slice::from_ref(&due),
            &[]
        )
        .await
        .unwrap());
    let pause = |paused_at| Mutation::SetWebhookPaused {
        tenant_id: tenant.id,
        id: sub.id,
        paused_at,
    };
    apply(store, vec![pause(Some(at(2_000, 0)))]).await;
    apply(store, vec![pause(Some(at(3_000, 0)))]).await;
    let read = store.webhook(tenant.id, sub.id).await.unwrap().unwrap();
    assert_eq!(
        read.paused_at,
        Some(at(2_000, 0)),
        "the first pause is kept"
    );
    assert_eq!(
        store.webhooks(tenant.id).await.unwrap()[0].paused_at,
        read.paused_at
    );

    let now = t0 + Duration::seconds(5);
    let lease = now + Duration::minutes(5);
    assert!(store
        .claim_webhook_deliveries(now, lease, 10)
        .await
        .unwrap()
        .is_empty());
    let wrong_tenant = Mutation::SetWebhookPaused {
        tenant_id: other.id,
        id: sub.id,
        paused_at: None,
    };
    assert!(matches!(
        store.commit(&[wrong_tenant], &[]).await,
        Err(clavis_store::StoreError::NotFound(_))
    ));

    apply(store, vec![pause(None)]).await;
    assert_eq!(
        store
            .webhook(tenant.id, sub.id)
            .await
            .unwrap()
            .unwrap()
            .paused_at,
        None
    );
    let taken = store
        .claim_webhook_deliveries(now, lease, 10)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|d| d.delivery.id).collect::<Vec<_>>(),
        vec![due.id]
    );
}

pub async fn credential_ends_list_every_secret_of_every_tenant(store: &dyn Store) {
    assert!(store.credential_ends().await.expect("read").is_empty());
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let mut expected = Vec::new();
    let mut removed = None;
    let mut fills = 40u8..;
    for (t, name, secrets) in [(&tenant, "a", 2), (&tenant, "b", 1), (&other, "c", 1)] {
        let mut app = app(t, name);
        for n in 0..secrets {
            let fill = fills.next().unwrap();
            app.password_credentials
                .push(credential(fill, 1_000 * i64::from(n)));
        }
        apply(store, vec![Mutation::InsertApplication(app.clone())]).await;
        for c in &app.password_credentials {
            expected.push(clavis_store::CredentialEnd {
                tenant_id: t.id,
                app_id: app.app_id,
                key_id: c.key_id,
                end_at: stored(c.end_at),
            });
        }
        removed.get_or_insert((t.id, app.id, app.password_credentials[0].key_id));
    }
    let _ = given_app(store, &tenant, "no secrets").await;
    let (tenant_id, application_id, key_id) = removed.unwrap();
    apply(
        store,
        vec![Mutation::RemovePassword {
            tenant_id,
            application_id,
            key_id,
        }],
    )
    .await;
    expected.retain(|e| e.key_id != key_id);
    expected.sort_by_key(|e| (e.tenant_id, e.app_id, e.key_id));
    assert_eq!(store.credential_ends().await.expect("read"), expected);
}

pub async fn a_finished_delivery_is_recorded_for_its_own_tenant_only(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let (ours, theirs) = (webhook(tenant.id, 1), webhook(other.id, 2));
    apply(
        store,
        vec![
            Mutation::InsertWebhook(ours.clone()),
            Mutation::InsertWebhook(theirs.clone()),
        ],
    )
    .await;
    // A test ping, as it ended: no credential, never due again.
    let ping = WebhookDelivery {
        event_type: "ping".into(),
        status: DeliveryStatus::Failed,
        attempts: 1,
        last_status: Some(503),
        last_attempt_at: Some(at(100, 0)),
        next_attempt_at: None,
        ..delivery(&ours, Uuid::nil(), at(100, 0))
    };
    apply(store, vec![Mutation::InsertWebhookDelivery(ping.clone())]).await;
    let logged = store.webhook_deliveries(&log(&ours, 10)).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (
            logged[0].id,
            logged[0].event_type.as_str(),
            logged[0].key_id
        ),
        (ping.id, "ping", Uuid::nil())
    );
    assert_eq!(logged[0].status, DeliveryStatus::Failed);
    assert!(store
        .claim_webhook_deliveries(at(86_400, 0), at(86_400 + 300, 0), 10)
        .await
        .unwrap()
        .is_empty());
    // Into another tenant's webhook, or a webhook that is gone: NotFound.
    for sub in [&theirs, &webhook(tenant.id, 3)] {
        let stray = WebhookDelivery {
            tenant_id: tenant.id,
            ..delivery(sub, Uuid::nil(), at(200, 0))
        };
        let err = store
            .commit(&[Mutation::InsertWebhookDelivery(stray)], &[])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }
    assert!(store
        .webhook_deliveries(&log(&theirs, 10))
        .await
        .unwrap()
        .is_empty());
}
