//! Clavis storage: the records Clavis keeps and the one [`Store`] trait every
//! backend implements.
//!
//! # Layout
//! - [`model`]: plain records (tenants, applications, credentials, role
//!   assignments, signing keys, audit events). No behaviour, no secrets in the
//!   clear: a password credential carries only its keyed hash, a signing key
//!   only its AEAD ciphertext.
//! - [`Mutation`] + [`Store::commit`]: every change is a list of mutations
//!   committed in one transaction *together with* the audit events that
//!   describe it, so an audit write that fails makes the change fail.
//! - [`sqlite`]: the embedded default backend with its own `migrations/sqlite`.
//! - [`postgres`]: the backend for several nodes sharing one database, with
//!   its own `migrations/postgres` and a change feed over LISTEN/NOTIFY.
//! - [`connect`]: picks the backend from a database URL's scheme.
//! - [`expiry`]: webhook subscriptions, expiry notices and deliveries (the
//!   secret expiry warnings).
//! - [`nodes`]: the heartbeat rows of the servers sharing a store (which
//!   key-encryption keys each holds) and the installation's key-encryption key.
//! - [`copy`]: every table and column, as `clavis store copy` moves them.
//!
//! Both backends pass the same suite (`tests/suite`).

/// Every table and column, as `clavis store copy` moves them.
pub mod copy;
/// Records of secret expiry warnings: webhooks, notices, deliveries.
pub mod expiry;
/// Plain records stored by every backend.
pub mod model;
/// Heartbeats of the servers sharing a store; the installation's KEK.
pub mod nodes;
/// Why a store could not be opened, in an operator's terms.
pub mod open_failure;
/// The PostgreSQL backend (scale-out: several nodes, one database).
pub mod postgres;
/// Sealed values, listed and replaced for rewrapping.
pub mod sealed;
/// The embedded SQLite backend (the zero-set-up default).
pub mod sqlite;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

pub use expiry::*;
pub use model::*;
pub use nodes::NodeRecord;
pub use open_failure::OpenFailure;
pub use sealed::{SealedKind, SealedRecord};

/// What can go wrong in storage. The HTTP layers map these to their own
/// error formats; the source is logged, never sent to a caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object named by a mutation does not exist (in that tenant).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A uniqueness rule was violated (for example an identifier URI that
    /// another application of the tenant already uses). The text names the
    /// rule, never a secret.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or timed out; worth retrying.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (corrupt row, migration failure, bug).
    #[error("store error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether this is `Unavailable` because the database's disk (or its
    /// size limit) is full: changes fail until an operator frees space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Unavailable(source) if source.is::<DiskFull>())
    }
}

/// The source of an [`StoreError::Unavailable`] caused by a full disk
/// (SQLite `SQLITE_FULL`, PostgreSQL SQLSTATE 53100), wrapping the
/// backend's error.
#[derive(Debug, thiserror::Error)]
#[error("the database's disk is full: {0}")]
pub struct DiskFull(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// A time stored as unix microseconds.
pub(crate) fn from_unix_micros(micros: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|_| {
        StoreError::Internal(Box::new(std::io::Error::other("timestamp out of range")))
    })
}

/// Each credential's latest successful sign-in in `batch` (for `last_used_at`).
pub(crate) fn last_uses(batch: &[SignIn]) -> Vec<(Uuid, OffsetDateTime)> {
    let mut latest: std::collections::HashMap<Uuid, OffsetDateTime> = Default::default();
    for s in batch {
        if let (AuditResult::Success, Some(key_id)) = (s.result, s.key_id) {
            let at = latest.entry(key_id).or_insert(s.last_at);
            *at = (*at).max(s.last_at);
        }
    }
    latest.into_iter().collect()
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// One change to the stored state. A [`Store::commit`] applies a list of
/// these atomically, together with audit events.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Create a tenant.
    InsertTenant(Tenant),
    /// Replace a tenant's settings (name, signing algorithm, policy).
    UpdateTenant(Tenant),
    /// Create an application with its service principal, owners and any
    /// password credentials it already carries.
    InsertApplication(Application),
    /// Replace an application's display name, identifier URIs and app roles
    /// (credentials and owners are left alone). `NotFound` if it is gone.
    UpdateApplication(Application),
    /// Delete an application, its service principal, its credentials and
    /// every role assignment where its service principal is principal or
    /// resource. `NotFound` if it is gone.
    DeleteApplication { tenant_id: Uuid, id: Uuid },
    /// Add a password credential to an application. `NotFound` if the
    /// application is gone.
    AddPassword {
        tenant_id: Uuid,
        application_id: Uuid,
        credential: PasswordCredential,
    },
    /// Remove a password credential. `NotFound` if the application or the
    /// credential is gone.
    RemovePassword {
        tenant_id: Uuid,
        application_id: Uuid,
        key_id: Uuid,
    },
    /// Grant an app role. `Conflict` if the same (principal, resource, role)
    /// is already granted; `NotFound` if either service principal is gone.
    InsertRoleAssignment(RoleAssignment),
    /// Revoke an app role grant. `NotFound` if it is gone.
    DeleteRoleAssignment { tenant_id: Uuid, id: Uuid },
    /// Replace an application's credential policy (its exceptions to the
    /// tenant's rules). `NotFound` if the application is gone.
    SetCredentialPolicy {
        tenant_id: Uuid,
        application_id: Uuid,
        policy: CredentialPolicy,
    },
    /// Store a new (encrypted) signing key for a tenant.
    InsertSigningKey(SigningKeyRecord),
    /// Revoke one access token (by its `jti`) until it expires (RFC 7009).
    /// Revoking a token twice is not an error. `NotFound` if the tenant is gone.
    RevokeToken {
        tenant_id: Uuid,
        jti: Uuid,
        expires_at: OffsetDateTime,
    },
    /// Revoke every token issued to an application at or before `until`
    /// (a later cutoff replaces an earlier one, never the reverse).
    /// `NotFound` if the application is gone.
    RevokeTokensOf {
        tenant_id: Uuid,
        application_id: Uuid,
        until: OffsetDateTime,
    },
    /// Store a new signing key only if the tenant's newest key is still
    /// `current` (`None`: the tenant has no key yet); otherwise `Conflict`.
    /// Nodes that race to create a tenant's key agree on one winner.
    InsertSigningKeyIfCurrent {
        key: SigningKeyRecord,
        current: Option<String>,
    },
    /// Emergency removal of a signing key: from `at` on it is neither
    /// published nor trusted. Revoking a revoked key keeps the first time.
    /// `NotFound` if the tenant has no key `kid`.
    RevokeSigningKey {
        tenant_id: Uuid,
        kid: String,
        at: OffsetDateTime,
    },
    /// Store the certificate of a key made before keys had one, unless a
    /// certificate is already stored (then nothing changes: the first node
    /// to store one wins, and every node publishes that one). `NotFound`
    /// if the tenant has no key `kid`.
    SetSigningKeyCertificate {
        tenant_id: Uuid,
        kid: String,
        certificate: Vec<u8>,
    },
    /// Create a webhook subscription. `NotFound` if the tenant is gone.
    InsertWebhook(WebhookSubscription),
    /// Replace a sealed value (rewrapped under another key-encryption key)
    /// if it still holds `old`: `Conflict` if it changed meanwhile,
    /// `NotFound` if the row is gone.
    ResealRecord {
        kind: SealedKind,
        id: String,
        old: Vec<u8>,
        new: Vec<u8>,
        kek_id: String,
    },
    /// Delete a webhook subscription and its delivery log. `NotFound` if
    /// it is gone (or belongs to another tenant).
    DeleteWebhook { tenant_id: Uuid, id: Uuid },
    /// Pause a webhook subscription from `paused_at` on (`None`: resume
    /// it). Pausing a paused one keeps the first time. `NotFound` if it is
    /// gone (or belongs to another tenant).
    SetWebhookPaused {
        tenant_id: Uuid,
        id: Uuid,
        paused_at: Option<OffsetDateTime>,
    },
    /// Make `kek_id` the installation's key-encryption key: every node that
    /// holds it seals new records under it (see [`nodes`]).
    SetInstallationKek { kek_id: String, at: OffsetDateTime },
    /// Record a delivery made outside the scheduler (a test ping), as it
    /// ended. `NotFound` if its subscription is gone (or belongs to another
    /// tenant).
    InsertWebhookDelivery(WebhookDelivery),
}

/// What the change feed says: how many changes were seen, and whether the
/// feed can be trusted to have seen them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedState {
    /// Goes up by at least one after every committed change, by any process
    /// sharing the store (and after the feed reconnects).
    pub seq: u64,
    /// False while the feed may be missing changes (e.g. its connection to
    /// the database is down): caches must not be trusted then.
    pub live: bool,
}

/// Storage for Clavis. One implementation per database; the service holds an
/// `Arc<dyn Store>` and never asks which one it has.
///
/// Reads return `Ok(None)` / empty lists for objects that do not exist *in
/// the given tenant*: a caller can never read across tenants by id.
///
/// What every backend gives back (the suite in `tests/suite` checks it):
/// - times in UTC at microsecond precision, anything finer truncated toward
///   the past on write (PostgreSQL `timestamptz` has the same precision);
/// - `identifier_uris`, `app_roles` and `owners` in the order they were
///   written; `password_credentials` ordered by `(start_at, key_id)`;
/// - `tenants` and role assignments ordered by `(created_at, id)`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Cheap round-trip proving the database answers (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Apply `mutations` and insert `audit` in one transaction: all or
    /// nothing. The first failing mutation's error is returned and nothing
    /// is written.
    async fn commit(&self, mutations: &[Mutation], audit: &[AuditEvent]) -> StoreResult<()>;

    /// Insert audit events that describe no change (a refused action).
    async fn record_audit(&self, audit: &[AuditEvent]) -> StoreResult<()>;

    /// Every tenant (there are few).
    async fn tenants(&self) -> StoreResult<Vec<Tenant>>;

    /// One application by its object id.
    async fn application(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<Application>>;
    /// One application by its `appId` (client id).
    async fn application_by_app_id(
        &self,
        tenant_id: Uuid,
        app_id: Uuid,
    ) -> StoreResult<Option<Application>>;
    /// One application by its service principal's object id.
    async fn application_by_service_principal(
        &self,
        tenant_id: Uuid,
        service_principal_id: Uuid,
    ) -> StoreResult<Option<Application>>;
    /// One application by one of its identifier URIs (ASCII case-insensitive,
    /// as uniqueness is).
    async fn application_by_identifier_uri(
        &self,
        tenant_id: Uuid,
        uri: &str,
    ) -> StoreResult<Option<Application>>;
    /// A page of applications ordered by object id, after `filter.after`.
    async fn list_applications(
        &self,
        tenant_id: Uuid,
        filter: &ApplicationFilter,
    ) -> StoreResult<Vec<Application>>;

    /// Role assignments where `resource_id` is the resource service principal.
    async fn role_assignments_to(
        &self,
        tenant_id: Uuid,
        resource_id: Uuid,
    ) -> StoreResult<Vec<RoleAssignment>>;
    /// Role assignments held by `principal_id`.
    async fn role_assignments_of(
        &self,
        tenant_id: Uuid,
        principal_id: Uuid,
    ) -> StoreResult<Vec<RoleAssignment>>;

    /// A tenant's signing keys, newest first.
    async fn signing_keys(&self, tenant_id: Uuid) -> StoreResult<Vec<SigningKeyRecord>>;

    /// The wrapped server secret called `name`, inserting `candidate` first if
    /// there is none. Every caller (and every node) gets the same winner.
    async fn server_secret_or_insert(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>>;

    /// Whether the token `jti` of the tenant was revoked one by one.
    async fn token_revoked(&self, tenant_id: Uuid, jti: Uuid) -> StoreResult<bool>;

    /// Until when every token of the application is revoked, if ever.
    async fn tokens_revoked_until(
        &self,
        tenant_id: Uuid,
        application_id: Uuid,
    ) -> StoreResult<Option<OffsetDateTime>>;

    /// The wrapped server secret called `name`, if there is one.
    async fn server_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Every value stored sealed under a key-encryption key (ciphertext
    /// only), for rewrapping: signing keys, server secrets, webhook secrets.
    async fn sealed_records(&self) -> StoreResult<Vec<SealedRecord>>;

    /// Audit events of a tenant, newest first.
    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>>;

    /// Append sign-ins to the sign-in log and move each credential's
    /// `last_used_at` forward to its latest success (never back; a credential
    /// removed meanwhile is skipped). A failure whose id is already stored
    /// (as a failure) is added to that row instead: its `count` grows,
    /// `at` keeps the earliest, `last_at` the latest and `user_agent` the
    /// newest (ids within one call must differ). Not a change: caches stay,
    /// the change feed does not move (this runs for every token).
    async fn record_sign_ins(&self, sign_ins: &[SignIn]) -> StoreResult<()>;

    /// Sign-ins of a tenant, newest first.
    async fn sign_ins(&self, query: &SignInQuery) -> StoreResult<Vec<SignIn>>;

    /// Delete a tenant's sign-ins older than `before` (the retention period);
    /// returns how many went.
    async fn purge_sign_ins(&self, tenant_id: Uuid, before: OffsetDateTime) -> StoreResult<u64>;

    /// The sign-ins `query` selects, counted per source address with the
    /// first and last of each, most first (then by address); one
    /// round-trip however many there are. `query.before` and
    /// `query.limit` are ignored.
    async fn sign_in_counts(&self, query: &SignInQuery) -> StoreResult<Vec<SignInCount>>;

    /// Changes committed by any process sharing this store. Caches on the
    /// token path drop what they hold whenever `seq` moves, and hold nothing
    /// while `live` is false. An embedded store that one process owns moves
    /// `seq` on its own commits and is always live.
    fn change_feed(&self) -> tokio::sync::watch::Receiver<FeedState>;

    // ---- Throttling of failed client authentication (shared by nodes).

    /// Add `counts` to the stored per-key, per-minute totals (in one
    /// transaction), and delete the totals of windows before
    /// `forget_before`. Not a change: the change feed does not move.
    async fn add_auth_failures(
        &self,
        counts: &[AuthFailureCount],
        forget_before: i64,
    ) -> StoreResult<()>;

    /// The stored totals of windows from `since` on that reached
    /// `at_least`, in no particular order.
    async fn auth_failures(&self, since: i64, at_least: u64) -> StoreResult<Vec<AuthFailureCount>>;

    // ---- Secret expiry warnings (webhooks, notices, deliveries).

    /// A tenant's webhook subscriptions, oldest first.
    async fn webhooks(&self, tenant_id: Uuid) -> StoreResult<Vec<WebhookSubscription>>;

    /// One webhook subscription of a tenant.
    async fn webhook(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<WebhookSubscription>>;

    /// The tenant's password credentials that end at or before `until`,
    /// except those already announced as expired; soonest end first.
    async fn expiring_credentials(
        &self,
        tenant_id: Uuid,
        until: OffsetDateTime,
    ) -> StoreResult<Vec<ExpiringCredential>>;

    /// Record `notice` unless it is already recorded (by any node) or its
    /// credential is gone; if this call recorded it, insert `deliveries`
    /// and `audit` in the same transaction. `Ok(true)`: this caller won
    /// and should send; `Ok(false)`: nothing was written.
    async fn record_expiry_notice(
        &self,
        notice: &ExpiryNotice,
        deliveries: &[WebhookDelivery],
        audit: &[AuditEvent],
    ) -> StoreResult<bool>;

    /// Take up to `limit` pending deliveries due at `now` (of every tenant),
    /// pushing their `next_attempt_at` to `lease_until` so that no other
    /// caller (or node) takes them meanwhile. Oldest due first.
    async fn claim_webhook_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>>;

    /// Record how attempt `attempt.attempt` of delivery `id` ended. Ignored
    /// (`Ok(false)`) if the delivery is gone or another attempt was recorded
    /// meanwhile.
    async fn finish_webhook_delivery(
        &self,
        id: Uuid,
        attempt: &DeliveryAttempt,
    ) -> StoreResult<bool>;

    /// A subscription's delivery log, newest first.
    async fn webhook_deliveries(&self, query: &DeliveryQuery) -> StoreResult<Vec<WebhookDelivery>>;

    // ---- Retention and size budgets of the logs (issue 12, item 3).

    /// Delete a tenant's audit events older than `before` (the audit
    /// retention period); returns how many went.
    async fn purge_audit_events(&self, tenant_id: Uuid, before: OffsetDateTime)
        -> StoreResult<u64>;

    /// Delete a tenant's oldest sign-in rows (by `(at, id)`) so that at most
    /// `keep` remain; returns how many went.
    async fn trim_sign_ins(&self, tenant_id: Uuid, keep: u64) -> StoreResult<u64>;

    /// How many rows a tenant's sign-in log and audit log hold (counts
    /// through an index: for a periodic task, not for every request).
    async fn log_rows(&self, tenant_id: Uuid) -> StoreResult<LogRows>;

    /// Delete the tokens revoked one by one that expired before `before`
    /// (every tenant's): past its expiry a token is inactive without help.
    /// Returns how many went.
    async fn purge_revoked_tokens(&self, before: OffsetDateTime) -> StoreResult<u64>;
    // ---- The servers sharing this store, and the installation's KEK.

    /// Insert or replace `node`'s heartbeat row, and delete the rows of
    /// nodes last seen before `forget_before`. Not a change: the change
    /// feed does not move.
    async fn record_node(
        &self,
        node: &NodeRecord,
        forget_before: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Every node's row (live or not), oldest start first.
    async fn nodes(&self) -> StoreResult<Vec<NodeRecord>>;

    /// Delete a node's row (it shuts down cleanly); a row already gone is fine.
    async fn remove_node(&self, node_id: Uuid) -> StoreResult<()>;

    /// The installation's key-encryption key id, making it `candidate` first
    /// if there is none. Every caller (and every node) gets the same winner.
    async fn installation_kek_or_insert(
        &self,
        candidate: &str,
        at: OffsetDateTime,
    ) -> StoreResult<String>;

    // ---- `clavis store copy`: every table, row for row (see [`copy`]).

    /// Every table of the schema with its columns (not the migrations' own
    /// bookkeeping).
    async fn schema_tables(&self) -> StoreResult<BTreeMap<String, BTreeSet<String>>>;

    /// How many rows `table` holds.
    async fn count_rows(&self, table: &'static copy::Table) -> StoreResult<u64>;

    /// Send every row of `table` to `out` in batches of at most
    /// [`copy::BATCH_ROWS`], read from one snapshot; returns how many.
    async fn export_rows(
        &self,
        table: &'static copy::Table,
        out: &tokio::sync::mpsc::Sender<copy::Batch>,
    ) -> StoreResult<u64>;

    /// Insert the rows of every batch received, in one transaction that
    /// commits when [`copy::Batch::Done`] arrives; returns how many. If the
    /// channel closes first, or an insert fails, nothing is written.
    async fn import_rows(
        &self,
        batches: tokio::sync::mpsc::Receiver<copy::Batch>,
    ) -> StoreResult<u64>;
    // ---- Metrics.

    /// Every password credential of every tenant with its end, in one
    /// query (ordered by tenant, client id, key id): `/metrics` rebuilds its
    /// expiry gauges from it after a change instead of walking applications.
    async fn credential_ends(&self) -> StoreResult<Vec<CredentialEnd>>;
}

/// Open the store named by `database_url`, choosing the backend by scheme
/// (case-insensitive):
/// - `sqlite:` (`sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`) opens a
///   [`sqlite::SqliteStore`];
/// - `postgres://` and `postgresql://` open a [`postgres::PostgresStore`].
///
/// Either runs its migrations first.
///
/// Errors never repeat the URL: a PostgreSQL URL may carry a password.
pub async fn connect(database_url: &str) -> StoreResult<Arc<dyn Store>> {
    let scheme = database_url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => Ok(Arc::new(sqlite::SqliteStore::open(database_url).await?)),
        Some("postgres" | "postgresql") => {
            Ok(Arc::new(postgres::PostgresStore::open(database_url).await?))
        }
        _ => Err(StoreError::Internal(Box::new(std::io::Error::other(
            "unsupported database URL; accepted schemes: sqlite: (sqlite://PATH, sqlite:PATH, \
             sqlite::memory:), postgres:// and postgresql://",
        )))),
    }
}
