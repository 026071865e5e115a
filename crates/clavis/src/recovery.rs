//! `clavis admin recover`: the break-glass way back in when nobody can
//! manage a tenant any more (the last administrator deleted, its grant
//! removed, its secrets expired or lost). An operator who holds the data
//! directory and the key-encryption key runs it on the server, offline (it
//! takes the data directory's lock, so it refuses while `clavis serve` runs
//! there); it works on the store directly, as the first start does:
//! - a new client secret for the bootstrap admin application (the one the
//!   data directory's `bootstrap-admin.json` names), or a new bootstrap admin
//!   application if that one is gone;
//! - `Application.ReadWrite.All` and `AuditLog.Read.All` on `api://clavis`
//!   granted to it again if it lacks them;
//! - its client id and secret written to `bootstrap-admin.json` (0600), as
//!   on first start; the secret is printed nowhere;
//! - every change committed with its audit events, by the actor
//!   "operator (clavis admin recover)", naming the host and user.
//!
//! With PostgreSQL, nodes that share the database keep serving and pick the
//! change up through the change feed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clavis_store::{Application, AuditEvent, Mutation, PasswordCredential, RoleAssignment, Store};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::audit::{Action, Actor};
use crate::bootstrap::{self, BOOTSTRAP_FILE};
use crate::builtin::{Role, MANAGEMENT_API_URI};
use crate::clock::Clock;
use crate::keys::KeyProvider;
use crate::secret::{ClientSecret, SecretHasher};

/// Display name of the actor in the audit log.
pub const ACTOR: &str = "operator (clavis admin recover)";
/// Audit activity of the recovery itself (alert on it).
pub const ACTIVITY: &str = "Recover administrator access";
/// Name of a bootstrap admin application made again by a recovery.
const RECREATED_NAME: &str = "Clavis bootstrap admin";

/// `clavis admin recover` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoverArgs {
    /// The installation's data directory (its key file, its lock, and where
    /// the new bootstrap-admin.json goes).
    #[arg(long, env = "CLAVIS_DATA_DIR", default_value = "./clavis-data")]
    pub data_dir: PathBuf,
    /// The store's URL; default: `sqlite://{data-dir}/clavis.db`.
    #[arg(long, env = "CLAVIS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The tenant to recover, by name or id.
    #[arg(long, default_value = bootstrap::DEFAULT_TENANT)]
    pub tenant: String,
    /// Base URL clients use, for the file's `authority`; default: the one
    /// the previous bootstrap file names, else https://127.0.0.1:8443.
    #[arg(long, env = "CLAVIS_PUBLIC_URL", value_parser = crate::config::PublicUrlParser)]
    pub public_url: Option<String>,
    /// Where the key-encryption keys come from, as for `clavis serve`.
    #[arg(long, env = "CLAVIS_KEY_PROVIDER", default_value = "file",
          value_parser = ["file", "env", "pkcs11"])]
    pub key_provider: String,
    /// The PKCS#11 module (`--key-provider pkcs11`).
    #[arg(
        long,
        env = "CLAVIS_PKCS11_MODULE",
        default_value = "/usr/lib/softhsm/libsofthsm2.so"
    )]
    pub pkcs11_module: PathBuf,
    /// The label of the PKCS#11 token to use.
    #[arg(long, env = "CLAVIS_PKCS11_TOKEN_LABEL", default_value = "clavis")]
    pub pkcs11_token_label: String,
    /// The label of the AES key in the token that wraps data keys.
    #[arg(
        long,
        env = "CLAVIS_PKCS11_WRAPPING_KEY_LABEL",
        default_value = "clavis-kek"
    )]
    pub pkcs11_wrapping_key_label: String,
}

/// What a recovery did.
#[derive(Debug)]
pub struct Recovered {
    pub file: PathBuf,
    pub tenant: String,
    pub client_id: Uuid,
    pub key_id: Uuid,
    pub end: OffsetDateTime,
    /// The application was made again (the old one was gone).
    pub recreated: bool,
    /// Roles granted again.
    pub granted: Vec<&'static str>,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} the bootstrap admin of tenant {} (client id {}){}; a new secret (key id {}, ends {}) \
             is in {} (mode 0600). Sign in with `clavis login --bootstrap {}`, give your own \
             administrator a secret, then remove this one.",
            if self.recreated { "recreated" } else { "recovered" },
            self.tenant,
            self.client_id,
            if self.granted.is_empty() {
                String::new()
            } else {
                format!(", granted {} again", self.granted.join(" and "))
            },
            self.key_id,
            self.end.format(&Rfc3339).unwrap_or_default(),
            self.file.display(),
            self.file
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        )
    }
}

/// Run a recovery (see the module docs) at `clock`'s now.
pub async fn recover(args: &RecoverArgs, clock: &dyn Clock) -> anyhow::Result<Recovered> {
    let dir = &args.data_dir;
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a data directory: give the --data-dir of the installation to recover",
            dir.display()
        );
    }
    // Offline: the lock is the one `clavis serve` holds while it runs.
    let _lock = crate::data_dir::prepare(dir)?;
    let source = crate::config::kek_source(
        &args.key_provider,
        &args.pkcs11_module,
        &args.pkcs11_token_label,
        &args.pkcs11_wrapping_key_label,
    );
    let kek_file = dir.join("kek.key");
    if matches!(source, crate::keys::KekSource::File) && !kek_file.exists() {
        anyhow::bail!(
            "{} is missing: recovery needs the installation's key-encryption key (restore it \
             from your backup, or use --key-provider env with CLAVIS_KEK)",
            kek_file.display()
        );
    }
    let (kek, _) = KeyProvider::start(&source, dir)?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("clavis.db").display()));
    let store = clavis_store::connect(&url)
        .await
        .context("cannot open the database (check --database-url)")?;
    let tenants = store.tenants().await?;
    if tenants.is_empty() {
        anyhow::bail!(
            "the store is empty: start `clavis serve`, whose first start creates the bootstrap admin"
        );
    }
    let tenant = tenants
        .iter()
        .find(|t| t.name == args.tenant || t.id.to_string() == args.tenant.to_lowercase())
        .with_context(|| {
            let names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
            format!(
                "no tenant '{}' in this store (it has: {})",
                args.tenant,
                names.join(", ")
            )
        })?
        .clone();
    let hasher = secret_hasher(store.as_ref(), &kek).await?;
    let management = store
        .application_by_identifier_uri(tenant.id, MANAGEMENT_API_URI)
        .await?
        .context("the tenant has no management API application: is this Clavis's database?")?;

    let file = dir.join(BOOTSTRAP_FILE);
    let previous = previous_file(&file);
    let existing = match previous.client_id {
        Some(client_id) => store
            .application_by_app_id(tenant.id, client_id)
            .await?
            .filter(|a| !a.builtin),
        None => None,
    };

    let now = clock.now();
    let lifetime = Duration::seconds(
        tenant
            .default_secret_lifetime_secs
            .min(tenant.max_secret_lifetime_secs),
    );
    let secret = ClientSecret::generate();
    let credential = PasswordCredential {
        key_id: Uuid::new_v4(),
        display_name: "recovered (clavis admin recover)".into(),
        hint: secret.hint(),
        secret_hash: hasher.hash(&secret),
        start_at: now,
        end_at: now + lifetime,
        created_at: now,
        last_used_at: None,
    };
    let actor = operator();
    let action = |activity, operation, target_type, id: Uuid, name: &str| Action {
        activity,
        category: "ApplicationManagement",
        operation,
        target_type,
        target_id: id.to_string(),
        target_name: name.to_owned(),
        target_key_id: None,
    };
    let mut mutations = Vec::new();
    let mut audit: Vec<AuditEvent> = Vec::new();
    let recreated = existing.is_none();
    let admin = match existing {
        Some(app) => {
            mutations.push(Mutation::AddPassword {
                tenant_id: tenant.id,
                application_id: app.id,
                credential: credential.clone(),
            });
            app
        }
        None => {
            let app = Application {
                id: Uuid::new_v4(),
                tenant_id: tenant.id,
                app_id: Uuid::new_v4(),
                service_principal_id: Uuid::new_v4(),
                display_name: RECREATED_NAME.into(),
                identifier_uris: vec![],
                app_roles: vec![],
                owners: vec![],
                password_credentials: vec![credential.clone()],
                credential_policy: Default::default(),
                builtin: false,
                created_at: now,
            };
            audit.push(actor.succeeded(
                tenant.id,
                now,
                action(
                    "Add application",
                    "Add",
                    "Application",
                    app.id,
                    &app.display_name,
                ),
            ));
            mutations.push(Mutation::InsertApplication(app.clone()));
            app
        }
    };
    audit.push(actor.succeeded(
        tenant.id,
        now,
        Action {
            target_key_id: Some(credential.key_id),
            ..action(
                "Add password credential",
                "Add",
                "Application",
                admin.id,
                &admin.display_name,
            )
        },
    ));
    let held = if recreated {
        Vec::new()
    } else {
        store
            .role_assignments_of(tenant.id, admin.service_principal_id)
            .await?
    };
    let mut granted = Vec::new();
    for role in [Role::ApplicationReadWriteAll, Role::AuditLogReadAll] {
        let has = held.iter().any(|g| {
            g.resource_id == management.service_principal_id && g.app_role_id == role.id()
        });
        if has {
            continue;
        }
        mutations.push(Mutation::InsertRoleAssignment(RoleAssignment {
            id: Uuid::new_v4(),
            tenant_id: tenant.id,
            principal_id: admin.service_principal_id,
            resource_id: management.service_principal_id,
            app_role_id: role.id(),
            created_at: now,
        }));
        audit.push(actor.succeeded(
            tenant.id,
            now,
            Action {
                category: "RoleManagement",
                ..action(
                    "Add app role assignment to service principal",
                    "Assign",
                    "ServicePrincipal",
                    management.service_principal_id,
                    &format!(
                        "{} → {} ({})",
                        admin.display_name,
                        management.display_name,
                        role.value()
                    ),
                )
            },
        ));
        granted.push(role.value());
    }
    audit.push(actor.succeeded(
        tenant.id,
        now,
        Action {
            target_key_id: Some(credential.key_id),
            ..action(
                ACTIVITY,
                "Update",
                "Application",
                admin.id,
                &admin.display_name,
            )
        },
    ));

    let base = args
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned())
        .or(previous.base_url)
        .unwrap_or_else(|| "https://127.0.0.1:8443".into());
    let ca_file = dir.join("tls").join("ca.pem");
    let contents = json!({
        "tenantId": tenant.id,
        "tenantName": tenant.name,
        "clientId": admin.app_id,
        "clientSecret": secret.expose(),
        "keyId": credential.key_id,
        "endDateTime": credential.end_at.format(&Rfc3339)?,
        "authority": format!("{base}/{}", tenant.name),
        "caFile": ca_file.exists().then(|| std::fs::canonicalize(&ca_file).unwrap_or(ca_file)),
        "scope": format!("{MANAGEMENT_API_URI}/.default"),
    });
    drop(secret);
    // As on first start: the file is written before the commit and renamed
    // after it, so no admin secret exists that nobody holds.
    let staging = bootstrap::stage_file(dir, contents)?;
    if let Err(e) = store.commit(&mutations, &audit).await {
        let _ = std::fs::remove_file(&staging);
        return Err(e).context("the recovery was not written (nothing changed)");
    }
    std::fs::rename(&staging, &file)?;
    Ok(Recovered {
        file,
        tenant: tenant.name,
        client_id: admin.app_id,
        key_id: credential.key_id,
        end: credential.end_at,
        recreated,
        granted,
    })
}

/// The secrets' hash key, opened (never created: the store has one since
/// its first start).
async fn secret_hasher(store: &dyn Store, kek: &KeyProvider) -> anyhow::Result<SecretHasher> {
    const NAME: &str = crate::keys::provider::SECRET_HASH_KEY;
    let sealed = store
        .server_secret(NAME)
        .await?
        .context("the store has no secret hash key: is this Clavis's database?")?;
    let key = kek
        .open(&crate::keys::provider::server_secret_context(NAME), &sealed)
        .map_err(|e| {
            anyhow::anyhow!(
                "the store's hash key cannot be opened ({e}): use the kek.key (or CLAVIS_KEK) \
                 that belongs to this database"
            )
        })?;
    Ok(SecretHasher::new(&key))
}

/// What the previous bootstrap file says, if it is there and readable.
#[derive(Debug, Default)]
struct Previous {
    client_id: Option<Uuid>,
    base_url: Option<String>,
}

fn previous_file(path: &Path) -> Previous {
    let Ok(text) = std::fs::read_to_string(path).map(zeroize::Zeroizing::new) else {
        return Previous::default();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Previous::default();
    };
    let client_id = value["clientId"]
        .as_str()
        .and_then(|s| Uuid::try_parse(s).ok());
    let tenant = value["tenantName"].as_str().unwrap_or_default();
    let base_url = value["authority"].as_str().and_then(|a| {
        a.strip_suffix(tenant)
            .filter(|_| !tenant.is_empty())
            .map(|b| b.trim_end_matches('/').to_owned())
    });
    Previous {
        client_id,
        base_url,
    }
}

/// The audit actor: the operator at this machine.
fn operator() -> Actor {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unknown host".into());
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    Actor {
        app_id: None,
        service_principal_id: None,
        display_name: format!("{ACTOR} on {host}, user {user}"),
        key_id: None,
        client_ip: None,
        correlation_id: Uuid::new_v4(),
        client_request_id: None,
    }
}
