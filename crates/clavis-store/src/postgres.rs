//! The PostgreSQL backend, for several stateless Clavis nodes sharing one
//! database: [`PostgresStore`](crate::postgres::PostgresStore) implements
//! [`Store`](crate::Store) over a `sqlx` pool, with its schema in
//! `migrations/postgres`.
//!
//! # Layout
//! - `codec`: UUID / timestamp / JSONB wire types and the row types.
//! - `error`: sqlx and PostgreSQL errors → [`StoreError`](crate::StoreError),
//!   with nothing of PostgreSQL's `DETAIL` (which may quote stored values).
//! - `mutate`: one function per [`Mutation`], run inside `commit`'s transaction
//!   (`applications`: those that write applications and credentials).
//! - `read`: every query of the read side, one statement each.
//! - `expiry`: webhook subscriptions, expiry notices and deliveries
//!   (notices and delivery leases are safe with several nodes).
//! - `feed`: the change feed (`LISTEN clavis_changes`) in a background task.
//!
//! Writes run in READ COMMITTED transactions in a task of their own (so a
//! caller that stops waiting cannot leave one half-way); each commit that
//! changes anything also runs `pg_notify('clavis_changes', '')`, which
//! PostgreSQL delivers to every node's feed when, and only when, it commits.

mod applications;
mod auth_failures;
mod codec;
mod copy;
mod error;
pub(crate) use error::sqlstate;
mod expiry;
mod feed;
mod mutate;
mod nodes;
mod read;
mod retention;
mod sign_ins;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;
use uuid::Uuid;

use self::error::db;
use self::feed::Feed;
use self::read::ApplicationKey;
use crate::model::{Application, ApplicationFilter, AuditEvent, AuditQuery, RoleAssignment};
use crate::model::{SigningKeyRecord, Tenant};
use crate::{FeedState, Mutation, Store, StoreError, StoreResult};

/// The schema, embedded in the binary and applied by [`PostgresStore::open`].
///
/// Several nodes may open the same database at once: `Migrator::run`
/// (sqlx-core 0.8.6, `migrate/migrator.rs`, `run_direct`) first calls
/// `Migrate::lock`, which for PostgreSQL (sqlx-postgres 0.8.6,
/// `migrate.rs`) is `SELECT pg_advisory_lock($1)` with a key derived from
/// the database name, and only then creates `_sqlx_migrations`, reads what
/// is applied and applies the rest (each migration in a transaction),
/// ending with `pg_advisory_unlock`. A second node blocks on the lock and
/// then finds nothing to do.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in the pool of one node.
const MAX_CONNECTIONS: u32 = 10;
/// How long a call waits for a connection (a stopped database is refused
/// quickly; sqlx retries a refused connect until then) before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// `application_name` of the pool's connections, unless the URL sets one.
const APPLICATION_NAME: &str = "clavis";
/// PostgreSQL's `statement_timeout` for the pool's connections, unless the
/// URL sets one (`?options[statement_timeout]=5s`): a statement stuck on a
/// lock or an overloaded server is cancelled (SQLSTATE 57014, so
/// `Unavailable`) and its transaction rolled back well before a caller's
/// request time limit (30 s by default) runs out, so a change answered 503
/// is not made later when the lock goes. Migrations run without it.
const STATEMENT_TIMEOUT: &str = "10s";

/// Clavis state in a PostgreSQL database that several nodes may share.
///
/// Cloning is cheap and shares the pool and the change feed; the feed's
/// background task stops when the last clone is dropped or on
/// [`close`](PostgresStore::close).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    feed: Arc<Feed>,
}

/// The pool's size and the feed's state; never the URL (it may carry a
/// password).
impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool)
            .field("feed", &self.feed)
            .finish()
    }
}

/// How many tables the database at `url` holds in its current schema
/// (0: empty, a place a backup may be restored into). Runs no migration.
pub async fn table_count(url: &str) -> StoreResult<i64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(db)?;
    sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
        .fetch_one(&mut conn)
        .await
        .map_err(db)
}

impl PostgresStore {
    /// Connect to the database named by `url` (`postgres://` or
    /// `postgresql://`, with any parameters libpq-style URLs take as sqlx
    /// understands them), bring its schema up to date and start listening
    /// for changes.
    ///
    /// A database that cannot be reached within about three seconds is
    /// [`StoreError::Unavailable`]. No error repeats the URL.
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if !scheme.is_some_and(|s| {
            s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql")
        }) {
            return Err(bad_url(
                "a PostgreSQL URL starts with `postgres://` or `postgresql://`".to_owned(),
            ));
        }
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|err| bad_url(format!("the PostgreSQL URL is not valid: {err}")))?;
        if options.get_application_name().is_none() {
            options = options.application_name(APPLICATION_NAME);
        }
        if !options
            .get_options()
            .is_some_and(|o| o.contains("statement_timeout"))
        {
            options = options.options([("statement_timeout", STATEMENT_TIMEOUT)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        let feed = match migrate(&pool).await {
            Ok(()) => Feed::start(&options).await.map_err(db),
            Err(err) => Err(err),
        };
        match feed {
            Ok(feed) => Ok(PostgresStore {
                pool,
                feed: Arc::new(feed),
            }),
            Err(err) => {
                pool.close().await;
                Err(err)
            }
        }
    }

    /// Stop the change feed and close every connection, waiting for calls
    /// in flight. Later calls fail with [`StoreError::Unavailable`]; the
    /// feed is no longer live.
    pub async fn close(&self) {
        self.feed.stop().await;
        self.pool.close().await;
    }

    async fn connection(&self) -> StoreResult<PoolConnection<Postgres>> {
        self.pool.acquire().await.map_err(db)
    }

    /// Run `mutations` and `audit` in one transaction, in a task of its
    /// own: a caller that stops waiting (a client hanging up) cannot cancel
    /// it half-way, and the feed moves once it is durable. `notify`: tell
    /// every node (a change, not just audit of a refusal).
    async fn write(
        &self,
        mutations: Vec<Mutation>,
        audit: Vec<AuditEvent>,
        notify: bool,
    ) -> StoreResult<()> {
        if mutations.is_empty() && audit.is_empty() {
            return Ok(());
        }
        let pool = self.pool.clone();
        let state = notify.then(|| self.feed.state());
        tokio::spawn(async move {
            let outcome = write_transaction(&pool, &mutations, &audit, state.is_some()).await;
            if let (Ok(()), Some(state)) = (&outcome, state) {
                feed::bump(&state);
            }
            outcome
        })
        .await
        .map_err(|join| StoreError::Internal(Box::new(join)))?
    }
}

/// Apply the migrations on one connection. If they fail, that connection is
/// closed rather than returned to the pool: the migrator does not release
/// its (session-level) advisory lock on an error, and closing the session
/// does.
async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(db)?;
    // A migration may rewrite a large table, and a second node waits on the
    // migration lock for as long as the first one migrates.
    // `client_min_messages`: the migrator's `CREATE TABLE IF NOT EXISTS
    // _sqlx_migrations` draws a NOTICE on every start after the first, which
    // sqlx logs at INFO ("relation ... already exists, skipping").
    for setting in [
        "SET statement_timeout = 0",
        "SET client_min_messages = warning",
    ] {
        sqlx::query(setting).execute(&mut *conn).await.map_err(db)?;
    }
    let mut migrated = MIGRATOR.run(&mut *conn).await;
    if migrated.is_ok() {
        migrated = sqlx::raw_sql("RESET statement_timeout; RESET client_min_messages")
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(sqlx::migrate::MigrateError::Execute);
    }
    if migrated.is_err() {
        if let Err(err) = conn.close().await {
            tracing::debug!(error = %db(err), "closing the migration connection failed");
        }
    }
    migrated.map_err(error::migrate)
}

/// `BEGIN`, the mutations in order, the audit events, the notification,
/// `COMMIT`; `ROLLBACK` at the first error, which is returned.
async fn write_transaction(
    pool: &PgPool,
    mutations: &[Mutation],
    audit: &[AuditEvent],
    notify: bool,
) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    let mut outcome = Ok(());
    for mutation in mutations {
        outcome = mutate::apply(&mut tx, mutation).await;
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        outcome = mutate::insert_audit(&mut tx, audit).await;
    }
    if outcome.is_ok() && notify {
        // Queued with the transaction: delivered only if it commits.
        outcome = sqlx::query("SELECT pg_notify($1, '')")
            .bind(feed::CHANNEL)
            .execute(&mut *tx)
            .await
            .map(|_| ())
            .map_err(db);
    }
    match outcome {
        Ok(()) => tx.commit().await.map_err(db),
        Err(err) => {
            if let Err(rollback) = tx.rollback().await {
                // Dropping `tx` queues another rollback before the
                // connection is reused.
                tracing::warn!(error = %db(rollback), "rollback of a failed commit failed");
            }
            Err(err)
        }
    }
}

/// The error for a URL this backend cannot open. The URL itself is left
/// out: it may carry a password.
fn bad_url(why: String) -> StoreError {
    StoreError::Internal(Box::new(std::io::Error::other(why)))
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db)
    }

    async fn commit(&self, mutations: &[Mutation], audit: &[AuditEvent]) -> StoreResult<()> {
        self.write(mutations.to_vec(), audit.to_vec(), true).await
    }

    async fn record_audit(&self, audit: &[AuditEvent]) -> StoreResult<()> {
        self.write(Vec::new(), audit.to_vec(), false).await
    }

    async fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        read::tenants(&mut *self.connection().await?).await
    }

    async fn application(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<Application>> {
        let mut conn = self.connection().await?;
        read::application(&mut conn, tenant_id, ApplicationKey::Id, id).await
    }

    async fn application_by_app_id(
        &self,
        tenant_id: Uuid,
        app_id: Uuid,
    ) -> StoreResult<Option<Application>> {
        let mut conn = self.connection().await?;
        read::application(&mut conn, tenant_id, ApplicationKey::AppId, app_id).await
    }

    async fn application_by_service_principal(
        &self,
        tenant_id: Uuid,
        service_principal_id: Uuid,
    ) -> StoreResult<Option<Application>> {
        let mut conn = self.connection().await?;
        let key = ApplicationKey::ServicePrincipal;
        read::application(&mut conn, tenant_id, key, service_principal_id).await
    }

    async fn application_by_identifier_uri(
        &self,
        tenant_id: Uuid,
        uri: &str,
    ) -> StoreResult<Option<Application>> {
        let mut conn = self.connection().await?;
        read::application_by_identifier_uri(&mut conn, tenant_id, uri).await
    }

    async fn list_applications(
        &self,
        tenant_id: Uuid,
        filter: &ApplicationFilter,
    ) -> StoreResult<Vec<Application>> {
        let mut conn = self.connection().await?;
        read::list_applications(&mut conn, tenant_id, filter).await
    }

    async fn role_assignments_to(
        &self,
        tenant_id: Uuid,
        resource_id: Uuid,
    ) -> StoreResult<Vec<RoleAssignment>> {
        let mut conn = self.connection().await?;
        read::role_assignments(&mut conn, tenant_id, "resource_id", resource_id).await
    }

    async fn role_assignments_of(
        &self,
        tenant_id: Uuid,
        principal_id: Uuid,
    ) -> StoreResult<Vec<RoleAssignment>> {
        let mut conn = self.connection().await?;
        read::role_assignments(&mut conn, tenant_id, "principal_id", principal_id).await
    }

    async fn signing_keys(&self, tenant_id: Uuid) -> StoreResult<Vec<SigningKeyRecord>> {
        read::signing_keys(&mut *self.connection().await?, tenant_id).await
    }

    async fn server_secret_or_insert(&self, name: &str, candidate: &[u8]) -> StoreResult<Vec<u8>> {
        let mut conn = self.connection().await?;
        // The first insert wins: a racing INSERT waits on the primary key
        // until the winner commits, then does nothing. A row is never
        // changed afterwards, and the read that follows (a new snapshot at
        // READ COMMITTED) sees the winner.
        sqlx::query(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)
    }

    async fn add_auth_failures(
        &self,
        counts: &[crate::AuthFailureCount],
        forget_before: i64,
    ) -> StoreResult<()> {
        auth_failures::add(&self.pool, counts, forget_before).await
    }

    async fn auth_failures(
        &self,
        since: i64,
        at_least: u64,
    ) -> StoreResult<Vec<crate::AuthFailureCount>> {
        auth_failures::read(&self.pool, since, at_least).await
    }

    async fn record_sign_ins(&self, batch: &[crate::SignIn]) -> StoreResult<()> {
        sign_ins::record(&self.pool, batch).await
    }

    async fn sign_ins(&self, query: &crate::SignInQuery) -> StoreResult<Vec<crate::SignIn>> {
        sign_ins::read(&self.pool, query).await
    }

    async fn purge_sign_ins(
        &self,
        tenant_id: Uuid,
        before: time::OffsetDateTime,
    ) -> StoreResult<u64> {
        sign_ins::purge(&self.pool, tenant_id, before).await
    }

    async fn sign_in_counts(
        &self,
        query: &crate::SignInQuery,
    ) -> StoreResult<Vec<crate::SignInCount>> {
        sign_ins::counts(&self.pool, query).await
    }

    async fn token_revoked(&self, tenant_id: Uuid, jti: Uuid) -> StoreResult<bool> {
        let hit: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE tenant_id = $1 AND jti = $2")
                .bind(codec::id(tenant_id))
                .bind(codec::id(jti))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        Ok(hit.is_some())
    }

    async fn tokens_revoked_until(
        &self,
        tenant_id: Uuid,
        application_id: Uuid,
    ) -> StoreResult<Option<time::OffsetDateTime>> {
        let micros: Option<i64> = sqlx::query_scalar(
            "SELECT (EXTRACT(EPOCH FROM revoked_until) * 1000000)::BIGINT FROM token_cutoffs \
             WHERE tenant_id = $1 AND application_id = $2",
        )
        .bind(codec::id(tenant_id))
        .bind(codec::id(application_id))
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        micros.map(crate::from_unix_micros).transpose()
    }

    async fn sealed_records(&self) -> StoreResult<Vec<crate::SealedRecord>> {
        let rows: Vec<(String, String, Vec<u8>)> =
            sqlx::query_as(&crate::sealed::list_sql("::text"))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        Ok(rows
            .into_iter()
            .filter_map(|(kind, id, sealed)| crate::sealed::record(&kind, id, sealed))
            .collect())
    }

    async fn server_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        read::audit_events(&mut *self.connection().await?, query).await
    }

    fn change_feed(&self) -> tokio::sync::watch::Receiver<FeedState> {
        self.feed.subscribe()
    }

    async fn webhooks(&self, tenant_id: Uuid) -> StoreResult<Vec<crate::WebhookSubscription>> {
        expiry::webhooks(&self.pool, tenant_id, None).await
    }

    async fn webhook(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<crate::WebhookSubscription>> {
        Ok(expiry::webhooks(&self.pool, tenant_id, Some(id))
            .await?
            .pop())
    }

    async fn expiring_credentials(
        &self,
        tenant_id: Uuid,
        until: time::OffsetDateTime,
    ) -> StoreResult<Vec<crate::ExpiringCredential>> {
        expiry::expiring_credentials(&self.pool, tenant_id, until).await
    }

    async fn record_expiry_notice(
        &self,
        notice: &crate::ExpiryNotice,
        deliveries: &[crate::WebhookDelivery],
        audit: &[AuditEvent],
    ) -> StoreResult<bool> {
        expiry::record_notice(&self.pool, notice, deliveries, audit).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: time::OffsetDateTime,
        lease_until: time::OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<crate::DueDelivery>> {
        expiry::claim(&self.pool, now, lease_until, limit).await
    }

    async fn finish_webhook_delivery(
        &self,
        id: Uuid,
        attempt: &crate::DeliveryAttempt,
    ) -> StoreResult<bool> {
        expiry::finish(&self.pool, id, attempt).await
    }

    async fn webhook_deliveries(
        &self,
        query: &crate::DeliveryQuery,
    ) -> StoreResult<Vec<crate::WebhookDelivery>> {
        expiry::deliveries(&self.pool, query).await
    }

    async fn purge_audit_events(
        &self,
        tenant_id: Uuid,
        before: time::OffsetDateTime,
    ) -> StoreResult<u64> {
        retention::purge_audit_events(&self.pool, tenant_id, before).await
    }

    async fn trim_sign_ins(&self, tenant_id: Uuid, keep: u64) -> StoreResult<u64> {
        sign_ins::trim(&self.pool, tenant_id, keep).await
    }

    async fn log_rows(&self, tenant_id: Uuid) -> StoreResult<crate::LogRows> {
        retention::log_rows(&self.pool, tenant_id).await
    }

    async fn purge_revoked_tokens(&self, before: time::OffsetDateTime) -> StoreResult<u64> {
        retention::purge_revoked_tokens(&self.pool, before).await
    }

    async fn record_node(
        &self,
        node: &crate::NodeRecord,
        forget_before: time::OffsetDateTime,
    ) -> StoreResult<()> {
        nodes::record(&self.pool, node, forget_before).await
    }

    async fn nodes(&self) -> StoreResult<Vec<crate::NodeRecord>> {
        nodes::list(&self.pool).await
    }

    async fn remove_node(&self, node_id: Uuid) -> StoreResult<()> {
        nodes::remove(&self.pool, node_id).await
    }

    async fn installation_kek_or_insert(
        &self,
        candidate: &str,
        at: time::OffsetDateTime,
    ) -> StoreResult<String> {
        nodes::installation_kek_or_insert(&self.pool, candidate, at).await
    }

    async fn schema_tables(
        &self,
    ) -> StoreResult<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>> {
        copy::schema_tables(&self.pool).await
    }

    async fn count_rows(&self, table: &'static crate::copy::Table) -> StoreResult<u64> {
        copy::count(&self.pool, table).await
    }

    async fn export_rows(
        &self,
        table: &'static crate::copy::Table,
        out: &tokio::sync::mpsc::Sender<crate::copy::Batch>,
    ) -> StoreResult<u64> {
        copy::export(&self.pool, table, out).await
    }

    async fn import_rows(
        &self,
        batches: tokio::sync::mpsc::Receiver<crate::copy::Batch>,
    ) -> StoreResult<u64> {
        copy::import(&self.pool, batches).await
    }

    async fn credential_ends(&self) -> StoreResult<Vec<crate::CredentialEnd>> {
        expiry::credential_ends(&self.pool).await
    }
}
