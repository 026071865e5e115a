//! The two paged list calls: every filter field, keyset pagination and order.

use clavis_store::{Application, ApplicationFilter, AuditEvent, AuditQuery, Mutation, Store};
use uuid::Uuid;

use super::fixtures::*;

fn ids(apps: &[Application]) -> Vec<Uuid> {
    apps.iter().map(|a| a.id).collect()
}

pub async fn list_applications_filters_and_pages(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let owner = Uuid::new_v4();
    let mut apps = Vec::new();
    // Inserted out of id order; two share a display name; 1 and 4 are owned.
    for (n, name) in [(4, "shared"), (2, "b"), (5, "c"), (1, "shared"), (3, "d")] {
        let mut a = app(&tenant, name);
        a.id = Uuid::from_u128(n << 120); // first hex digit = n
        if n == 1 || n == 4 {
            a.owners = vec![Uuid::new_v4(), owner];
        }
        apps.push(a);
    }
    let mut foreign = app(&other, "shared");
    foreign.id = Uuid::from_u128(6 << 120);
    foreign.owners = vec![owner];
    apps.push(foreign);
    apply(
        store,
        apps.iter()
            .cloned()
            .map(Mutation::InsertApplication)
            .collect(),
    )
    .await;
    let id = |n: u128| Uuid::from_u128(n << 120);

    let all = ApplicationFilter {
        limit: 100,
        ..Default::default()
    };
    let listed = store
        .list_applications(tenant.id, &all)
        .await
        .expect("list");
    assert_eq!(
        ids(&listed),
        [1, 2, 3, 4, 5].map(id),
        "by id, own tenant only"
    );
    let one = listed.iter().find(|a| a.id == id(1)).expect("listed");
    assert_eq!(
        one.owners,
        vec![apps[3].owners[0], owner],
        "lists come complete"
    );

    let mut pages = Vec::new();
    let mut filter = ApplicationFilter {
        limit: 2,
        ..Default::default()
    };
    loop {
        let page = store
            .list_applications(tenant.id, &filter)
            .await
            .expect("list");
        let Some(last) = page.last() else { break };
        filter.after = Some(last.id);
        pages.push(ids(&page));
    }
    assert_eq!(
        pages,
        vec![vec![id(1), id(2)], vec![id(3), id(4)], vec![id(5)]]
    );

    let by = |f: ApplicationFilter| async move {
        ids(&store.list_applications(tenant.id, &f).await.expect("list"))
    };
    let app_id = Some(apps[1].app_id);
    assert_eq!(
        by(ApplicationFilter {
            app_id,
            limit: 10,
            ..Default::default()
        })
        .await,
        [id(2)]
    );
    let display_name = Some("shared".to_owned());
    let f = ApplicationFilter {
        display_name: display_name.clone(),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(by(f).await, [id(1), id(4)]);
    let f = ApplicationFilter {
        display_name: Some("SHARED".to_owned()),
        limit: 10,
        ..Default::default()
    };
    assert!(by(f).await.is_empty(), "display name matches exactly");
    let f = ApplicationFilter {
        owner: Some(owner),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(by(f).await, [id(1), id(4)]);
    let f = ApplicationFilter {
        owner: Some(owner),
        after: Some(id(1)),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(by(f).await, [id(4)]);
    let f = ApplicationFilter {
        owner: Some(owner),
        display_name,
        app_id: Some(apps[0].app_id),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(by(f).await, [id(4)]);
    let f = ApplicationFilter {
        owner: Some(owner),
        app_id,
        limit: 10,
        ..Default::default()
    };
    assert!(by(f).await.is_empty(), "filters combine with AND");
    assert!(by(ApplicationFilter {
        limit: 0,
        ..Default::default()
    })
    .await
    .is_empty());
}

fn query(tenant: Uuid) -> AuditQuery {
    AuditQuery {
        tenant_id: tenant,
        since: None,
        until: None,
        activity: None,
        target_id: None,
        actor_app_id: None,
        before: None,
        limit: 100,
    }
}

fn event_ids(events: &[AuditEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

pub async fn audit_events_filter_and_page(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    // e[0] oldest .. e[4] newest; e[2] and e[3] share a time, ordered by id.
    let mut e = [
        event(&tenant, "Add application", "app-1", at(0, 0)),
        event(&tenant, "Add password credential", "app-1", at(10, 0)),
        event(&tenant, "Add application", "app-2", at(20, 500)),
        event(&tenant, "Remove password credential", "app-1", at(20, 500)),
        event(&tenant, "Add application", "app-3", at(30, 0)),
    ];
    e[2].id = Uuid::from_u128(1);
    e[3].id = Uuid::from_u128(2);
    let mut foreign = event(&other, "Add application", "app-1", at(15, 0));
    foreign.actor_app_id = e[1].actor_app_id;
    let mut shuffled = vec![e[3].clone(), e[0].clone(), foreign, e[4].clone()];
    shuffled.extend([e[1].clone(), e[2].clone()]);
    store.record_audit(&shuffled).await.expect("record");
    let newest_first: Vec<Uuid> = e.iter().rev().map(|e| e.id).collect();

    let read =
        |q: AuditQuery| async move { event_ids(&store.audit_events(&q).await.expect("read")) };
    assert_eq!(read(query(tenant.id)).await, newest_first);

    let mut q = query(tenant.id);
    q.since = Some(at(10, 0));
    assert_eq!(
        read(q.clone()).await,
        newest_first[..4],
        "since is inclusive"
    );
    q.until = Some(at(30, 0));
    assert_eq!(read(q).await, newest_first[1..4], "until is exclusive");

    let mut q = query(tenant.id);
    q.activity = Some("Add application".to_owned());
    assert_eq!(read(q.clone()).await, [e[4].id, e[2].id, e[0].id]);
    q.target_id = Some("app-1".to_owned());
    assert_eq!(read(q).await, [e[0].id]);
    let mut q = query(tenant.id);
    q.target_id = Some("app-1".to_owned());
    assert_eq!(read(q).await, [e[3].id, e[1].id, e[0].id]);

    // By actor: only that application's events, and only in this tenant
    // (the other tenant's event has the same actor).
    let mut q = query(tenant.id);
    q.actor_app_id = e[1].actor_app_id;
    assert_eq!(read(q.clone()).await, [e[1].id]);
    q.actor_app_id = Some(Uuid::new_v4());
    assert!(read(q).await.is_empty(), "an actor with no events");

    let mut q = query(tenant.id);
    q.limit = 2;
    let mut seen = Vec::new();
    loop {
        let page = store.audit_events(&q).await.expect("read");
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        q.before = Some((last.at, last.id));
        seen.extend(event_ids(&page));
    }
    assert_eq!(seen, newest_first, "the cursor splits the tie at 20 s");
    let mut q = query(tenant.id);
    q.before = Some((e[3].at, e[3].id));
    assert_eq!(
        read(q).await,
        newest_first[2..],
        "strictly older than the cursor"
    );
}
