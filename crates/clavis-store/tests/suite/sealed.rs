//! Sealed values: every one is listed for rewrapping (signing keys, server
//! secrets, webhook secrets), and replacing one is a compare-and-set that
//! loses to a concurrent change and never resurrects a deleted row.

use clavis_store::{Mutation, SealedKind, Store, StoreError};

use super::expiry::webhook;
use super::fixtures::*;

fn reseal(kind: SealedKind, id: &str, old: &[u8], new: &[u8]) -> Mutation {
    Mutation::ResealRecord {
        kind,
        id: id.into(),
        old: old.to_vec(),
        new: new.to_vec(),
        kek_id: "kek-new".into(),
    }
}

pub async fn sealed_records_are_listed_and_resealed_by_compare_and_set(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let key = signing_key(&tenant, "k1", 0);
    let hook = webhook(tenant.id, 1);
    apply(
        store,
        vec![
            Mutation::InsertSigningKey(key.clone()),
            Mutation::InsertWebhook(hook.clone()),
        ],
    )
    .await;
    let secret = store
        .server_secret_or_insert("secret-hash-key", b"sealed-hash-key")
        .await
        .unwrap();

    let mut listed = store.sealed_records().await.unwrap();
    listed.sort_by_key(|r| (r.kind.as_str(), r.id.clone()));
    let seen: Vec<_> = listed
        .iter()
        .map(|r| (r.kind, r.id.clone(), r.sealed.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                SealedKind::ServerSecret,
                "secret-hash-key".into(),
                secret.clone()
            ),
            (
                SealedKind::SigningKey,
                key.kid.clone(),
                key.encrypted_private_key.clone()
            ),
            (
                SealedKind::WebhookSecret,
                hook.id.to_string(),
                hook.sealed_secret.clone()
            ),
        ]
    );

    for record in &listed {
        let new = [record.sealed.as_slice(), b"-rewrapped"].concat();
        apply(
            store,
            vec![reseal(record.kind, &record.id, &record.sealed, &new)],
        )
        .await;
        // The same compare-and-set again lost: the value is no longer `old`.
        let stale = store
            .commit(
                &[reseal(record.kind, &record.id, &record.sealed, b"x")],
                &[],
            )
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    }
    let keys = store.signing_keys(tenant.id).await.unwrap();
    assert!(keys[0].encrypted_private_key.ends_with(b"-rewrapped"));
    assert_eq!(keys[0].kek_id, "kek-new");
    let hooks = store.webhook(tenant.id, hook.id).await.unwrap().unwrap();
    assert!(hooks.sealed_secret.ends_with(b"-rewrapped"));
    assert_eq!(hooks.kek_id, "kek-new");
    let value = store
        .server_secret("secret-hash-key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value, [secret.as_slice(), b"-rewrapped"].concat());

    let gone = store
        .commit(
            &[reseal(
                SealedKind::WebhookSecret,
                &uuid::Uuid::new_v4().to_string(),
                b"a",
                b"b",
            )],
            &[],
        )
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");
}
