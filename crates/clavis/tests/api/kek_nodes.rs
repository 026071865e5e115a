//! Key-encryption-key rotation on several nodes sharing one PostgreSQL
//! database: a rewrap under a key that a live node lacks is refused (409,
//! naming that node) and changes nothing, both nodes keep serving; once the
//! node holds the key (restarted with it) the rewrap succeeds, every record
//! moves, and the node restarts and serves on the rewrapped store; a node
//! gone without a clean shutdown blocks only until its heartbeat is older
//! than the live window; `newKey` is refused while other nodes are live.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use clavis::clock::ManualClock;
use clavis::{App, Config, Tls};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

use super::helpers::TestDatabase;

struct Node {
    base: String,
    id: String,
    dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Node {
    /// A clean shutdown (its heartbeat row goes).
    async fn stop(mut self) -> TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.server.await.unwrap().unwrap();
        self.dir
    }

    /// Gone without a word (its heartbeat row stays): the server's future
    /// is dropped, and the tasks it owns with it.
    async fn crash(self) {
        self.server.abort();
        let _ = self.server.await;
    }
}

fn hex_key() -> String {
    uuid::Uuid::new_v4().simple().to_string() + &uuid::Uuid::new_v4().simple().to_string()
}

/// A data directory whose kek.key holds `keys`, the first active.
fn dir_with_keys(keys: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    rewrite_keys(&dir, keys);
    dir
}

fn rewrite_keys(dir: &TempDir, keys: &[&str]) {
    let path = dir.path().join("kek.key");
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    for key in keys {
        writeln!(f, "{key}").unwrap();
    }
}

async fn start(dir: TempDir, url: &str, clock: &ManualClock) -> Node {
    let mut config = Config::for_tests(dir.path().to_path_buf(), Tls::Off);
    config.database_url = url.to_owned();
    config.public_url = Some("http://clavis.test".into());
    let app = App::build(config, Arc::new(clock.clone()))
        .await
        .expect("node starts");
    let base = format!("http://{}", app.local_addr());
    let id = app.state().node.id.simple().to_string()[..8].to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    Node {
        base,
        id,
        dir,
        stop: Some(tx),
        server,
    }
}

struct Client {
    http: reqwest::Client,
    id: String,
    secret: String,
}

impl Client {
    async fn token(&self, node: &Node) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/default/oauth2/v2.0/token", node.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.id.as_str()),
                ("client_secret", self.secret.as_str()),
                ("scope", "api://clavis/.default"),
            ])
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    async fn admin(&self, node: &Node) -> String {
        let (status, body) = self.token(node).await;
        assert_eq!(status, StatusCode::OK, "{} {body}", node.base);
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn call(&self, node: &Node, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let admin = self.admin(node).await;
        let url = format!("{}/v1.0/policies/keyEncryptionKeys{path}", node.base);
        let req = match body {
            Some(body) => self.http.post(url).json(&body),
            None => self.http.get(url),
        };
        let r = req.bearer_auth(admin).send().await.unwrap();
        (r.status(), r.json().await.unwrap())
    }
}

fn sealed_under(keks: &Value, id: &str) -> u64 {
    keks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyId"] == id)
        .map_or(0, |k| k["sealedRecords"].as_u64().unwrap())
}

#[tokio::test]
async fn a_rewrap_under_a_key_a_live_node_lacks_is_refused_until_it_holds_it() {
    let db = TestDatabase::create().await;
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let (old, new) = (hex_key(), hex_key());
    let a = start(dir_with_keys(&[&old, &new]), &db.url, &clock).await;
    let b = start(dir_with_keys(&[&old]), &db.url, &clock).await;
    let boot: Value = serde_json::from_str(
        &std::fs::read_to_string(a.dir.path().join("bootstrap-admin.json")).unwrap(),
    )
    .unwrap();
    let admin = Client {
        http: reqwest::Client::new(),
        id: boot["clientId"].as_str().unwrap().into(),
        secret: boot["clientSecret"].as_str().unwrap().into(),
    };

    // A holds both keys (old first), B only the old one; the installation
    // seals under the old key, which both hold.
    let (status, before) = admin.call(&a, "", None).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let old_id = before["keys"][0]["keyId"].as_str().unwrap().to_owned();
    let new_id = before["keys"][1]["keyId"].as_str().unwrap().to_owned();
    assert_eq!(before["installationKeyId"], old_id);
    assert_eq!(before["activeKeyId"], old_id);
    assert_eq!(before["keys"][0]["heldByEveryLiveNode"], true);
    assert_eq!(before["keys"][1]["heldByEveryLiveNode"], false);
    let nodes = before["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{before}");
    let b_row = nodes.iter().find(|n| n["thisNode"] == false).unwrap();
    assert_eq!(b_row["keyIds"], json!([old_id]));
    assert_eq!(b_row["live"], true);
    let sealed = sealed_under(&before, &old_id);
    assert!(sealed >= 2, "{before}");

    // Under the new key: refused, naming B and what to do; nothing moved.
    let (status, refused) = admin
        .call(&a, "/rewrap", Some(json!({"keyId": new_id})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "Request_Conflict");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&b.id)
            && message.contains(b.base.trim_start_matches("http://"))
            && !message.contains(&a.id)
            && message.contains(&new_id)
            && message.contains("CLAVIS_KEK_PREVIOUS")
            && message.contains("Nothing was changed"),
        "{message}"
    );
    // A new key cannot be on B either.
    let (status, refused) = admin
        .call(&a, "/rewrap", Some(json!({"newKey": true})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&b.id));
    let key_lines = std::fs::read_to_string(a.dir.path().join("kek.key"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(key_lines, 2, "no key was added to A's kek.key");
    let (_, after) = admin.call(&a, "", None).await;
    assert_eq!(sealed_under(&after, &old_id), sealed);
    assert_eq!(sealed_under(&after, &new_id), 0);
    assert_eq!(after["installationKeyId"], old_id);
    for node in [&a, &b] {
        assert_eq!(admin.token(node).await.0, StatusCode::OK, "{}", node.base);
    }

    // B restarted with the new key (as an older key): the rewrap goes through.
    let b_dir = b.stop().await;
    rewrite_keys(&b_dir, &[&old, &new]);
    let b = start(b_dir, &db.url, &clock).await;
    let (status, report) = admin
        .call(&a, "/rewrap", Some(json!({"keyId": new_id})))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["keyId"], new_id);
    assert_eq!(report["rewrapped"].as_u64(), Some(sealed), "{report}");
    let keks = &report["keyEncryptionKeys"];
    assert_eq!(keks["installationKeyId"], new_id);
    assert_eq!(sealed_under(keks, &old_id), 0, "{keks}");
    // B follows the installation's key by its next heartbeat; restarted, it
    // opens the rewrapped store (the hash key is opened at start) and serves.
    let b_dir = b.stop().await;
    let b = start(b_dir, &db.url, &clock).await;
    for node in [&a, &b] {
        assert_eq!(admin.token(node).await.0, StatusCode::OK, "{}", node.base);
    }
    let (_, now) = admin.call(&b, "", None).await;
    assert_eq!(now["activeKeyId"], new_id, "{now}");

    // C holds only the new key; a move back to the old key is refused while
    // C is live, also after C crashed, until its heartbeat is older than the
    // live window (30 s).
    let c = start(dir_with_keys(&[&new]), &db.url, &clock).await;
    assert_eq!(admin.token(&c).await.0, StatusCode::OK);
    let back = json!({"keyId": old_id});
    let (status, refused) = admin.call(&a, "/rewrap", Some(back.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&c.id) && !message.contains(&b.id),
        "{message}"
    );
    let c_id = c.id.clone();
    c.crash().await;
    let (status, refused) = admin.call(&a, "/rewrap", Some(back.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&c_id));
    clock.advance(Duration::seconds(31));
    let (status, report) = admin.call(&a, "/rewrap", Some(back)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["keyEncryptionKeys"]["installationKeyId"], old_id);
    let gone = report["keyEncryptionKeys"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"].as_str().unwrap().starts_with(&c_id))
        .cloned()
        .unwrap();
    assert_eq!(gone["live"], false, "{gone}");
    for node in [&a, &b] {
        assert_eq!(admin.token(node).await.0, StatusCode::OK, "{}", node.base);
    }
    // Every refusal is in the audit log.
    let token = admin.admin(&a).await;
    let audit: Value = admin
        .http
        .get(format!(
            "{}/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName%20eq%20'Rewrap%20sealed%20records'",
            a.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failures = audit["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"] == "failure")
        .count();
    assert_eq!(failures, 4, "{audit}");
    a.stop().await;
    b.stop().await;
}
