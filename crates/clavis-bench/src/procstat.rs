//! What a process costs, read from /proc: CPU seconds (user + system, all
//! threads) and resident memory. The fair figure on a shared machine is
//! tokens per CPU-second of the server, not tokens per wall-second.

use std::time::Duration;

/// Clock ticks per second of /proc's utime/stime (USER_HZ; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time the hypervisor has taken from this machine's virtual CPUs so far
/// (the `steal` column of /proc/stat, all CPUs), in seconds. On a shared
/// virtual machine this is time no process here could run: it lands in
/// latency tails and says nothing about the server.
pub fn steal_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow::anyhow!("no cpu line in /proc/stat"))?;
    // cpu user nice system idle iowait irq softirq steal ...
    let steal: f64 = line
        .split_whitespace()
        .nth(8)
        .ok_or_else(|| anyhow::anyhow!("no steal column in /proc/stat"))?
        .parse()?;
    Ok(steal / TICKS_PER_SECOND)
}

/// CPU time used so far by `pid` (all threads), in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields start after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime field 14, stime field 15.
    let utime: f64 = fields
        .get(11)
        .ok_or_else(|| anyhow::anyhow!("no utime"))?
        .parse()?;
    let stime: f64 = fields
        .get(12)
        .ok_or_else(|| anyhow::anyhow!("no stime"))?
        .parse()?;
    Ok((utime + stime) / TICKS_PER_SECOND)
}

/// Resident memory of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?
        .parse()?;
    Ok(kb / 1024.0)
}

/// Samples a process's RSS in the background and keeps the peak.
#[derive(Debug)]
pub struct PeakRss {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<f64>,
}

impl PeakRss {
    pub fn start(pid: u32) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            loop {
                peak = peak.max(rss_mib(pid).unwrap_or(0.0));
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            peak
        });
        Self { stop, task }
    }

    /// Stop sampling; the peak in MiB.
    pub async fn finish(self) -> f64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        assert!(rss_mib(me).unwrap() > 0.5);
        assert!(cpu_seconds(u32::MAX).is_err());
    }
}
