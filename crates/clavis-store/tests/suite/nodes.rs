//! What several nodes sharing a store rely on: the signing-key
//! compare-and-set, reading a server secret without creating it, and the
//! change feed that tells caches to let go.

use std::time::Duration;

use clavis_store::{FeedState, Mutation, Store};

use super::fixtures::*;
use super::rules::{conflict, not_found};

/// The `Conflict` text of a lost compare-and-set.
const CHANGED: &str = "the tenant's signing key changed meanwhile";

fn cas(key: clavis_store::SigningKeyRecord, current: Option<&str>) -> Mutation {
    Mutation::InsertSigningKeyIfCurrent {
        key,
        current: current.map(str::to_owned),
    }
}

pub async fn signing_key_compare_and_set(store: &dyn Store) {
    let home = given_tenant(store, "default").await;
    let commit = |m: Mutation| async move { store.commit(&[m], &[]).await };

    // No key yet: only `None` matches.
    let first = signing_key(&home, "k1", 10);
    assert_eq!(
        conflict(commit(cas(first.clone(), Some("k0"))).await),
        CHANGED
    );
    commit(cas(first.clone(), None)).await.expect("first key");
    assert_eq!(
        conflict(commit(cas(signing_key(&home, "k2", 20), None)).await),
        CHANGED,
        "someone else created the first key"
    );

    // Then only the newest key's kid matches.
    commit(cas(signing_key(&home, "k2", 20), Some("k1")))
        .await
        .expect("rotated");
    assert_eq!(
        conflict(commit(cas(signing_key(&home, "k3", 30), Some("k1"))).await),
        CHANGED,
        "k1 is no longer the newest"
    );

    // Newest is by created_at, then by kid compared bytewise ('a' > 'Z').
    apply(
        store,
        vec![
            Mutation::InsertSigningKey(signing_key(&home, "Zeta", 40)),
            Mutation::InsertSigningKey(signing_key(&home, "alpha", 40)),
        ],
    )
    .await;
    conflict(commit(cas(signing_key(&home, "k5", 50), Some("Zeta"))).await);
    commit(cas(signing_key(&home, "k5", 50), Some("alpha")))
        .await
        .expect("alpha is the newest");

    // A lost compare-and-set fails its whole commit.
    let app_ = app(&home, "not written");
    let result = store
        .commit(
            &[
                Mutation::InsertApplication(app_.clone()),
                cas(signing_key(&home, "k6", 60), Some("k1")),
            ],
            &[],
        )
        .await;
    conflict(result);
    assert_eq!(
        store.application(home.id, app_.id).await.expect("read"),
        None
    );

    // A kid taken is still a kid taken.
    let rule = conflict(commit(cas(signing_key(&home, "k1", 70), Some("k5"))).await);
    assert!(rule.contains("'k1'"), "{rule}");

    // Keys of other tenants do not count; a missing tenant is not found.
    let other = given_tenant(store, "other").await;
    commit(cas(signing_key(&other, "o1", 0), None))
        .await
        .expect("other tenant's first key");
    let ghost = tenant("ghost");
    assert_eq!(
        not_found(commit(cas(signing_key(&ghost, "g1", 0), None)).await),
        "tenant"
    );

    let kids: Vec<String> = store
        .signing_keys(home.id)
        .await
        .expect("read")
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["k5", "alpha", "Zeta", "k2", "k1"]);
}

pub async fn signing_keys_activate_later_and_are_revoked(store: &dyn Store) {
    let home = given_tenant(store, "default").await;
    let mut pending = signing_key(&home, "k1", 10);
    pending.activates_at = at(3_610, 7);
    store
        .commit(&[cas(pending.clone(), None)], &[])
        .await
        .expect("pending key");
    let keys = store.signing_keys(home.id).await.expect("read");
    assert_eq!(keys[0].activates_at, stored(pending.activates_at));
    assert_eq!(keys[0].revoked_at, None);

    let revoke = |kid: &str, secs: i64| Mutation::RevokeSigningKey {
        tenant_id: home.id,
        kid: kid.to_owned(),
        at: at(secs, 3),
    };
    store
        .commit(&[revoke("k1", 20)], &[])
        .await
        .expect("revoke");
    store
        .commit(&[revoke("k1", 30)], &[])
        .await
        .expect("revoking again is not an error");
    let keys = store.signing_keys(home.id).await.expect("read");
    assert_eq!(
        keys[0].revoked_at,
        Some(stored(at(20, 3))),
        "the first time stays"
    );

    assert_eq!(
        not_found(store.commit(&[revoke("nope", 40)], &[]).await),
        "signing key"
    );
    let other = given_tenant(store, "other").await;
    let across = Mutation::RevokeSigningKey {
        tenant_id: other.id,
        kid: "k1".into(),
        at: at(50, 0),
    };
    assert_eq!(
        not_found(store.commit(&[across], &[]).await),
        "signing key",
        "another tenant's key is not found"
    );
}

pub async fn server_secret_reads_without_inserting(store: &dyn Store) {
    assert_eq!(store.server_secret("hash-key").await.expect("read"), None);
    assert_eq!(
        store.server_secret("hash-key").await.expect("read"),
        None,
        "reading creates nothing"
    );
    store
        .server_secret_or_insert("hash-key", &[0, 1, 255])
        .await
        .expect("insert");
    assert_eq!(
        store.server_secret("hash-key").await.expect("read"),
        Some(vec![0, 1, 255])
    );
    assert_eq!(store.server_secret("other").await.expect("read"), None);
    assert_eq!(
        store.server_secret("HASH-KEY").await.expect("read"),
        None,
        "names are exact"
    );
}

/// Wait (at most a second) until the feed's `seq` passes `after`.
async fn moved_past(
    feed: &mut tokio::sync::watch::Receiver<FeedState>,
    after: u64,
    what: &str,
) -> FeedState {
    let wait = feed.wait_for(|state| state.seq > after);
    match tokio::time::timeout(Duration::from_secs(1), wait).await {
        Ok(Ok(state)) => *state,
        Ok(Err(_)) => panic!("the feed closed while waiting for {what}"),
        Err(_) => panic!("the feed did not move within a second of {what}"),
    }
}

pub async fn change_feed_moves_after_commit(store: &dyn Store) {
    let mut feed = store.change_feed();
    let start = *feed.borrow_and_update();
    assert!(start.live, "a freshly opened store's feed is live");

    let home = given_tenant(store, "default").await;
    let state = moved_past(&mut feed, start.seq, "a commit").await;
    assert!(state.live);

    let seen = feed.borrow_and_update().seq;
    let app_ = given_app(store, &home, "orders").await;
    let seen = moved_past(&mut feed, seen, "a second commit").await.seq;

    // A revocation is a change like any other.
    let remove = Mutation::DeleteApplication {
        tenant_id: home.id,
        id: app_.id,
    };
    apply(store, vec![remove]).await;
    moved_past(&mut feed, seen, "a deletion").await;

    // Every receiver sees the same feed.
    let late = store.change_feed();
    assert!(late.borrow().seq >= feed.borrow().seq);
    assert!(late.borrow().live);
}
