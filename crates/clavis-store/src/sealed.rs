//! Values stored sealed under a key-encryption key — private signing keys,
//! server secrets (the secrets' hash key), webhook signing secrets — listed
//! together and replaced one by one, so the service can rewrap them under a
//! new key-encryption key while it runs. Each backend runs the SQL built
//! here with its own placeholders.

/// Which table a sealed value lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealedKind {
    /// `signing_keys.encrypted_private_key`, by `kid`.
    SigningKey,
    /// `server_secrets.value`, by `name`.
    ServerSecret,
    /// `webhook_subscriptions.sealed_secret`, by subscription id.
    WebhookSecret,
}

impl SealedKind {
    /// The name used in listings and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            SealedKind::SigningKey => "signingKey",
            SealedKind::ServerSecret => "serverSecret",
            SealedKind::WebhookSecret => "webhookSecret",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::SigningKey, Self::ServerSecret, Self::WebhookSecret]
            .into_iter()
            .find(|k| k.as_str() == text)
    }

    /// (table, key column, value column, kek-id column if the table has one).
    fn columns(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
    ) {
        match self {
            SealedKind::SigningKey => (
                "signing_keys",
                "kid",
                "encrypted_private_key",
                Some("kek_id"),
            ),
            SealedKind::ServerSecret => ("server_secrets", "name", "value", None),
            SealedKind::WebhookSecret => (
                "webhook_subscriptions",
                "id",
                "sealed_secret",
                Some("kek_id"),
            ),
        }
    }
}

/// One sealed value: where it is and its stored bytes (ciphertext only).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRecord {
    pub kind: SealedKind,
    /// The row's key: a kid, a server secret's name, a subscription id.
    pub id: String,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRecord")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("len", &self.sealed.len())
            .finish()
    }
}

/// Every sealed value: columns `kind`, `id`, `sealed`. `text` casts a key
/// column to text (`""` where it already is, `"::text"` for PostgreSQL's
/// uuid).
pub(crate) fn list_sql(text: &str) -> String {
    [
        SealedKind::SigningKey,
        SealedKind::ServerSecret,
        SealedKind::WebhookSecret,
    ]
    .iter()
    .map(|kind| {
        let (table, key, value, _) = kind.columns();
        format!(
            "SELECT '{}' AS kind, {key}{text} AS id, {value} AS sealed FROM {table}",
            kind.as_str()
        )
    })
    .collect::<Vec<_>>()
    .join(" UNION ALL ")
}

/// A listed row, back from its columns.
pub(crate) fn record(kind: &str, id: String, sealed: Vec<u8>) -> Option<SealedRecord> {
    Some(SealedRecord {
        kind: SealedKind::parse(kind)?,
        id,
        sealed,
    })
}

/// The compare-and-set that replaces one sealed value, and the statement
/// that tells a lost compare-and-set from a row that is gone. Parameters, in
/// order: the new value, the new kek id (only when `binds_kek_id`), the row
/// key, the old value; `p(n)` is the backend's placeholder for the n-th and
/// `text` casts the key column to text (`""` or `"::text"`).
pub(crate) struct ResealSql {
    pub update: String,
    pub binds_kek_id: bool,
    pub exists: String,
}

pub(crate) fn reseal_sql(kind: SealedKind, text: &str, p: impl Fn(usize) -> String) -> ResealSql {
    let (table, key, value, kek_id) = kind.columns();
    let (set_kek, next) = match kek_id {
        Some(column) => (format!(", {column} = {}", p(2)), 3),
        None => (String::new(), 2),
    };
    ResealSql {
        update: format!(
            "UPDATE {table} SET {value} = {}{set_kek} WHERE {key}{text} = {} AND {value} = {}",
            p(1),
            p(next),
            p(next + 1)
        ),
        binds_kek_id: kek_id.is_some(),
        exists: format!("SELECT 1 FROM {table} WHERE {key}{text} = {}", p(1)),
    }
}
