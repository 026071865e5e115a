//! Runs the backend-independent suite (`tests/suite/`) against SQLite, one
//! fresh database file per test, plus what only SQLite has: files, URLs,
//! reopening.

mod suite;

use clavis_store::sqlite::SqliteStore;
use clavis_store::{connect, Mutation, Store, StoreError};
use tempfile::TempDir;

/// A fresh SQLite database in its own directory (removed on drop).
struct Fresh {
    store: SqliteStore,
    url: String,
    _dir: TempDir,
}

async fn fresh() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("clavis.db").display());
    let store = SqliteStore::open(&url).await.expect("open");
    Fresh {
        store,
        url,
        _dir: dir,
    }
}

/// One `#[tokio::test]` per suite function, each on its own database.
macro_rules! on_sqlite {
    ($($name:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let db = fresh().await;
            suite::$name(&db.store).await;
        }
    )+};
}

on_sqlite!(
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

#[tokio::test]
async fn reopening_a_file_keeps_its_data() {
    let db = fresh().await;
    let tenant = suite::fixtures::given_tenant(&db.store, "default").await;
    let app = suite::fixtures::given_app(&db.store, &tenant, "orders").await;
    db.store.close().await;
    assert!(matches!(
        db.store.ping().await,
        Err(StoreError::Unavailable(_))
    ));

    // Migrations run again and find nothing to do; twice at once is fine too.
    let again = SqliteStore::open(&db.url).await.expect("reopen");
    let beside = SqliteStore::open(&db.url).await.expect("second pool");
    assert_eq!(
        again.tenants().await.expect("read"),
        beside.tenants().await.expect("read")
    );
    let read = again.application(tenant.id, app.id).await.expect("read");
    assert_eq!(read.map(|a| a.display_name), Some("orders".to_owned()));
    let secret = again
        .server_secret_or_insert("k", b"one")
        .await
        .expect("insert");
    assert_eq!(
        beside
            .server_secret_or_insert("k", b"two")
            .await
            .expect("read"),
        secret
    );
}

#[tokio::test]
async fn connect_picks_the_backend_by_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    for url in [
        format!("sqlite://{}", path.display()),
        format!("sqlite:{}", path.display()),
        format!("SQLite:{}", path.display()),
    ] {
        let store = connect(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        store.ping().await.expect("ping");
    }
    assert!(path.exists(), "the file is created");

    let memory = connect("sqlite::memory:").await.expect("in memory");
    let tenant = suite::fixtures::given_tenant(memory.as_ref(), "default").await;
    assert_eq!(
        memory.tenants().await.expect("read"),
        vec![tenant_as_stored(tenant)]
    );
    let other = connect("sqlite::memory:").await.expect("in memory");
    assert!(
        other.tenants().await.expect("read").is_empty(),
        "each its own database"
    );

    // PostgreSQL URLs go to the PostgreSQL backend (tests/postgres.rs); an
    // unreachable one says so (after the 3 s connect timeout, hence both at
    // once) without repeating the URL.
    let (postgres, postgresql) = tokio::join!(
        connect("postgres://clavis:hunter2@127.0.0.1:1/clavis"),
        connect("PostgreSQL://clavis:hunter2@127.0.0.1:1/clavis"),
    );
    for result in [postgres, postgresql] {
        let Err(StoreError::Unavailable(err)) = result else {
            panic!("an unreachable PostgreSQL must be unavailable: {result:?}");
        };
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }

    for url in ["mysql://root:hunter2@localhost/clavis", "clavis.db", ""] {
        let Err(StoreError::Internal(err)) = connect(url).await else {
            panic!("{url:?} must be refused");
        };
        let text = err.to_string();
        assert!(
            text.contains("sqlite:") && text.contains("postgres://"),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
    }
    assert!(SqliteStore::open("sqlite://").await.is_err());
    assert!(SqliteStore::open("postgres://x").await.is_err());
}

#[tokio::test]
async fn an_unopenable_file_is_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}",
        dir.path().join("missing/dir/clavis.db").display()
    );
    let result = SqliteStore::open(&url).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_all_land() {
    let db = fresh().await;
    let tenant = suite::fixtures::given_tenant(&db.store, "default").await;
    let mut tasks = Vec::new();
    for n in 0..32 {
        let store = db.store.clone();
        let app = suite::fixtures::app(&tenant, &format!("app {n}"));
        tasks.push(tokio::spawn(async move {
            store.commit(&[Mutation::InsertApplication(app)], &[]).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("commit");
    }
    let filter = clavis_store::ApplicationFilter {
        limit: 100,
        ..Default::default()
    };
    let listed = db
        .store
        .list_applications(tenant.id, &filter)
        .await
        .expect("list");
    assert_eq!(listed.len(), 32);
}

fn tenant_as_stored(mut tenant: clavis_store::Tenant) -> clavis_store::Tenant {
    tenant.created_at = suite::fixtures::stored(tenant.created_at);
    tenant
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("private.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    suite::fixtures::given_tenant(&store, "default").await;
    for name in ["private.db", "private.db-wal", "private.db-shm"] {
        let file = dir.path().join(name);
        if file.exists() {
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{name} is readable by others: {mode:o}");
        }
    }
}

#[tokio::test]
async fn a_copy_between_two_sqlite_files_keeps_every_row() {
    let (from, to) = (fresh().await, fresh().await);
    suite::a_copy_keeps_every_row_of_every_table(&from.store, &to.store).await;
}
