//! The credentials file `clavis agent` owns and the application reads: JSON
//! with `authority`, `tenant`, `clientId`, `secret`, `keyId`, `endDateTime`,
//! plus what the agent needs to finish a rotation after a crash (`objectId`,
//! `startDateTime`, `agentId`, `retiring`: old secrets still to remove). Always
//! replaced whole and durably: a temporary file in the same directory
//! (0600 from creation), write, fsync, rename, fsync the directory. Fields
//! the agent does not know are kept as they are.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::authority::Authority;
use crate::error::Error;
use crate::profile::ClientSecret;

/// What the file holds. `Debug` never shows the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// `https://HOST:PORT/TENANT`, as MSAL takes it.
    pub authority: Authority,
    /// The tenant's name or id (for libraries that take it apart from the host).
    #[serde(default)]
    pub tenant: String,
    pub client_id: Uuid,
    #[serde(with = "secret_text")]
    pub secret: ClientSecret,
    pub key_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub end_date_time: OffsetDateTime,
    /// When the secret started (the agent's default rotation point is a third
    /// of its lifetime before its end).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub start_date_time: Option<OffsetDateTime>,
    /// The application's object id (`/v1.0/applications/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<Uuid>,
    /// Set by the agent on its first start; in the names of the secrets it adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// The PEM file of the CA to trust for `authority`, if not the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Old secrets the agent replaced and will remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retiring: Vec<Retiring>,
    /// Anything else the file held, written back unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// An old secret, replaced in the file and due for removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retiring {
    pub key_id: Uuid,
    /// Not before this time (the grace period after the new file was written).
    #[serde(with = "time::serde::rfc3339")]
    pub remove_after: OffsetDateTime,
    /// Whether the application was told (reload command or signal) after the
    /// new file was written; the old secret stays until it has been.
    #[serde(default = "yes")]
    pub reloaded: bool,
}

fn yes() -> bool {
    true
}

mod secret_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    use crate::profile::ClientSecret;

    pub fn serialize<S: Serializer>(secret: &ClientSecret, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ClientSecret, D::Error> {
        Ok(ClientSecret::new(Zeroizing::new(String::deserialize(d)?)))
    }
}

impl Credentials {
    /// The tenant as the file names it, else the authority's last segment.
    pub fn tenant_name(&self) -> String {
        if self.tenant.is_empty() {
            self.authority
                .as_str()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            self.tenant.clone()
        }
    }
}

/// The credentials file and the files beside it: `.NAME.lock` (held while
/// an agent runs) and `.NAME.tmp-*` (a replacement being written).
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    path: PathBuf,
    dir: PathBuf,
    name: String,
}

/// Held while the agent runs: one agent per credentials file.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

impl CredentialsFile {
    pub fn new(path: &Path) -> Result<Self, Error> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::new(format!("{} is not a file name", path.display())))?
            .to_owned();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(CredentialsFile {
            path: path.to_owned(),
            dir,
            name,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn temp_prefix(&self) -> String {
        format!(".{}.tmp-", self.name)
    }

    /// Take the lock, or say which other agent holds it. The lock file is
    /// never reached through a symbolic link: one planted in its place
    /// (pointing at a file the agent's user may write) is refused instead of
    /// being followed and created or opened.
    pub fn lock(&self) -> Result<Lock, Error> {
        let path = self.dir.join(format!(".{}.lock", self.name));
        let mut options = private_options();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
        let file = options.open(&path).map_err(|e| {
            #[cfg(unix)]
            if e.raw_os_error() == Some(libc::ELOOP) {
                return Error::new(format!(
                    "{} is a symbolic link, not the agent's lock file; refusing to follow it",
                    path.display()
                ))
                .hint(format!(
                    "remove it (`rm {}`) and find out who planted it: a link there could make the \
                     agent create or change another file",
                    path.display()
                ));
            }
            io_error("create", &path, &e)
        })?;
        match file.try_lock() {
            Ok(()) => Ok(Lock(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::new(format!(
                "another clavis agent is already looking after {}",
                self.path.display()
            ))
            .hint("run one agent per credentials file")),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error("lock", &path, &e)),
        }
    }

    /// Delete replacements a crash left half-written (never the file itself).
    pub fn remove_stale_temporaries(&self) -> Result<usize, Error> {
        let prefix = self.temp_prefix();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_error("read", &self.dir, &e))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Read the file, refusing one that others could read or that belongs to
    /// another user.
    pub fn load(&self) -> Result<Credentials, Error> {
        self.check_private()?;
        let bytes = Zeroizing::new(
            std::fs::read(&self.path).map_err(|e| io_error("read", &self.path, &e))?,
        );
        // serde's messages can quote the offending value: say only where.
        let credentials: Credentials = serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(format!(
                "{} is not a valid credentials file ({} at line {}, column {})",
                self.path.display(),
                match e.classify() {
                    serde_json::error::Category::Data => "a field is missing or has the wrong type",
                    serde_json::error::Category::Eof => "it ends early",
                    _ => "it is not JSON",
                },
                e.line(),
                e.column()
            ))
            .hint(
                "it holds {\"authority\": \"https://HOST:PORT/TENANT\", \"tenant\", \"clientId\", \
                 \"secret\", \"keyId\", \"endDateTime\": RFC 3339, \"objectId\"}",
            )
        })?;
        if credentials.secret.is_empty() {
            return Err(Error::new(format!(
                "{} has an empty secret",
                self.path.display()
            )));
        }
        Ok(credentials)
    }

    /// Replace the file with `credentials`, durably (see the module docs).
    pub fn store(&self, credentials: &Credentials) -> Result<(), Error> {
        let mut json = Zeroizing::new(
            serde_json::to_vec_pretty(credentials)
                .map_err(|_| Error::new("cannot encode the credentials file"))?,
        );
        json.push(b'\n');
        self.write_atomically(&json)
            .map_err(|e| io_error("write", &self.path, &e))
    }

    fn write_atomically(&self, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self
            .dir
            .join(format!("{}{}", self.temp_prefix(), Uuid::new_v4().simple()));
        let written = private_options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut file| {
                file.write_all(bytes)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        // The rename itself is durable once the directory is.
        File::open(&self.dir)?.sync_all()
    }

    #[cfg(unix)]
    fn check_private(&self) -> Result<(), Error> {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let meta =
            std::fs::symlink_metadata(&self.path).map_err(|e| io_error("read", &self.path, &e))?;
        let shown = self.path.display();
        if !meta.file_type().is_file() {
            return Err(Error::new(format!("{shown} is not a regular file"))
                .hint("point --credentials at the file itself, not a link to it"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::new(format!(
                "{shown} can be read or changed by other users (mode {mode:04o})"
            ))
            .hint(format!("make it private with `chmod 600 {shown}`")));
        }
        let me = self.my_uid()?;
        if meta.uid() != me {
            return Err(Error::new(format!(
                "{shown} belongs to user id {}, not to the user running the agent ({me})",
                meta.uid()
            ))
            .hint("run the agent as the file's owner, or `chown` the file to the agent's user"));
        }
        Ok(())
    }

    #[cfg(not(unix))]
    fn check_private(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Who we are: the owner of a file we create (which also shows the
    /// directory is writable, as every rotation needs it to be).
    #[cfg(unix)]
    fn my_uid(&self) -> Result<u32, Error> {
        use std::os::unix::fs::MetadataExt as _;
        let probe = self
            .dir
            .join(format!("{}{}", self.temp_prefix(), Uuid::new_v4().simple()));
        let made = private_options()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|f| f.metadata());
        let _ = std::fs::remove_file(&probe);
        made.map(|m| m.uid()).map_err(|e| {
            io_error("create a file in", &self.dir, &e).hint(
                "the agent replaces the credentials file, so it needs to write to its directory",
            )
        })
    }
}

/// Create files with mode 0600 from the start.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn io_error(verb: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::new(format!("cannot {verb} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SECRET: &str = "clavis_FileSecretValue0123456789";

    fn sample() -> Credentials {
        serde_json::from_value(serde_json::json!({
            "authority": "https://127.0.0.1:8443/default",
            "tenant": "default",
            "clientId": "6f1c2d3e-0000-4000-8000-0000000000aa",
            "secret": SECRET,
            "keyId": "6f1c2d3e-0000-4000-8000-0000000000bb",
            "endDateTime": "2026-07-01T00:00:00Z",
            "custom": {"kept": true}
        }))
        .unwrap()
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn store_then_load_round_trips_and_keeps_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(&dir.path().join("creds.json")).unwrap();
        let mut creds = sample();
        creds.retiring.push(Retiring {
            key_id: Uuid::nil(),
            remove_after: datetime!(2026-01-01 0:00 UTC),
            reloaded: false,
        });
        file.store(&creds).unwrap();
        let back = file.load().unwrap();
        assert_eq!(back.secret.expose(), SECRET);
        assert_eq!(back.end_date_time, datetime!(2026-07-01 0:00 UTC));
        assert_eq!(back.retiring, creds.retiring);
        assert_eq!(back.other["custom"], serde_json::json!({"kept": true}));
        assert_eq!(back.tenant_name(), "default");
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(text.contains("\"clientId\"") && text.contains("\"removeAfter\""));
        // Nothing but the file itself is left in the directory.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_0600_and_others_readable_files_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        let file = CredentialsFile::new(&path).unwrap();
        file.store(&sample()).unwrap();
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = file.load().unwrap_err();
        assert!(err.reason().contains("mode 0640"), "{}", err.reason());
        assert!(err.hint_text().unwrap().contains("chmod 600"));
        // Replacing it makes it private again.
        file.store(&sample()).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(file.load().is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = CredentialsFile::new(&dir.path().join("real.json")).unwrap();
        real.store(&sample()).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(real.path(), &link).unwrap();
        let err = CredentialsFile::new(&link).unwrap().load().unwrap_err();
        assert!(err.reason().contains("not a regular file"));
    }

    #[test]
    fn parse_errors_never_quote_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        let file = CredentialsFile::new(&path).unwrap();
        // The secret in the wrong field: serde would quote it.
        let text = format!(
            r#"{{"authority":"https://h:1/t","clientId":"{SECRET}","secret":"x","keyId":"{SECRET}","endDateTime":"2026-07-01T00:00:00Z"}}"#
        );
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = file.load().unwrap_err();
        let shown = err.render();
        assert!(shown.contains("not a valid credentials file"), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    /// Found in a review: the lock file was opened through a planted link,
    /// creating (as the agent's user) whatever file the link named.
    #[cfg(unix)]
    #[test]
    fn a_planted_link_in_place_of_the_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(&dir.path().join("creds.json")).unwrap();
        let target = dir.path().join("elsewhere");
        let lock = dir.path().join(".creds.json.lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        let err = file.lock().unwrap_err();
        assert!(
            err.reason().contains("is a symbolic link"),
            "{}",
            err.reason()
        );
        assert!(err.hint_text().unwrap().contains("rm "));
        assert!(!target.exists(), "the link's target was not created");
        // To an existing file too: it is not opened.
        std::fs::write(&target, "keep").unwrap();
        assert!(file.lock().is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // Once the link is gone, the agent takes its lock.
        std::fs::remove_file(&lock).unwrap();
        assert!(file.lock().is_ok());
    }

    #[test]
    fn one_lock_per_file_and_stale_temporaries_go() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(&dir.path().join("creds.json")).unwrap();
        let held = file.lock().unwrap();
        let err = file.lock().unwrap_err();
        assert!(err.reason().contains("another clavis agent"));
        drop(held);
        assert!(file.lock().is_ok());

        std::fs::write(dir.path().join(".creds.json.tmp-abc"), "half").unwrap();
        std::fs::write(dir.path().join("creds.json.other"), "keep").unwrap();
        assert_eq!(file.remove_stale_temporaries().unwrap(), 1);
        assert!(dir.path().join("creds.json.other").exists());
    }
}
