//! The data directory: created private (0700), refused when others can
//! write to it, and locked so that one process at a time serves it (two
//! processes on one SQLite store would not see each other's revocations).

use std::path::Path;

use anyhow::Context;

/// Create or check `dir` and take its lock; keep the returned file open for
/// as long as the server runs.
pub fn prepare(dir: &Path) -> anyhow::Result<std::fs::File> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o022 != 0 {
            anyhow::bail!(
                "the data directory {} can be written by other users (mode {:o}): run `chmod 700 {}`",
                dir.display(),
                mode & 0o777,
                dir.display()
            );
        }
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), "the data directory is readable by other users; `chmod 700` it");
        }
    }
    let path = dir.join("clavis.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Clavis process is already serving {}: stop it first (several nodes share one PostgreSQL database, not one data directory)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Take the lock of an existing data directory for a short offline job
/// (`clavis store copy`), so that no server serves it meanwhile. A
/// directory without a lock file was never served: `None`. Refuses while a
/// server holds the lock.
pub fn lock_existing(dir: &Path) -> anyhow::Result<Option<std::fs::File>> {
    let path = dir.join("clavis.lock");
    if !path.exists() {
        return Ok(None);
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "a Clavis server is running on {} (it holds clavis.lock): stop it, then run this again",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}
