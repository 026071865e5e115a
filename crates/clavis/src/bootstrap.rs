//! First start of an empty store: the default tenant, the built-in
//! management API application, and one bootstrap admin application whose
//! client id and secret go to `{data-dir}/bootstrap-admin.json` (0600).
//!
//! [`TenantPlan`] builds what a new tenant consists of (as mutations and
//! audit events to commit together); [`bootstrap_if_empty`] commits the
//! default one and writes the bootstrap file; [`add_missing_management_roles`]
//! gives an existing database the management roles added since it was made.

use std::io::Write;
use std::path::{Path, PathBuf};

use clavis_store::{Application, AuditEvent, Mutation, PasswordCredential, RoleAssignment, Tenant};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::audit::{Action, Actor};
use crate::builtin::{Role, MANAGEMENT_API_NAME, MANAGEMENT_API_URI};
use crate::clock::Clock;
use crate::directory::Directory;
use crate::keys::kek::create_private;
use crate::secret::{ClientSecret, SecretHasher};

/// Name of the tenant created on first start.
pub const DEFAULT_TENANT: &str = "default";
/// File holding the bootstrap admin's credentials.
pub const BOOTSTRAP_FILE: &str = "bootstrap-admin.json";
/// Default longest lifetime of a client secret (tenant policy): two years.
pub const DEFAULT_MAX_SECRET_LIFETIME: Duration = Duration::days(730);
/// Default lifetime of a new client secret: 180 days.
pub const DEFAULT_SECRET_LIFETIME: Duration = Duration::days(180);
/// Default most client secrets one application may hold: enough for a
/// rotation in flight on several environments, few enough to notice leftovers.
pub const DEFAULT_MAX_SECRETS_PER_APPLICATION: i64 = 10;

/// A new tenant with its management API and an admin application holding
/// `Application.ReadWrite.All` and `AuditLog.Read.All`, ready to commit.
#[derive(Debug)]
pub struct TenantPlan {
    pub tenant: Tenant,
    pub admin_app_id: Uuid,
    pub admin_key_id: Uuid,
    /// The admin's secret: goes to the bootstrap file, nowhere else.
    pub admin_secret: ClientSecret,
    pub admin_secret_end: OffsetDateTime,
    pub mutations: Vec<Mutation>,
    pub audit: Vec<AuditEvent>,
}

impl TenantPlan {
    /// Plan a tenant called `name`.
    pub fn new(name: &str, hasher: &SecretHasher, now: OffsetDateTime) -> Self {
        let tenant = Tenant {
            id: Uuid::new_v4(),
            name: name.into(),
            signing_alg: crate::keys::Algorithm::DEFAULT.as_str().into(),
            max_secret_lifetime_secs: DEFAULT_MAX_SECRET_LIFETIME.whole_seconds(),
            default_secret_lifetime_secs: DEFAULT_SECRET_LIFETIME.whole_seconds(),
            max_secrets_per_application: DEFAULT_MAX_SECRETS_PER_APPLICATION,
            password_credentials_allowed: true,
            created_at: now,
        };
        let management = new_app(&tenant, MANAGEMENT_API_NAME, now, |app| {
            app.identifier_uris = vec![MANAGEMENT_API_URI.into()];
            app.app_roles = Role::ALL.iter().map(|r| r.app_role()).collect();
            app.builtin = true;
        });
        let secret = ClientSecret::generate();
        let key_id = Uuid::new_v4();
        // The bootstrap secret lives as long as the policy allows: an admin
        // who loses access has no way back in. Rotate it once you have your
        // own admin application.
        let end = now + DEFAULT_MAX_SECRET_LIFETIME;
        let admin = new_app(&tenant, "Clavis bootstrap admin", now, |app| {
            app.password_credentials = vec![PasswordCredential {
                key_id,
                display_name: "bootstrap".into(),
                hint: secret.hint(),
                secret_hash: hasher.hash(&secret),
                start_at: now,
                end_at: end,
                created_at: now,
                last_used_at: None,
            }];
        });
        let grants: Vec<RoleAssignment> = [Role::ApplicationReadWriteAll, Role::AuditLogReadAll]
            .into_iter()
            .map(|role| RoleAssignment {
                id: Uuid::new_v4(),
                tenant_id: tenant.id,
                principal_id: admin.service_principal_id,
                resource_id: management.service_principal_id,
                app_role_id: role.id(),
                created_at: now,
            })
            .collect();

        let actor = Actor::system();
        let add = |activity, target_type, id: Uuid, name: &str| Action {
            activity,
            category: "ApplicationManagement",
            operation: "Add",
            target_type,
            target_id: id.to_string(),
            target_name: name.to_owned(),
            target_key_id: None,
        };
        let mut audit = vec![
            actor.succeeded(
                tenant.id,
                now,
                add("Add tenant", "Tenant", tenant.id, &tenant.name),
            ),
            actor.succeeded(
                tenant.id,
                now,
                add(
                    "Add application",
                    "Application",
                    management.id,
                    &management.display_name,
                ),
            ),
            actor.succeeded(
                tenant.id,
                now,
                add(
                    "Add application",
                    "Application",
                    admin.id,
                    &admin.display_name,
                ),
            ),
            actor.succeeded(
                tenant.id,
                now,
                Action {
                    target_key_id: Some(key_id),
                    ..add(
                        "Add password credential",
                        "Application",
                        admin.id,
                        &admin.display_name,
                    )
                },
            ),
        ];
        for grant in &grants {
            let role = Role::ALL
                .iter()
                .find(|r| r.id() == grant.app_role_id)
                .map(|r| r.value());
            audit.push(actor.succeeded(
                tenant.id,
                now,
                Action {
                    activity: "Add app role assignment to service principal",
                    category: "RoleManagement",
                    operation: "Assign",
                    target_type: "ServicePrincipal",
                    target_id: grant.resource_id.to_string(),
                    target_name: format!(
                        "{} → {MANAGEMENT_API_NAME} ({})",
                        admin.display_name,
                        role.unwrap_or_default()
                    ),
                    target_key_id: None,
                },
            ));
        }
        let admin_app_id = admin.app_id;
        let mut mutations = vec![
            Mutation::InsertTenant(tenant.clone()),
            Mutation::InsertApplication(management),
            Mutation::InsertApplication(admin),
        ];
        mutations.extend(grants.into_iter().map(Mutation::InsertRoleAssignment));
        Self {
            tenant,
            admin_app_id,
            admin_key_id: key_id,
            admin_secret: secret,
            admin_secret_end: end,
            mutations,
            audit,
        }
    }
}

fn new_app(
    tenant: &Tenant,
    name: &str,
    now: OffsetDateTime,
    customise: impl FnOnce(&mut Application),
) -> Application {
    let mut app = Application {
        id: Uuid::new_v4(),
        tenant_id: tenant.id,
        app_id: Uuid::new_v4(),
        service_principal_id: Uuid::new_v4(),
        display_name: name.into(),
        identifier_uris: vec![],
        app_roles: vec![],
        owners: vec![],
        password_credentials: vec![],
        credential_policy: Default::default(),
        builtin: false,
        created_at: now,
    };
    customise(&mut app);
    app
}

/// Where the bootstrap admin went.
#[derive(Debug)]
pub struct Bootstrapped {
    pub file: PathBuf,
    pub tenant_id: Uuid,
}

/// Create the default tenant and its admin if the store has no tenant.
/// `ca_file` is recorded in the bootstrap file for clients to trust.
pub async fn bootstrap_if_empty(
    directory: &Directory,
    hasher: &SecretHasher,
    clock: &dyn Clock,
    data_dir: &Path,
    base_url: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<Option<Bootstrapped>> {
    if !directory.store().tenants().await?.is_empty() {
        return Ok(None);
    }
    let plan = TenantPlan::new(DEFAULT_TENANT, hasher, clock.now());
    let contents = json!({
        "tenantId": plan.tenant.id,
        "tenantName": plan.tenant.name,
        "clientId": plan.admin_app_id,
        "clientSecret": plan.admin_secret.expose(),
        "keyId": plan.admin_key_id,
        "endDateTime": plan.admin_secret_end.format(&Rfc3339)?,
        "authority": format!("{base_url}/{DEFAULT_TENANT}"),
        "caFile": ca_file.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())),
        "scope": format!("{MANAGEMENT_API_URI}/.default"),
    });
    // Write the file before committing (a failed commit removes it), rename
    // after: a crash never leaves an admin whose secret nobody has.
    let file = data_dir.join(BOOTSTRAP_FILE);
    let staging = stage_file(data_dir, contents)?;
    match directory.commit(&plan.mutations, &plan.audit).await {
        Ok(()) => {}
        // Another node sharing the database bootstrapped first (the tenant
        // name is unique): exactly one bootstrap admin exists, and it is theirs.
        Err(clavis_store::StoreError::Conflict(_)) => {
            let _ = std::fs::remove_file(&staging);
            tracing::info!("another node created the default tenant first; using it");
            return Ok(None);
        }
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e.into());
        }
    }
    std::fs::rename(&staging, &file)?;
    Ok(Some(Bootstrapped {
        file,
        tenant_id: plan.tenant.id,
    }))
}

/// On a later start, keep `{data-dir}/bootstrap-admin.json` pointing at
/// this server: when `--public-url` or `--listen` changed, its `authority`
/// (and `caFile`) follow, so `clavis login --bootstrap DIR` reaches the
/// server that runs now. The file is replaced whole (0600), its secret
/// untouched; a missing file (deleted after first use, as advised) stays
/// missing. Returns the new authority when it changed.
pub fn follow_base_url(
    data_dir: &Path,
    base_url: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    let file = data_dir.join(BOOTSTRAP_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => zeroize::Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut contents: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| anyhow::anyhow!("{} is not JSON", file.display()))?;
    drop(text);
    let tenant = contents["tenantName"]
        .as_str()
        .unwrap_or(DEFAULT_TENANT)
        .to_owned();
    let authority = format!("{base_url}/{tenant}");
    let ca_file = ca_file.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    let ca_value = json!(ca_file);
    if contents["authority"] == authority.as_str() && contents["caFile"] == ca_value {
        return Ok(None);
    }
    contents["authority"] = authority.clone().into();
    contents["caFile"] = ca_value;
    let staging = stage_file(data_dir, contents)?;
    std::fs::rename(&staging, &file)?;
    Ok(Some(authority))
}

/// Write `contents` (which hold a secret) to `{BOOTSTRAP_FILE}.new` in
/// `data_dir`, private (0600) and durable, for a rename over the bootstrap
/// file once the secret it holds is committed. Returns its path.
pub fn stage_file(data_dir: &Path, contents: serde_json::Value) -> anyhow::Result<PathBuf> {
    let staging = data_dir.join(format!("{BOOTSTRAP_FILE}.new"));
    let _ = std::fs::remove_file(&staging);
    let text = zeroize::Zeroizing::new(serde_json::to_string_pretty(&contents)?);
    drop(contents);
    let mut f = create_private(&staging)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(staging)
}

/// Give every tenant's management API application the management roles it
/// lacks: a database created before a role existed gains it at start-up, with
/// an audit event. Roles an administrator could not have changed (the
/// application is built in) are only ever added, never altered.
pub async fn add_missing_management_roles(
    directory: &Directory,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let store = directory.store();
    for tenant in store.tenants().await? {
        let Some(mut management) = store
            .application_by_identifier_uri(tenant.id, MANAGEMENT_API_URI)
            .await?
        else {
            continue;
        };
        let missing: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|role| !management.app_roles.iter().any(|r| r.id == role.id()))
            .collect();
        if missing.is_empty() {
            continue;
        }
        management
            .app_roles
            .extend(missing.iter().map(|r| r.app_role()));
        let names: Vec<&str> = missing.iter().map(|r| r.value()).collect();
        let event = Actor::system().succeeded(
            tenant.id,
            clock.now(),
            Action {
                activity: "Update application",
                category: "ApplicationManagement",
                operation: "Update",
                target_type: "Application",
                target_id: management.id.to_string(),
                target_name: format!(
                    "{} (added app roles: {})",
                    management.display_name,
                    names.join(", ")
                ),
                target_key_id: None,
            },
        );
        tracing::info!(tenant = %tenant.name, roles = %names.join(", "), "added new management roles to the management API");
        directory
            .commit(&[Mutation::UpdateApplication(management)], &[event])
            .await?;
    }
    Ok(())
}
