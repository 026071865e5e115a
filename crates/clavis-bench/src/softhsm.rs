//! A SoftHSM2 token for the PKCS#11 rows: its own configuration and token
//! directory under the bench's scratch directory, initialised with
//! `softhsm2-util`, and the environment a Clavis server needs to use it.

use std::path::Path;
use std::process::Command;

/// SoftHSM2's PKCS#11 module (Debian's softhsm2 package).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// An initialised token.
pub struct Token {
    pub label: String,
    env: Vec<(String, String)>,
}

impl Token {
    /// `serve` flags that select this token.
    pub fn flags(&self) -> Vec<String> {
        [
            "--key-provider",
            "pkcs11",
            "--pkcs11-module",
            MODULE,
            "--pkcs11-token-label",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([self.label.clone()])
        .collect()
    }

    /// The environment the server needs (configuration and PIN).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }
}

/// A fresh token in `dir`, or `None` (with the reason) when SoftHSM2 is
/// not installed.
pub fn token(dir: &Path) -> anyhow::Result<Result<Token, String>> {
    if !Path::new(MODULE).exists() {
        return Ok(Err(format!(
            "{MODULE} is missing (apt-get install softhsm2)"
        )));
    }
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )?;
    let (label, pin) = ("clavis-bench".to_owned(), "1234".to_owned());
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", &label])
        .args(["--pin", &pin, "--so-pin", "5678"])
        .output();
    match out {
        Err(e) => return Ok(Err(format!("softhsm2-util cannot run: {e}"))),
        Ok(out) if !out.status.success() => anyhow::bail!(
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(_) => {}
    }
    Ok(Ok(Token {
        label,
        env: vec![
            ("SOFTHSM2_CONF".into(), conf.display().to_string()),
            ("CLAVIS_PKCS11_PIN".into(), pin),
        ],
    }))
}
