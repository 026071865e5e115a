//! Each tenant's signing keys: the current key (generated on first use,
//! sealed under the KEK and stored), and the JWKS that publishes it and every
//! key whose tokens may still be alive.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use clavis_store::{
    AuditEvent, AuditResult, Mutation, SigningKeyRecord, Store, StoreError, Tenant,
};
use serde_json::{json, Value};
use time::Duration;
use uuid::Uuid;

use super::{Algorithm, KeyEncryptionKey, SigningKey, VerifyingKey};
use crate::clock::Clock;

/// Why a tenant's keys are not usable.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored signing key {kid} cannot be opened: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error("tenant {0} names an unsupported signing algorithm")]
    Algorithm(String),
    #[error("signing key generation failed")]
    Generate,
}

impl KeyringError {
    /// True when the store could not be reached (retry later; not a bug).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, KeyringError::Store(StoreError::Unavailable(_)))
    }
}

/// One tenant's usable keys, built once and shared.
#[derive(Debug)]
pub struct TenantKeys {
    /// Signs every new token of the tenant.
    pub current: SigningKey,
    /// Published keys by kid (current and still-valid older ones).
    pub verifiers: HashMap<String, VerifyingKey>,
    /// The serialized JWKS document.
    pub jwks: Arc<str>,
}

/// Signing keys of every tenant, cached after first use.
#[derive(Debug)]
pub struct Keyring {
    store: Arc<dyn Store>,
    kek: Arc<KeyEncryptionKey>,
    clock: Arc<dyn Clock>,
    /// A key stays published this long after a newer key replaced it: the
    /// longest token lifetime plus clock-skew margin.
    retain_for: Duration,
    cache: RwLock<HashMap<Uuid, Arc<TenantKeys>>>,
    generate: tokio::sync::Mutex<()>,
}

impl Keyring {
    pub fn new(
        store: Arc<dyn Store>,
        kek: Arc<KeyEncryptionKey>,
        clock: Arc<dyn Clock>,
        token_lifetime: Duration,
    ) -> Self {
        Self {
            store,
            kek,
            clock,
            retain_for: token_lifetime + Duration::minutes(10),
            cache: RwLock::new(HashMap::new()),
            generate: tokio::sync::Mutex::new(()),
        }
    }

    /// The tenant's keys; generates and stores the first key (in the
    /// tenant's algorithm) if there is none yet.
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
        if records.first().map(|r| r.alg.as_str()) != Some(alg.as_str()) {
            let current = records.first().map(|r| r.kid.clone());
            match self.create_key(tenant, alg, current).await {
                Ok(record) => records.insert(0, record),
                // Another node made the tenant's key first: use theirs.
                Err(KeyringError::Store(StoreError::Conflict(_))) => {
                    records = self.store.signing_keys(tenant.id).await?;
                }
                Err(e) => return Err(e),
            }
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
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&tenant.id)
            .filter(|k| k.current.alg().as_str() == tenant.signing_alg)
            .cloned()
    }

    async fn create_key(
        &self,
        tenant: &Tenant,
        alg: Algorithm,
        current: Option<String>,
    ) -> Result<SigningKeyRecord, KeyringError> {
        let (key, pkcs8) = SigningKey::generate(alg).map_err(|_| KeyringError::Generate)?;
        let now = self.clock.now();
        let record = SigningKeyRecord {
            kid: key.kid().to_owned(),
            tenant_id: tenant.id,
            alg: alg.as_str().to_owned(),
            public_jwk: key.public_jwk().to_string(),
            encrypted_private_key: self.kek.seal(&seal_context(key.kid()), &pkcs8),
            kek_id: self.kek.id().to_owned(),
            created_at: now,
        };
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
        };
        self.store
            .commit(
                &[Mutation::InsertSigningKeyIfCurrent {
                    key: record.clone(),
                    current,
                }],
                &[audit],
            )
            .await?;
        tracing::info!(tenant = %tenant.id, kid = %record.kid, alg = alg.as_str(), "generated signing key");
        Ok(record)
    }

    /// Open the newest record as the current key and publish every key still
    /// needed to verify live tokens.
    fn assemble(&self, records: &[SigningKeyRecord]) -> Result<TenantKeys, KeyringError> {
        let newest = records.first().ok_or(KeyringError::Generate)?;
        let corrupt = |reason: String| KeyringError::Corrupt {
            kid: newest.kid.clone(),
            reason,
        };
        let alg =
            Algorithm::parse(&newest.alg).ok_or_else(|| corrupt("unknown algorithm".into()))?;
        let pkcs8 = self
            .kek
            .open(&seal_context(&newest.kid), &newest.encrypted_private_key)
            .map_err(|e| corrupt(e.to_string()))?;
        let current = SigningKey::from_pkcs8(alg, &pkcs8).map_err(|e| corrupt(e.to_string()))?;
        let now = self.clock.now();
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        // records are newest first: a key was replaced when its successor was made.
        let mut replaced_at = None;
        for record in records {
            let still_needed = replaced_at.is_none_or(|t| now - t < self.retain_for);
            replaced_at = Some(record.created_at);
            if !still_needed {
                continue;
            }
            let Ok(jwk) = serde_json::from_str::<Value>(&record.public_jwk) else {
                tracing::error!(kid = %record.kid, "stored public JWK is not JSON; not published");
                continue;
            };
            if let Ok(verifier) = VerifyingKey::from_jwk(&jwk) {
                verifiers.insert(record.kid.clone(), verifier);
                published.push(jwk);
            }
        }
        let jwks = json!({ "keys": published }).to_string();
        Ok(TenantKeys {
            current,
            verifiers,
            jwks: jwks.into(),
        })
    }
}

fn seal_context(kid: &str) -> String {
    format!("signing-key:{kid}")
}
