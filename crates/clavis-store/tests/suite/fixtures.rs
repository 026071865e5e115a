//! Builders for the records the suite stores: fresh ids every call, fixed
//! times that carry nanoseconds (to exercise the microsecond rule).

use clavis_store::{
    AppRole, Application, AuditEvent, AuditResult, Mutation, PasswordCredential, RoleAssignment,
    SigningKeyRecord, Store, Tenant,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// 2024-01-01T00:00:00Z plus `secs` seconds and `nanos` nanoseconds.
pub fn at(secs: i64, nanos: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(1_704_067_200 + secs) * 1_000_000_000 + i128::from(nanos),
    )
    .expect("valid time")
}

/// `t` as the store gives it back: truncated to the microsecond.
pub fn stored(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.unix_timestamp_nanos();
    OffsetDateTime::from_unix_timestamp_nanos(nanos - nanos.rem_euclid(1_000)).expect("valid time")
}

pub fn tenant(name: &str) -> Tenant {
    Tenant {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        signing_alg: "ES256".to_owned(),
        max_secret_lifetime_secs: 63_072_000,
        default_secret_lifetime_secs: 15_552_000,
        max_secrets_per_application: 10,
        password_credentials_allowed: true,
        created_at: at(0, 123_456_789),
    }
}

pub fn role(value: &str) -> AppRole {
    AppRole {
        id: Uuid::new_v4(),
        value: value.to_owned(),
        display_name: format!("{value} (display)"),
        description: format!("Grants {value}"),
        allowed_member_types: vec!["Application".to_owned(), "User".to_owned()],
        is_enabled: true,
    }
}

/// A credential whose hash is `fill` repeated.
pub fn credential(fill: u8, start_secs: i64) -> PasswordCredential {
    PasswordCredential {
        key_id: Uuid::new_v4(),
        display_name: format!("secret {fill}"),
        hint: "q7Z".to_owned(),
        secret_hash: [fill; 32],
        start_at: at(start_secs, 999),
        end_at: at(start_secs + 86_400, 1_001),
        created_at: at(start_secs, 500_500),
        last_used_at: None,
    }
}

/// An application of `tenant` with no URIs, roles, owners or credentials.
pub fn app(tenant: &Tenant, name: &str) -> Application {
    Application {
        id: Uuid::new_v4(),
        tenant_id: tenant.id,
        app_id: Uuid::new_v4(),
        service_principal_id: Uuid::new_v4(),
        display_name: name.to_owned(),
        identifier_uris: Vec::new(),
        app_roles: Vec::new(),
        owners: Vec::new(),
        password_credentials: Vec::new(),
        credential_policy: Default::default(),
        builtin: false,
        created_at: at(10, 7),
    }
}

pub fn grant(principal: &Application, resource: &Application, role: Uuid) -> RoleAssignment {
    RoleAssignment {
        id: Uuid::new_v4(),
        tenant_id: resource.tenant_id,
        principal_id: principal.service_principal_id,
        resource_id: resource.service_principal_id,
        app_role_id: role,
        created_at: at(20, 42_000),
    }
}

pub fn signing_key(tenant: &Tenant, kid: &str, created_secs: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        tenant_id: tenant.id,
        alg: "ES256".to_owned(),
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        encrypted_private_key: vec![0x5e, 0xa1, 0xed, 0x00, 0xff],
        kek_id: "file:v1".to_owned(),
        created_at: at(created_secs, 1),
        activates_at: at(created_secs, 1),
        revoked_at: None,
        certificate: None,
    }
}

/// An audit event with every optional field set.
pub fn event(tenant: &Tenant, activity: &str, target: &str, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        id: Uuid::new_v4(),
        tenant_id: tenant.id,
        at,
        actor_app_id: Some(Uuid::new_v4()),
        actor_service_principal_id: Some(Uuid::new_v4()),
        actor_display_name: "deployer".to_owned(),
        actor_key_id: Some(Uuid::new_v4()),
        client_ip: Some("192.0.2.7".to_owned()),
        activity: activity.to_owned(),
        category: "ApplicationManagement".to_owned(),
        operation_type: "Add".to_owned(),
        target_type: "Application".to_owned(),
        target_id: target.to_owned(),
        target_display_name: "orders".to_owned(),
        target_key_id: Some(Uuid::new_v4()),
        result: AuditResult::Success,
        result_reason: String::new(),
        correlation_id: Uuid::new_v4(),
        client_request_id: Some("msal-7f3c".to_owned()),
    }
}

/// Commit `mutations` with no audit, panicking on failure.
pub async fn apply(store: &dyn Store, mutations: Vec<Mutation>) {
    store.commit(&mutations, &[]).await.expect("commit");
}

/// A stored tenant named `name`.
pub async fn given_tenant(store: &dyn Store, name: &str) -> Tenant {
    let tenant = tenant(name);
    apply(store, vec![Mutation::InsertTenant(tenant.clone())]).await;
    tenant
}

/// A stored application of `tenant` called `name`.
pub async fn given_app(store: &dyn Store, tenant: &Tenant, name: &str) -> Application {
    let app = app(tenant, name);
    apply(store, vec![Mutation::InsertApplication(app.clone())]).await;
    app
}

/// `app` as the store gives it back: times truncated, credentials ordered.
pub fn as_stored(app: &Application) -> Application {
    let mut app = app.clone();
    app.created_at = stored(app.created_at);
    for c in &mut app.password_credentials {
        c.start_at = stored(c.start_at);
        c.end_at = stored(c.end_at);
        c.created_at = stored(c.created_at);
        c.last_used_at = c.last_used_at.map(stored);
    }
    app.password_credentials
        .sort_by_key(|c| (c.start_at, c.key_id));
    app
}
