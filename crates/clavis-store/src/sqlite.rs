//! The embedded SQLite backend: [`SqliteStore`](crate::sqlite::SqliteStore)
//! implements [`Store`](crate::Store) over a `sqlx` pool, with its schema in
//! `migrations/sqlite`.
//!
//! # Layout
//! - `codec`: UUID / timestamp / JSON encodings and the row types.
//! - `error`: sqlx and SQLite errors → [`StoreError`](crate::StoreError).
//! - `mutate`: one function per [`Mutation`], run inside `commit`'s transaction
//!   (`applications`: those that write applications and credentials).
//! - `read`: every query of the read side.
//! - `expiry`: webhook subscriptions, expiry notices and deliveries.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions: the write lock is taken up
//! front, so two writers queue on the busy timeout instead of failing with
//! `SQLITE_BUSY` when a reader upgrades. A connection whose write failed is
//! closed rather than reused (`discard_if_failed`). Multi-statement reads
//! run in a (deferred) transaction so that they see one snapshot.

mod applications;
mod auth_failures;
mod codec;
mod copy;
mod error;
mod expiry;
mod mutate;
mod nodes;
mod read;
mod retention;
mod sign_ins;
/// Consistent snapshots of a store file (`clavis backup`).
pub mod snapshot;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::watch;
use uuid::Uuid;

use self::error::db;
use self::read::ApplicationKey;
use crate::model::{Application, ApplicationFilter, AuditEvent, AuditQuery, RoleAssignment};
use crate::model::{SigningKeyRecord, Tenant};
use crate::{FeedState, Mutation, Store, StoreError, StoreResult};

/// The schema, embedded in the binary and applied by [`SqliteStore::open`].
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections in the pool of a file database. SQLite runs one writer at a
/// time anyway; the rest serve concurrent readers (WAL lets them run
/// beside the writer).
const MAX_CONNECTIONS: u32 = 8;
/// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call waits for a free connection before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Clavis state in one SQLite database file (or in memory, for tests).
///
/// Cloning is cheap and shares the pool and the change feed.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One process owns the file (the server locks its data directory): the
    /// feed is always live and moves on this store's commits.
    feed: Arc<watch::Sender<FeedState>>,
}

impl SqliteStore {
    /// Open (creating it if missing) the database named by `url` and bring
    /// its schema up to date.
    ///
    /// Accepted forms: `sqlite://PATH`, `sqlite:PATH` (relative or absolute
    /// path, optionally followed by `?`-parameters as sqlx understands them)
    /// and `sqlite::memory:`. The file gets WAL journaling,
    /// `synchronous=NORMAL` (a power cut may lose the last commits, never
    /// consistency), `foreign_keys=ON` and a 5 s busy timeout.
    ///
    /// An in-memory database lives in one connection that the pool never
    /// closes: it disappears with the store.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let rest = match url.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("sqlite:") => &url[7..],
            _ => return Err(bad_url("a SQLite URL starts with `sqlite:`")),
        };
        if rest.trim_start_matches("//").is_empty() {
            return Err(bad_url("the SQLite URL names no database file"));
        }
        let in_memory = rest.contains(":memory:") || rest.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{rest}"))
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // 256 KiB of page cache per connection instead of SQLite's 2 MiB:
            // the token path reads from Clavis's own cache, not from pages,
            // and 8 connections x 2 MiB was most of the heap with 10,000 apps.
            .pragma("cache_size", "-256");
        if !in_memory {
            create_private(options.get_filename())?;
        }
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db)?;
        MIGRATOR.run(&pool).await.map_err(error::migrate)?;
        let feed = Arc::new(watch::Sender::new(FeedState { seq: 0, live: true }));
        Ok(SqliteStore { pool, feed })
    }

    /// Close every connection, waiting for calls in flight. Later calls
    /// fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn connection(&self) -> StoreResult<PoolConnection<Sqlite>> {
        self.pool.acquire().await.map_err(db)
    }

    /// A read transaction: the statements in it see one snapshot.
    async fn snapshot(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.pool.begin().await.map_err(db)
    }

    /// Run `mutations` and `audit` in one write transaction, in a task of
    /// its own: a caller that stops waiting (a client hanging up) cannot
    /// cancel the transaction half-way, so it always ends in COMMIT or
    /// ROLLBACK. (sqlx 0.8's `begin_with`, cancelled between its BEGIN and
    /// its check, leaves an open transaction on a pooled connection that
    /// fails every later `begin_with`; `cancelled_commit_leaves_all_or_nothing`
    /// in the test suite catches that.) `feed`: move the change feed once
    /// the transaction is durable (a change, not just audit of a refusal).
    async fn write(
        &self,
        mutations: Vec<Mutation>,
        audit: Vec<AuditEvent>,
        feed: bool,
    ) -> StoreResult<()> {
        if mutations.is_empty() && audit.is_empty() {
            return Ok(());
        }
        let pool = self.pool.clone();
        let feed = feed.then(|| self.feed.clone());
        tokio::spawn(async move {
            let outcome = write_transaction(&pool, &mutations, &audit).await;
            if let (Ok(()), Some(feed)) = (&outcome, feed) {
                feed.send_modify(|state| state.seq = state.seq.wrapping_add(1));
            }
            outcome
        })
        .await
        .map_err(|join| StoreError::Internal(Box::new(join)))?
    }
}

/// `BEGIN IMMEDIATE`, the mutations in order, the audit events, `COMMIT`;
/// `ROLLBACK` at the first error, which is returned.
async fn write_transaction(
    pool: &SqlitePool,
    mutations: &[Mutation],
    audit: &[AuditEvent],
) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(db)?;
    let outcome = write_on(&mut conn, mutations, audit).await;
    discard_if_failed(&mut conn, &outcome);
    outcome
}

/// A write transaction that failed may leave its connection in a state
/// sqlx cannot see: after `SQLITE_FULL`, `SQLITE_IOERR` or `SQLITE_BUSY`
/// SQLite may roll the transaction back by itself, the `ROLLBACK` sqlx then
/// sends fails ("no transaction is active"), and sqlx goes on counting the
/// connection as inside a transaction, so every later `BEGIN` on it fails
/// ("attempted to call begin_with at non-zero transaction depth"): a 500
/// long after the disk has room again. Such a connection is closed instead
/// of going back to the pool; the pool opens a fresh one when needed.
pub(crate) fn discard_if_failed<T>(conn: &mut PoolConnection<Sqlite>, outcome: &StoreResult<T>) {
    if let Err(err) = outcome {
        tracing::debug!(error = %err, "closing the connection of a failed write");
        conn.close_on_drop();
    }
}

async fn write_on(
    conn: &mut SqliteConnection,
    mutations: &[Mutation],
    audit: &[AuditEvent],
) -> StoreResult<()> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
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
    match outcome {
        Ok(()) => tx.commit().await.map_err(db),
        Err(err) => {
            if let Err(rollback) = tx.rollback().await {
                // Dropping `tx` queues another rollback before the
                // connection is reused.
                tracing::warn!(error = %rollback, "rollback of a failed commit failed");
            }
            Err(err)
        }
    }
}

/// The error for a URL this backend cannot open. The URL itself is left
/// out: it may carry a password.
fn bad_url(why: &'static str) -> StoreError {
    StoreError::Internal(Box::new(std::io::Error::other(why)))
}

/// End a read transaction (ending a snapshot never fails a read).
async fn finish(tx: Transaction<'static, Sqlite>) {
    if let Err(err) = tx.rollback().await {
        tracing::debug!(error = %err, "ending a read transaction failed");
    }
}

#[async_trait]
impl Store for SqliteStore {
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
        let mut tx = self.snapshot().await?;
        let app = read::application(&mut tx, tenant_id, ApplicationKey::Id, id).await;
        finish(tx).await;
        app
    }

    async fn application_by_app_id(
        &self,
        tenant_id: Uuid,
        app_id: Uuid,
    ) -> StoreResult<Option<Application>> {
        let mut tx = self.snapshot().await?;
        let app = read::application(&mut tx, tenant_id, ApplicationKey::AppId, app_id).await;
        finish(tx).await;
        app
    }

    async fn application_by_service_principal(
        &self,
        tenant_id: Uuid,
        service_principal_id: Uuid,
    ) -> StoreResult<Option<Application>> {
        let mut tx = self.snapshot().await?;
        let key = ApplicationKey::ServicePrincipal;
        let app = read::application(&mut tx, tenant_id, key, service_principal_id).await;
        finish(tx).await;
        app
    }

    async fn application_by_identifier_uri(
        &self,
        tenant_id: Uuid,
        uri: &str,
    ) -> StoreResult<Option<Application>> {
        let mut tx = self.snapshot().await?;
        let app = read::application_by_identifier_uri(&mut tx, tenant_id, uri).await;
        finish(tx).await;
        app
    }

    async fn list_applications(
        &self,
        tenant_id: Uuid,
        filter: &ApplicationFilter,
    ) -> StoreResult<Vec<Application>> {
        let mut tx = self.snapshot().await?;
        let apps = read::list_applications(&mut tx, tenant_id, filter).await;
        finish(tx).await;
        apps
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
        // The first insert wins; a row is never changed afterwards, so the
        // read that follows sees the winner without a transaction.
        sqlx::query(
            "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = ?")
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
        let hit: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE tenant_id = ? AND jti = ?")
                .bind(codec::id(tenant_id))
                .bind(codec::id(jti))
                .fetch_optional(&mut *self.connection().await?)
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
            "SELECT revoked_until FROM token_cutoffs WHERE tenant_id = ? AND application_id = ?",
        )
        .bind(codec::id(tenant_id))
        .bind(codec::id(application_id))
        .fetch_optional(&mut *self.connection().await?)
        .await
        .map_err(db)?;
        micros.map(crate::from_unix_micros).transpose()
    }

    async fn sealed_records(&self) -> StoreResult<Vec<crate::SealedRecord>> {
        let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(&crate::sealed::list_sql(""))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows
            .into_iter()
            .filter_map(|(kind, id, sealed)| crate::sealed::record(&kind, id, sealed))
            .collect())
    }

    async fn server_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)
    }

    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        read::audit_events(&mut *self.connection().await?, query).await
    }

    fn change_feed(&self) -> watch::Receiver<FeedState> {
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

/// Create a missing database file readable by its owner only; SQLite gives
/// its `-wal` and `-shm` files the same mode.
fn create_private(path: &std::path::Path) -> StoreResult<()> {
    if path.as_os_str().is_empty() || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(Box::new(e))),
    }
}
