//! How model values become SQLite values and back: UUIDs as hyphenated
//! lowercase TEXT, timestamps as INTEGER unix microseconds (UTC), app roles
//! as a JSON array, plus the raw row types of every table.
//!
//! Timestamps are truncated (floored) to whole microseconds on write, so a
//! value carrying nanoseconds reads back as the microsecond it fell in, in
//! UTC. Anything undecodable in a row becomes [`StoreError::Internal`] whose
//! text names the column, never its value.

use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::corrupt;
use crate::model::PasswordCredential;
use crate::model::{AppRole, Application, AuditEvent, AuditResult, CredentialPolicy};
use crate::model::{RoleAssignment, SigningKeyRecord, Tenant};
use crate::StoreResult;

/// A UUID as stored: hyphenated lowercase.
pub(crate) fn id(value: Uuid) -> String {
    value.hyphenated().to_string()
}

/// An optional UUID as stored.
pub(crate) fn opt_id(value: Option<Uuid>) -> Option<String> {
    value.map(id)
}

/// A timestamp as stored: unix microseconds, nanoseconds floored away.
pub(crate) fn micros(at: OffsetDateTime) -> StoreResult<i64> {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000))
        .map_err(|_| corrupt("timestamp out of the storable range"))
}

fn parse_id(column: &'static str, text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| corrupt(format!("column {column} holds no UUID")))
}

fn parse_opt_id(column: &'static str, text: Option<String>) -> StoreResult<Option<Uuid>> {
    text.map(|t| parse_id(column, &t)).transpose()
}

fn parse_time(column: &'static str, micros: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| corrupt(format!("column {column} holds no valid timestamp")))
}

/// App roles as stored: a JSON array in the caller's order.
pub(crate) fn app_roles_json(roles: &[AppRole]) -> StoreResult<String> {
    serde_json::to_string(roles).map_err(|_| corrupt("app roles could not be encoded"))
}

#[derive(FromRow)]
pub(crate) struct TenantRow {
    id: String,
    name: String,
    signing_alg: String,
    max_secret_lifetime_secs: i64,
    default_secret_lifetime_secs: i64,
    max_secrets_per_application: i64,
    password_credentials_allowed: bool,
    created_at: i64,
}

impl TenantRow {
    pub(crate) fn into_model(self) -> StoreResult<Tenant> {
        Ok(Tenant {
            id: parse_id("tenants.id", &self.id)?,
            name: self.name,
            signing_alg: self.signing_alg,
            max_secret_lifetime_secs: self.max_secret_lifetime_secs,
            default_secret_lifetime_secs: self.default_secret_lifetime_secs,
            max_secrets_per_application: self.max_secrets_per_application,
            password_credentials_allowed: self.password_credentials_allowed,
            created_at: parse_time("tenants.created_at", self.created_at)?,
        })
    }
}

/// An `applications` row; its lists come from the child tables.
#[derive(FromRow)]
pub(crate) struct ApplicationRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) app_id: String,
    pub(crate) service_principal_id: String,
    pub(crate) display_name: String,
    pub(crate) app_roles: String,
    pub(crate) builtin: bool,
    pub(crate) created_at: i64,
    pub(crate) policy_max_lifetime_secs: Option<i64>,
    pub(crate) policy_default_lifetime_secs: Option<i64>,
    pub(crate) policy_max_secrets: Option<i64>,
    pub(crate) policy_password_credentials_allowed: Option<bool>,
}

impl ApplicationRow {
    /// The application without owners, URIs or credentials (filled in later).
    pub(crate) fn into_model(self) -> StoreResult<Application> {
        let app_roles = serde_json::from_str(&self.app_roles)
            .map_err(|_| corrupt("column applications.app_roles holds no app role list"))?;
        Ok(Application {
            id: parse_id("applications.id", &self.id)?,
            tenant_id: parse_id("applications.tenant_id", &self.tenant_id)?,
            app_id: parse_id("applications.app_id", &self.app_id)?,
            service_principal_id: parse_id(
                "applications.service_principal_id",
                &self.service_principal_id,
            )?,
            display_name: self.display_name,
            identifier_uris: Vec::new(),
            app_roles,
            owners: Vec::new(),
            password_credentials: Vec::new(),
            credential_policy: CredentialPolicy {
                max_lifetime_secs: self.policy_max_lifetime_secs,
                default_lifetime_secs: self.policy_default_lifetime_secs,
                max_secrets: self.policy_max_secrets,
                password_credentials_allowed: self.policy_password_credentials_allowed,
            },
            builtin: self.builtin,
            created_at: parse_time("applications.created_at", self.created_at)?,
        })
    }
}

/// An `application_owners` row.
#[derive(FromRow)]
pub(crate) struct OwnerRow {
    pub(crate) application_id: String,
    pub(crate) owner_id: String,
}

impl OwnerRow {
    pub(crate) fn owner(&self) -> StoreResult<Uuid> {
        parse_id("application_owners.owner_id", &self.owner_id)
    }
}

/// An `application_identifier_uris` row.
#[derive(FromRow)]
pub(crate) struct UriRow {
    pub(crate) application_id: String,
    pub(crate) uri: String,
}

/// A `password_credentials` row. No `Debug`: it holds the secret hash.
#[derive(FromRow)]
pub(crate) struct CredentialRow {
    pub(crate) application_id: String,
    key_id: String,
    display_name: String,
    hint: String,
    secret_hash: Vec<u8>,
    start_at: i64,
    end_at: i64,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl CredentialRow {
    pub(crate) fn into_model(self) -> StoreResult<PasswordCredential> {
        let secret_hash = <[u8; 32]>::try_from(self.secret_hash.as_slice())
            .map_err(|_| corrupt("column password_credentials.secret_hash is not 32 bytes"))?;
        Ok(PasswordCredential {
            key_id: parse_id("password_credentials.key_id", &self.key_id)?,
            display_name: self.display_name,
            hint: self.hint,
            secret_hash,
            start_at: parse_time("password_credentials.start_at", self.start_at)?,
            end_at: parse_time("password_credentials.end_at", self.end_at)?,
            created_at: parse_time("password_credentials.created_at", self.created_at)?,
            last_used_at: self
                .last_used_at
                .map(|t| parse_time("password_credentials.last_used_at", t))
                .transpose()?,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct RoleAssignmentRow {
    id: String,
    tenant_id: String,
    principal_id: String,
    resource_id: String,
    app_role_id: String,
    created_at: i64,
}

impl RoleAssignmentRow {
    pub(crate) fn into_model(self) -> StoreResult<RoleAssignment> {
        Ok(RoleAssignment {
            id: parse_id("app_role_assignments.id", &self.id)?,
            tenant_id: parse_id("app_role_assignments.tenant_id", &self.tenant_id)?,
            principal_id: parse_id("app_role_assignments.principal_id", &self.principal_id)?,
            resource_id: parse_id("app_role_assignments.resource_id", &self.resource_id)?,
            app_role_id: parse_id("app_role_assignments.app_role_id", &self.app_role_id)?,
            created_at: parse_time("app_role_assignments.created_at", self.created_at)?,
        })
    }
}

/// A `signing_keys` row. No `Debug`: it holds the encrypted private key.
#[derive(FromRow)]
pub(crate) struct SigningKeyRow {
    kid: String,
    tenant_id: String,
    alg: String,
    public_jwk: String,
    encrypted_private_key: Vec<u8>,
    kek_id: String,
    created_at: i64,
    activates_at: i64,
    revoked_at: Option<i64>,
    certificate: Option<Vec<u8>>,
}

impl SigningKeyRow {
    pub(crate) fn into_model(self) -> StoreResult<SigningKeyRecord> {
        Ok(SigningKeyRecord {
            kid: self.kid,
            tenant_id: parse_id("signing_keys.tenant_id", &self.tenant_id)?,
            alg: self.alg,
            public_jwk: self.public_jwk,
            encrypted_private_key: self.encrypted_private_key,
            kek_id: self.kek_id,
            created_at: parse_time("signing_keys.created_at", self.created_at)?,
            activates_at: parse_time("signing_keys.activates_at", self.activates_at)?,
            revoked_at: self
                .revoked_at
                .map(|at| parse_time("signing_keys.revoked_at", at))
                .transpose()?,
            certificate: self.certificate,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct AuditRow {
    id: String,
    tenant_id: String,
    at: i64,
    actor_app_id: Option<String>,
    actor_service_principal_id: Option<String>,
    actor_display_name: String,
    actor_key_id: Option<String>,
    client_ip: Option<String>,
    activity: String,
    category: String,
    operation_type: String,
    target_type: String,
    target_id: String,
    target_display_name: String,
    target_key_id: Option<String>,
    result: String,
    result_reason: String,
    correlation_id: String,
    client_request_id: Option<String>,
}

impl AuditRow {
    pub(crate) fn into_model(self) -> StoreResult<AuditEvent> {
        let result = match self.result.as_str() {
            "success" => AuditResult::Success,
            "failure" => AuditResult::Failure,
            _ => return Err(corrupt("column audit_events.result holds no known result")),
        };
        Ok(AuditEvent {
            id: parse_id("audit_events.id", &self.id)?,
            tenant_id: parse_id("audit_events.tenant_id", &self.tenant_id)?,
            at: parse_time("audit_events.at", self.at)?,
            actor_app_id: parse_opt_id("audit_events.actor_app_id", self.actor_app_id)?,
            actor_service_principal_id: parse_opt_id(
                "audit_events.actor_service_principal_id",
                self.actor_service_principal_id,
            )?,
            actor_display_name: self.actor_display_name,
            actor_key_id: parse_opt_id("audit_events.actor_key_id", self.actor_key_id)?,
            client_ip: self.client_ip,
            activity: self.activity,
            category: self.category,
            operation_type: self.operation_type,
            target_type: self.target_type,
            target_id: self.target_id,
            target_display_name: self.target_display_name,
            target_key_id: parse_opt_id("audit_events.target_key_id", self.target_key_id)?,
            result,
            result_reason: self.result_reason,
            correlation_id: parse_id("audit_events.correlation_id", &self.correlation_id)?,
            client_request_id: self.client_request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn micros_floor_nanoseconds_and_round_trip() {
        let at = datetime!(2024-05-06 07:08:09.123_456_789 UTC);
        let stored = micros(at).expect("in range");
        assert_eq!(stored % 1_000_000, 123_456);
        let back = parse_time("t", stored).expect("valid");
        assert_eq!(back, datetime!(2024-05-06 07:08:09.123_456 UTC));
    }

    #[test]
    fn micros_floor_before_the_epoch() {
        let at = datetime!(1969-12-31 23:59:59.999_999_500 UTC);
        let stored = micros(at).expect("in range");
        assert_eq!(stored, -1);
        let back = parse_time("t", stored).expect("valid");
        assert_eq!(back, datetime!(1969-12-31 23:59:59.999_999 UTC));
    }

    #[test]
    fn uuid_text_order_is_uuid_order() {
        let a = Uuid::from_u128(0x0fff_ffff_ffff_ffff_ffff_ffff_ffff_ffff);
        let b = Uuid::from_u128(0xa000_0000_0000_0000_0000_0000_0000_0000);
        assert!(a < b);
        assert!(id(a) < id(b));
    }
}
