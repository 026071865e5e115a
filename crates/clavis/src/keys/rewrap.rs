//! `clavis keys rewrap`: every sealed value in the store moved to the key
//! provider's active key-encryption key while the server runs. Only the
//! wrapped data key of each record changes (see [`envelope`]); each record
//! is replaced by its own compare-and-set, committed with its audit event, so
//! a crash or a concurrent rewrap loses nothing and a rerun finishes the job.
//! Nothing in memory changes: tokens keep being signed and secrets checked
//! throughout.

use std::collections::BTreeMap;

use clavis_store::{AuditEvent, Mutation, SealedKind, SealedRecord, Store, StoreError};

use super::envelope;
use super::provider::{
    is_token_key, server_secret_context, signing_key_context, webhook_secret_context, KeyProvider,
};

/// What a rewrap did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewrapReport {
    /// Records moved to the active KEK by this run.
    pub rewrapped: usize,
    /// Records already under the active KEK.
    pub already_current: usize,
    /// Records that could not be opened (kind, id, reason); left unchanged.
    pub failed: Vec<(SealedKind, String, String)>,
    /// After the run: how many records each KEK id wraps.
    pub by_kek: BTreeMap<String, usize>,
}

/// The sealing context of a stored value (what [`envelope`] binds it to).
pub fn context(kind: SealedKind, id: &str) -> String {
    match kind {
        SealedKind::SigningKey => signing_key_context(id),
        SealedKind::ServerSecret => server_secret_context(id),
        SealedKind::WebhookSecret => webhook_secret_context(id),
    }
}

/// What protects a stored value: the id of the KEK that wraps its data
/// key, `pkcs11-token` for a signing key held by a token, or `unreadable`.
pub fn holder(stored: &[u8]) -> &str {
    if is_token_key(stored) {
        "pkcs11-token"
    } else {
        envelope::kek_id(stored).unwrap_or("unreadable")
    }
}

/// How many stored values each [`holder`] protects.
pub async fn count_by_holder(store: &dyn Store) -> Result<BTreeMap<String, usize>, StoreError> {
    let mut counts = BTreeMap::new();
    for record in store.sealed_records().await? {
        *counts.entry(holder(&record.sealed).to_owned()).or_default() += 1;
    }
    Ok(counts)
}

/// Rewrap every sealed value not under the active KEK. `audit` makes the
/// event committed with each record's change (kind, id, old KEK id).
pub async fn rewrap_all(
    store: &dyn Store,
    provider: &KeyProvider,
    audit: impl Fn(&SealedRecord, &str) -> AuditEvent,
) -> Result<RewrapReport, StoreError> {
    let mut report = RewrapReport::default();
    // A record changed by someone else (another node rewrapping) is read
    // again; three rounds settle any such race.
    for round in 0..3 {
        let mut lost = 0;
        for record in store.sealed_records().await? {
            let ctx = context(record.kind, &record.id);
            let old_kek = holder(&record.sealed);
            // A key held by a token has no data key: nothing to rewrap.
            let rewrapped = if is_token_key(&record.sealed) {
                Ok(None)
            } else {
                envelope::rewrap(provider, &ctx, &record.sealed)
            };
            match rewrapped {
                Ok(None) => {
                    if round == 0 {
                        report.already_current += 1;
                    }
                }
                Ok(Some(sealed)) => {
                    let event = audit(&record, old_kek);
                    let change = Mutation::ResealRecord {
                        kind: record.kind,
                        id: record.id.clone(),
                        old: record.sealed.clone(),
                        new: sealed.blob,
                        kek_id: sealed.kek_id,
                    };
                    match store.commit(&[change], &[event]).await {
                        Ok(()) => report.rewrapped += 1,
                        Err(StoreError::Conflict(_)) => lost += 1,
                        Err(StoreError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => {
                    if round == 0 {
                        tracing::error!(kind = record.kind.as_str(), id = %record.id,
                            kek_id = old_kek, error = %e, "sealed record cannot be rewrapped; left unchanged");
                        report
                            .failed
                            .push((record.kind, record.id.clone(), e.to_string()));
                    }
                }
            }
        }
        if lost == 0 {
            break;
        }
    }
    report.by_kek = count_by_holder(store).await?;
    tracing::info!(rewrapped = report.rewrapped, already_current = report.already_current,
        failed = report.failed.len(), active_kek = %provider.active_kek_id(), "rewrap finished");
    Ok(report)
}
