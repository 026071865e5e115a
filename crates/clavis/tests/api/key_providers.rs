//! Key providers: the key-encryption key from the key file (the default) or
//! from an environment variable (`--key-provider env`, `CLAVIS_KEK`). The
//! same key opens the same store whichever provider holds it; a missing,
//! malformed or wrong key stops the server with a message that never shows
//! the key.

use clavis::keys::KekSource;
use clavis::{App, Config, Tls};
use zeroize::Zeroizing;

use super::helpers::{spawn_app, spawn_tuned};

fn env_source(value: Option<&str>) -> KekSource {
    KekSource::Env {
        var: "CLAVIS_KEK".into(),
        value: value.map(|v| Zeroizing::new(v.to_owned())),
        previous: None,
    }
}

#[tokio::test]
async fn a_key_moved_from_the_file_to_the_environment_opens_the_same_store() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    let key = std::fs::read_to_string(app.dir.path().join("kek.key")).unwrap();
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    app.stop().await.unwrap();
    // The operator moves the key out of the data directory.
    std::fs::remove_file(dir.path().join("kek.key")).unwrap();

    let key_for_env = key.trim().to_owned();
    let app = spawn_tuned(dir, Tls::Off, move |c| {
        c.kek = env_source(Some(&key_for_env));
    })
    .await;
    app.token(&client.app_id, &client.secret, "api://clavis/.default")
        .await;
    let admin = app.admin_token().await;
    let (status, _) = app.get("/v1.0/applications", &admin).await;
    assert_eq!(status, 200);
    assert!(
        !app.dir.path().join("kek.key").exists(),
        "the environment provider never writes a key file"
    );
}

#[tokio::test]
async fn a_missing_malformed_or_wrong_environment_key_stops_the_server() {
    let mut app = spawn_app().await;
    let key = std::fs::read_to_string(app.dir.path().join("kek.key")).unwrap();
    let data = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    app.stop().await.unwrap();
    let dir = data.path().to_path_buf();
    let start = |source: KekSource| {
        let mut config = Config::for_tests(dir.clone(), Tls::Off);
        config.kek = source;
        async move {
            App::build(config, std::sync::Arc::new(clavis::clock::SystemClock))
                .await
                .map(|_| ())
        }
    };
    let missing = start(env_source(None)).await.unwrap_err();
    assert!(format!("{missing:#}").contains("CLAVIS_KEK"), "{missing:#}");

    let malformed = "0123456789abcdef-not-hex";
    let err = start(env_source(Some(malformed))).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("CLAVIS_KEK") && !text.contains(malformed),
        "{text}"
    );

    let other = "ff".repeat(32);
    let err = start(env_source(Some(&other))).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("another key"), "{text}");
    assert!(
        !text.contains(&other) && !text.contains(key.trim()),
        "{text}"
    );
}
