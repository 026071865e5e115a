//! Every record type survives a write and a read with every field intact
//! (times at microsecond precision), and lists come back in their
//! documented order.

use clavis_store::{Application, AuditResult, Mutation, Store};
use uuid::Uuid;

use super::fixtures::*;

pub async fn tenant_round_trip(store: &dyn Store) {
    let mut first = tenant("default");
    first.created_at = at(0, 123_456_789);
    let mut second = tenant("contoso");
    second.created_at = at(5, 0);
    second.signing_alg = "EdDSA".to_owned();
    apply(
        store,
        vec![
            Mutation::InsertTenant(second.clone()),
            Mutation::InsertTenant(first.clone()),
        ],
    )
    .await;

    let mut expected = vec![first.clone(), second.clone()];
    expected[0].created_at = at(0, 123_456_000);
    assert_eq!(
        store.tenants().await.expect("tenants"),
        expected,
        "ordered by created_at"
    );

    let mut changed = first.clone();
    changed.name = "renamed".to_owned();
    changed.signing_alg = "RS256".to_owned();
    changed.max_secret_lifetime_secs = 100;
    changed.default_secret_lifetime_secs = 50;
    changed.max_secrets_per_application = 3;
    changed.password_credentials_allowed = false;
    changed.created_at = at(999, 0);
    apply(store, vec![Mutation::UpdateTenant(changed.clone())]).await;
    changed.created_at = expected[0].created_at; // never changes
    expected[0] = changed;
    assert_eq!(store.tenants().await.expect("tenants"), expected);
}

/// An application with every list filled, in orders a sort would break.
fn full_app(tenant: &clavis_store::Tenant) -> Application {
    let mut full = app(tenant, "orders");
    full.identifier_uris = vec![
        "https://z.example/orders".to_owned(),
        "api://orders".to_owned(),
    ];
    full.app_roles = vec![role("Orders.Write"), role("Orders.Read")];
    full.owners = vec![Uuid::from_u128(9), Uuid::from_u128(3), Uuid::from_u128(7)];
    full.builtin = true;
    full.created_at = at(10, 987_654_321);
    full.credential_policy = clavis_store::CredentialPolicy {
        max_lifetime_secs: Some(86_400),
        default_lifetime_secs: None,
        max_secrets: Some(2),
        password_credentials_allowed: Some(false),
    };
    let mut late = credential(1, 500);
    late.last_used_at = Some(at(600, 5_555));
    let mut tie_a = credential(2, 100);
    let mut tie_b = credential(3, 100);
    tie_a.key_id = Uuid::from_u128(0xbbbb);
    tie_b.key_id = Uuid::from_u128(0xaaaa);
    full.password_credentials = vec![late, tie_a, tie_b];
    full
}

pub async fn application_round_trip(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let mut full = full_app(&tenant);
    apply(store, vec![Mutation::InsertApplication(full.clone())]).await;

    let added = credential(4, 50);
    let mutation = Mutation::AddPassword {
        tenant_id: tenant.id,
        application_id: full.id,
        credential: added.clone(),
    };
    apply(store, vec![mutation]).await;
    full.password_credentials.push(added);

    let expected = as_stored(&full);
    assert_eq!(expected.created_at, at(10, 987_654_000));
    let keys: Vec<_> = expected
        .password_credentials
        .iter()
        .map(|c| c.secret_hash[0])
        .collect();
    assert_eq!(keys, [4, 3, 2, 1], "by (start_at, key_id)");

    let by_id = store.application(tenant.id, full.id).await.expect("read");
    assert_eq!(by_id.as_ref(), Some(&expected));
    let by_app_id = store
        .application_by_app_id(tenant.id, full.app_id)
        .await
        .expect("read");
    assert_eq!(by_app_id.as_ref(), Some(&expected));
    let by_sp = store.application_by_service_principal(tenant.id, full.service_principal_id);
    assert_eq!(by_sp.await.expect("read").as_ref(), Some(&expected));
    for uri in &full.identifier_uris {
        let by_uri = store
            .application_by_identifier_uri(tenant.id, uri)
            .await
            .expect("read");
        assert_eq!(by_uri.as_ref(), Some(&expected), "{uri}");
    }
    let other_case = store
        .application_by_identifier_uri(tenant.id, "API://ORDERS")
        .await;
    assert_eq!(
        other_case.expect("read").as_ref(),
        Some(&expected),
        "URIs ignore case"
    );
    let unknown = store
        .application_by_identifier_uri(tenant.id, "api://order")
        .await;
    assert_eq!(unknown.expect("read"), None, "no prefix matching");

    let policy = clavis_store::CredentialPolicy {
        max_lifetime_secs: None,
        default_lifetime_secs: Some(3_600),
        max_secrets: None,
        password_credentials_allowed: Some(true),
    };
    let mutation = Mutation::SetCredentialPolicy {
        tenant_id: tenant.id,
        application_id: full.id,
        policy,
    };
    apply(store, vec![mutation]).await;
    let read = store.application(tenant.id, full.id).await.expect("read");
    assert_eq!(read.expect("there").credential_policy, policy);
    let ghost = Mutation::SetCredentialPolicy {
        tenant_id: tenant.id,
        application_id: Uuid::new_v4(),
        policy,
    };
    assert!(matches!(
        store.commit(&[ghost], &[]).await,
        Err(clavis_store::StoreError::NotFound(_))
    ));

    let removed = full.password_credentials[0].key_id;
    let mutation = Mutation::RemovePassword {
        tenant_id: tenant.id,
        application_id: full.id,
        key_id: removed,
    };
    apply(store, vec![mutation]).await;
    let left = store
        .application(tenant.id, full.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(left.password_credentials.len(), 3);
    assert!(left
        .password_credentials
        .iter()
        .all(|c| c.key_id != removed));
}

pub async fn update_application_replaces_only_its_fields(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let original = full_app(&tenant);
    apply(store, vec![Mutation::InsertApplication(original.clone())]).await;

    let mut update = app(&tenant, "orders v2"); // fresh app_id, owners, ...
    update.id = original.id;
    update.identifier_uris = vec!["api://orders-v2".to_owned(), "api://a".to_owned()];
    update.app_roles = vec![role("B"), role("A")];
    update.owners = vec![Uuid::new_v4()];
    update.password_credentials = vec![credential(9, 0)];
    update.credential_policy.max_secrets = Some(1);
    apply(store, vec![Mutation::UpdateApplication(update.clone())]).await;

    let mut expected = as_stored(&original);
    expected.display_name = update.display_name.clone();
    expected.identifier_uris = update.identifier_uris.clone();
    expected.app_roles = update.app_roles.clone();
    let read = store
        .application(tenant.id, original.id)
        .await
        .expect("read");
    assert_eq!(read, Some(expected));
    let old_uri = store
        .application_by_identifier_uri(tenant.id, "api://orders")
        .await;
    assert_eq!(old_uri.expect("read"), None, "old URI is free");
}

pub async fn role_assignment_round_trip(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let client = given_app(store, &tenant, "client").await;
    let api = given_app(store, &tenant, "api").await;
    let mut first = grant(&client, &api, Uuid::new_v4());
    first.created_at = at(30, 1_999);
    let mut second = grant(&client, &api, Uuid::new_v4());
    second.created_at = at(20, 0);
    let reverse = grant(&api, &client, Uuid::new_v4());
    let mutations = [&first, &second, &reverse].map(|g| Mutation::InsertRoleAssignment(g.clone()));
    apply(store, mutations.to_vec()).await;

    first.created_at = at(30, 1_000);
    let to_api = store
        .role_assignments_to(tenant.id, api.service_principal_id)
        .await;
    assert_eq!(
        to_api.expect("read"),
        vec![second.clone(), first.clone()],
        "by created_at"
    );
    let of_client = store
        .role_assignments_of(tenant.id, client.service_principal_id)
        .await;
    assert_eq!(
        of_client.expect("read"),
        vec![second.clone(), first.clone()]
    );
    let of_api = store
        .role_assignments_of(tenant.id, api.service_principal_id)
        .await;
    assert_eq!(of_api.expect("read"), vec![reverse.clone()]);

    let revoke = Mutation::DeleteRoleAssignment {
        tenant_id: tenant.id,
        id: second.id,
    };
    apply(store, vec![revoke]).await;
    let to_api = store
        .role_assignments_to(tenant.id, api.service_principal_id)
        .await;
    assert_eq!(to_api.expect("read"), vec![first]);
}

pub async fn signing_key_round_trip(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let old = signing_key(&tenant, "k-old", 0);
    let mut new = signing_key(&tenant, "k-new", 100);
    new.alg = "RS256".to_owned();
    new.encrypted_private_key = (0..=255).collect();
    new.certificate = Some((0..=255).rev().collect());
    let mutations = [&old, &new, &signing_key(&other, "k-other", 50)]
        .map(|k| Mutation::InsertSigningKey(k.clone()));
    apply(store, mutations.to_vec()).await;

    let keys = store.signing_keys(tenant.id).await.expect("read");
    let mut expected = vec![new, old];
    for key in &mut expected {
        key.created_at = stored(key.created_at);
        key.activates_at = stored(key.activates_at);
    }
    assert_eq!(keys, expected, "newest first, every byte kept");

    // A key made before certificates gets one, once: the first stored wins.
    let set = |kid: &str, certificate: Vec<u8>| Mutation::SetSigningKeyCertificate {
        tenant_id: tenant.id,
        kid: kid.to_owned(),
        certificate,
    };
    apply(store, vec![set("k-old", vec![1, 2, 3])]).await;
    apply(store, vec![set("k-old", vec![9, 9]), set("k-new", vec![7])]).await;
    let keys = store.signing_keys(tenant.id).await.expect("read");
    assert_eq!(keys[1].certificate, Some(vec![1, 2, 3]), "first one kept");
    assert_eq!(
        keys[0].certificate, expected[0].certificate,
        "never replaced"
    );
    let missing = store.commit(&[set("k-other", vec![1])], &[]).await;
    assert!(
        matches!(missing, Err(clavis_store::StoreError::NotFound(_))),
        "another tenant's key: {missing:?}"
    );
}

pub async fn audit_round_trip(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let full = event(&tenant, "Add application", "target-1", at(1, 1_234_567));
    let mut bare = event(&tenant, "Add password credential", "target-2", at(2, 0));
    bare.actor_app_id = None;
    bare.actor_service_principal_id = None;
    bare.actor_key_id = None;
    bare.client_ip = None;
    bare.target_key_id = None;
    bare.client_request_id = None;
    bare.result = AuditResult::Failure;
    bare.result_reason = "Insufficient privileges".to_owned();
    store
        .commit(&[], std::slice::from_ref(&full))
        .await
        .expect("commit");
    store.record_audit(&[bare.clone()]).await.expect("record");

    let mut query = clavis_store::AuditQuery {
        tenant_id: tenant.id,
        since: None,
        until: None,
        activity: None,
        target_id: None,
        actor_app_id: None,
        before: None,
        limit: 10,
    };
    let mut expected_full = full;
    expected_full.at = at(1, 1_234_000);
    assert_eq!(
        store.audit_events(&query).await.expect("read"),
        vec![bare, expected_full]
    );
    query.limit = 0;
    assert!(store.audit_events(&query).await.expect("read").is_empty());
}

pub async fn server_secret_first_writer_wins(store: &dyn Store) {
    let first = store
        .server_secret_or_insert("hash-key", b"first")
        .await
        .expect("insert");
    assert_eq!(first, b"first");
    let second = store
        .server_secret_or_insert("hash-key", b"second")
        .await
        .expect("read");
    assert_eq!(second, b"first", "a later caller gets the winner");
    let other = store
        .server_secret_or_insert("other", &[0, 255])
        .await
        .expect("insert");
    assert_eq!(other, [0, 255]);
}
