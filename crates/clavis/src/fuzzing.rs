//! Entry points for the cargo-fuzz targets in `fuzz/` (docs/security.md,
//! "Fuzzing"): the outside-facing parsers that are private to their modules,
//! reached here without copying them. Not an API: hidden from the docs and
//! free to change with the targets.

use clavis_store::AppRole;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::graph::error::GraphError;
use crate::graph::shapes::AppRoleDto;
use crate::oauth::OAuthError;
use crate::secret::ClientSecret;

/// Client id and secret from an `Authorization: Basic ...` header value.
pub fn basic_credentials(header: &[u8]) -> Result<(String, ClientSecret), OAuthError> {
    crate::oauth::request::parse_basic(header)
}

/// The unverified `tid` of a JWS payload, as the management API reads it to
/// pick the tenant's keys.
pub fn unverified_tid(payload: &str) -> Option<Uuid> {
    crate::graph::caller::unverified_tid(payload)
}

/// `startDateTime` / `endDateTime` of an `addPassword` body.
pub fn request_time(
    field: &str,
    value: Option<&str>,
) -> Result<Option<OffsetDateTime>, GraphError> {
    crate::graph::applications::parse_time(field, value)
}

/// The app roles of a create or update body, as the store keeps them.
pub fn app_roles(dtos: Vec<AppRoleDto>) -> Vec<AppRole> {
    crate::graph::applications::to_roles(dtos)
}

/// A policy's lifetime in days, range-checked.
pub fn policy_days(days: i64) -> Result<i64, GraphError> {
    crate::graph::policies::days_in_range("maxSecretLifetimeDays", days)
}

/// A policy's secrets-per-application limit, range-checked.
pub fn policy_secrets(most: i64) -> Result<i64, GraphError> {
    crate::graph::policies::secrets_in_range(most)
}

/// The `$skiptoken` of `auditLogs/directoryAudits` and `auditLogs/signIns`.
pub fn audit_skiptoken(token: &str) -> Result<(OffsetDateTime, Uuid), GraphError> {
    crate::graph::audit_logs::parse_skiptoken(token)
}

/// The `$skiptoken` of a webhook's deliveries.
pub fn deliveries_skiptoken(token: &str) -> Result<(OffsetDateTime, Uuid), GraphError> {
    crate::graph::webhooks::skiptoken(token)
}

/// The `identifierUris/any(x:x eq '…')` filter of the application list.
pub fn uri_clause(filter: &str) -> Option<String> {
    crate::graph::listing::uri_clause(filter)
}

/// A well-formed secret around 43 chosen characters (prefix, `random`,
/// checksum), as `ClientSecret::generate` finishes its random ones.
pub fn secret_around(random: &str) -> String {
    let body = format!("{}{random}", crate::secret::SECRET_PREFIX);
    let sum = crate::secret::format::checksum(&body);
    body + &sum
}
