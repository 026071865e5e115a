//! Deleting an application takes everything that hangs off it, and frees
//! its identifier URIs for reuse.

use clavis_store::{ApplicationFilter, Mutation, Store};
use uuid::Uuid;

use super::fixtures::*;

pub async fn delete_application_cascades(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let mut doomed = app(&tenant, "doomed");
    doomed.identifier_uris = vec!["api://doomed".to_owned()];
    doomed.password_credentials = vec![credential(1, 0), credential(2, 0)];
    let client = app(&tenant, "client");
    let api = app(&tenant, "api");
    let mut owned = app(&tenant, "owned");
    let kept_owner = Uuid::new_v4();
    owned.owners = vec![doomed.service_principal_id, kept_owner];
    let held = grant(&doomed, &api, Uuid::new_v4());
    let granted = grant(&client, &doomed, Uuid::new_v4());
    let unrelated = grant(&client, &api, Uuid::new_v4());
    let mut mutations: Vec<Mutation> = [&doomed, &client, &api, &owned]
        .map(|a| Mutation::InsertApplication(a.clone()))
        .to_vec();
    mutations
        .extend([&held, &granted, &unrelated].map(|g| Mutation::InsertRoleAssignment(g.clone())));
    apply(store, mutations).await;

    apply(
        store,
        vec![Mutation::DeleteApplication {
            tenant_id: tenant.id,
            id: doomed.id,
        }],
    )
    .await;

    assert_eq!(
        store.application(tenant.id, doomed.id).await.expect("read"),
        None
    );
    let to_doomed = store
        .role_assignments_to(tenant.id, doomed.service_principal_id)
        .await;
    assert!(to_doomed.expect("read").is_empty(), "grants on it are gone");
    let of_doomed = store
        .role_assignments_of(tenant.id, doomed.service_principal_id)
        .await;
    assert!(
        of_doomed.expect("read").is_empty(),
        "grants it held are gone"
    );
    let of_client = store
        .role_assignments_of(tenant.id, client.service_principal_id)
        .await;
    assert_eq!(of_client.expect("read"), vec![unrelated.clone()]);
    let to_api = store
        .role_assignments_to(tenant.id, api.service_principal_id)
        .await;
    assert_eq!(to_api.expect("read"), vec![unrelated]);

    let owned_now = store
        .application(tenant.id, owned.id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        owned_now.owners,
        vec![kept_owner],
        "it left the owner lists"
    );
    let filter = ApplicationFilter {
        owner: Some(doomed.service_principal_id),
        limit: 10,
        ..Default::default()
    };
    assert!(store
        .list_applications(tenant.id, &filter)
        .await
        .expect("list")
        .is_empty());

    // Its URI and its credentials' key ids and hashes are free again.
    let mut heir = app(&tenant, "heir");
    heir.identifier_uris = doomed.identifier_uris.clone();
    heir.password_credentials = doomed.password_credentials.clone();
    apply(store, vec![Mutation::InsertApplication(heir.clone())]).await;
    let by_uri = store
        .application_by_identifier_uri(tenant.id, "api://doomed")
        .await;
    assert_eq!(by_uri.expect("read").map(|a| a.id), Some(heir.id));

    let again = Mutation::DeleteApplication {
        tenant_id: tenant.id,
        id: doomed.id,
    };
    assert!(matches!(
        store.commit(&[again], &[]).await,
        Err(clavis_store::StoreError::NotFound("application"))
    ));
}
