//! The rules of `commit`: `NotFound` for what is missing (or lives in
//! another tenant), `Conflict` for broken uniqueness; and no read that
//! crosses tenants.

use clavis_store::{Mutation, Store, StoreError};
use uuid::Uuid;

use super::fixtures::*;

pub(super) fn not_found(result: Result<(), StoreError>) -> &'static str {
    match result {
        Err(StoreError::NotFound(what)) => what,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub(super) fn conflict(result: Result<(), StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(rule)) => rule,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

pub async fn missing_objects_are_not_found(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let app_ = given_app(store, &tenant, "orders").await;
    let nobody = Uuid::new_v4();
    let commit = |m: Mutation| async move { store.commit(&[m], &[]).await };

    let mut ghost_tenant = tenant.clone();
    ghost_tenant.id = nobody;
    assert_eq!(
        not_found(commit(Mutation::UpdateTenant(ghost_tenant.clone())).await),
        "tenant"
    );
    let orphan = app(&ghost_tenant, "orphan");
    assert_eq!(
        not_found(commit(Mutation::InsertApplication(orphan)).await),
        "tenant"
    );
    let key = signing_key(&ghost_tenant, "k1", 0);
    assert_eq!(
        not_found(commit(Mutation::InsertSigningKey(key)).await),
        "tenant"
    );

    let ghost = app(&tenant, "ghost");
    let m = Mutation::UpdateApplication(ghost.clone());
    assert_eq!(not_found(commit(m).await), "application");
    let m = Mutation::DeleteApplication {
        tenant_id: tenant.id,
        id: ghost.id,
    };
    assert_eq!(not_found(commit(m).await), "application");
    let m = Mutation::AddPassword {
        tenant_id: tenant.id,
        application_id: ghost.id,
        credential: credential(1, 0),
    };
    assert_eq!(not_found(commit(m).await), "application");
    let m = Mutation::RemovePassword {
        tenant_id: tenant.id,
        application_id: ghost.id,
        key_id: nobody,
    };
    assert_eq!(not_found(commit(m).await), "application");
    let m = Mutation::RemovePassword {
        tenant_id: tenant.id,
        application_id: app_.id,
        key_id: nobody,
    };
    assert_eq!(not_found(commit(m).await), "password credential");

    let m = Mutation::InsertRoleAssignment(grant(&ghost, &app_, Uuid::new_v4()));
    assert!(not_found(commit(m).await).contains("principalId"));
    let m = Mutation::InsertRoleAssignment(grant(&app_, &ghost, Uuid::new_v4()));
    assert!(not_found(commit(m).await).contains("resourceId"));
    let m = Mutation::DeleteRoleAssignment {
        tenant_id: tenant.id,
        id: nobody,
    };
    assert_eq!(not_found(commit(m).await), "role assignment");
}

pub async fn other_tenants_objects_are_not_found(store: &dyn Store) {
    let home = given_tenant(store, "home").await;
    let away = given_tenant(store, "away").await;
    let mine = given_app(store, &home, "mine").await;
    let also_mine = given_app(store, &home, "also mine").await;
    let theirs = given_app(store, &away, "theirs").await;
    let credential_ = credential(1, 0);
    let add = Mutation::AddPassword {
        tenant_id: home.id,
        application_id: mine.id,
        credential: credential_.clone(),
    };
    let granted = grant(&mine, &also_mine, Uuid::new_v4());
    apply(
        store,
        vec![add, Mutation::InsertRoleAssignment(granted.clone())],
    )
    .await;
    let commit = |m: Mutation| async move { store.commit(&[m], &[]).await };

    let mut moved = mine.clone();
    moved.tenant_id = away.id;
    assert_eq!(
        not_found(commit(Mutation::UpdateApplication(moved)).await),
        "application"
    );
    let m = Mutation::DeleteApplication {
        tenant_id: away.id,
        id: mine.id,
    };
    assert_eq!(not_found(commit(m).await), "application");
    let m = Mutation::AddPassword {
        tenant_id: away.id,
        application_id: mine.id,
        credential: credential(2, 0),
    };
    assert_eq!(not_found(commit(m).await), "application");
    let m = Mutation::RemovePassword {
        tenant_id: away.id,
        application_id: mine.id,
        key_id: credential_.key_id,
    };
    assert_eq!(not_found(commit(m).await), "application");
    let m = Mutation::DeleteRoleAssignment {
        tenant_id: away.id,
        id: granted.id,
    };
    assert_eq!(not_found(commit(m).await), "role assignment");
    // Grants in `home` naming a service principal of `away`.
    let mut across = grant(&mine, &theirs, Uuid::new_v4());
    across.tenant_id = home.id;
    let m = Mutation::InsertRoleAssignment(across);
    assert!(not_found(commit(m).await).contains("resourceId"));
    let m = Mutation::InsertRoleAssignment(grant(&theirs, &mine, Uuid::new_v4()));
    assert!(not_found(commit(m).await).contains("principalId"));

    let read = store
        .application(home.id, mine.id)
        .await
        .expect("read")
        .expect("untouched");
    assert_eq!(read.password_credentials.len(), 1);
    assert_eq!(
        store
            .role_assignments_of(home.id, mine.service_principal_id)
            .await
            .expect("read")
            .len(),
        1
    );
}

pub async fn reads_never_cross_tenants(store: &dyn Store) {
    let home = given_tenant(store, "home").await;
    let away = given_tenant(store, "away").await;
    let mut mine = app(&home, "mine");
    mine.identifier_uris = vec!["api://mine".to_owned()];
    mine.owners = vec![Uuid::from_u128(1)];
    let api = app(&home, "api");
    let granted = grant(&mine, &api, Uuid::new_v4());
    let audit = event(&home, "Add application", "t", at(0, 0));
    let mutations = [
        Mutation::InsertApplication(mine.clone()),
        Mutation::InsertApplication(api.clone()),
        Mutation::InsertRoleAssignment(granted),
        Mutation::InsertSigningKey(signing_key(&home, "k1", 0)),
    ];
    store.commit(&mutations, &[audit]).await.expect("commit");

    assert_eq!(
        store.application(away.id, mine.id).await.expect("read"),
        None
    );
    assert_eq!(
        store
            .application_by_app_id(away.id, mine.app_id)
            .await
            .expect("read"),
        None
    );
    let by_sp = store.application_by_service_principal(away.id, mine.service_principal_id);
    assert_eq!(by_sp.await.expect("read"), None);
    let by_uri = store.application_by_identifier_uri(away.id, "api://mine");
    assert_eq!(by_uri.await.expect("read"), None);
    let filter = clavis_store::ApplicationFilter {
        limit: 10,
        ..Default::default()
    };
    assert!(store
        .list_applications(away.id, &filter)
        .await
        .expect("read")
        .is_empty());
    let filter = clavis_store::ApplicationFilter {
        owner: Some(Uuid::from_u128(1)),
        limit: 10,
        ..Default::default()
    };
    assert!(store
        .list_applications(away.id, &filter)
        .await
        .expect("read")
        .is_empty());
    assert!(store
        .role_assignments_to(away.id, api.service_principal_id)
        .await
        .expect("read")
        .is_empty());
    assert!(store
        .role_assignments_of(away.id, mine.service_principal_id)
        .await
        .expect("read")
        .is_empty());
    assert!(store.signing_keys(away.id).await.expect("read").is_empty());
    let query = clavis_store::AuditQuery {
        tenant_id: away.id,
        since: None,
        until: None,
        activity: None,
        target_id: None,
        actor_app_id: None,
        before: None,
        limit: 10,
    };
    assert!(store.audit_events(&query).await.expect("read").is_empty());
}

pub async fn uniqueness_rules_conflict(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other_tenant = given_tenant(store, "other").await;
    let mut orders = app(&tenant, "orders");
    orders.identifier_uris = vec!["api://orders".to_owned()];
    orders.password_credentials = vec![credential(1, 0)];
    let billing = app(&tenant, "billing");
    let role_id = Uuid::new_v4();
    let granted = grant(&billing, &orders, role_id);
    let mutations = vec![
        Mutation::InsertApplication(orders.clone()),
        Mutation::InsertApplication(billing.clone()),
        Mutation::InsertRoleAssignment(granted.clone()),
        Mutation::InsertSigningKey(signing_key(&tenant, "k1", 0)),
    ];
    apply(store, mutations).await;
    let commit = |m: Mutation| async move { store.commit(&[m], &[]).await };

    let rule = conflict(
        commit(Mutation::InsertTenant(super::fixtures::tenant(
            &tenant.name,
        )))
        .await,
    );
    assert!(rule.contains("tenant name 'default'"), "{rule}");
    let mut renamed = other_tenant.clone();
    renamed.name = "default".to_owned();
    assert!(conflict(commit(Mutation::UpdateTenant(renamed)).await).contains("tenant name"));

    let mut dup = app(&tenant, "dup");
    dup.identifier_uris = vec!["api://orders".to_owned()];
    let rule = conflict(commit(Mutation::InsertApplication(dup.clone())).await);
    assert_eq!(
        rule,
        "identifier URI 'api://orders' is already used by another application in this tenant"
    );
    // URIs compare case-insensitively: another spelling is the same URI.
    dup.identifier_uris = vec!["API://Orders".to_owned()];
    conflict(commit(Mutation::InsertApplication(dup.clone())).await);
    let found = store
        .application_by_identifier_uri(tenant.id, "API://ORDERS")
        .await
        .expect("read")
        .expect("found whatever the case");
    assert_eq!(found.id, orders.id);
    let mut taking = billing.clone();
    taking.identifier_uris = vec!["api://orders".to_owned()];
    conflict(commit(Mutation::UpdateApplication(taking)).await);
    dup.identifier_uris = vec!["api://x".to_owned(), "api://x".to_owned()];
    assert!(conflict(commit(Mutation::InsertApplication(dup.clone())).await).contains("twice"));
    dup.identifier_uris = vec!["api://orders".to_owned()];
    dup.tenant_id = other_tenant.id;
    apply(store, vec![Mutation::InsertApplication(dup)]).await; // another tenant: fine

    let mut same_app_id = app(&tenant, "same app id");
    same_app_id.app_id = orders.app_id;
    assert!(conflict(commit(Mutation::InsertApplication(same_app_id)).await).contains("appId"));
    let mut same_sp = app(&tenant, "same sp");
    same_sp.service_principal_id = orders.service_principal_id;
    assert!(
        conflict(commit(Mutation::InsertApplication(same_sp)).await).contains("service principal")
    );
    let mut same_id = app(&tenant, "same id");
    same_id.id = orders.id;
    conflict(commit(Mutation::InsertApplication(same_id)).await);

    let mut again = grant(&billing, &orders, role_id);
    again.created_at = at(99, 0);
    let rule = conflict(commit(Mutation::InsertRoleAssignment(again)).await);
    assert_eq!(rule, "this app role is already assigned to that principal");
    let add = |credential| Mutation::AddPassword {
        tenant_id: tenant.id,
        application_id: billing.id,
        credential,
    };
    let mut same_key = credential(2, 0);
    same_key.key_id = orders.password_credentials[0].key_id;
    assert!(conflict(commit(add(same_key)).await).contains("key id"));
    assert!(conflict(commit(add(credential(1, 0))).await).contains("secret hash"));
    let rule = conflict(commit(Mutation::InsertSigningKey(signing_key(&tenant, "k1", 5))).await);
    assert!(rule.contains("'k1'"), "{rule}");
}
