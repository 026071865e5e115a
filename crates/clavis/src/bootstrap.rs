//! First start of an empty store: the default tenant, the built-in
//! management API application, and one bootstrap admin application whose
//! client id and secret go to `{data-dir}/bootstrap-admin.json` (0600).

use std::io::Write;
use std::path::{Path, PathBuf};

use clavis_store::{Application, Mutation, PasswordCredential, RoleAssignment, Tenant};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::Duration;
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
    let now = clock.now();
    let tenant = Tenant {
        id: Uuid::new_v4(),
        name: DEFAULT_TENANT.into(),
        signing_alg: "ES256".into(),
        max_secret_lifetime_secs: DEFAULT_MAX_SECRET_LIFETIME.whole_seconds(),
        default_secret_lifetime_secs: DEFAULT_SECRET_LIFETIME.whole_seconds(),
        created_at: now,
    };
    let management = Application {
        id: Uuid::new_v4(),
        tenant_id: tenant.id,
        app_id: Uuid::new_v4(),
        service_principal_id: Uuid::new_v4(),
        display_name: MANAGEMENT_API_NAME.into(),
        identifier_uris: vec![MANAGEMENT_API_URI.into()],
        app_roles: Role::ALL.iter().map(|r| r.app_role()).collect(),
        owners: vec![],
        password_credentials: vec![],
        builtin: true,
        created_at: now,
    };
    let secret = ClientSecret::generate();
    let key_id = Uuid::new_v4();
    // The bootstrap secret lives as long as the policy allows: an admin who
    // loses access has no way back in. Rotate it once you have your own admin.
    let end = now + DEFAULT_MAX_SECRET_LIFETIME;
    let admin = Application {
        id: Uuid::new_v4(),
        tenant_id: tenant.id,
        app_id: Uuid::new_v4(),
        service_principal_id: Uuid::new_v4(),
        display_name: "Clavis bootstrap admin".into(),
        identifier_uris: vec![],
        app_roles: vec![],
        owners: vec![],
        password_credentials: vec![PasswordCredential {
            key_id,
            display_name: "bootstrap".into(),
            hint: secret.hint(),
            secret_hash: hasher.hash(&secret),
            start_at: now,
            end_at: end,
            created_at: now,
        }],
        builtin: false,
        created_at: now,
    };
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

    let authority = format!("{base_url}/{DEFAULT_TENANT}");
    let contents = json!({
        "tenantId": tenant.id,
        "tenantName": tenant.name,
        "clientId": admin.app_id,
        "clientSecret": secret.expose(),
        "keyId": key_id,
        "endDateTime": end.format(&Rfc3339)?,
        "authority": authority,
        "caFile": ca_file.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())),
        "scope": format!("{MANAGEMENT_API_URI}/.default"),
    });
    // Write the file before committing (a failed commit removes it), rename
    // after: a crash never leaves an admin whose secret nobody has.
    let file = data_dir.join(BOOTSTRAP_FILE);
    let staging = data_dir.join(format!("{BOOTSTRAP_FILE}.new"));
    let _ = std::fs::remove_file(&staging);
    {
        let text = zeroize::Zeroizing::new(serde_json::to_string_pretty(&contents)?);
        let mut f = create_private(&staging)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    drop(contents);

    let actor = Actor::system();
    let action = |activity, target_type, id: String, name: &str| Action {
        activity,
        category: "ApplicationManagement",
        operation: "Add",
        target_type,
        target_id: id,
        target_name: name.to_owned(),
        target_key_id: None,
    };
    let audit = vec![
        actor.succeeded(
            tenant.id,
            now,
            action("Add tenant", "Tenant", tenant.id.to_string(), &tenant.name),
        ),
        actor.succeeded(
            tenant.id,
            now,
            action(
                "Add application",
                "Application",
                management.id.to_string(),
                &management.display_name,
            ),
        ),
        actor.succeeded(
            tenant.id,
            now,
            action(
                "Add application",
                "Application",
                admin.id.to_string(),
                &admin.display_name,
            ),
        ),
        actor.succeeded(
            tenant.id,
            now,
            Action {
                target_key_id: Some(key_id),
                ..action(
                    "Add password credential",
                    "Application",
                    admin.id.to_string(),
                    &admin.display_name,
                )
            },
        ),
    ];
    let audit: Vec<_> = audit
        .into_iter()
        .chain(grants.iter().map(|g| {
            actor.succeeded(
                tenant.id,
                now,
                Action {
                    activity: "Add app role assignment to service principal",
                    category: "RoleManagement",
                    operation: "Assign",
                    target_type: "ServicePrincipal",
                    target_id: g.resource_id.to_string(),
                    target_name: format!(
                        "{} → {MANAGEMENT_API_NAME} ({})",
                        admin.display_name,
                        Role::ALL
                            .iter()
                            .find(|r| r.id() == g.app_role_id)
                            .map(|r| r.value())
                            .unwrap_or_default()
                    ),
                    target_key_id: None,
                },
            )
        }))
        .collect();
    let mut mutations = vec![
        Mutation::InsertTenant(tenant.clone()),
        Mutation::InsertApplication(management),
        Mutation::InsertApplication(admin),
    ];
    mutations.extend(grants.into_iter().map(Mutation::InsertRoleAssignment));
    if let Err(e) = directory.commit(&mutations, &audit).await {
        let _ = std::fs::remove_file(&staging);
        return Err(e.into());
    }
    std::fs::rename(&staging, &file)?;
    Ok(Some(Bootstrapped {
        file,
        tenant_id: tenant.id,
    }))
}
