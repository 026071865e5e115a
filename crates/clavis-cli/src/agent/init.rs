//! `clavis agent --init APP`: the first credentials file, written by an
//! operator (the logged-in profile adds the secret, proves it, and writes a
//! new private file the agent can then look after).

use time::OffsetDateTime;
use uuid::Uuid;

use super::credentials_file::{Credentials, CredentialsFile};
use super::{AgentArgs, NAME_PREFIX};
use crate::client::Session;
use crate::error::Error;
use crate::rotation::{self, Target};
use crate::Ctx;

/// `--init APP`: a first secret for APP, proven, in a new private file.
pub async fn init(
    ctx: &Ctx,
    file: &CredentialsFile,
    app: &str,
    args: &AgentArgs,
) -> Result<(), Error> {
    let path = file.path().display().to_string();
    if file.path().exists() {
        return Err(Error::new(format!("{path} already exists"))
            .hint("start the agent on it without --init, or choose another file"));
    }
    let dir = match file.path().parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(
            Error::new(format!("the directory {} does not exist", dir.display())).hint(format!(
                "create it first, private to the user the agent runs as: mkdir -p -m 700 {}",
                dir.display()
            )),
        );
    }
    let _lock = file.lock()?;
    let profile = ctx.config()?.load(&ctx.global.profile)?;
    let s = Session::open(&profile).await?;
    let found = crate::lookup::application(&s, app).await?;
    let target = Target {
        object_id: found.view.id.clone(),
        app_id: Uuid::parse_str(&found.view.app_id)
            .map_err(|_| Error::new("the application's appId is not a GUID"))?,
    };
    let agent_id = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    let name = format!(
        "{NAME_PREFIX}{} {}",
        agent_id.simple(),
        crate::output::rfc3339(now)
    );
    let new = rotation::add_proven(&s, &target, &name, args.lifetime.map(|l| now + l)).await?;
    let Some(end) = new.end else {
        let why = Error::new("the server's answer to addPassword has no endDateTime");
        return Err(rotation::undo(&s, &target, &new, &why).await);
    };
    let creds = Credentials {
        authority: profile.settings.authority.clone(),
        tenant: String::new(),
        client_id: target.app_id,
        secret: new.secret.clone(),
        key_id: new.key_id,
        end_date_time: end,
        start_date_time: new.start,
        object_id: Uuid::parse_str(&target.object_id).ok(),
        agent_id: Some(agent_id),
        ca_file: args.ca_file.clone().or(profile.settings.ca_file.clone()),
        retiring: Vec::new(),
        other: Default::default(),
    };
    let creds = Credentials {
        tenant: creds.tenant_name(),
        ..creds
    };
    if let Err(e) = file.store(&creds) {
        return Err(rotation::undo(&s, &target, &new, &e).await);
    }
    let grant = if holds_rotate_role(&s, &target, &new.secret).await {
        String::new()
    } else {
        format!(
            "Grant it its role: clavis role grant --client {} --resource api://clavis --role {ROTATE_ROLE}\n",
            target.app_id
        )
    };
    crate::output::emit(&format!(
        "Wrote {path} for application '{}' (secret {}, ends {}).\n{grant}\
         {}start the agent: clavis agent --credentials {path}\n",
        found.view.display_name,
        new.key_id,
        crate::output::rfc3339(end),
        if grant.is_empty() { "Now " } else { "Then " },
    ));
    Ok(())
}

/// The management role the agent needs.
const ROTATE_ROLE: &str = "Application.Credentials.RotateSelf";

/// Whether the application already holds [`ROTATE_ROLE`], as the agent will
/// see it: the roles of a management API token got with its new secret
/// (no token, or no such role: it does not).
async fn holds_rotate_role(
    s: &Session,
    target: &Target,
    secret: &crate::profile::ClientSecret,
) -> bool {
    let Ok(token) = s
        .connection()
        .token(target.app_id, secret, "api://clavis/.default")
        .await
    else {
        return false;
    };
    crate::token::decode_jwt(token.access_token.expose())
        .ok()
        .and_then(|(_, claims)| claims["roles"].as_array().cloned())
        .is_some_and(|roles| roles.iter().any(|r| r == ROTATE_ROLE))
}
