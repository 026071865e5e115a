//! What a Prometheus scrape of `/metrics` costs with many applications:
//! wall time per scrape (one keep-alive connection, as Prometheus scrapes)
//! and the server's CPU time per scrape, the first scrape after a change
//! (which rebuilds the secrets' expiry lines) apart from the steady ones.

use std::time::{Duration, Instant};

use crate::procstat;
use crate::servers::Server;

/// The figures of one scrape run.
#[derive(Debug)]
pub struct Report {
    pub secrets: usize,
    pub bytes: usize,
    pub first: Duration,
    pub first_cpu: Duration,
    pub median: Duration,
    pub p99: Duration,
    pub cpu_per_scrape: Duration,
}

/// Scrape `server`'s metrics listener `scrapes` times after a first one.
pub async fn run(server: &Server, scrapes: usize) -> anyhow::Result<Report> {
    let addr = server
        .metrics_addr
        .ok_or_else(|| anyhow::anyhow!("no metrics listener"))?;
    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let scrape = || async {
        let started = Instant::now();
        let r = http.get(&url).send().await?;
        anyhow::ensure!(r.status().is_success(), "scrape: {}", r.status());
        let text = r.text().await?;
        anyhow::Ok((started.elapsed(), text))
    };
    let cpu_start = procstat::cpu_seconds(server.pid)?;
    let (first, text) = scrape().await?;
    let first_cpu = Duration::from_secs_f64(procstat::cpu_seconds(server.pid)? - cpu_start);
    let secrets = text
        .lines()
        .filter(|l| l.starts_with("clavis_client_secret_expiry_seconds{"))
        .count();
    let cpu_before = procstat::cpu_seconds(server.pid)?;
    let mut times = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        times.push(scrape().await?.0);
    }
    let cpu = procstat::cpu_seconds(server.pid)? - cpu_before;
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Ok(Report {
        secrets,
        bytes: text.len(),
        first,
        first_cpu,
        median: at(0.5),
        p99: at(0.99),
        cpu_per_scrape: Duration::from_secs_f64(cpu / scrapes.max(1) as f64),
    })
}
