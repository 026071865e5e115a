//! Token revocation: one token by its `jti` (RFC 7009) and every token of an
//! application up to a time; both scoped to a tenant and gone with it.

use clavis_store::{Mutation, Store, StoreError};
use uuid::Uuid;

use super::fixtures::{apply, at, given_app, given_tenant, stored};

pub async fn tokens_are_revoked_one_by_one_and_per_application(store: &dyn Store) {
    let tenant = given_tenant(store, "default").await;
    let other = given_tenant(store, "other").await;
    let app = given_app(store, &tenant, "orders").await;
    let jti = Uuid::new_v4();

    assert!(!store.token_revoked(tenant.id, jti).await.expect("read"));
    let revoke = |tenant_id| Mutation::RevokeToken {
        tenant_id,
        jti,
        expires_at: at(3600, 0),
    };
    apply(store, vec![revoke(tenant.id)]).await;
    apply(store, vec![revoke(tenant.id)]).await; // twice is fine
    assert!(store.token_revoked(tenant.id, jti).await.expect("read"));
    assert!(
        !store.token_revoked(other.id, jti).await.expect("read"),
        "per tenant"
    );
    let gone = store
        .commit(
            &[Mutation::RevokeToken {
                tenant_id: Uuid::new_v4(),
                jti,
                expires_at: at(3600, 0),
            }],
            &[],
        )
        .await;
    assert!(matches!(gone, Err(StoreError::NotFound(_))), "{gone:?}");

    assert_eq!(
        store
            .tokens_revoked_until(tenant.id, app.id)
            .await
            .expect("read"),
        None
    );
    let cut = |until| Mutation::RevokeTokensOf {
        tenant_id: tenant.id,
        application_id: app.id,
        until,
    };
    apply(store, vec![cut(at(100, 123_456_789))]).await;
    assert_eq!(
        store
            .tokens_revoked_until(tenant.id, app.id)
            .await
            .expect("read"),
        Some(stored(at(100, 123_456_789)))
    );
    // An earlier cutoff never undoes a later one.
    apply(store, vec![cut(at(50, 0))]).await;
    assert_eq!(
        store
            .tokens_revoked_until(tenant.id, app.id)
            .await
            .expect("read"),
        Some(stored(at(100, 123_456_789)))
    );
    apply(store, vec![cut(at(200, 0))]).await;
    assert_eq!(
        store
            .tokens_revoked_until(tenant.id, app.id)
            .await
            .expect("read"),
        Some(at(200, 0))
    );
    assert_eq!(
        store
            .tokens_revoked_until(other.id, app.id)
            .await
            .expect("read"),
        None,
        "per tenant"
    );
    let missing = store
        .commit(
            &[Mutation::RevokeTokensOf {
                tenant_id: other.id,
                application_id: app.id,
                until: at(1, 0),
            }],
            &[],
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    // The cutoff goes with the application.
    apply(
        store,
        vec![Mutation::DeleteApplication {
            tenant_id: tenant.id,
            id: app.id,
        }],
    )
    .await;
    assert_eq!(
        store
            .tokens_revoked_until(tenant.id, app.id)
            .await
            .expect("read"),
        None
    );
}
