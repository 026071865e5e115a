//! The directory: tenants, applications and role grants as the token path
//! sees them, cached in memory so a known client costs no database read.
//!
//! Every change goes through [`Directory::commit`], which writes it (with its
//! audit events) and then drops the cache. A generation counter stops a read
//! that raced a change from caching what it read before the change.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use clavis_store::{
    Application, AuditEvent, FeedState, Mutation, RoleAssignment, Store, StoreError, Tenant,
};
use uuid::Uuid;

/// A client as the token endpoint needs it: the application (with its
/// credentials' hashes) and the roles granted to its service principal.
#[derive(Debug)]
pub struct Client {
    pub app: Application,
    pub grants: Vec<RoleAssignment>,
}

/// Known clients by (tenant, appId).
type ClientCache = HashMap<(Uuid, Uuid), Arc<Client>>;

/// Cached view of the store for the hot path.
#[derive(Debug)]
pub struct Directory {
    store: Arc<dyn Store>,
    /// Changes made by other processes sharing the store (see [`Directory::follow`]).
    feed: tokio::sync::watch::Receiver<FeedState>,
    generation: AtomicU64,
    tenants: RwLock<Arc<Vec<Arc<Tenant>>>>,
    /// Clients by (tenant, appId).
    clients: RwLock<ClientCache>,
    /// AppIds that are not registered, so an unknown client costs what a
    /// known one does (no database round-trip, no timing difference) until
    /// the next change. Kept apart from `clients` with its own bound: a
    /// flood of random client ids fills and clears only this set, never
    /// pushing real clients out of the cache.
    unknown: RwLock<HashSet<(Uuid, Uuid)>>,
    /// Most unknown appIds remembered; past it the set starts over.
    unknown_limit: AtomicUsize,
    resources: RwLock<HashMap<(Uuid, String), Arc<Application>>>,
}

/// Most cached clients and resources kept; past it the cache starts over
/// (a crude bound that keeps memory flat under a flood of distinct ids).
const CACHE_LIMIT: usize = 100_000;

impl Directory {
    /// A directory over `store`, with the tenant list loaded.
    pub async fn load(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let tenants = store.tenants().await?;
        Ok(Self {
            feed: store.change_feed(),
            store,
            generation: AtomicU64::new(0),
            tenants: RwLock::new(Arc::new(tenants.into_iter().map(Arc::new).collect())),
            clients: RwLock::new(HashMap::new()),
            unknown: RwLock::new(HashSet::new()),
            unknown_limit: AtomicUsize::new(CACHE_LIMIT),
            resources: RwLock::new(HashMap::new()),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Write `mutations` with their audit events in one transaction, then
    /// forget everything cached.
    pub async fn commit(
        &self,
        mutations: &[Mutation],
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let result = self.store.commit(mutations, audit).await;
        if result.is_ok() {
            let touches_tenants = mutations
                .iter()
                .any(|m| matches!(m, Mutation::InsertTenant(_) | Mutation::UpdateTenant(_)));
            if touches_tenants {
                if let Err(e) = self.reload_tenants().await {
                    // The change is committed; the next reload will see it.
                    tracing::error!(error = %e, "could not reload tenants after a change");
                }
            }
            self.invalidate();
        }
        result
    }

    /// Whether caches may be trusted now: false while the change feed may
    /// be missing other processes' changes. Then every lookup reads the
    /// store, which answers (or fails with `Unavailable`: never a guess).
    fn trusted(&self) -> bool {
        self.feed.borrow().live
    }

    /// Drop caches whenever the store's change feed moves (another node
    /// committed, or the feed reconnected). Returns when the store is gone.
    pub async fn follow(state: std::sync::Weak<crate::app::AppState>) {
        let Some(mut feed) = state.upgrade().map(|s| s.directory.store.change_feed()) else {
            return;
        };
        while feed.changed().await.is_ok() {
            let Some(state) = state.upgrade() else { return };
            state.directory.invalidate();
            if let Err(e) = state.directory.reload_tenants().await {
                tracing::warn!(error = %e, "could not reload tenants after a change");
            }
            state.keyring.invalidate();
        }
    }

    /// A number that moves whenever cached data may have gone stale (a
    /// commit here, a change on another node); `None` while the change feed
    /// is not live, when nothing derived from the store should be kept.
    pub fn generation(&self) -> Option<u64> {
        self.trusted()
            .then(|| self.generation.load(Ordering::SeqCst))
    }

    /// Drop every cached client and resource.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        write(&self.clients).clear();
        write(&self.unknown).clear();
        write(&self.resources).clear();
    }

    /// Read the tenant list again (another node may have added one).
    pub async fn reload_tenants(&self) -> Result<(), StoreError> {
        let tenants = self.store.tenants().await?;
        *write(&self.tenants) = Arc::new(tenants.into_iter().map(Arc::new).collect());
        Ok(())
    }

    /// The tenant named in a URL: its GUID or its name (case-insensitive).
    pub fn tenant(&self, segment: &str) -> Option<Arc<Tenant>> {
        // Searched under the read lock: no clone of the list on the hot path.
        let tenants = read(&self.tenants);
        match Uuid::try_parse(segment) {
            Ok(id) => tenants.iter().find(|t| t.id == id).cloned(),
            Err(_) => tenants
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(segment))
                .cloned(),
        }
    }

    /// The tenant with this id.
    pub fn tenant_by_id(&self, id: Uuid) -> Option<Arc<Tenant>> {
        read(&self.tenants).iter().find(|t| t.id == id).cloned()
    }

    /// A client application by its client id, with its role grants.
    pub async fn client(
        &self,
        tenant: Uuid,
        app_id: Uuid,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        let key = (tenant, app_id);
        if self.trusted() {
            if let Some(hit) = read(&self.clients).get(&key) {
                return Ok(Some(hit.clone()));
            }
            if read(&self.unknown).contains(&key) {
                return Ok(None);
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(app) = self.store.application_by_app_id(tenant, app_id).await? else {
            self.remember_unknown(key, generation);
            return Ok(None);
        };
        let mut grants = self
            .store
            .role_assignments_of(tenant, app.service_principal_id)
            .await?;
        grants.shrink_to_fit();
        let client = Arc::new(Client {
            app: compact(app),
            grants,
        });
        self.remember(&self.clients, key, client.clone(), generation);
        Ok(Some(client))
    }

    /// A resource application by identifier URI (any ASCII case) or by appId.
    pub async fn resource(
        &self,
        tenant: Uuid,
        key: &str,
    ) -> Result<Option<Arc<Application>>, StoreError> {
        // One cache entry per resource whatever the spelling: an appId in
        // any GUID form, a URI in any case. Misses are never cached.
        let app_id = Uuid::try_parse(key).ok();
        let cache_key = match app_id {
            Some(id) => (tenant, id.to_string()),
            None => (tenant, key.to_ascii_lowercase()),
        };
        let trusted = self.trusted();
        if let Some(hit) = read(&self.resources).get(&cache_key).filter(|_| trusted) {
            return Ok(Some(hit.clone()));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        // Identifier URIs always have a scheme, so a GUID is never one.
        let found = match app_id {
            Some(id) => self.store.application_by_app_id(tenant, id).await?,
            None => {
                self.store
                    .application_by_identifier_uri(tenant, key)
                    .await?
            }
        };
        let Some(app) = found else { return Ok(None) };
        let app = Arc::new(compact(app));
        self.remember(&self.resources, cache_key, app.clone(), generation);
        Ok(Some(app))
    }

    fn remember<K: std::hash::Hash + Eq, V>(
        &self,
        map: &RwLock<HashMap<K, V>>,
        key: K,
        value: V,
        generation: u64,
    ) {
        if !self.trusted() {
            return;
        }
        let mut map = write(map);
        // Checked under the write lock: `invalidate` bumps the generation
        // before it takes the lock, so a stale read is never cached.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(key, value);
    }

    /// Tests: remember at most `limit` unknown appIds.
    #[doc(hidden)]
    pub fn set_unknown_limit(&self, limit: usize) {
        self.unknown_limit.store(limit.max(1), Ordering::Relaxed);
    }

    /// Tests: whether the client is in the cache now.
    #[doc(hidden)]
    pub fn caches_client(&self, tenant: Uuid, app_id: Uuid) -> bool {
        read(&self.clients).contains_key(&(tenant, app_id))
    }

    /// Remember that `key` is not registered (see `unknown`).
    fn remember_unknown(&self, key: (Uuid, Uuid), generation: u64) {
        if !self.trusted() {
            return;
        }
        let mut set = write(&self.unknown);
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if set.len() >= self.unknown_limit.load(Ordering::Relaxed) {
            set.clear();
        }
        set.insert(key);
    }
}

/// An application as the cache keeps it: without the spare capacity its
/// lists were built with (a cached client with one secret would otherwise
/// hold room for four, ~0.4 KB per client).
fn compact(mut app: Application) -> Application {
    app.identifier_uris.shrink_to_fit();
    app.app_roles.shrink_to_fit();
    app.owners.shrink_to_fit();
    app.password_credentials.shrink_to_fit();
    app
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}
