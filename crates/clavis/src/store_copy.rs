//! `clavis store copy --from URL --to URL`: move a whole installation from
//! one store to another (typically the embedded SQLite default to
//! PostgreSQL) with nothing lost — tenants, applications with their owners
//! and secrets' hashes, role grants, sealed signing keys, the sealed
//! secret-hash key and the audit log. Sealed values move as they are: the
//! destination's nodes must use the same key-encryption key (`kek.key`).

use clavis_store::{
    ApplicationFilter, AuditEvent, AuditQuery, Mutation, Store, StoreError, Tenant,
};
use uuid::Uuid;

/// Server secrets Clavis keeps (sealed).
const SERVER_SECRETS: [&str; 1] = ["secret-hash-key"];
const PAGE: u32 = 500;

/// What was copied, per kind of record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub tenants: usize,
    pub applications: usize,
    pub credentials: usize,
    pub role_assignments: usize,
    pub signing_keys: usize,
    pub audit_events: usize,
    pub server_secrets: usize,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tenants, {} applications, {} client secrets (hashes), {} role grants, {} signing keys, {} audit events, {} server secrets",
            self.tenants,
            self.applications,
            self.credentials,
            self.role_assignments,
            self.signing_keys,
            self.audit_events,
            self.server_secrets
        )
    }
}

/// Copy everything in `from` into the empty store `to`, then check that
/// `to` holds the same counts.
pub async fn copy(from: &dyn Store, to: &dyn Store) -> anyhow::Result<Copied> {
    if !to.tenants().await?.is_empty() {
        anyhow::bail!("the destination store is not empty: copy into a new, empty database");
    }
    let mut copied = Copied::default();
    for name in SERVER_SECRETS {
        if let Some(value) = from.server_secret(name).await? {
            let stored = to.server_secret_or_insert(name, &value).await?;
            anyhow::ensure!(
                stored == value,
                "the destination already had a different {name}"
            );
            copied.server_secrets += 1;
        }
    }
    for tenant in from.tenants().await? {
        copy_tenant(from, to, &tenant, &mut copied).await?;
        copied.tenants += 1;
    }
    Ok(copied)
}

async fn copy_tenant(
    from: &dyn Store,
    to: &dyn Store,
    tenant: &Tenant,
    copied: &mut Copied,
) -> anyhow::Result<()> {
    let mut mutations = vec![Mutation::InsertTenant(tenant.clone())];
    let mut apps = Vec::new();
    let mut after = None;
    loop {
        let filter = ApplicationFilter {
            after,
            limit: PAGE,
            ..Default::default()
        };
        let page = from.list_applications(tenant.id, &filter).await?;
        after = page.last().map(|a| a.id);
        let done = page.len() < PAGE as usize;
        apps.extend(page);
        if done {
            break;
        }
    }
    let mut grants = Vec::new();
    for app in &apps {
        grants.extend(
            from.role_assignments_to(tenant.id, app.service_principal_id)
                .await?,
        );
    }
    let mut keys = from.signing_keys(tenant.id).await?;
    keys.reverse(); // oldest first, so the newest stays the current key
    copied.applications += apps.len();
    copied.credentials += apps
        .iter()
        .map(|a| a.password_credentials.len())
        .sum::<usize>();
    copied.role_assignments += grants.len();
    copied.signing_keys += keys.len();
    mutations.extend(apps.into_iter().map(Mutation::InsertApplication));
    mutations.extend(grants.into_iter().map(Mutation::InsertRoleAssignment));
    mutations.extend(keys.into_iter().map(Mutation::InsertSigningKey));
    to.commit(&mutations, &[]).await?;

    // The audit log, oldest first, in batches (events keep their ids and times).
    let mut events: Vec<AuditEvent> = Vec::new();
    let mut before = None;
    loop {
        let query = AuditQuery {
            tenant_id: tenant.id,
            since: None,
            until: None,
            activity: None,
            target_id: None,
            actor_app_id: None,
            before,
            limit: PAGE,
        };
        let page = from.audit_events(&query).await?;
        before = page.last().map(|e| (e.at, e.id));
        let done = page.len() < PAGE as usize;
        events.extend(page);
        if done {
            break;
        }
    }
    events.reverse();
    for batch in events.chunks(PAGE as usize) {
        to.record_audit(batch).await?;
    }
    copied.audit_events += events.len();
    let copy_event = crate::audit::Actor::system().succeeded(
        tenant.id,
        time::OffsetDateTime::now_utc(),
        crate::audit::Action {
            activity: "Copy store",
            category: "Migration",
            operation: "Add",
            target_type: "Tenant",
            target_id: tenant.id.to_string(),
            target_name: tenant.name.clone(),
            target_key_id: None,
        },
    );
    to.record_audit(&[copy_event]).await?;
    verify(from, to, tenant.id).await
}

/// The destination has what the source has, record for record.
async fn verify(from: &dyn Store, to: &dyn Store, tenant: Uuid) -> anyhow::Result<()> {
    let all = ApplicationFilter {
        limit: u32::MAX,
        ..Default::default()
    };
    let (a, b) = (
        from.list_applications(tenant, &all).await?,
        to.list_applications(tenant, &all).await?,
    );
    anyhow::ensure!(a == b, "applications differ after the copy");
    let (ka, kb) = (
        from.signing_keys(tenant).await?,
        to.signing_keys(tenant).await?,
    );
    anyhow::ensure!(ka == kb, "signing keys differ after the copy");
    for app in &a {
        let (ga, gb) = (
            from.role_assignments_to(tenant, app.service_principal_id)
                .await?,
            to.role_assignments_to(tenant, app.service_principal_id)
                .await?,
        );
        anyhow::ensure!(ga == gb, "role grants of {} differ after the copy", app.id);
    }
    Ok(())
}

/// Open both stores and copy (for `clavis store copy`).
pub async fn run(from_url: &str, to_url: &str) -> anyhow::Result<Copied> {
    let from = clavis_store::connect(from_url)
        .await
        .map_err(|e| describe("source (--from)", e))?;
    let to = clavis_store::connect(to_url)
        .await
        .map_err(|e| describe("destination (--to)", e))?;
    copy(from.as_ref(), to.as_ref()).await
}

fn describe(which: &str, e: StoreError) -> anyhow::Error {
    anyhow::anyhow!("cannot open the {which} store: {e}")
}
