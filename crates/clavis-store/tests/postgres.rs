//! Runs the backend-independent suite (`tests/suite/`) against PostgreSQL,
//! one freshly created database per test, plus what only PostgreSQL has:
//! several stores (nodes) on one database, the change feed between them,
//! races between nodes, migrations started at once, an unreachable server.
//!
//! PostgreSQL must be running at `postgres://postgres@127.0.0.1:5432/`
//! (trust auth), or at the URL in `CLAVIS_TEST_POSTGRES_URL` (a role that
//! may create databases). If it cannot be reached, every test here FAILS:
//! CI starts it, and a silent skip would hide a backend that was never
//! tested.
//!
//! Each test database is called `clavis_test_<unix seconds>_<uuid>` and is
//! dropped when the test ends, also when it panics; databases of this
//! pattern older than an hour (left by a killed run) are dropped by the
//! first test of the next run.

mod suite;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clavis_store::postgres::PostgresStore;
use clavis_store::{connect, FeedState, Mutation, Store, StoreError};
use sqlx::{Connection, Executor, PgConnection};
use suite::fixtures::*;
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/";
const PREFIX: &str = "clavis_test_";
/// Test databases older than this are leftovers of a killed run.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The server the tests use (its database is where we connect to create
/// and drop test databases).
fn admin_url() -> String {
    std::env::var("CLAVIS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` naming `database` instead of its own.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .expect("CLAVIS_TEST_POSTGRES_URL is a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// A connection to the server's maintenance database; panics, saying what
/// to do, if the server cannot be reached.
async fn admin() -> PgConnection {
    match PgConnection::connect(&admin_url()).await {
        Ok(conn) => conn,
        Err(err) => panic!(
            "PostgreSQL is not reachable ({err}). These tests need a running server: CI starts \
             one; locally start it (e.g. `pg_ctlcluster --skip-systemctl-redirect 15 main \
             start`) or set CLAVIS_TEST_POSTGRES_URL (default {DEFAULT_URL})."
        ),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Drop `clavis_test_*` databases created more than an hour ago (once per
/// test binary).
async fn drop_stale_databases() {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let mut admin = admin().await;
        let names: Vec<String> =
            sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
                .bind(format!("{}%", PREFIX.replace('_', "\\_")))
                .fetch_all(&mut admin)
                .await
                .expect("list test databases");
        let cutoff = unix_now().saturating_sub(STALE_AFTER.as_secs());
        for name in names {
            let created = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse::<u64>().ok());
            // Unparseable names are not ours to judge; leave them.
            if created.is_some_and(|created| created < cutoff) {
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                if let Err(err) = admin.execute(drop.as_str()).await {
                    eprintln!("could not drop stale test database {name}: {err}");
                }
            }
        }
        let _ = admin.close().await;
    })
    .await;
}

/// A database of its own for one test, dropped (with any connection still
/// open to it) when this guard goes, panic or not.
struct Database {
    name: String,
    url: String,
}

impl Database {
    async fn create() -> Database {
        drop_stale_databases().await;
        let name = format!("{PREFIX}{}_{}", unix_now(), Uuid::new_v4().simple());
        let mut admin = admin().await;
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url(), &name);
        Database { name, url }
    }

    async fn open(&self) -> PostgresStore {
        PostgresStore::open(&self.url).await.expect("open")
    }

    /// Backends connected to this database as the change feed.
    async fn feed_backends(&self) -> i64 {
        let mut admin = admin().await;
        let count = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name = 'clavis-feed'",
        )
        .bind(&self.name)
        .fetch_one(&mut admin)
        .await
        .expect("count feed backends");
        let _ = admin.close().await;
        count
    }
}

impl Drop for Database {
    /// `Drop` cannot await, and this thread's runtime may be unwinding: the
    /// database is dropped from a thread with a runtime of its own.
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                admin
                    .execute(drop.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("could not drop test database {}: {err}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}

/// One `#[tokio::test]` per suite function, each on its own database.
macro_rules! on_postgres {
    ($($name:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let db = Database::create().await;
            let store = db.open().await;
            suite::$name(&store).await;
            store.close().await;
        }
    )+};
}

on_postgres!(
    tenant_round_trip,
    auth_failures_add_up_and_expire,
    application_round_trip,
    update_application_replaces_only_its_fields,
    role_assignment_round_trip,
    signing_key_round_trip,
    audit_round_trip,
    server_secret_first_writer_wins,
    commit_is_all_or_nothing,
    cancelled_commit_leaves_all_or_nothing,
    missing_objects_are_not_found,
    other_tenants_objects_are_not_found,
    reads_never_cross_tenants,
    uniqueness_rules_conflict,
    delete_application_cascades,
    list_applications_filters_and_pages,
    audit_events_filter_and_page,
    secrets_never_leak,
    signing_key_compare_and_set,
    signing_keys_activate_later_and_are_revoked,
    sealed_records_are_listed_and_resealed_by_compare_and_set,
    server_secret_reads_without_inserting,
    change_feed_moves_after_commit,
    tokens_are_revoked_one_by_one_and_per_application,
    sign_ins_are_logged_filtered_and_paged,
    sign_ins_move_last_used_forward,
    old_sign_ins_are_purged,
    sign_ins_are_counted_per_address,
    webhooks_are_per_tenant_and_deleted_with_their_log,
    expiry_notices_are_recorded_once,
    webhook_deliveries_are_claimed_once_retried_and_logged,
    paused_webhooks_get_no_deliveries_until_resumed,
    a_finished_delivery_is_recorded_for_its_own_tenant_only,
    failed_sign_ins_of_one_bucket_add_up,
    logs_are_trimmed_to_budget_and_purged_by_age,
    expired_revoked_tokens_are_purged,
    nodes_are_recorded_listed_and_forgotten,
    the_installation_kek_is_chosen_once_and_changed_by_a_commit,
    every_table_is_known_to_store_copy,
    an_interrupted_copy_writes_nothing,
    credential_ends_list_every_secret_of_every_tenant,
);

/// Wait until the feed satisfies `ready`, at most `limit`.
async fn feed_until(
    feed: &mut tokio::sync::watch::Receiver<FeedState>,
    limit: Duration,
    what: &str,
    ready: impl FnMut(&FeedState) -> bool,
) -> FeedState {
    let outcome = match tokio::time::timeout(limit, feed.wait_for(ready)).await {
        Ok(Ok(state)) => Ok(*state),
        Ok(Err(_)) => panic!("the feed closed while waiting for {what}"),
        Err(_) => Err(()),
    };
    outcome.unwrap_or_else(|()| panic!("no {what} within {limit:?}: {:?}", *feed.borrow()))
}

/// Commits on one node reach another node's feed within a second; what
/// they wrote is readable there at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_node_reaches_the_others_feed_within_a_second() {
    let db = Database::create().await;
    let (a, b) = (db.open().await, db.open().await);
    let mut feed = b.change_feed();
    let base = feed.borrow_and_update().seq;
    assert!(feed.borrow().live);

    let home = given_tenant(&a, "default").await;
    let app_ = given_app(&a, &home, "orders").await;
    let mut commits = 2;
    feed_until(&mut feed, Duration::from_secs(1), "notification", |s| {
        s.seq >= base + commits
    })
    .await;

    // B's own seq moves only on A's notifications here (one per commit),
    // so round n waits for the n-th: a late one cannot pass for a later.
    let mut delays = Vec::new();
    for round in 0..20u8 {
        let credential = credential(round, i64::from(round));
        let add = Mutation::AddPassword {
            tenant_id: home.id,
            application_id: app_.id,
            credential: credential.clone(),
        };
        let remove = Mutation::RemovePassword {
            tenant_id: home.id,
            application_id: app_.id,
            key_id: credential.key_id,
        };
        for mutation in [add, remove] {
            let adding = matches!(mutation, Mutation::AddPassword { .. });
            let started = Instant::now();
            a.commit(&[mutation], &[]).await.expect("commit on A");
            commits += 1;
            feed_until(
                &mut feed,
                Duration::from_secs(1),
                "notification on B",
                |s| s.seq >= base + commits,
            )
            .await;
            delays.push(started.elapsed());
            // No cache in the store: B reads what A wrote at once.
            let on_b = b
                .application(home.id, app_.id)
                .await
                .expect("read on B")
                .expect("there");
            assert_eq!(on_b.password_credentials.len(), usize::from(adding));
        }
    }
    delays.sort();
    let (median, max) = (delays[delays.len() / 2], delays[delays.len() - 1]);
    println!(
        "commit on A → B's feed moved: median {median:?}, max {max:?} over {} commits",
        delays.len()
    );
    assert!(max < Duration::from_secs(1), "slowest propagation {max:?}");
    a.close().await;
    b.close().await;
}

/// Two nodes racing to rotate a tenant's key: exactly one wins each round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_compare_and_set_has_one_winner() {
    let db = Database::create().await;
    let (a, b) = (db.open().await, db.open().await);
    let home = given_tenant(&a, "default").await;
    let mut current: Option<String> = None;
    for round in 0..25i64 {
        let (kid_a, kid_b) = (format!("a{round}"), format!("b{round}"));
        let insert = |kid: &str| Mutation::InsertSigningKeyIfCurrent {
            key: signing_key(&home, kid, round),
            current: current.clone(),
        };
        let (on_a, on_b) = ([insert(&kid_a)], [insert(&kid_b)]);
        let (result_a, result_b) = tokio::join!(a.commit(&on_a, &[]), b.commit(&on_b, &[]));
        let winner = match (result_a, result_b) {
            (Ok(()), Err(StoreError::Conflict(rule))) => {
                assert_eq!(rule, "the tenant's signing key changed meanwhile");
                kid_a
            }
            (Err(StoreError::Conflict(rule)), Ok(())) => {
                assert_eq!(rule, "the tenant's signing key changed meanwhile");
                kid_b
            }
            other => panic!("round {round}: exactly one must win, got {other:?}"),
        };
        let keys = b.signing_keys(home.id).await.expect("read");
        assert_eq!(keys.len(), usize::try_from(round + 1).expect("small"));
        assert_eq!(keys[0].kid, winner);
        current = Some(winner);
    }
    a.close().await;
    b.close().await;
}

/// Two nodes creating the same server secret at once get the same value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_server_secret_inserts_agree() {
    let db = Database::create().await;
    let (a, b) = (db.open().await, db.open().await);
    for round in 0..25 {
        let name = format!("secret-{round}");
        let (on_a, on_b) = tokio::join!(
            a.server_secret_or_insert(&name, b"from a"),
            b.server_secret_or_insert(&name, b"from b"),
        );
        let (on_a, on_b) = (on_a.expect("a"), on_b.expect("b"));
        assert_eq!(on_a, on_b, "round {round}");
        assert!(on_a == b"from a" || on_a == b"from b");
        assert_eq!(a.server_secret(&name).await.expect("read"), Some(on_a));
    }
    a.close().await;
    b.close().await;
}

/// Three nodes starting on an empty database at once: the migrator's
/// advisory lock lets one migrate and the others find the work done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_migrate_once() {
    let db = Database::create().await;
    let (one, two, three) = tokio::join!(
        PostgresStore::open(&db.url),
        PostgresStore::open(&db.url),
        PostgresStore::open(&db.url),
    );
    let stores = [
        one.expect("first"),
        two.expect("second"),
        three.expect("third"),
    ];
    let home = given_tenant(&stores[0], "default").await;
    for store in &stores {
        assert_eq!(store.tenants().await.expect("read")[0].id, home.id);
    }
    let mut admin = PgConnection::connect(&db.url).await.expect("connect");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut admin)
        .await
        .expect("count");
    // Each migration applied exactly once, whatever the number of nodes.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations")
        .count() as i64;
    assert_eq!(applied, files);
    let _ = admin.close().await;
    for store in &stores {
        store.close().await;
    }
}

/// Nothing listening at the address: `Unavailable` within a few seconds,
/// and no error repeats the URL's password.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_quickly() {
    let started = Instant::now();
    let result = PostgresStore::open("postgres://clavis:hunter2@127.0.0.1:1/clavis").await;
    let elapsed = started.elapsed();
    let Err(StoreError::Unavailable(err)) = result else {
        panic!("expected Unavailable, got {result:?}");
    };
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    for url in [
        "postgres://clavis:hunter2@[::1/clavis",
        "mysql://clavis:hunter2@localhost/clavis",
        "postgres:/clavis:hunter2@localhost/clavis",
    ] {
        let Err(StoreError::Internal(err)) = PostgresStore::open(url).await else {
            panic!("{url} must be refused");
        };
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err}");
    }
}

/// A database that does not exist is a configuration problem, not an
/// outage; a closed store is unavailable.
#[tokio::test]
async fn missing_database_and_closed_store() {
    let db = Database::create().await;
    let missing = with_database(&admin_url(), &format!("{}_x", db.name));
    let result = PostgresStore::open(&missing).await;
    assert!(matches!(result, Err(StoreError::Internal(_))), "{result:?}");

    let store = db.open().await;
    store.ping().await.expect("ping");
    store.close().await;
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    let feed = *store.change_feed().borrow();
    assert!(!feed.live, "a closed store's feed is not live");
}

/// `connect` hands `postgres://` and `postgresql://` URLs to this backend.
#[tokio::test]
async fn connect_opens_postgres_urls() {
    let db = Database::create().await;
    let store = connect(&db.url).await.expect("connect");
    store.ping().await.expect("ping");
    given_tenant(store.as_ref(), "default").await;
    let (_, rest) = db.url.split_once("://").expect("a URL");
    let other = connect(&format!("postgresql://{rest}"))
        .await
        .expect("connect");
    assert_eq!(other.tenants().await.expect("read").len(), 1);
}

/// The listening connection dies and cannot come back at once: the feed
/// says so within a second, and once it is back it is live and has moved
/// (changes may have been missed meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_goes_dark_and_recovers() {
    let db = Database::create().await;
    let store = db.open().await;
    let mut feed = store.change_feed();
    let before = *feed.borrow_and_update();
    assert!(before.live);

    let mut admin = admin().await;
    let block = format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", db.name);
    admin.execute(block.as_str()).await.expect("block");
    let started = Instant::now();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'clavis-feed'",
    )
    .bind(&db.name)
    .fetch_all(&mut admin)
    .await
    .expect("terminate the feed's backend");
    assert_eq!(killed, [true], "one listening backend");
    feed_until(&mut feed, Duration::from_secs(1), "dark feed", |s| !s.live).await;
    println!(
        "feed dark {:?} after its backend was killed",
        started.elapsed()
    );

    // While it is dark, commits still work (the pool's connections live).
    given_tenant(&store, "default").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!feed.borrow().live, "still dark: it cannot reconnect yet");

    let unblock = format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", db.name);
    admin.execute(unblock.as_str()).await.expect("unblock");
    let seen = feed.borrow_and_update().seq;
    let back = feed_until(&mut feed, Duration::from_secs(3), "live feed", |s| s.live).await;
    assert!(back.seq > seen, "reconnecting moves seq");
    let _ = admin.close().await;

    // And it hears other nodes again.
    let other = db.open().await;
    let seen = feed.borrow_and_update().seq;
    given_tenant(&other, "second").await;
    feed_until(&mut feed, Duration::from_secs(1), "notification", |s| {
        s.seq > seen
    })
    .await;
    other.close().await;
    store.close().await;
}

/// Closing or dropping a store ends its listening task and connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_or_dropping_a_store_stops_its_feed() {
    let db = Database::create().await;
    let closed = db.open().await;
    assert_eq!(db.feed_backends().await, 1);
    closed.close().await;
    wait_for_no_feed(&db).await;

    let dropped = db.open().await;
    let clone = dropped.clone();
    assert_eq!(db.feed_backends().await, 1);
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(db.feed_backends().await, 1, "a clone keeps the feed");
    drop(clone);
    wait_for_no_feed(&db).await;
}

async fn wait_for_no_feed(db: &Database) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while db.feed_backends().await > 0 {
        assert!(
            Instant::now() < deadline,
            "the feed's connection outlived its store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `clavis store copy` between PostgreSQL databases and across backends,
/// both ways: every row of every table, every column.
#[tokio::test]
async fn a_copy_keeps_every_row_between_databases_and_across_backends() {
    let (a, b) = (Database::create().await, Database::create().await);
    let (pg_a, pg_b) = (a.open().await, b.open().await);
    suite::a_copy_keeps_every_row_of_every_table(&pg_a, &pg_b).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("from.db").display());
    let sqlite = clavis_store::sqlite::SqliteStore::open(&sqlite_url)
        .await
        .expect("open");
    let c = Database::create().await;
    let pg_c = c.open().await;
    suite::a_copy_keeps_every_row_of_every_table(&sqlite, &pg_c).await;

    let d = Database::create().await;
    let pg_d = d.open().await;
    let back_url = format!("sqlite://{}", dir.path().join("back.db").display());
    let back = clavis_store::sqlite::SqliteStore::open(&back_url)
        .await
        .expect("open");
    suite::a_copy_keeps_every_row_of_every_table(&pg_d, &back).await;
    for store in [pg_a, pg_b, pg_c, pg_d] {
        store.close().await;
    }
}
