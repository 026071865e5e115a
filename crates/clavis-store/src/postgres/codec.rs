//! How model values become PostgreSQL values and back: UUIDs as `uuid`,
//! timestamps as `timestamptz`, app roles as a `jsonb` array, plus the raw
//! row types of every table.
//!
//! The workspace builds sqlx without its `uuid`, `time` and `json` features,
//! so the three wire types are small newtypes here ([`PgUuid`], [`PgTime`],
//! [`PgJson`]) speaking PostgreSQL's binary format, with the built-in type
//! OIDs (fixed by PostgreSQL, so no lookup per connection).
//!
//! Timestamps are truncated (floored) to whole microseconds on write, as in
//! SQLite, so a value carrying nanoseconds reads back as the microsecond it
//! fell in, in UTC. Anything undecodable in a row becomes
//! [`StoreError::Internal`](crate::StoreError::Internal) whose text names
//! the column, never its value.

use sqlx::decode::Decode;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{FromRow, Postgres, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::corrupt;
use crate::model::PasswordCredential;
use crate::model::{AppRole, Application, AuditEvent, AuditResult, CredentialPolicy};
use crate::model::{RoleAssignment, SigningKeyRecord, Tenant};
use crate::StoreResult;

// Built-in type OIDs (src/include/catalog/pg_type.dat); they never change.
const UUID_OID: Oid = Oid(2950);
const UUID_ARRAY_OID: Oid = Oid(2951);
const TIMESTAMPTZ_OID: Oid = Oid(1184);
const JSONB_OID: Oid = Oid(3802);

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A `uuid` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgUuid(pub(crate) Uuid);

/// A UUID as bound.
pub(crate) fn id(value: Uuid) -> PgUuid {
    PgUuid(value)
}

/// An optional UUID as bound.
pub(crate) fn opt_id(value: Option<Uuid>) -> Option<PgUuid> {
    value.map(PgUuid)
}

impl Type<Postgres> for PgUuid {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(UUID_OID)
    }
}

impl PgHasArrayType for PgUuid {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(UUID_ARRAY_OID)
    }
}

impl Encode<'_, Postgres> for PgUuid {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        16
    }
}

impl Decode<'_, Postgres> for PgUuid {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        let uuid = match value.format() {
            PgValueFormat::Binary => Uuid::from_slice(value.as_bytes()?)?,
            PgValueFormat::Text => value.as_str()?.parse()?,
        };
        Ok(PgUuid(uuid))
    }
}

/// A `timestamptz` value: microseconds since 2000-01-01T00:00:00Z, the way
/// PostgreSQL keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgTime(i64);

/// A timestamp as bound: nanoseconds floored away.
pub(crate) fn time(at: OffsetDateTime) -> StoreResult<PgTime> {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000))
        .ok()
        .and_then(|unix| unix.checked_sub(PG_EPOCH_UNIX_MICROS))
        .map(PgTime)
        .ok_or_else(|| corrupt("timestamp out of the storable range"))
}

impl PgTime {
    /// From unix microseconds (`None` out of range).
    pub(crate) fn from_unix_micros(micros: i64) -> Option<Self> {
        micros.checked_sub(PG_EPOCH_UNIX_MICROS).map(PgTime)
    }

    /// As unix microseconds (`None` out of range).
    pub(crate) fn unix_micros(self) -> Option<i64> {
        self.0.checked_add(PG_EPOCH_UNIX_MICROS)
    }
}

pub(crate) fn parse_time(column: &'static str, at: PgTime) -> StoreResult<OffsetDateTime> {
    at.0.checked_add(PG_EPOCH_UNIX_MICROS)
        .and_then(|unix| OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix) * 1_000).ok())
        .ok_or_else(|| corrupt(format!("column {column} holds no valid timestamp")))
}

impl Type<Postgres> for PgTime {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ_OID)
    }
}

impl Encode<'_, Postgres> for PgTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(&self.0.to_be_bytes());
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        8
    }
}

impl Decode<'_, Postgres> for PgTime {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes = <[u8; 8]>::try_from(value.as_bytes()?)?;
                Ok(PgTime(i64::from_be_bytes(bytes)))
            }
            // Only the simple-query protocol returns text, and this backend
            // never reads rows through it.
            PgValueFormat::Text => Err("timestamptz in text format is not supported".into()),
        }
    }
}

/// A `jsonb` value, as its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PgJson(String);

impl PgJson {
    /// JSON text as bound (PostgreSQL checks that it is JSON).
    pub(crate) fn new(text: String) -> Self {
        PgJson(text)
    }

    /// The JSON text.
    pub(crate) fn into_text(self) -> String {
        self.0
    }
}

/// `jsonb`'s binary format: a version byte, then the JSON text.
const JSONB_VERSION: u8 = 1;

impl Type<Postgres> for PgJson {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(JSONB_OID)
    }
}

impl Encode<'_, Postgres> for PgJson {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.push(JSONB_VERSION);
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn size_hint(&self) -> usize {
        1 + self.0.len()
    }
}

impl Decode<'_, Postgres> for PgJson {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        let text = match value.format() {
            PgValueFormat::Binary => match value.as_bytes()?.split_first() {
                Some((&JSONB_VERSION, text)) => std::str::from_utf8(text)?,
                _ => return Err("unknown jsonb format version".into()),
            },
            PgValueFormat::Text => value.as_str()?,
        };
        Ok(PgJson(text.to_owned()))
    }
}

/// App roles as stored: a JSON array in the caller's order.
pub(crate) fn app_roles_json(roles: &[AppRole]) -> StoreResult<PgJson> {
    serde_json::to_string(roles)
        .map(PgJson)
        .map_err(|_| corrupt("app roles could not be encoded"))
}

/// A list position as stored.
pub(crate) fn position(index: usize) -> StoreResult<i32> {
    i32::try_from(index).map_err(|_| corrupt("list too long to store"))
}

#[derive(FromRow)]
pub(crate) struct TenantRow {
    id: PgUuid,
    name: String,
    signing_alg: String,
    max_secret_lifetime_secs: i64,
    default_secret_lifetime_secs: i64,
    max_secrets_per_application: i64,
    password_credentials_allowed: bool,
    created_at: PgTime,
}

impl TenantRow {
    pub(crate) fn into_model(self) -> StoreResult<Tenant> {
        Ok(Tenant {
            id: self.id.0,
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

/// One row of an application read: the application with its identifier
/// URIs and owners (as arrays, in their positions' order) and at most one
/// of its password credentials (all `None` when it has none). An
/// application with `n > 0` credentials comes as `n` consecutive rows.
/// No `Debug`: it holds a secret hash.
#[derive(FromRow)]
pub(crate) struct ApplicationRow {
    pub(crate) id: PgUuid,
    tenant_id: PgUuid,
    app_id: PgUuid,
    service_principal_id: PgUuid,
    display_name: String,
    app_roles: PgJson,
    builtin: bool,
    created_at: PgTime,
    policy_max_lifetime_secs: Option<i64>,
    policy_default_lifetime_secs: Option<i64>,
    policy_max_secrets: Option<i64>,
    policy_password_credentials_allowed: Option<bool>,
    identifier_uris: Vec<String>,
    owners: Vec<PgUuid>,
    key_id: Option<PgUuid>,
    credential_display_name: Option<String>,
    hint: Option<String>,
    secret_hash: Option<Vec<u8>>,
    start_at: Option<PgTime>,
    end_at: Option<PgTime>,
    credential_created_at: Option<PgTime>,
    credential_last_used_at: Option<PgTime>,
}

impl ApplicationRow {
    /// The application with its URIs and owners, and no credentials.
    pub(crate) fn application(&mut self) -> StoreResult<Application> {
        let app_roles = serde_json::from_str(&self.app_roles.0)
            .map_err(|_| corrupt("column applications.app_roles holds no app role list"))?;
        Ok(Application {
            id: self.id.0,
            tenant_id: self.tenant_id.0,
            app_id: self.app_id.0,
            service_principal_id: self.service_principal_id.0,
            display_name: std::mem::take(&mut self.display_name),
            identifier_uris: std::mem::take(&mut self.identifier_uris),
            app_roles,
            owners: self.owners.iter().map(|owner| owner.0).collect(),
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

    /// The row's password credential, if it carries one.
    pub(crate) fn credential(self) -> StoreResult<Option<PasswordCredential>> {
        let Some(key_id) = self.key_id else {
            return Ok(None);
        };
        let missing = |column| corrupt(format!("column password_credentials.{column} is null"));
        let secret_hash = self.secret_hash.ok_or_else(|| missing("secret_hash"))?;
        let secret_hash = <[u8; 32]>::try_from(secret_hash.as_slice())
            .map_err(|_| corrupt("column password_credentials.secret_hash is not 32 bytes"))?;
        let time = |column, value: Option<PgTime>| {
            parse_time(column, value.ok_or_else(|| missing(column))?)
        };
        Ok(Some(PasswordCredential {
            key_id: key_id.0,
            display_name: self
                .credential_display_name
                .ok_or_else(|| missing("display_name"))?,
            hint: self.hint.ok_or_else(|| missing("hint"))?,
            secret_hash,
            start_at: time("password_credentials.start_at", self.start_at)?,
            end_at: time("password_credentials.end_at", self.end_at)?,
            created_at: time(
                "password_credentials.created_at",
                self.credential_created_at,
            )?,
            last_used_at: self
                .credential_last_used_at
                .map(|t| parse_time("password_credentials.last_used_at", t))
                .transpose()?,
        }))
    }
}

#[derive(FromRow)]
pub(crate) struct RoleAssignmentRow {
    id: PgUuid,
    tenant_id: PgUuid,
    principal_id: PgUuid,
    resource_id: PgUuid,
    app_role_id: PgUuid,
    created_at: PgTime,
}

impl RoleAssignmentRow {
    pub(crate) fn into_model(self) -> StoreResult<RoleAssignment> {
        Ok(RoleAssignment {
            id: self.id.0,
            tenant_id: self.tenant_id.0,
            principal_id: self.principal_id.0,
            resource_id: self.resource_id.0,
            app_role_id: self.app_role_id.0,
            created_at: parse_time("app_role_assignments.created_at", self.created_at)?,
        })
    }
}

/// A `signing_keys` row. No `Debug`: it holds the encrypted private key.
#[derive(FromRow)]
pub(crate) struct SigningKeyRow {
    kid: String,
    tenant_id: PgUuid,
    alg: String,
    public_jwk: String,
    encrypted_private_key: Vec<u8>,
    kek_id: String,
    created_at: PgTime,
    activates_at: PgTime,
    revoked_at: Option<PgTime>,
    certificate: Option<Vec<u8>>,
}

impl SigningKeyRow {
    pub(crate) fn into_model(self) -> StoreResult<SigningKeyRecord> {
        Ok(SigningKeyRecord {
            kid: self.kid,
            tenant_id: self.tenant_id.0,
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
    id: PgUuid,
    tenant_id: PgUuid,
    at: PgTime,
    actor_app_id: Option<PgUuid>,
    actor_service_principal_id: Option<PgUuid>,
    actor_display_name: String,
    actor_key_id: Option<PgUuid>,
    client_ip: Option<String>,
    activity: String,
    category: String,
    operation_type: String,
    target_type: String,
    target_id: String,
    target_display_name: String,
    target_key_id: Option<PgUuid>,
    result: String,
    result_reason: String,
    correlation_id: PgUuid,
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
            id: self.id.0,
            tenant_id: self.tenant_id.0,
            at: parse_time("audit_events.at", self.at)?,
            actor_app_id: self.actor_app_id.map(|v| v.0),
            actor_service_principal_id: self.actor_service_principal_id.map(|v| v.0),
            actor_display_name: self.actor_display_name,
            actor_key_id: self.actor_key_id.map(|v| v.0),
            client_ip: self.client_ip,
            activity: self.activity,
            category: self.category,
            operation_type: self.operation_type,
            target_type: self.target_type,
            target_id: self.target_id,
            target_display_name: self.target_display_name,
            target_key_id: self.target_key_id.map(|v| v.0),
            result,
            result_reason: self.result_reason,
            correlation_id: self.correlation_id.0,
            client_request_id: self.client_request_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_floor_nanoseconds_and_round_trip() {
        let at = datetime!(2024-05-06 07:08:09.123_456_789 UTC);
        let stored = time(at).expect("in range");
        assert_eq!(stored.0.rem_euclid(1_000_000), 123_456);
        let back = parse_time("t", stored).expect("valid");
        assert_eq!(back, datetime!(2024-05-06 07:08:09.123_456 UTC));
    }

    #[test]
    fn times_floor_before_the_epochs() {
        let at = datetime!(1969-12-31 23:59:59.999_999_500 UTC);
        let back = parse_time("t", time(at).expect("in range")).expect("valid");
        assert_eq!(back, datetime!(1969-12-31 23:59:59.999_999 UTC));
        assert_eq!(
            time(datetime!(2000-01-01 00:00:00 UTC)).expect("in range"),
            PgTime(0)
        );
        assert_eq!(
            time(datetime!(1999-12-31 23:59:59.999_999_999 UTC)).expect("in range"),
            PgTime(-1)
        );
    }

    #[test]
    fn infinite_timestamps_are_corrupt() {
        for raw in [i64::MAX, i64::MIN] {
            assert!(parse_time("t", PgTime(raw)).is_err());
        }
    }
}
