//! `clavis agent` (the real binary) rotating a credentials file beside an
//! application that keeps getting tokens with whatever the file holds: no
//! failed token request across many rotations, SIGKILLs at random points,
//! a server that is down; and the `Application.Credentials.RotateSelf` role
//! it runs with (its own application's secrets, nothing else).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clavis::clock::Clock as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

use super::helpers::{claims, spawn_with, TestApp};

const ROTATE_SELF: &str = "Application.Credentials.RotateSelf";

/// Keep the server's manual clock on the wall clock: secrets really expire.
fn follow_wall_clock(app: &TestApp) -> tokio::task::JoinHandle<()> {
    let clock = app.clock.clone();
    tokio::spawn(async move {
        loop {
            let behind = OffsetDateTime::now_utc() - clock.now();
            if behind.is_positive() {
                clock.advance(behind);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// A server, and an application "worker" holding RotateSelf and a secret
/// that ends in `first_life`, written to a private credentials file.
struct World {
    app: TestApp,
    admin: String,
    object_id: String,
    client_id: String,
    file: PathBuf,
    /// Holds the credentials file.
    _files: tempfile::TempDir,
    _clock: tokio::task::JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self._clock.abort();
    }
}

async fn world(first_life: time::Duration) -> World {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let clock = follow_wall_clock(&app);
    let admin = app.admin_token().await;
    let worker = app
        .create_app(&admin, json!({"displayName": "worker"}))
        .await;
    let object_id = worker["id"].as_str().unwrap().to_owned();
    let client_id = worker["appId"].as_str().unwrap().to_owned();
    let sp = app.sp_of(&admin, &client_id).await;
    app.grant_management(&admin, &sp, ROTATE_SELF).await;
    let end = OffsetDateTime::now_utc() + first_life;
    let (status, first) = app
        .post(
            &format!("/v1.0/applications/{object_id}/addPassword"),
            &admin,
            json!({"passwordCredential": {"displayName": "first",
                   "endDateTime": end.format(&Rfc3339).unwrap()}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("credentials.json");
    let contents = json!({
        "authority": format!("{}/default", app.base),
        "tenant": "default",
        "clientId": client_id,
        "secret": first["secretText"],
        "keyId": first["keyId"],
        "endDateTime": first["endDateTime"],
        "objectId": object_id,
        "caFile": app.data_dir().join("tls/ca.pem"),
    });
    write_private(&file, &serde_json::to_vec_pretty(&contents).unwrap());
    World {
        app,
        admin,
        object_id,
        client_id,
        file,
        _files: files,
        _clock: clock,
    }
}

fn write_private(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn read_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A running `clavis agent` whose stderr is collected.
struct Agent {
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
}

impl Agent {
    fn start(file: &Path, flags: &[&str]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_clavis"))
            .arg("agent")
            .arg("--credentials")
            .arg(file)
            .args(flags)
            .env_remove("CLAVIS_AGENT_ROTATE_BEFORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("clavis runs");
        let mut pipe = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            text
        });
        Agent { child, stderr }
    }

    /// SIGKILL, then the log so far.
    async fn kill(mut self) -> String {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        self.stderr.await.unwrap()
    }

    /// Wait for it to exit by itself: (exit code, log).
    async fn exit(mut self) -> (i32, String) {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the agent exits")
            .unwrap();
        (status.code().unwrap_or(-1), self.stderr.await.unwrap())
    }
}

/// Does the secret in the file get a token right now?
async fn file_works(app: &TestApp, file: &Path) -> Result<(), String> {
    let creds = read_file(file);
    let client = creds["clientId"].as_str().unwrap();
    let r = app
        .token_post(
            client,
            creds["secret"].as_str().unwrap(),
            &format!("{client}/.default"),
        )
        .await;
    if r.status() == StatusCode::OK {
        Ok(())
    } else {
        Err(format!(
            "key {}: {} {}",
            creds["keyId"],
            r.status(),
            r.text().await.unwrap_or_default()
        ))
    }
}

async fn secrets_of(w: &World) -> Vec<Value> {
    let (status, app) = w
        .app
        .get(&format!("/v1.0/applications/{}", w.object_id), &w.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    app["passwordCredentials"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_application_reading_the_file_never_fails_across_many_rotations() {
    let w = world(time::Duration::seconds(6)).await;
    let reloads = w.file.with_file_name("reloads");
    let reload = format!("echo reloaded >> '{}'", reloads.display());
    let agent = Agent::start(
        &w.file,
        &[
            "--lifetime",
            "6s",
            "--rotate-before",
            "4s",
            "--grace",
            "1s",
            "--check-interval",
            "200ms",
            "--reload-command",
            &reload,
        ],
    );

    // The application: read the whole file, get a token with it, again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let secrets_seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, failures, seen, secrets_seen, requests) = (
            stop.clone(),
            failures.clone(),
            seen.clone(),
            secrets_seen.clone(),
            requests.clone(),
        );
        let (http, url, file) = (
            w.app.http.clone(),
            w.app.token_url("default"),
            w.file.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let creds = read_file(&file);
                let id = creds["clientId"].as_str().unwrap().to_owned();
                let secret = creds["secret"].as_str().unwrap().to_owned();
                seen.lock()
                    .unwrap()
                    .insert(creds["keyId"].as_str().unwrap().to_owned());
                secrets_seen.lock().unwrap().insert(secret.clone());
                let r = http
                    .post(&url)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", id.as_str()),
                        ("client_secret", secret.as_str()),
                        ("scope", &format!("{id}/.default")),
                    ])
                    .send()
                    .await
                    .unwrap();
                requests.fetch_add(1, Ordering::Relaxed);
                if r.status() != StatusCode::OK {
                    let why = format!(
                        "key {}: {}",
                        creds["keyId"],
                        r.text().await.unwrap_or_default()
                    );
                    failures.lock().unwrap().push(why);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Meanwhile: the application never holds more than a few secrets.
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 11 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} secrets in 60 s",
            seen.lock().unwrap().len()
        );
        most = most.max(secrets_of(&w).await.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    let log = agent.kill().await;

    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:?}\n{log}");
    assert!(requests.load(Ordering::Relaxed) > 100);
    assert!(
        most <= 3,
        "the application held {most} secrets at once\n{log}"
    );
    // Old secrets went: what is left is the file's, and maybe the one before.
    let left = secrets_of(&w).await;
    assert!(left.len() <= 2, "{left:?}");
    let current = read_file(&w.file);
    assert!(left.iter().any(|c| c["keyId"] == current["keyId"]));
    assert!(!left.iter().any(|c| c["displayName"] == "first"));
    // One line per step, with key ids and never a secret.
    for step in [
        "added secret",
        "proved secret",
        "wrote",
        "reload command ran",
        "removed old secret",
    ] {
        assert!(log.contains(step), "no '{step}' in\n{log}");
    }
    for secret in secrets_seen.lock().unwrap().iter() {
        assert!(
            !log.contains(secret.as_str()),
            "a secret in the log:\n{log}"
        );
    }
    // The application was told after every replacement.
    let told = std::fs::read_to_string(&reloads).unwrap().lines().count();
    assert!(told >= 10, "{told} reloads\n{log}");
    // The file stays private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&w.file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn sigkill_at_random_points_always_leaves_a_working_secret() {
    let w = world(time::Duration::seconds(4)).await;
    let fast = [
        "--lifetime",
        "4s",
        "--rotate-before",
        "3s",
        "--grace",
        "300ms",
        "--check-interval",
        "50ms",
        "--orphan-min-age",
        "1s",
    ];
    let mut keys = HashSet::new();
    let mut logs = String::new();
    for round in 0..10 {
        let agent = Agent::start(&w.file, &fast);
        let delay = 150 + (uuid::Uuid::new_v4().as_u128() % 1200) as u64;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        logs.push_str(&agent.kill().await);
        if let Err(why) = file_works(&w.app, &w.file).await {
            panic!("after kill {round} (at {delay} ms) the file does not work: {why}\n{logs}");
        }
        keys.insert(read_file(&w.file)["keyId"].to_string());
    }
    assert!(keys.len() >= 4, "only {} rotations\n{logs}", keys.len());

    // What a crash between addPassword and the file write leaves behind: a
    // secret named by this agent that the file does not hold. Secrets of
    // people and of other agents (replicas) are not the agent's to remove.
    let agent_id = read_file(&w.file)["agentId"]
        .as_str()
        .unwrap()
        .replace('-', "");
    let path = format!("/v1.0/applications/{}/addPassword", w.object_id);
    for name in [
        format!("clavis-agent {agent_id} 2026-01-01T00:00:00Z"),
        format!("clavis-agent {} 2026-01-01T00:00:00Z", "0".repeat(32)),
        "deployed by hand".to_owned(),
    ] {
        let (status, _) = w
            .app
            .post(
                &path,
                &w.admin,
                json!({"passwordCredential": {"displayName": name}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // A calm run cleans up: only the file's secret and the two not ours stay.
    let agent = Agent::start(
        &w.file,
        &[
            "--lifetime",
            "1h",
            "--rotate-before",
            "3s",
            "--grace",
            "300ms",
            "--check-interval",
            "50ms",
            "--orphan-min-age",
            "1s",
        ],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = secrets_of(&w).await;
        let current = read_file(&w.file);
        let ours: Vec<_> = left
            .iter()
            .filter(|c| c["displayName"].as_str().unwrap().contains(&agent_id))
            .collect();
        if ours.len() == 1 && ours[0]["keyId"] == current["keyId"] {
            assert_eq!(left.len(), 3, "{left:?}");
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let log = agent.kill().await;
            panic!("left behind: {left:?}\n{logs}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = agent.kill().await;
    assert!(log.contains("never written to the file"), "{log}");
    file_works(&w.app, &w.file).await.unwrap();
}

#[tokio::test]
async fn a_server_that_is_down_leaves_the_file_alone() {
    let mut w = world(time::Duration::seconds(2)).await;
    let before = std::fs::read(&w.file).unwrap();
    // Stop the server; the agent finds nobody there.
    let mut app = std::mem::replace(
        &mut w.app,
        spawn_with(clavis::Tls::Off).await, // a stand-in, never called
    );
    // Keep its data directory (the CA the file names).
    let _data = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    app.stop().await.unwrap();

    let (code, log) = Agent::start(&w.file, &["--once", "--rotate-before", "1h"])
        .exit()
        .await;
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("error: cannot connect"), "{log}");
    // The agent recorded its id, nothing else changed.
    let mut after = read_file(&w.file);
    after.as_object_mut().unwrap().remove("agentId");
    assert_eq!(after, serde_json::from_slice::<Value>(&before).unwrap());

    // Running for good, it keeps trying and says so.
    let agent = Agent::start(
        &w.file,
        &["--rotate-before", "1h", "--check-interval", "100ms"],
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = agent.kill().await;
    assert!(log.matches("WARN").count() >= 2, "{log}");
    assert!(
        log.contains("the file is unchanged; trying again in"),
        "{log}"
    );
    let mut after = read_file(&w.file);
    after.as_object_mut().unwrap().remove("agentId");
    assert_eq!(after, serde_json::from_slice::<Value>(&before).unwrap());
}

#[tokio::test]
async fn a_file_others_can_read_is_refused() {
    let w = world(time::Duration::hours(1)).await;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&w.file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, log) = Agent::start(&w.file, &["--once"]).exit().await;
    assert_eq!(code, 1);
    assert!(
        log.contains("can be read or changed by other users (mode 0644)"),
        "{log}"
    );
    assert!(
        log.contains("hint: make it private with `chmod 600"),
        "{log}"
    );
    let secret = read_file(&w.file)["secret"].as_str().unwrap().to_owned();
    assert!(!log.contains(&secret));
}

#[tokio::test]
async fn rotate_self_reaches_its_own_secrets_and_nothing_else() {
    let w = world(time::Duration::hours(1)).await;
    let app = &w.app;
    let creds = read_file(&w.file);
    let token = app
        .token(
            &w.client_id,
            creds["secret"].as_str().unwrap(),
            "api://clavis/.default",
        )
        .await;
    assert_eq!(claims(&token)["roles"], json!([ROTATE_SELF]));
    // The bootstrap admin does not get it by default.
    assert!(!claims(&w.admin)["roles"]
        .as_array()
        .unwrap()
        .contains(&json!(ROTATE_SELF)));
    let other = app.register_client(&w.admin, "other").await;
    let own = format!("/v1.0/applications/{}", w.object_id);
    let theirs = format!("/v1.0/applications/{}", other.id);

    // Its own application: read, add, remove.
    let (status, me) = app.get(&own, &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["appId"], w.client_id);
    let (status, added) = app
        .post(&format!("{own}/addPassword"), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let (status, body) = app
        .post(
            &format!("{own}/removePassword"),
            &token,
            json!({"keyId": added["keyId"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Everything else: 403.
    let refused = [
        (reqwest::Method::GET, theirs.clone(), None),
        (
            reqwest::Method::POST,
            format!("{theirs}/addPassword"),
            Some(json!({})),
        ),
        (
            reqwest::Method::POST,
            format!("{theirs}/removePassword"),
            Some(json!({"keyId": other.key_id})),
        ),
        (
            reqwest::Method::PATCH,
            own.clone(),
            Some(json!({"displayName": "renamed"})),
        ),
        (reqwest::Method::DELETE, own.clone(), None),
        (reqwest::Method::POST, format!("{own}/revokeTokens"), None),
        (reqwest::Method::GET, "/v1.0/applications".into(), None),
        (
            reqwest::Method::GET,
            format!("/v1.0/applications?$filter=appId%20eq%20'{}'", w.client_id),
            None,
        ),
        (
            reqwest::Method::POST,
            "/v1.0/applications".into(),
            Some(json!({"displayName": "new"})),
        ),
        (reqwest::Method::GET, "/v1.0/servicePrincipals".into(), None),
        (
            reqwest::Method::GET,
            "/v1.0/auditLogs/directoryAudits".into(),
            None,
        ),
    ];
    for (method, path, body) in refused {
        let (status, answer) = app.graph(method.clone(), &path, &token, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "Authorization_RequestDenied");
    }
    // The other application's secret still works.
    app.token(
        &other.app_id,
        &other.secret,
        &format!("{}/.default", other.app_id),
    )
    .await;

    // The refusals are in the audit log, by the worker.
    let (status, audits) = app
        .get("/v1.0/auditLogs/directoryAudits?$top=999", &w.admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    let refusals: Vec<&Value> = audits["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"] == "failure")
        .collect();
    for activity in [
        "Add password credential",
        "Remove password credential",
        "Update application",
        "Delete application",
    ] {
        assert!(
            refusals
                .iter()
                .any(|e| e["activityDisplayName"] == activity),
            "no refused '{activity}' in {refusals:?}"
        );
    }
    assert!(refusals
        .iter()
        .any(|e| e["targetResources"][0]["id"] == other.id));
}

#[tokio::test]
async fn a_database_from_before_the_role_gains_it_at_start_up() {
    let mut app = spawn_with(clavis::Tls::Off).await;
    let store = app.state.directory.store().clone();
    let tenant = uuid::Uuid::parse_str(&app.tenant_id).unwrap();
    let mut management = store
        .application_by_identifier_uri(tenant, "api://clavis")
        .await
        .unwrap()
        .unwrap();
    let role_id = uuid::uuid!("fca169e4-045d-4142-b6d4-6eab3273c845");
    management.app_roles.retain(|r| r.id != role_id);
    store
        .commit(
            &[clavis_store::Mutation::UpdateApplication(management)],
            &[],
        )
        .await
        .unwrap();
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    app.stop().await.unwrap();

    let app = super::helpers::spawn_in(dir, clavis::Tls::Off).await;
    let admin = app.admin_token().await;
    let (_, list) = app
        .get(
            "/v1.0/applications?$filter=identifierUris/any(x:x%20eq%20'api://clavis')",
            &admin,
        )
        .await;
    let roles = list["value"][0]["appRoles"].as_array().unwrap();
    let role = roles
        .iter()
        .find(|r| r["value"] == ROTATE_SELF)
        .expect("the role is back");
    assert_eq!(role["id"], role_id.to_string());
    assert_eq!(roles.len(), 5);
    let (_, audits) = app
        .get("/v1.0/auditLogs/directoryAudits?$top=999", &admin)
        .await;
    assert!(
        audits
            .to_string()
            .contains("added app roles: Application.Credentials.RotateSelf"),
        "{audits}"
    );
}

/// `clavis ARGS` with its own config dir: (exit code, stdout, stderr).
async fn clavis(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clavis"))
        .args(args)
        .env("CLAVIS_CONFIG_DIR", config)
        .env_remove("CLAVIS_PROFILE")
        .env_remove("CLAVIS_OUTPUT")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn an_operator_sets_up_the_agent_with_the_cli() {
    let app = spawn_with(clavis::Tls::LocalCa).await;
    let _clock = follow_wall_clock(&app);
    let config = tempfile::tempdir().unwrap();
    let config = config.path();
    let data = app.data_dir();
    let ok = |(code, out, err): (i32, String, String)| {
        assert_eq!(code, 0, "{out}\n{err}");
        out
    };
    ok(clavis(config, &["login", "--bootstrap", data.to_str().unwrap()]).await);
    ok(clavis(config, &["app", "create", "worker"]).await);
    let files = tempfile::tempdir().unwrap();

    // Before the role is granted, --init says to grant it.
    let early = files.path().join("early.json");
    let out = ok(clavis(
        config,
        &[
            "agent",
            "--credentials",
            early.to_str().unwrap(),
            "--init",
            "worker",
        ],
    )
    .await);
    assert!(
        out.contains("Grant it its role: clavis role grant --client"),
        "{out}"
    );
    assert!(out.contains("Then start the agent"), "{out}");
    // Into a directory that does not exist: which one to create.
    let missing = files.path().join("not-there");
    let (code, _, err) = clavis(
        config,
        &[
            "agent",
            "--credentials",
            missing.join("w.json").to_str().unwrap(),
            "--init",
            "worker",
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "the directory {} does not exist",
            missing.display()
        )) && err.contains("mkdir"),
        "{err}"
    );
    ok(clavis(
        config,
        &[
            "role",
            "grant",
            "--client",
            "worker",
            "--resource",
            "api://clavis",
            "--role",
            ROTATE_SELF,
        ],
    )
    .await);
    let file = files.path().join("worker.json");
    let file_arg = file.to_str().unwrap();
    let out = ok(clavis(
        config,
        &[
            "agent",
            "--credentials",
            file_arg,
            "--init",
            "worker",
            "--lifetime",
            "30m",
        ],
    )
    .await);
    // The role is there: no hint to grant it.
    assert!(!out.contains("Grant it its role"), "{out}");
    assert!(out.contains("Now start the agent"), "{out}");
    file_works(&app, &file).await.unwrap();
    let first = read_file(&file);
    assert!(first["objectId"].is_string() && first["caFile"].is_string());
    assert_eq!(first["tenant"], "default");
    // Not over an existing file.
    let (code, _, err) = clavis(
        config,
        &["agent", "--credentials", file_arg, "--init", "worker"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");

    // --rotate-before at or past --lifetime would rotate on every check.
    let (code, _, err) = clavis(
        config,
        &[
            "agent",
            "--credentials",
            file_arg,
            "--once",
            "--rotate-before",
            "2h",
            "--lifetime",
            "1h",
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--rotate-before (2 hours) must be shorter than --lifetime (60 minutes)"),
        "{err}"
    );

    // A cron-style run with the role the operator granted: due, so it
    // rotates, says so and when the next one is due, and the file still works.
    let (code, out, log) = clavis(
        config,
        &[
            "agent",
            "--credentials",
            file_arg,
            "--once",
            "--rotate-before",
            "1h",
        ],
    )
    .await;
    assert_eq!(code, 0, "{log}");
    let second = read_file(&file);
    assert_ne!(second["keyId"], first["keyId"], "{log}");
    assert_eq!(second["retiring"][0]["keyId"], first["keyId"]);
    file_works(&app, &file).await.unwrap();
    assert!(!log.contains(second["secret"].as_str().unwrap()));
    assert!(
        out.contains(&format!(
            "rotated: secret {} replaced by {}",
            first["keyId"].as_str().unwrap(),
            second["keyId"].as_str().unwrap()
        )),
        "{out}"
    );
    assert!(out.contains("next rotation due "), "{out}");
    assert!(out.contains("1 old secret(s) to remove from"), "{out}");
    // Again at once: nothing is due.
    let (code, out, log) = clavis(
        config,
        &[
            "agent",
            "--credentials",
            file_arg,
            "--once",
            "--rotate-before",
            "1h",
        ],
    )
    .await;
    assert_eq!(code, 0, "{log}");
    assert!(out.starts_with("nothing was due."), "{out}");
    assert!(!out.contains(second["secret"].as_str().unwrap()));
}
