//! The records Clavis stores. Field names follow Microsoft Graph where Graph
//! has the concept; nothing here holds a secret in the clear.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A directory: every application, key and audit event belongs to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant's GUID (`tid` in tokens).
    pub id: Uuid,
    /// Unique short name usable in URLs instead of the GUID (`default`).
    pub name: String,
    /// JWS algorithm of new signing keys: `ES256`, `RS256` or `EdDSA`.
    pub signing_alg: String,
    /// Longest lifetime a client secret may be given, in seconds.
    pub max_secret_lifetime_secs: i64,
    /// Lifetime a client secret gets when the request names none, in seconds.
    pub default_secret_lifetime_secs: i64,
    /// The most client secrets one application may hold at once.
    pub max_secrets_per_application: i64,
    /// Whether applications may be given client secrets at all.
    pub password_credentials_allowed: bool,
    pub created_at: OffsetDateTime,
}

/// One application's exceptions to its tenant's rules for client secrets
/// (Entra's app management policy): each rule that is `None` is the tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CredentialPolicy {
    /// Longest lifetime a client secret may be given, in seconds.
    pub max_lifetime_secs: Option<i64>,
    /// Lifetime a client secret gets when the request names none, in seconds.
    pub default_lifetime_secs: Option<i64>,
    /// The most client secrets the application may hold at once.
    pub max_secrets: Option<i64>,
    /// Whether the application may be given client secrets at all.
    pub password_credentials_allowed: Option<bool>,
}

/// An app role an application defines (Graph `appRole`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    pub id: Uuid,
    /// The string that appears in the `roles` claim.
    pub value: String,
    pub display_name: String,
    pub description: String,
    /// `Application` and/or `User`.
    pub allowed_member_types: Vec<String>,
    pub is_enabled: bool,
}

/// A client secret as stored: its keyed hash, never its value.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordCredential {
    pub key_id: Uuid,
    pub display_name: String,
    /// First three characters after the secret's prefix.
    pub hint: String,
    /// HMAC-SHA256 of the secret under the server's hash key.
    pub secret_hash: [u8; 32],
    pub start_at: OffsetDateTime,
    pub end_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    /// When a token was last issued with it (kept by the sign-in log, so up
    /// to one batch behind); `None` if never.
    pub last_used_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for PasswordCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCredential")
            .field("key_id", &self.key_id)
            .field("display_name", &self.display_name)
            .field("hint", &self.hint)
            .field("secret_hash", &"[redacted]")
            .field("start_at", &self.start_at)
            .field("end_at", &self.end_at)
            .field("last_used_at", &self.last_used_at)
            .finish()
    }
}

/// An application registration together with its service principal (one
/// per application, created and deleted with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// Object id (Graph `id`).
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Client id (Graph `appId`).
    pub app_id: Uuid,
    /// Object id of the application's service principal.
    pub service_principal_id: Uuid,
    pub display_name: String,
    /// Unique within the tenant, e.g. `api://orders`.
    pub identifier_uris: Vec<String>,
    pub app_roles: Vec<AppRole>,
    /// Service principal ids of the owners (`Application.ReadWrite.OwnedBy`).
    pub owners: Vec<Uuid>,
    pub password_credentials: Vec<PasswordCredential>,
    /// Where the application's rules for client secrets differ from its tenant's.
    pub credential_policy: CredentialPolicy,
    /// Built-in applications (the `api://clavis` management API) cannot be
    /// changed or deleted through the API.
    pub builtin: bool,
    pub created_at: OffsetDateTime,
}

/// Which applications a list call returns.
#[derive(Debug, Clone, Default)]
pub struct ApplicationFilter {
    /// Only this client id.
    pub app_id: Option<Uuid>,
    /// Only this exact display name.
    pub display_name: Option<String>,
    /// Only applications owned by this service principal.
    pub owner: Option<Uuid>,
    /// Keyset pagination: object ids strictly greater than this.
    pub after: Option<Uuid>,
    /// Page size (the caller caps it).
    pub limit: u32,
}

/// An app role granted to a client's service principal on a resource's
/// service principal (Graph `appRoleAssignment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Service principal that holds the role (the client).
    pub principal_id: Uuid,
    /// Service principal that defines the role (the resource).
    pub resource_id: Uuid,
    pub app_role_id: Uuid,
    pub created_at: OffsetDateTime,
}

/// A tenant's token-signing key. The private key is AEAD ciphertext under
/// the key-encryption key named by `kek_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id, in every token header and JWKS entry.
    pub kid: String,
    pub tenant_id: Uuid,
    /// `ES256`, `RS256` or `EdDSA`.
    pub alg: String,
    /// The public JWK (JSON), as published.
    pub public_jwk: String,
    /// Encrypted private key (nonce || ciphertext || tag).
    pub encrypted_private_key: Vec<u8>,
    /// Which key-encryption key sealed it.
    pub kek_id: String,
    pub created_at: OffsetDateTime,
    /// When it starts signing; until then it is only published (so clients'
    /// JWKS caches know it before its first token). Keys made at once (the
    /// first key, a new algorithm, an emergency replacement) activate when made.
    pub activates_at: OffsetDateTime,
    /// Emergency removal: from then on the key is neither published nor
    /// trusted, and its tokens are inactive.
    pub revoked_at: Option<OffsetDateTime>,
    /// The key's self-signed X.509 certificate (DER), published as `x5c`;
    /// `None` for a key made before certificates existed, until one is
    /// stored with [`Mutation::SetSigningKeyCertificate`](crate::Mutation).
    pub certificate: Option<Vec<u8>>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("tenant_id", &self.tenant_id)
            .field("alg", &self.alg)
            .field("encrypted_private_key", &"[redacted]")
            .field("kek_id", &self.kek_id)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("revoked_at", &self.revoked_at)
            .field("certificate", &self.certificate.as_ref().map(Vec::len))
            .finish()
    }
}

/// Did the audited action succeed?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditResult {
    Success,
    Failure,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Success => "success",
            AuditResult::Failure => "failure",
        }
    }
}

/// Who, what, which credential, from where, outcome. Never a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub at: OffsetDateTime,
    /// Client id of the application that acted; `None` for Clavis itself.
    pub actor_app_id: Option<Uuid>,
    /// Service principal of the actor; `None` for Clavis itself.
    pub actor_service_principal_id: Option<Uuid>,
    pub actor_display_name: String,
    /// Key id of the credential the actor authenticated with, if known.
    pub actor_key_id: Option<Uuid>,
    pub client_ip: Option<String>,
    /// Graph-style activity, e.g. `Add application`, `Add password credential`.
    pub activity: String,
    /// Graph-style category: `ApplicationManagement`, `RoleManagement`, `KeyManagement`.
    pub category: String,
    /// `Add`, `Update`, `Delete`, `Assign`, `Unassign`.
    pub operation_type: String,
    /// `Application`, `ServicePrincipal`, `AppRoleAssignment`, `Tenant`, `SigningKey`.
    pub target_type: String,
    pub target_id: String,
    pub target_display_name: String,
    /// Key id of the credential the action was about (add/removePassword).
    pub target_key_id: Option<Uuid>,
    pub result: AuditResult,
    pub result_reason: String,
    /// Request id of the call, to tie the event to server logs (always one
    /// Clavis generated).
    pub correlation_id: Uuid,
    /// The caller's own id for the request (Graph's `clientRequestId`), as
    /// the server sanitised it; `None` when it sent none.
    pub client_request_id: Option<String>,
}

/// Which audit events a read returns (newest first).
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub tenant_id: Uuid,
    /// Only events at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only events strictly before this time.
    pub until: Option<OffsetDateTime>,
    /// Only this activity (exact).
    pub activity: Option<String>,
    /// Only events about this target id.
    pub target_id: Option<String>,
    /// Only events whose actor is this application (client id).
    pub actor_app_id: Option<Uuid>,
    /// Keyset pagination: events older than this one (by `(at, id)`).
    pub before: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// One token request, successful or refused (the sign-in log), or several
/// identical ones merged (`count`, from `at` to `last_at`).
///
/// Failures are aggregated by the server: every failure of one bucket
/// (tenant, minute, source address, client id presented, error code) carries
/// the same id, and [`Store::record_sign_ins`](crate::Store::record_sign_ins)
/// adds it to the stored row of that id. A failure without an error code
/// (and without address or client) stands for the refusals of that tenant
/// and minute that were counted but not itemised (its per-minute budget of
/// entries was full).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// When the (first) request came.
    pub at: OffsetDateTime,
    /// When the last of the `count` requests came (`at` when there is one).
    pub last_at: OffsetDateTime,
    /// How many identical requests this entry stands for (at least 1).
    pub count: u32,
    /// The client id presented, when it was a GUID.
    pub app_id: Option<Uuid>,
    /// The credential that authenticated (successes).
    pub key_id: Option<Uuid>,
    /// The resource's appId (successes).
    pub resource: Option<Uuid>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub result: AuditResult,
    /// Entra's code for a refusal (e.g. 7000215).
    pub error_code: Option<u32>,
}

/// Which sign-ins a read returns (newest first).
#[derive(Debug, Clone)]
pub struct SignInQuery {
    pub tenant_id: Uuid,
    pub app_id: Option<Uuid>,
    pub key_id: Option<Uuid>,
    pub result: Option<AuditResult>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Keyset pagination: older than this `(at, id)`.
    pub before: Option<(OffsetDateTime, Uuid)>,
    pub limit: u32,
}

/// Sign-ins from one source address: how many, the first and the last
/// (what [`Store::sign_in_counts`](crate::Store::sign_in_counts) returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInCount {
    pub client_ip: Option<String>,
    pub count: u64,
    pub first: OffsetDateTime,
    pub last: OffsetDateTime,
}

/// Failed client authentications counted under one throttle key in one
/// minute (what the token endpoint's throttling shares between nodes).
/// The key names an address or an application, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailureCount {
    pub key: String,
    /// Minutes since the Unix epoch.
    pub window: i64,
    pub count: u64,
}

/// How many rows a tenant's logs hold (what the retention task measures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogRows {
    /// Rows of the sign-in log (an aggregated row counts once).
    pub sign_ins: u64,
    /// Audit events.
    pub audit_events: u64,
}
