//! `commit` is all or nothing: a failing mutation, a failing audit write or
//! a caller that stops waiting leaves no trace and no lock.

use clavis_store::{ApplicationFilter, AuditQuery, Mutation, Store};

use super::fixtures::*;
use super::rules::conflict;

pub async fn commit_is_all_or_nothing(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let mut taken = app(&tenant, "taken");
    taken.identifier_uris = vec!["api://taken".to_owned()];
    apply(store, vec![Mutation::InsertApplication(taken)]).await;

    let first = app(&tenant, "first");
    let mut second = app(&tenant, "second");
    second.identifier_uris = vec!["api://taken".to_owned()];
    let audit = event(&tenant, "Add application", &first.id.to_string(), at(1, 0));
    let mutations = [
        Mutation::InsertApplication(first.clone()),
        Mutation::InsertApplication(second),
    ];
    conflict(store.commit(&mutations, &[audit]).await);

    assert_eq!(
        store.application(tenant.id, first.id).await.expect("read"),
        None
    );
    let query = AuditQuery {
        tenant_id: tenant.id,
        since: None,
        until: None,
        activity: None,
        target_id: None,
        actor_app_id: None,
        before: None,
        limit: 10,
    };
    assert!(
        store.audit_events(&query).await.expect("read").is_empty(),
        "no audit either"
    );

    // A failing audit write fails the change it describes.
    let known = event(&tenant, "Add application", "x", at(2, 0));
    store
        .record_audit(std::slice::from_ref(&known))
        .await
        .expect("record");
    let third = app(&tenant, "third");
    let result = store
        .commit(&[Mutation::InsertApplication(third.clone())], &[known])
        .await;
    assert!(conflict(result).contains("audit event"));
    assert_eq!(
        store.application(tenant.id, third.id).await.expect("read"),
        None
    );

    // The store still works after a rolled-back commit.
    given_app(store, &tenant, "after").await;
}

/// A commit whose future is dropped part-way (a client hung up) leaves all
/// or nothing behind, and no lock: the next commit goes through.
pub async fn cancelled_commit_leaves_all_or_nothing(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    for rounds in (0..40).map(|n| n % 5).chain([1_000, 100_000]) {
        let apps: Vec<_> = (0..20).map(|n| app(&tenant, &format!("app {n}"))).collect();
        let mutations: Vec<_> = apps
            .iter()
            .cloned()
            .map(Mutation::InsertApplication)
            .collect();
        let mut commit = store.commit(&mutations, &[]); // a boxed future
        for _ in 0..rounds {
            tokio::select! {
                biased;
                result = &mut commit => { result.expect("commit"); break; }
                () = tokio::task::yield_now() => {}
            }
        }
        drop(commit);
        // One read, one snapshot: the commit is either in it or not.
        let filter = ApplicationFilter {
            limit: 1_000,
            ..Default::default()
        };
        let listed = store
            .list_applications(tenant.id, &filter)
            .await
            .expect("list");
        let present = apps
            .iter()
            .filter(|a| listed.iter().any(|l| l.id == a.id))
            .count();
        assert!(
            present == 0 || present == apps.len(),
            "{present} of {} after {rounds} rounds",
            apps.len()
        );
    }
    let after = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        given_app(store, &tenant, "after"),
    );
    after.await.expect("no lock left behind");
}
