//! Each tenant's signing keys: the current key (generated on first use,
//! sealed under the KEK and stored with its certificate), the JWKS that
//! publishes it with `x5c`/`x5t`, the next
//! key (pending) and every key whose tokens may still be alive
//! ([`lifecycle`](super::lifecycle) says which), and scheduled rotation.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use clavis_store::{
    AuditEvent, AuditResult, Mutation, SigningKeyRecord, Store, StoreError, Tenant,
};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::certificate;
use super::lifecycle::{classify, created_after, due_successor, next_change, KeyState, Schedule};
use super::{Algorithm, KeyProvider, ProviderError, SigningKey, VerifyingKey};
use crate::clock::Clock;

/// Why a tenant's keys are not usable.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored signing key {kid} cannot be opened: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error("the key provider failed: {0}")]
    Provider(#[from] ProviderError),
    #[error("tenant {0} names an unsupported signing algorithm")]
    Algorithm(String),
    #[error("signing key generation failed")]
    Generate,
}

impl KeyringError {
    /// True when the store or the key provider cannot serve now: the
    /// caller answers 503 (fail closed) rather than 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            KeyringError::Store(StoreError::Unavailable(_))
                | KeyringError::Provider(_)
                | KeyringError::Corrupt { .. }
        )
    }
}

/// One tenant's usable keys, built once and shared.
#[derive(Debug)]
pub struct TenantKeys {
    /// Signs every new token of the tenant; `Err` (the reason, logged) when
    /// the key provider cannot open it: issuance then fails closed (503)
    /// while verification goes on with the public keys.
    pub current: Result<SigningKey, String>,
    /// The current key's algorithm (a tenant's change of algorithm makes
    /// this view stale).
    pub alg: Algorithm,
    /// Published keys by kid (pending, current and still-valid older ones).
    pub verifiers: HashMap<String, VerifyingKey>,
    /// The serialized JWKS document.
    pub jwks: Arc<str>,
    /// Kids removed in an emergency (their tokens are inactive).
    pub revoked: HashSet<String>,
    /// When this view goes stale by itself (a pending key activates or a
    /// retired key leaves the JWKS); `None`: only a change makes it stale.
    pub valid_until: Option<OffsetDateTime>,
}

impl TenantKeys {
    /// The key that signs new tokens, or why there is none usable.
    pub fn signer(&self) -> Result<&SigningKey, KeyringError> {
        self.current
            .as_ref()
            .map_err(|reason| KeyringError::Provider(ProviderError::Unavailable(reason.clone())))
    }
}

/// Signing keys of every tenant, cached after first use.
#[derive(Debug)]
pub struct Keyring {
    store: Arc<dyn Store>,
    provider: Arc<KeyProvider>,
    clock: Arc<dyn Clock>,
    /// A key stays published this long after a newer key replaced it: the
    /// longest token lifetime plus clock-skew margin.
    retain_for: Duration,
    schedule: Schedule,
    cache: RwLock<HashMap<Uuid, Arc<TenantKeys>>>,
    generate: tokio::sync::Mutex<()>,
}

impl Keyring {
    pub fn new(
        store: Arc<dyn Store>,
        provider: Arc<KeyProvider>,
        clock: Arc<dyn Clock>,
        token_lifetime: Duration,
    ) -> Self {
        Self {
            store,
            provider,
            clock,
            retain_for: token_lifetime + Duration::minutes(10),
            schedule: Schedule::default(),
            cache: RwLock::new(HashMap::new()),
            generate: tokio::sync::Mutex::new(()),
        }
    }

    /// Rotate on `schedule` (see [`Keyring::rotate_due`]).
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// The rotation settings.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// How long a retired key stays published: the token lifetime plus skew.
    pub fn retain_for(&self) -> Duration {
        self.retain_for
    }

    /// The tenant's keys; generates and stores a key that signs at once (in
    /// the tenant's algorithm) if none is current or the algorithm changed.
    pub async fn for_tenant(&self, tenant: &Tenant) -> Result<Arc<TenantKeys>, KeyringError> {
        if let Some(keys) = self.cached(tenant) {
            return Ok(keys);
        }
        let _guard = self.generate.lock().await;
        if let Some(keys) = self.cached(tenant) {
            return Ok(keys);
        }
        let alg = Algorithm::parse(&tenant.signing_alg)
            .ok_or_else(|| KeyringError::Algorithm(tenant.signing_alg.clone()))?;
        let mut records = self.store.signing_keys(tenant.id).await?;
        let now = self.clock.now();
        let current_alg = classify(&records, now, self.retain_for)
            .into_iter()
            .find(|s| s.state == KeyState::Current)
            .map(|s| s.record.alg.clone());
        if current_alg.as_deref() != Some(alg.as_str()) {
            match self.create_key(tenant, alg, now, &records).await {
                Ok(record) => records.insert(0, record),
                // Another node made the tenant's key first: use theirs.
                Err(KeyringError::Store(StoreError::Conflict(_))) => {
                    records = self.store.signing_keys(tenant.id).await?;
                }
                Err(e) => return Err(e),
            }
        }
        if self.certify(tenant, &records, now).await? {
            records = self.store.signing_keys(tenant.id).await?;
        }
        let keys = Arc::new(self.assemble(&records)?);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.id, keys.clone());
        Ok(keys)
    }

    /// Forget cached keys (after a tenant's algorithm changed).
    pub fn invalidate(&self) {
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn cached(&self, tenant: &Tenant) -> Option<Arc<TenantKeys>> {
        let now = self.clock.now();
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&tenant.id)
            .filter(|k| k.alg.as_str() == tenant.signing_alg)
            .filter(|k| k.valid_until.is_none_or(|t| now < t))
            .cloned()
    }

    /// A fresh key for `tenant`, sealed under the KEK, that signs from
    /// `activates_at` on, made after every key in `existing`. Not stored yet: commit it with
    /// `Mutation::InsertSigningKeyIfCurrent` (so racing nodes agree).
    pub fn new_record(
        &self,
        tenant: &Tenant,
        alg: Algorithm,
        activates_at: OffsetDateTime,
        existing: &[SigningKeyRecord],
    ) -> Result<SigningKeyRecord, KeyringError> {
        let (key, sealed) = self.provider.generate_signing_key(alg)?;
        let created_at = created_after(existing, self.clock.now());
        let key = Arc::new(key);
        let certificate = make_certificate(key.clone(), created_at)?;
        Ok(SigningKeyRecord {
            kid: key.kid().to_owned(),
            tenant_id: tenant.id,
            alg: alg.as_str().to_owned(),
            public_jwk: key.public_jwk().to_string(),
            encrypted_private_key: sealed.blob,
            kek_id: sealed.kek_id,
            created_at,
            activates_at,
            revoked_at: None,
            certificate: Some(certificate),
        })
    }

    /// Make and store the certificate of every published key that has none
    /// (made before keys had certificates), once for the whole cluster: the
    /// first node to store one wins and the others publish it. True if it
    /// stored anything (the caller reads the keys again). A key the
    /// provider cannot open now stays published without one (logged; the
    /// view is retried like an unopenable current key).
    async fn certify(
        &self,
        tenant: &Tenant,
        records: &[SigningKeyRecord],
        now: OffsetDateTime,
    ) -> Result<bool, KeyringError> {
        let mut stored = false;
        for status in classify(records, now, self.retain_for) {
            let record = status.record;
            if !status.published || record.certificate.is_some() {
                continue;
            }
            let made = self
                .provider
                .load_signing_key(record)
                .map_err(KeyringError::from)
                .and_then(|key| make_certificate(Arc::new(key), record.created_at));
            let certificate = match made {
                Ok(der) => der,
                Err(e) => {
                    tracing::warn!(kid = %record.kid, error = %e,
                        "no certificate could be made for a signing key; it is published without x5c until one can");
                    continue;
                }
            };
            let set = Mutation::SetSigningKeyCertificate {
                tenant_id: tenant.id,
                kid: record.kid.clone(),
                certificate,
            };
            match self.store.commit(&[set], &[]).await {
                Ok(()) => stored = true,
                // Revoked or gone meanwhile: the next read shows it.
                Err(StoreError::NotFound(_)) => stored = true,
                Err(e) => return Err(e.into()),
            }
            tracing::info!(tenant = %tenant.id, kid = %record.kid,
                "made the certificate of a signing key made before keys had one");
        }
        Ok(stored)
    }

    /// Publish the tenant's next key if the schedule says it is time (see
    /// [`due_successor`]); the kid of the key made, if any. When several
    /// nodes try at once, one key is made: the others lose the
    /// compare-and-set and answer `None`.
    pub async fn rotate_due(&self, tenant: &Tenant) -> Result<Option<String>, KeyringError> {
        let _guard = self.generate.lock().await;
        let records = self.store.signing_keys(tenant.id).await?;
        let now = self.clock.now();
        let statuses = classify(&records, now, self.retain_for);
        let Some(activates_at) = due_successor(&statuses, now, self.schedule) else {
            return Ok(None);
        };
        let alg = Algorithm::parse(&tenant.signing_alg)
            .ok_or_else(|| KeyringError::Algorithm(tenant.signing_alg.clone()))?;
        match self.create_key(tenant, alg, activates_at, &records).await {
            Ok(record) => {
                self.invalidate();
                Ok(Some(record.kid))
            }
            Err(KeyringError::Store(StoreError::Conflict(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_key(
        &self,
        tenant: &Tenant,
        alg: Algorithm,
        activates_at: OffsetDateTime,
        existing: &[SigningKeyRecord],
    ) -> Result<SigningKeyRecord, KeyringError> {
        let record = self.new_record(tenant, alg, activates_at, existing)?;
        // The compare-and-set names the newest key stored, whatever its state.
        let newest = existing.first().map(|r| r.kid.clone());
        let now = record.created_at;
        let audit = AuditEvent {
            id: Uuid::new_v4(),
            tenant_id: tenant.id,
            at: now,
            actor_app_id: None,
            actor_service_principal_id: None,
            actor_display_name: "Clavis".into(),
            actor_key_id: None,
            client_ip: None,
            activity: "Add signing key".into(),
            category: "KeyManagement".into(),
            operation_type: "Add".into(),
            target_type: "SigningKey".into(),
            target_id: record.kid.clone(),
            target_display_name: alg.as_str().into(),
            target_key_id: None,
            result: AuditResult::Success,
            result_reason: String::new(),
            correlation_id: Uuid::new_v4(),
            client_request_id: None,
        };
        self.store
            .commit(
                &[Mutation::InsertSigningKeyIfCurrent {
                    key: record.clone(),
                    current: newest,
                }],
                &[audit],
            )
            .await?;
        tracing::info!(tenant = %tenant.id, kid = %record.kid, alg = alg.as_str(),
            activates_at = %record.activates_at, "generated signing key");
        Ok(record)
    }

    /// Open the current key and publish every key still needed: pending
    /// ones, the current one, and retired ones whose tokens may be alive.
    fn assemble(&self, records: &[SigningKeyRecord]) -> Result<TenantKeys, KeyringError> {
        let now = self.clock.now();
        let statuses = classify(records, now, self.retain_for);
        let newest = statuses
            .iter()
            .find(|s| s.state == KeyState::Current)
            .map(|s| s.record)
            .ok_or(KeyringError::Generate)?;
        let corrupt = |reason: String| KeyringError::Corrupt {
            kid: newest.kid.clone(),
            reason,
        };
        let alg =
            Algorithm::parse(&newest.alg).ok_or_else(|| corrupt("unknown algorithm".into()))?;
        let current = self
            .provider
            .load_signing_key(newest)
            .map(|key| match &newest.certificate {
                Some(der) => key.with_certificate(der),
                None => key,
            })
            .map_err(|e| {
                let reason = format!("signing key {} cannot be opened: {e}", newest.kid);
                tracing::error!(kid = %newest.kid, error = %e,
                    "the key provider cannot open the current signing key; tokens are refused (503) until it can");
                reason
            });
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        let mut revoked = HashSet::new();
        let mut uncertified = false;
        for status in &statuses {
            let record = status.record;
            if status.state == KeyState::Revoked {
                revoked.insert(record.kid.clone());
            }
            if !status.published {
                continue;
            }
            let Ok(mut jwk) = serde_json::from_str::<Value>(&record.public_jwk) else {
                tracing::error!(kid = %record.kid, "stored public JWK is not JSON; not published");
                continue;
            };
            match &record.certificate {
                Some(der) => certificate::publish(&mut jwk, der),
                None => uncertified = true,
            }
            if let Ok(verifier) = VerifyingKey::from_jwk(&jwk) {
                verifiers.insert(record.kid.clone(), verifier);
                published.push(jwk);
            }
        }
        let jwks = json!({ "keys": published }).to_string();
        // A key the provider could not open is tried again a second later
        // (a provider may come back), not cached until the next change; a
        // published key still without a certificate, a minute later.
        let mut valid_until = next_change(&statuses, now);
        let retry = if current.is_err() {
            Some(Duration::seconds(1))
        } else {
            uncertified.then(|| Duration::minutes(1))
        };
        if let Some(retry) = retry.map(|after| now + after) {
            valid_until = Some(valid_until.map_or(retry, |t| t.min(retry)));
        }
        Ok(TenantKeys {
            current,
            alg,
            verifiers,
            jwks: jwks.into(),
            revoked,
            valid_until,
        })
    }
}

/// The self-signed certificate of a new key, valid from its creation.
fn make_certificate(
    key: Arc<SigningKey>,
    created_at: OffsetDateTime,
) -> Result<Vec<u8>, KeyringError> {
    certificate::self_signed(key, created_at)
        .map_err(|e| KeyringError::Provider(ProviderError::Unavailable(e.to_string())))
}
