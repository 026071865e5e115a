//! The servers sharing a store: heartbeat rows (which key-encryption keys
//! each node holds), forgotten once stale; the installation's
//! key-encryption key, first writer wins, changed by a commit.

use clavis_store::nodes::{NodeRecord, LIVE_WITHIN};
use clavis_store::{Mutation, Store};
use time::Duration;
use uuid::Uuid;

use super::fixtures::*;

pub fn node(kek_ids: &[&str], seen_secs: i64) -> NodeRecord {
    NodeRecord {
        node_id: Uuid::new_v4(),
        host: "web-1".into(),
        listen: "10.0.0.1:8443".into(),
        public_url: "https://id.example".into(),
        kek_ids: kek_ids.iter().map(|k| k.to_string()).collect(),
        sealing_kek_id: kek_ids[0].into(),
        started_at: at(0, 1_999),
        last_seen_at: at(seen_secs, 2_999),
    }
}

fn as_stored_node(node: &NodeRecord) -> NodeRecord {
    NodeRecord {
        started_at: stored(node.started_at),
        last_seen_at: stored(node.last_seen_at),
        ..node.clone()
    }
}

pub async fn nodes_are_recorded_listed_and_forgotten(store: &dyn Store) {
    let feed = store.change_feed();
    let seq = feed.borrow().seq;
    let a = node(&["kek-a", "kek-b"], 100);
    let mut b = node(&["kek-a"], 100);
    b.started_at = at(1, 0);
    store.record_node(&a, at(0, 0)).await.unwrap();
    store.record_node(&b, at(0, 0)).await.unwrap();
    assert_eq!(
        store.nodes().await.unwrap(),
        vec![as_stored_node(&a), as_stored_node(&b)]
    );
    // A heartbeat replaces the row: new time, new keys.
    b.kek_ids.push("kek-new".into());
    b.last_seen_at = at(105, 0);
    store.record_node(&b, at(0, 0)).await.unwrap();
    let listed = store.nodes().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], as_stored_node(&b));
    assert!(listed[1].holds("kek-new") && !listed[0].holds("kek-new"));
    assert!(listed[1].is_live(at(105, 0) + LIVE_WITHIN));
    assert!(!listed[1].is_live(at(105, 0) + LIVE_WITHIN + Duration::seconds(1)));
    assert_eq!(feed.borrow().seq, seq, "a heartbeat is not a change");

    // Rows older than `forget_before` go with the next heartbeat.
    store.record_node(&b, at(101, 0)).await.unwrap();
    assert_eq!(store.nodes().await.unwrap(), vec![as_stored_node(&b)]);
    // A clean shutdown deletes its row; twice is fine.
    store.remove_node(b.node_id).await.unwrap();
    store.remove_node(b.node_id).await.unwrap();
    assert!(store.nodes().await.unwrap().is_empty());
}

pub async fn the_installation_kek_is_chosen_once_and_changed_by_a_commit(store: &dyn Store) {
    assert_eq!(
        store
            .installation_kek_or_insert("kek-first", at(0, 0))
            .await
            .unwrap(),
        "kek-first"
    );
    assert_eq!(
        store
            .installation_kek_or_insert("kek-second", at(1, 0))
            .await
            .unwrap(),
        "kek-first",
        "the first writer wins"
    );
    let home = given_tenant(store, "default").await;
    let feed = store.change_feed();
    let seq = feed.borrow().seq;
    let change = Mutation::SetInstallationKek {
        kek_id: "kek-second".into(),
        at: at(2, 0),
    };
    store
        .commit(
            &[change],
            &[event(
                &home,
                "Set key-encryption key",
                "kek-second",
                at(2, 0),
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .installation_kek_or_insert("kek-third", at(3, 0))
            .await
            .unwrap(),
        "kek-second"
    );
    assert!(feed.borrow().seq > seq || !feed.borrow().live);
}
