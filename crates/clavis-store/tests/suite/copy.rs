//! `clavis store copy` at the storage level: every table of the schema is
//! known to the copy, and a copy keeps every row of every table it copies
//! (every column, NULLs and all) — between two stores of one backend or
//! from one backend to the other — or writes nothing.

use std::collections::BTreeMap;

use clavis_store::copy::{self, Cell, Treatment, TABLES};
use clavis_store::{
    AuditResult, AuthFailureCount, CredentialPolicy, DeliveryAttempt, DeliveryStatus, ExpiryNotice,
    Mutation, NoticeKind, SignIn, Store, WebhookDelivery,
};
use uuid::Uuid;

use super::cluster::node;
use super::expiry::webhook;
use super::fixtures::*;

/// The schema has no table or column that `clavis store copy` does not
/// know: a new migration must say what the copy does with its tables.
pub async fn every_table_is_known_to_store_copy(store: &dyn Store) {
    let schema = store.schema_tables().await.unwrap();
    assert!(schema.contains_key("tenants"), "{schema:?}");
    let unknown = copy::unknown_to_copy(&schema);
    assert!(
        unknown.is_empty(),
        "`clavis store copy` does not know {unknown:?}: add them to \
         clavis_store::copy::TABLES (copied, or skipped with the reason)"
    );
}

/// An import whose source stops before `Done` writes nothing.
pub async fn an_interrupted_copy_writes_nothing(store: &dyn Store) {
    let tenants = copy::table("tenants").unwrap();
    let row = vec![
        Cell::Uuid(Uuid::new_v4()),
        Cell::Text("copied".into()),
        Cell::Text("ES256".into()),
        Cell::Int(100),
        Cell::Int(50),
        Cell::Time(1_704_067_200_000_001),
        Cell::Int(10),
        Cell::Bool(true),
    ];
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(copy::Batch::Rows(tenants, vec![row.clone()]))
        .await
        .unwrap();
    drop(tx);
    assert!(store.import_rows(rx).await.is_err());
    assert_eq!(store.count_rows(tenants).await.unwrap(), 0);
    assert!(store.tenants().await.unwrap().is_empty());

    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(copy::Batch::Rows(tenants, vec![row]))
        .await
        .unwrap();
    tx.send(copy::Batch::Done).await.unwrap();
    assert_eq!(store.import_rows(rx).await.unwrap(), 1);
    let stored = store.tenants().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "copied");
    assert_eq!(
        stored[0].created_at,
        time::OffsetDateTime::from_unix_timestamp_nanos(1_704_067_200_000_001_000).unwrap()
    );
}

/// Rows in every table, with NULL and non-NULL values in nullable columns.
pub async fn fill_every_table(store: &dyn Store) {
    let home = given_tenant(store, "default").await;
    let mut api = app(&home, "orders api");
    api.identifier_uris = vec!["api://orders".into(), "https://orders.example".into()];
    api.app_roles = vec![role("Orders.Read"), role("Orders.Write")];
    api.owners = vec![Uuid::new_v4(), Uuid::new_v4()];
    let mut client = app(&home, "worker");
    let mut used = credential(1, 0);
    used.last_used_at = None;
    client.password_credentials = vec![used.clone(), credential(2, 5)];
    let mut revoked_key = signing_key(&home, "k-old", 1);
    revoked_key.revoked_at = Some(at(3, 17));
    apply(
        store,
        vec![
            Mutation::InsertApplication(api.clone()),
            Mutation::InsertApplication(client.clone()),
            Mutation::InsertRoleAssignment(grant(&client, &api, api.app_roles[0].id)),
            Mutation::SetCredentialPolicy {
                tenant_id: home.id,
                application_id: client.id,
                policy: CredentialPolicy {
                    max_lifetime_secs: Some(86_400),
                    default_lifetime_secs: None,
                    max_secrets: Some(3),
                    password_credentials_allowed: Some(true),
                },
            },
            Mutation::InsertSigningKey(revoked_key),
            Mutation::InsertSigningKey(signing_key(&home, "k-new", 2)),
            Mutation::RevokeToken {
                tenant_id: home.id,
                jti: Uuid::new_v4(),
                expires_at: at(3_600, 9),
            },
            Mutation::RevokeTokensOf {
                tenant_id: home.id,
                application_id: client.id,
                until: at(60, 999),
            },
        ],
    )
    .await;
    store
        .server_secret_or_insert("secret-hash-key", &[7; 60])
        .await
        .unwrap();
    let mut quiet = event(&home, "Add application", &api.id.to_string(), at(4, 4));
    quiet.actor_app_id = None;
    quiet.actor_service_principal_id = None;
    quiet.actor_key_id = None;
    quiet.client_ip = None;
    quiet.target_key_id = None;
    quiet.result = AuditResult::Failure;
    quiet.result_reason = "refused".into();
    store
        .record_audit(&[
            quiet,
            event(&home, "Add password credential", "x", at(5, 5)),
        ])
        .await
        .unwrap();
    let success = SignIn {
        id: Uuid::new_v4(),
        tenant_id: home.id,
        at: at(6, 123_456_789),
        last_at: at(8, 1),
        count: 3,
        app_id: Some(client.app_id),
        key_id: Some(used.key_id),
        resource: Some(api.app_id),
        client_ip: Some("192.0.2.1".into()),
        user_agent: Some("msal".into()),
        result: AuditResult::Success,
        error_code: None,
    };
    let failure = SignIn {
        id: Uuid::new_v4(),
        at: at(9, 0),
        last_at: at(9, 0),
        count: 1,
        app_id: None,
        key_id: None,
        resource: None,
        client_ip: None,
        user_agent: None,
        result: AuditResult::Failure,
        error_code: Some(700016),
        ..success.clone()
    };
    store.record_sign_ins(&[success, failure]).await.unwrap();
    let hook = webhook(home.id, 7);
    apply(store, vec![Mutation::InsertWebhook(hook.clone())]).await;
    let notice = ExpiryNotice {
        tenant_id: home.id,
        application_id: client.id,
        key_id: used.key_id,
        kind: NoticeKind::Threshold(30),
        at: at(10, 10),
    };
    let delivery = |status| WebhookDelivery {
        id: Uuid::new_v4(),
        tenant_id: home.id,
        subscription_id: hook.id,
        event_type: "secret.expiring".into(),
        key_id: used.key_id,
        payload: r#"{"type":"secret.expiring"}"#.into(),
        status,
        attempts: 0,
        last_status: None,
        last_error: None,
        created_at: at(10, 11),
        last_attempt_at: None,
        next_attempt_at: Some(at(10, 11)),
    };
    let (sent, waiting) = (
        delivery(DeliveryStatus::Pending),
        delivery(DeliveryStatus::Pending),
    );
    assert!(store
        .record_expiry_notice(&notice, &[sent.clone(), waiting], &[])
        .await
        .unwrap());
    let attempt = DeliveryAttempt {
        attempt: 1,
        status: DeliveryStatus::Pending,
        http_status: None,
        error: Some("connection refused".into()),
        at: at(11, 0),
        next_attempt_at: Some(at(71, 0)),
    };
    store
        .finish_webhook_delivery(sent.id, &attempt)
        .await
        .unwrap();
    store
        .add_auth_failures(
            &[AuthFailureCount {
                key: "ip:192.0.2.9".into(),
                window: 28_400_000,
                count: 21,
            }],
            0,
        )
        .await
        .unwrap();
    store
        .record_node(&node(&["kek-a"], 12), at(0, 0))
        .await
        .unwrap();
    store
        .installation_kek_or_insert("kek-a", at(12, 0))
        .await
        .unwrap();
}

/// Every row of `table`, in a form that compares across backends (JSON
/// parsed, so that PostgreSQL's jsonb spacing does not count), sorted.
async fn rows_of(store: &dyn Store, table: &'static copy::Table) -> Vec<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1_000);
    store.export_rows(table, &tx).await.unwrap();
    drop(tx);
    let mut rows = Vec::new();
    while let Some(copy::Batch::Rows(_, batch)) = rx.recv().await {
        for row in batch {
            let cells: Vec<String> = row
                .iter()
                .map(|cell| match cell {
                    Cell::Null => "NULL".into(),
                    Cell::Uuid(u) => u.to_string(),
                    Cell::Text(t) => format!("{t:?}"),
                    Cell::Int(n) | Cell::Time(n) => n.to_string(),
                    Cell::Bool(b) => b.to_string(),
                    Cell::Bytes(b) => format!("{b:02x?}"),
                    Cell::Json(j) => serde_json::from_str::<serde_json::Value>(j)
                        .expect("JSON")
                        .to_string(),
                })
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    rows
}

/// `from` filled, `to` empty: after the copy, every copied table holds the
/// same rows in both, every column included; skipped tables stay empty.
pub async fn a_copy_keeps_every_row_of_every_table(from: &dyn Store, to: &dyn Store) {
    fill_every_table(from).await;
    let counts = copy::copy_rows(from, to).await.expect("copy");
    let counts: BTreeMap<&str, u64> = counts.iter().map(|(t, n)| (t.name, *n)).collect();
    for table in TABLES {
        let source = rows_of(from, table).await;
        assert!(!source.is_empty(), "the fixture fills {}", table.name);
        match table.treatment {
            Treatment::Copy => {
                assert_eq!(counts[table.name], source.len() as u64, "{}", table.name);
                assert_eq!(rows_of(to, table).await, source, "{}", table.name);
                assert_eq!(
                    to.count_rows(table).await.unwrap(),
                    source.len() as u64,
                    "{}",
                    table.name
                );
            }
            Treatment::Skip(_) => {
                assert!(!counts.contains_key(table.name));
                assert_eq!(to.count_rows(table).await.unwrap(), 0, "{}", table.name);
            }
        }
    }
    // What the service reads back is the same too.
    let (a, b) = (from.tenants().await.unwrap(), to.tenants().await.unwrap());
    assert_eq!(a, b);
    let all = clavis_store::ApplicationFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        from.list_applications(a[0].id, &all).await.unwrap(),
        to.list_applications(a[0].id, &all).await.unwrap()
    );
}
