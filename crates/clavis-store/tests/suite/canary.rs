//! Canary: after storing a secret hash and a wrapped private key with known
//! byte patterns, no error text, `Debug` output or log line shows them.

use std::error::Error as _;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use clavis_store::{Mutation, Store, StoreError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use super::fixtures::*;

const HASH: [u8; 4] = [0xc1, 0xa5, 0x5e, 0xc7];
const KEY: [u8; 4] = [0xd3, 0xad, 0xbe, 0xef];

/// The ways the patterns could be spelled if they leaked.
fn spellings(bytes: [u8; 4]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let decimal = bytes.map(|b| b.to_string()).join(", ");
    vec![hex, decimal]
}

fn assert_clean(what: &str, text: &str) {
    let text = text.to_lowercase().replace(['\n', ' '], "");
    for bytes in [HASH, KEY] {
        for spelling in spellings(bytes) {
            assert!(
                !text.contains(&spelling.replace(' ', "")),
                "{what} leaks {spelling}"
            );
        }
    }
}

/// Display, Debug and the whole source chain of an error.
fn error_texts(err: &StoreError) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = err.source();
    while let Some(inner) = source {
        let _ = write!(text, " {inner} {inner:?}");
        source = inner.source();
    }
    text
}

pub async fn secrets_never_leak(store: &dyn Store) {
    let logs = capture_logs();
    let tenant = given_tenant(store, "default").await;
    let mut secret = credential(0, 0);
    secret.secret_hash = std::array::from_fn(|i| HASH[i % 4]);
    let mut holder = app(&tenant, "holder");
    holder.password_credentials = vec![secret.clone()];
    let mut key = signing_key(&tenant, "k1", 0);
    key.encrypted_private_key = KEY.repeat(8);
    let insert = Mutation::InsertApplication(holder.clone());
    apply(
        store,
        vec![insert.clone(), Mutation::InsertSigningKey(key.clone())],
    )
    .await;

    let read = store.application(tenant.id, holder.id).await.expect("read");
    assert_eq!(
        read.as_ref().map(|a| a.password_credentials[0].secret_hash),
        Some(secret.secret_hash)
    );
    assert_clean("Debug of a read application", &format!("{read:?}"));
    assert_clean("Debug of a mutation", &format!("{insert:?}"));
    let keys = store.signing_keys(tenant.id).await.expect("read");
    assert_eq!(keys[0].encrypted_private_key, key.encrypted_private_key);
    assert_clean("Debug of signing keys", &format!("{keys:?}"));

    let mut same_hash = secret.clone();
    same_hash.key_id = uuid::Uuid::new_v4();
    let add = |credential, application_id| Mutation::AddPassword {
        tenant_id: tenant.id,
        application_id,
        credential,
    };
    let failures = [
        vec![add(same_hash.clone(), holder.id)],
        vec![add(secret.clone(), holder.id)],
        vec![add(same_hash, uuid::Uuid::new_v4())],
        vec![insert],
        vec![Mutation::InsertSigningKey(key)],
    ];
    for mutations in failures {
        let err = store.commit(&mutations, &[]).await.expect_err("must fail");
        assert_clean("an error", &error_texts(&err));
    }

    let captured = logs.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        captured.contains("password_credentials"),
        "the capture saw the writes"
    );
    assert_clean("the logs", &captured);
}

/// Install (once per test binary) a subscriber that keeps every event and
/// span field as text, at every level.
fn capture_logs() -> Arc<Mutex<String>> {
    static LOGS: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(String::new()));
        let capture = Capture(logs.clone());
        // Fails only if another subscriber is installed; then the check is
        // weaker but still runs on errors and Debug output.
        let _ = tracing::subscriber::set_global_default(capture);
        logs
    })
    .clone()
}

struct Capture(Arc<Mutex<String>>);

impl Visit for &Capture {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if let Ok(mut logs) = self.0.lock() {
            let _ = writeln!(logs, "{}={value:?}", field.name());
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        span.record(&mut &*self);
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        values.record(&mut &*self);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        event.record(&mut &*self);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
