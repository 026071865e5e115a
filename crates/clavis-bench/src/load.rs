//! The load generator: HTTP/1.1 over TLS with hyper, either closed-loop
//! (N connections as fast as the server answers: saturation) or open-loop
//! (a fixed arrival rate, latency measured from each request's scheduled
//! time so a slow server cannot hide its queue — no coordinated omission).
//! Connections are kept alive, or opened anew (TCP + TLS handshake) for
//! every request, as Keycloak's benchmark does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

/// Where requests go and what they carry.
#[derive(Clone)]
pub struct Target {
    /// One address per node; connections are spread over them round-robin
    /// (as a layer-4 load balancer does).
    pub addrs: Vec<SocketAddr>,
    pub path: String,
    pub tls: TlsConnector,
    /// Form bodies, used round-robin (one per registered client).
    pub bodies: Arc<Vec<Bytes>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addrs", &self.addrs)
            .field("path", &self.path)
            .field("bodies", &self.bodies.len())
            .finish()
    }
}

impl Target {
    /// A target whose TLS trusts exactly `ca_pem`.
    pub fn new(
        addr: SocketAddr,
        path: &str,
        ca_pem: &[u8],
        bodies: Vec<Bytes>,
    ) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(ca_pem) {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            addrs: vec![addr],
            path: path.to_owned(),
            tls: TlsConnector::from(Arc::new(config)),
            bodies: Arc::new(bodies),
        })
    }
}

/// Keep connections open, or open one per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    KeepAlive,
    NewPerRequest,
}

/// What a run measured.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latencies of successful requests, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of latency, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

pub(crate) async fn connect(
    target: &Target,
    node: usize,
) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let addr = target.addrs[node % target.addrs.len()];
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = target.tls.connect(name, tcp).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One request on `sender`; true if the server answered 200 with a token.
pub(crate) async fn token(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    body: Bytes,
) -> anyhow::Result<bool> {
    sender.ready().await?;
    let request = hyper::Request::post(target.path.as_str())
        .header(hyper::header::HOST, "127.0.0.1")
        .header(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let ok = response.status() == hyper::StatusCode::OK;
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(ok && bytes.windows(14).any(|w| w == b"\"access_token\""))
}

/// A worker's connection, reopened on error (or for every request).
struct Worker {
    target: Target,
    /// Which node this worker's connections go to.
    node: usize,
    mode: Connections,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Worker {
    async fn request(&mut self, body: Bytes) -> bool {
        if self.mode == Connections::NewPerRequest || self.sender.is_none() {
            self.sender = connect(&self.target, self.node).await.ok();
        }
        let Some(sender) = self.sender.as_mut() else {
            return false;
        };
        match token(sender, &self.target, body).await {
            Ok(ok) => {
                if self.mode == Connections::NewPerRequest {
                    self.sender = None;
                }
                ok
            }
            Err(_) => {
                self.sender = None;
                false
            }
        }
    }
}

/// Saturation: `connections` workers send back to back for `duration`.
pub async fn closed_loop(
    target: &Target,
    connections: usize,
    duration: Duration,
    mode: Connections,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for node in 0..connections {
        let mut worker = Worker {
            target: target.clone(),
            node,
            mode,
            sender: None,
        };
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            while Instant::now() < end {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let body = worker.target.bodies[i % worker.target.bodies.len()].clone();
                let sent = Instant::now();
                if worker.request(body).await {
                    out.ok += 1;
                    out.latencies_us
                        .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                } else {
                    out.failed += 1;
                }
            }
            out
        }));
    }
    merge(tasks, start).await
}

/// Fixed arrival rate: request `i` is due at `start + i / rate`; up to
/// `concurrency` requests may be in flight. Latency counts from the due time.
pub async fn open_loop(
    target: &Target,
    rate: f64,
    concurrency: usize,
    duration: Duration,
    mode: Connections,
) -> Outcome {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let total = (rate * duration.as_secs_f64()) as u64;
    let mut tasks = Vec::new();
    for node in 0..concurrency {
        let mut worker = Worker {
            target: target.clone(),
            node,
            mode,
            sender: None,
        };
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                // A worker still busy at `due` means the server is behind:
                // count from `due`. A worker that was free only waits on the
                // timer (1 ms granularity): count from when it woke.
                let free_before_due = Instant::now() < due;
                tokio::time::sleep_until(due).await;
                let from = if free_before_due { Instant::now() } else { due };
                let body = worker.target.bodies[i as usize % worker.target.bodies.len()].clone();
                if worker.request(body).await {
                    out.ok += 1;
                    out.latencies_us
                        .push(from.elapsed().as_micros().min(u32::MAX as u128) as u32);
                } else {
                    out.failed += 1;
                }
            }
            out
        }));
    }
    merge(tasks, start).await
}

async fn merge(tasks: Vec<tokio::task::JoinHandle<Outcome>>, start: Instant) -> Outcome {
    let mut all = Outcome::default();
    for task in tasks {
        if let Ok(out) = task.await {
            all.ok += out.ok;
            all.failed += out.failed;
            all.latencies_us.extend(out.latencies_us);
        }
    }
    all.elapsed = start.elapsed();
    all.latencies_us.sort_unstable();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_rate() {
        let out = Outcome {
            ok: 100,
            failed: 0,
            elapsed: Duration::from_secs(2),
            latencies_us: (1..=100).map(|v| v * 1000).collect(),
        };
        assert_eq!(out.rate(), 50.0);
        assert_eq!(out.quantile_ms(0.5), 51.0);
        assert_eq!(out.quantile_ms(0.99), 99.0);
        assert!(Outcome::default().quantile_ms(0.5).is_nan());
    }
}
