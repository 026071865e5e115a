//! The PostgreSQL mode: N Clavis nodes on one fresh database behind a
//! round-robin of connections, and what each token costs the database
//! (CPU of every `postgres` process, read from /proc).

use std::path::Path;

/// Create database `name` on the server at `admin_url` (with psql).
pub fn create_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    psql(admin_url, &format!("CREATE DATABASE \"{name}\""))?;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or_else(|| admin_url.to_owned());
    Ok(format!("{base}/{name}"))
}

/// Drop database `name` (forcibly: nodes may still hold connections).
pub fn drop_database(admin_url: &str, name: &str) {
    let _ = psql(
        admin_url,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    );
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// CPU seconds used so far by every PostgreSQL process on this machine.
pub fn database_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| crate::procstat::cpu_seconds(pid).ok())
        .sum()
}

/// Copy `kek.key` so that another node can open what the first one sealed.
pub fn share_key(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700))?;
        let key = std::fs::read(from.join("kek.key"))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to.join("kek.key"))?;
        std::io::Write::write_all(&mut f, &key)?;
    }
    Ok(())
}
