//! Profiles kept in the user's config dir: `profiles/NAME.json` holds the
//! non-secret settings, `profiles/NAME.secret` (mode 0600, in a 0700 dir) the
//! client secret. The config dir is `$CLAVIS_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/clavis`, else `$HOME/.config/clavis`.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::authority::Authority;
use crate::error::Error;

/// A client secret held in memory: `Debug` says `[redacted]`, drop zeroes it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    /// Wrap a secret value; surrounding whitespace (a trailing newline) is dropped.
    pub fn new(value: Zeroizing<String>) -> Self {
        if value.trim().len() == value.len() {
            ClientSecret(value)
        } else {
            ClientSecret(Zeroizing::new(value.trim().to_owned()))
        }
    }

    /// The value, for the one place that sends it: the token request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for ClientSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ClientSecret::new(Zeroizing::new(String::deserialize(d)?)))
    }
}

/// A profile's name: letters, digits, `-`, `_` and `.`, not starting with `.`
/// (so it is always one plain file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileName(String);

impl ProfileName {
    /// Parse a `--profile` value (also clap's value parser).
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && !text.starts_with('.')
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(ProfileName(text.to_owned()))
        } else {
            Err(
                "a profile name is 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
                    .to_owned(),
            )
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProfileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `profiles/NAME.json` holds: nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// `https://HOST:PORT/TENANT`.
    pub authority: Authority,
    /// The application's appId.
    pub client_id: Uuid,
    /// Absolute path of the PEM file holding the only CA to trust, if any.
    pub ca_file: Option<PathBuf>,
}

/// A loaded profile: its settings and its secret.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: ProfileName,
    pub settings: Settings,
    pub secret: ClientSecret,
}

/// The directory holding `profiles/`.
#[derive(Debug, Clone)]
pub struct ConfigDir(PathBuf);

/// The error for "no config dir could be determined".
pub fn no_config_dir() -> Error {
    Error::new(
        "cannot find a config dir: none of CLAVIS_CONFIG_DIR, XDG_CONFIG_HOME or HOME is set",
    )
    .hint("set CLAVIS_CONFIG_DIR to the directory where clavis should keep its profiles")
}

impl ConfigDir {
    /// Use `dir` as the config dir.
    #[cfg(test)]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ConfigDir(dir.into())
    }

    /// Find the config dir from the environment (`lookup` is `std::env::var_os` outside tests).
    pub fn from_env(lookup: impl Fn(&str) -> Option<OsString>) -> Option<Self> {
        let set = |key: &str| lookup(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        set("CLAVIS_CONFIG_DIR")
            .or_else(|| set("XDG_CONFIG_HOME").map(|d| d.join("clavis")))
            .or_else(|| set("HOME").map(|d| d.join(".config").join("clavis")))
            .map(ConfigDir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    fn profiles(&self) -> PathBuf {
        self.0.join("profiles")
    }

    fn settings_path(&self, name: &ProfileName) -> PathBuf {
        self.profiles().join(format!("{name}.json"))
    }

    fn secret_path(&self, name: &ProfileName) -> PathBuf {
        self.profiles().join(format!("{name}.secret"))
    }

    /// Save (or replace) a profile. The secret is written first, so a profile
    /// whose settings exist always has its secret.
    pub fn save(&self, profile: &Profile) -> Result<(), Error> {
        let dir = self.profiles();
        create_private_dir(&dir)?;
        write_new_then_rename(
            &self.secret_path(&profile.name),
            profile.secret.expose().as_bytes(),
        )?;
        let json = serde_json::to_vec_pretty(&profile.settings).expect("settings serialize");
        write_new_then_rename(&self.settings_path(&profile.name), &json)
    }

    /// Load a profile; a missing one is an error that says how to create it.
    pub fn load(&self, name: &ProfileName) -> Result<Profile, Error> {
        let settings_path = self.settings_path(name);
        let json = match std::fs::read(&settings_path) {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let flag = if name.as_str() == "default" {
                    String::new()
                } else {
                    format!(" --profile {name}")
                };
                return Err(Error::new(format!("no profile '{name}' in {}", self.profiles().display())).hint(
                    format!("run `clavis login{flag} --authority https://HOST:PORT/TENANT --client-id APP_ID` first"),
                ));
            }
            Err(e) => return Err(io_error("read", &settings_path, &e)),
        };
        let settings: Settings = serde_json::from_slice(&json).map_err(|e| {
            Error::new(format!(
                "{} is not a valid profile: {e}",
                settings_path.display()
            ))
            .hint(format!(
                "run `clavis login --profile {name} ...` again to rewrite it"
            ))
        })?;
        let secret_path = self.secret_path(name);
        let bytes = Zeroizing::new(std::fs::read(&secret_path).map_err(|e| {
            io_error("read", &secret_path, &e)
                .hint(format!("run `clavis login --profile {name} ...` again"))
        })?);
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::new(format!("{} is not UTF-8", secret_path.display())))?;
        let secret = ClientSecret::new(Zeroizing::new(text.to_owned()));
        if secret.is_empty() {
            return Err(Error::new(format!("{} is empty", secret_path.display()))
                .hint(format!("run `clavis login --profile {name} ...` again")));
        }
        Ok(Profile {
            name: name.clone(),
            settings,
            secret,
        })
    }

    /// Delete a profile's files; `Ok(false)` if there was no such profile.
    pub fn remove(&self, name: &ProfileName) -> Result<bool, Error> {
        let mut found = false;
        for path in [self.settings_path(name), self.secret_path(name)] {
            match std::fs::remove_file(&path) {
                Ok(()) => found = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("delete", &path, &e)),
            }
        }
        Ok(found)
    }
}

fn io_error(verb: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::new(format!("cannot {verb} {}: {e}", path.display()))
}

/// Create `dir` and any missing parents with mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| io_error("create", dir, &e))
}

/// Write `bytes` to a fresh file created with mode 0600 next to `path`, then
/// rename it over `path`: the file never exists with wider permissions, and
/// a crash never leaves half a file.
fn write_new_then_rename(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp-{}", Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("write", path, &e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Profile {
        Profile {
            name: ProfileName::parse(name).unwrap(),
            settings: Settings {
                authority: Authority::parse("https://localhost:8443/contoso").unwrap(),
                client_id: Uuid::new_v4(),
                ca_file: Some(PathBuf::from("/data/tls/ca.pem")),
            },
            secret: ClientSecret::new(Zeroizing::new("clv_s3cr3t-value\n".to_owned())),
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(tmp.path().join("cfg"));
        let profile = sample("ci");
        config.save(&profile).unwrap();
        let loaded = config.load(&profile.name).unwrap();
        assert_eq!(loaded.settings, profile.settings);
        assert_eq!(loaded.secret.expose(), "clv_s3cr3t-value");
        // The settings file has no secret in it.
        let json = std::fs::read_to_string(tmp.path().join("cfg/profiles/ci.json")).unwrap();
        assert!(!json.contains("s3cr3t"));
        assert!(json.contains("\"clientId\""));
        // Saving again replaces, leaving no temporary files behind.
        config.save(&profile).unwrap();
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("cfg/profiles"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn secret_file_is_0600_and_dirs_0700() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(tmp.path().join("cfg"));
        config.save(&sample("default")).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(tmp.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("cfg/profiles/default.secret"), 0o600);
        assert_eq!(mode("cfg/profiles"), 0o700);
        assert_eq!(mode("cfg"), 0o700);
    }

    #[test]
    fn missing_profile_says_how_to_log_in_and_remove_reports_absence() {
        let tmp = tempfile::tempdir().unwrap();
        let config = ConfigDir::new(tmp.path());
        let name = ProfileName::parse("prod").unwrap();
        let err = config.load(&name).unwrap_err();
        assert!(err.reason().contains("no profile 'prod'"));
        assert!(err
            .hint_text()
            .unwrap()
            .contains("clavis login --profile prod"));
        assert!(!config.remove(&name).unwrap());
        config.save(&sample("prod")).unwrap();
        assert!(config.remove(&name).unwrap());
        assert!(config.load(&name).is_err());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let profile = sample("x");
        assert_eq!(format!("{:?}", profile.secret), "[redacted]");
        assert!(!format!("{profile:?}").contains("s3cr3t"));
    }

    #[test]
    fn config_dir_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let dir = |pairs| ConfigDir::from_env(env(pairs)).map(|d| d.path().to_owned());
        let all = &[
            ("CLAVIS_CONFIG_DIR", "/c"),
            ("XDG_CONFIG_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(dir(all), Some(PathBuf::from("/c")));
        assert_eq!(
            dir(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]),
            Some(PathBuf::from("/x/clavis"))
        );
        assert_eq!(
            dir(&[("CLAVIS_CONFIG_DIR", ""), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.config/clavis"))
        );
        assert_eq!(dir(&[]), None);
    }

    #[test]
    fn profile_names_are_plain_file_names() {
        for ok in ["default", "prod-eu.1", "ci_2"] {
            assert!(ProfileName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(ProfileName::parse(bad).is_err(), "{bad}");
        }
    }
}
