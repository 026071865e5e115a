//! The README's walk-through is a test: the ```sh blocks of its "A walk
//! through" section, read from README.md when the test runs (so the README
//! cannot drift from what works), run as written with bash, one command
//! after the other, against a fresh server on a free port. `clavis` is the
//! built binary, `./clavis-data` the server's data directory, and the
//! README's authority (`https://127.0.0.1:8443`) is rewritten to the test
//! server's. Variables the README sets (`CLIENT_ID=$(…)`) carry over to
//! later commands; bash runs with `set -u`, so a variable used before the
//! README sets it fails the test. A failure names the README line.
//!
//! Nothing is skipped: `clavis webhook add https://hooks.example.com/…`
//! only stores the subscription (no request goes out until a secret nears
//! its end, and none does in this test).

use std::path::Path;
use tokio::process::Command;

use serde_json::Value;

use super::helpers::{claims, spawn_with};

/// The README's own address, which the test rewrites.
const README_AUTHORITY: &str = "127.0.0.1:8443";

/// One command of the walk-through and the README line it starts on.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
}

/// The commands of the ```sh blocks in `section` of `readme`, with
/// continuation lines joined; blank and comment-only lines left out.
fn commands(readme: &str, section: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut in_section = false;
    let mut in_sh = false;
    let mut pending: Option<Step> = None;
    for (i, line) in readme.lines().enumerate() {
        if line.starts_with("## ") {
            in_section = line.trim_end() == format!("## {section}");
            continue;
        }
        if !in_section {
            continue;
        }
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim_end() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let step = pending.get_or_insert_with(|| Step {
            line: i + 1,
            command: String::new(),
        });
        match line.strip_suffix('\\') {
            Some(head) => {
                step.command.push_str(head);
                step.command.push(' ');
            }
            None => {
                step.command.push_str(line);
                let step = pending.take().expect("just set");
                let text = step.command.trim();
                if !text.is_empty() && !text.starts_with('#') {
                    steps.push(step);
                }
            }
        }
    }
    steps
}

/// The names a command assigns at its start (`NAME=$(…)`).
fn assigned(command: &str) -> Option<&str> {
    let (name, _) = command.split_once('=')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')).then_some(name)
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run `step` with bash in `work`, with the variables of earlier steps
/// (kept in `work/.vars`).
async fn run(step: &Step, work: &Path, path: &str, config: &Path, names: &[&str]) -> Outcome {
    let mut script = String::from("set -u -o pipefail\n[ -f .vars ] && . ./.vars\n");
    script.push_str(&step.command);
    script.push_str("\nrc=$?\n");
    if let Some(name) = assigned(&step.command) {
        script.push_str(&format!(
            "[ \"$rc\" = 0 ] && [ -z \"${name}\" ] && {{ echo '{name} is empty' >&2; rc=99; }}\n"
        ));
    }
    if !names.is_empty() {
        script.push_str(&format!(
            "declare -p {} > .vars 2>/dev/null\n",
            names.join(" ")
        ));
    }
    script.push_str("exit $rc\n");
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work)
        // As in a script: never a terminal, so no confirmation question.
        .stdin(std::process::Stdio::null())
        .env("PATH", path)
        .env("CLAVIS_CONFIG_DIR", config)
        .env_remove("CLAVIS_PROFILE")
        .env_remove("CLAVIS_OUTPUT")
        .env_remove("CLAVIS_DATA_DIR")
        .env_remove("CLAVIS_DATABASE_URL")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .await
        .expect("bash runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A token request's answer: Entra's shape, and a token for the orders API
/// carrying the role the walk-through granted.
fn check_token(step: &Step, stdout: &str) {
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "README.md line {}: `{}` printed no token JSON:\n{stdout}",
            step.line, step.command
        )
    });
    assert_eq!(
        answer["token_type"], "Bearer",
        "README.md line {}: {answer}",
        step.line
    );
    let token = answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("README.md line {}: no access_token in {answer}", step.line));
    assert_eq!(
        claims(token)["roles"],
        serde_json::json!(["Orders.Read"]),
        "README.md line {}: the token lacks the role granted above",
        step.line
    );
}

#[tokio::test]
async fn the_readme_walk_through_works_as_written() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let steps = commands(&readme, "A walk through");
    assert!(
        steps.len() >= 10 && steps[0].command.starts_with("clavis login"),
        "the walk-through's commands were not found in README.md: {steps:?}"
    );
    let tokens = steps
        .iter()
        .filter(|s| s.command.starts_with("curl") && s.command.contains("/oauth2/v2.0/token"))
        .count();
    assert!(
        tokens >= 2,
        "the walk-through's curl token calls: {steps:?}"
    );

    let app = spawn_with(clavis::Tls::LocalCa).await;
    let address = app.base.trim_start_matches("https://").to_owned();
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(app.data_dir(), work.path().join("clavis-data")).unwrap();
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_clavis"), bin.path().join("clavis")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config = tempfile::tempdir().unwrap();
    let names: Vec<&str> = steps.iter().filter_map(|s| assigned(&s.command)).collect();

    for step in &steps {
        let step = Step {
            line: step.line,
            command: step.command.replace(README_AUTHORITY, &address),
        };
        let out = run(&step, work.path(), &path, config.path(), &names).await;
        assert_eq!(
            out.code,
            Some(0),
            "README.md line {} failed: `{}`\n--- stdout\n{}\n--- stderr\n{}",
            step.line,
            step.command,
            out.stdout,
            out.stderr
        );
        if step.command.starts_with("curl") && step.command.contains("/oauth2/v2.0/token") {
            check_token(&step, &out.stdout);
        }
    }
}

#[test]
fn commands_are_read_from_sh_blocks_of_one_section_with_their_lines() {
    let text = "# T\n## A walk through\ntext\n```sh\nclavis a   # note\n\n# only a comment\ncurl x \\\n  -d y\n```\n```python\nprint()\n```\n## Next\n```sh\nclavis other\n```\n";
    let steps = commands(text, "A walk through");
    let got: Vec<(usize, &str)> = steps.iter().map(|s| (s.line, s.command.as_str())).collect();
    assert_eq!(got, vec![(5, "clavis a   # note"), (8, "curl x    -d y")]);
    assert_eq!(
        assigned("CLIENT_ID=$(clavis app show x)"),
        Some("CLIENT_ID")
    );
    assert_eq!(assigned("clavis secret add --name=x"), None);
}
