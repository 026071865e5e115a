//! `clavis-bench`: Clavis and a certified peer (panva's oidc-provider) on
//! the same machine, under the same load generator and settings, for the
//! client credentials grant; prints one results table and writes an SVG
//! chart. Run it through `bench/run`, which builds and installs what it needs.

mod algorithms;
mod load;
mod postgres;
mod procstat;
mod report;
mod scrape;
mod servers;
mod softhsm;
mod timing;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use load::{Connections, Outcome, Target};
use report::Row;
use servers::{Kind, Server};

/// Benchmark the client credentials grant: Clavis vs oidc-provider.
#[derive(Debug, Parser)]
struct Args {
    /// A few seconds in all: RS256 and ES256 only, short runs, 100 clients (for CI).
    #[arg(long)]
    smoke: bool,
    /// The `clavis` binary to measure.
    #[arg(long, default_value = "target/release/clavis")]
    clavis: PathBuf,
    /// Folder with the peer's `server.mjs` and its installed `node_modules`;
    /// without it only Clavis is measured.
    #[arg(long)]
    peer_dir: Option<PathBuf>,
    /// Scratch folder (data directories, logs, results).
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Seconds per measurement (default 8; 1 with --smoke).
    #[arg(long)]
    seconds: Option<f64>,
    /// Concurrent connections at saturation.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Registered clients in the "many clients" run (default 10000; 100 with --smoke).
    #[arg(long)]
    many: Option<usize>,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 1)]
    load_threads: usize,
    /// Pin each server under test to this CPU (Clavis with one worker
    /// thread); bench/run pins servers to CPU 0 and itself to the others.
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Also measure Clavis on PostgreSQL: a server URL whose user may create
    /// databases (a fresh one per node count), e.g. postgres://postgres@127.0.0.1:5432/postgres
    #[arg(long)]
    postgres: Option<String>,
    /// Only the latency target: Clavis ES256 keep-alive saturation, then
    /// open-loop p50/p99 at 50% and 80% of it, this many rounds (no peer,
    /// no table).
    #[arg(long, value_name = "ROUNDS")]
    latency_only: Option<usize>,
    /// Only the timing check: SAMPLES refused requests of each kind (wrong
    /// secret, short, long, unknown client), Welch's t against wrong secret.
    #[arg(long, value_name = "SAMPLES")]
    timing: Option<usize>,
    /// Only the metrics scrape: register this many applications (one secret
    /// each), then time 200 scrapes of `/metrics` (wall and server CPU).
    #[arg(long, value_name = "APPS")]
    metrics_scrape: Option<usize>,
    /// Node counts for the PostgreSQL mode (behind a round-robin of connections).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    nodes: Vec<usize>,
}

struct Settings {
    run: Duration,
    warmup: Duration,
    connections: usize,
    many: usize,
    algs: Vec<&'static str>,
}

/// What one saturation run measured.
#[derive(Debug, Clone, Copy, Default)]
struct Saturation {
    rate: f64,
    per_cpu: f64,
    rss_peak: f64,
    failed: u64,
    loadgen_cpu_share: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.load_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = servers::SERVER_CPU.set(args.server_cpu);
    let settings = Settings {
        run: Duration::from_secs_f64(args.seconds.unwrap_or(if args.smoke { 1.0 } else { 8.0 })),
        warmup: Duration::from_secs_f64(if args.smoke { 0.3 } else { 1.0 }),
        connections: args.connections,
        many: args.many.unwrap_or(if args.smoke { 100 } else { 10_000 }),
        algs: if args.smoke {
            vec!["RS256", "ES256"]
        } else {
            vec!["RS256", "ES256", "EdDSA"]
        },
    };
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let scratch = args.out.join(format!("run-{stamp}"));
    std::fs::create_dir_all(&scratch)?;
    // Absolute: the peer runs in its own folder.
    let scratch = std::fs::canonicalize(&scratch)?;
    if let Some(samples) = args.timing {
        return timing_only(&args, &scratch, samples.max(100)).await;
    }
    if let Some(apps) = args.metrics_scrape {
        return metrics_only(&args, &scratch, apps).await;
    }
    if let Some(rounds) = args.latency_only {
        return latency_only(&args, &settings, &scratch, rounds.max(1)).await;
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    // Clavis first: its first start also makes the TLS certificate the peer serves.
    eprintln!("== Clavis: cold start");
    let mut shared_tls = None;
    let mut results: Vec<(Kind, &str, Measured)> = Vec::new();
    for alg in &settings.algs {
        let data = scratch.join(format!("clavis-{alg}"));
        let mut server = servers::start_clavis(
            &args.clavis,
            &data,
            &scratch.join(format!("clavis-{alg}.log")),
        )
        .await?;
        if shared_tls.is_none() {
            let tls = scratch.join("tls");
            std::fs::create_dir_all(&tls)?;
            for f in ["ca.pem", "server.pem", "server-key.pem"] {
                std::fs::copy(data.join("tls").join(f), tls.join(f))?;
            }
            shared_tls = Some(tls);
        }
        servers::provision_clavis(&mut server, alg, 10).await?;
        eprintln!("== Clavis {alg}: measuring");
        let measured = measure(&server, &settings, alg).await?;
        results.push((Kind::Clavis, alg, measured));
        server.stop().await;
    }
    let tls = shared_tls.ok_or_else(|| anyhow::anyhow!("no TLS material"))?;
    let tls_ca = std::fs::read(tls.join("ca.pem"))?;
    if let Some(peer_dir) = &args.peer_dir {
        for alg in &settings.algs {
            eprintln!("== oidc-provider {alg}: measuring");
            let server = servers::start_peer(
                peer_dir,
                alg,
                10,
                (
                    &tls.join("server.pem"),
                    &tls.join("server-key.pem"),
                    &tls_ca,
                ),
                &scratch.join(format!("peer-{alg}.log")),
            )
            .await?;
            let measured = measure(&server, &settings, alg).await?;
            results.push((Kind::Peer, alg, measured));
            server.stop().await;
        }
    } else {
        notes.push("The peer was not measured (no --peer-dir).".into());
    }

    // Many clients: does the cache hold?
    eprintln!("== Clavis with {} clients", settings.many);
    let data = scratch.join("clavis-many");
    let mut server =
        servers::start_clavis(&args.clavis, &data, &scratch.join("clavis-many.log")).await?;
    let started = std::time::Instant::now();
    servers::provision_clavis(&mut server, "ES256", settings.many).await?;
    notes.push(format!(
        "Registering {} clients (application + secret, 2 management calls each) took {:.1} s through Clavis's management API.",
        settings.many,
        started.elapsed().as_secs_f64()
    ));
    let many_clavis = saturate(&server, &settings, Connections::KeepAlive).await?;
    server.stop().await;
    let many_peer = match &args.peer_dir {
        Some(peer_dir) => {
            eprintln!("== oidc-provider with {} clients", settings.many);
            let server = servers::start_peer(
                peer_dir,
                "ES256",
                settings.many,
                (
                    &tls.join("server.pem"),
                    &tls.join("server-key.pem"),
                    &tls_ca,
                ),
                &scratch.join("peer-many.log"),
            )
            .await?;
            let m = saturate(&server, &settings, Connections::KeepAlive).await?;
            server.stop().await;
            Some(m)
        }
        None => None,
    };

    // What the sign-in log costs: ES256 keep-alive with it on and off,
    // alternating so drift on a shared machine hits both alike.
    let rounds = if args.smoke { 1 } else { 3 };
    let (mut log_on, mut log_off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (setting, into) in [("on", &mut log_on), ("off", &mut log_off)] {
            eprintln!(
                "== Clavis ES256, sign-in log {setting} (round {})",
                round + 1
            );
            let name = format!("clavis-signins-{setting}-{round}");
            let mut server = servers::start_clavis_with(
                &args.clavis,
                &scratch.join(&name),
                &scratch.join(format!("{name}.log")),
                &["--sign-in-log".to_owned(), setting.to_owned()],
                None,
                true,
                &[],
            )
            .await?;
            servers::provision_clavis(&mut server, "ES256", 10).await?;
            into.push(saturate(&server, &settings, Connections::KeepAlive).await?);
            server.stop().await;
        }
    }
    let median = |runs: &[Saturation]| {
        let mut v: Vec<f64> = runs.iter().map(|m| m.per_cpu).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (with_log, without_log) = (median(&log_on), median(&log_off));
    notes.push(format!(
        "The sign-in log costs {:.1}% of tokens per CPU-second: {:.0} with it, {:.0} without (ES256, keep-alive; median of {rounds} alternating runs each).",
        100.0 * (1.0 - with_log / without_log),
        with_log,
        without_log
    ));

    // Signing in a PKCS#11 token (SoftHSM2) beside software keys: ES256
    // keep-alive, alternating so drift on a shared machine hits both alike.
    let mut key_providers = None;
    match softhsm::token(&scratch.join("softhsm"))? {
        Err(why) => notes.push(format!("PKCS#11 signing was not measured: {why}.")),
        Ok(hsm) => {
            let (mut in_token, mut in_software) = (Vec::new(), Vec::new());
            for round in 0..rounds {
                for (setting, into) in [("pkcs11", &mut in_token), ("file", &mut in_software)] {
                    eprintln!(
                        "== Clavis ES256, key provider {setting} (round {})",
                        round + 1
                    );
                    let name = format!("clavis-provider-{setting}-{round}");
                    let (flags, env) = match setting {
                        "pkcs11" => (hsm.flags(), hsm.env().to_vec()),
                        _ => (Vec::new(), Vec::new()),
                    };
                    let mut server = servers::start_clavis_with(
                        &args.clavis,
                        &scratch.join(&name),
                        &scratch.join(format!("{name}.log")),
                        &flags,
                        None,
                        true,
                        &env,
                    )
                    .await?;
                    servers::provision_clavis(&mut server, "ES256", 10).await?;
                    into.push(saturate(&server, &settings, Connections::KeepAlive).await?);
                    server.stop().await;
                }
            }
            let (token, software) = (median(&in_token), median(&in_software));
            notes.push(format!(
                "ES256 signed in a PKCS#11 token (SoftHSM2 {}) gives {:.0} tokens per CPU-second, {:.0}% of software signing's {:.0} (keep-alive; median of {rounds} alternating runs each). SoftHSM is a software token: a hardware HSM's figure is its own signing rate.",
                softhsm::MODULE,
                token,
                100.0 * token / software,
                software
            ));
            key_providers = Some((token, software));
        }
    }

    // PostgreSQL: 1..N nodes on one database.
    let mut scaling = Vec::new();
    if let Some(admin) = &args.postgres {
        for &n in &args.nodes {
            eprintln!("== Clavis on PostgreSQL, {n} node(s)");
            let m =
                measure_nodes(&args, admin, n, &scratch, &tls, &tls_ca, &settings, stamp).await?;
            scaling.push((n, m));
        }
    }

    // The table.
    let get = |kind: Kind, alg: &str| {
        results
            .iter()
            .find(|(k, a, _)| *k == kind && *a == alg)
            .map(|(_, _, m)| m)
    };
    let es = get(Kind::Clavis, "ES256").ok_or_else(|| anyhow::anyhow!("no ES256 run"))?;
    let es_peer = get(Kind::Peer, "ES256");
    if es.steal_at_80.is_finite() {
        notes.push(format!(
            "CPU time taken by the hypervisor (steal, /proc/stat) during Clavis's 80% latency run: {:.0} ms per second; stalls of this machine land in the latency tail whatever the server does.",
            es.steal_at_80
        ));
    }
    rows.push(Row::new(
        "cold start to first token",
        "ms",
        es.cold_start_ms,
        es_peer.map(|m| m.cold_start_ms),
        true,
    ));
    for alg in &settings.algs {
        let c = get(Kind::Clavis, alg).ok_or_else(|| anyhow::anyhow!("missing {alg}"))?;
        let p = get(Kind::Peer, alg);
        rows.push(Row::new(
            format!("tokens/s: {alg} keep-alive"),
            "tokens/s",
            c.keep_alive.rate,
            p.map(|m| m.keep_alive.rate),
            false,
        ));
        rows.push(Row::new(
            format!("tokens per CPU-s: {alg} keep-alive"),
            "tokens/CPU-s",
            c.keep_alive.per_cpu,
            p.map(|m| m.keep_alive.per_cpu),
            false,
        ));
    }
    rows.push(Row::new(
        "tokens/s: ES256 new TLS conn.",
        "tokens/s",
        es.new_conn.rate,
        es_peer.map(|m| m.new_conn.rate),
        false,
    ));
    rows.push(Row::new(
        "tokens per CPU-s: ES256 new TLS conn.",
        "tokens/CPU-s",
        es.new_conn.per_cpu,
        es_peer.map(|m| m.new_conn.per_cpu),
        false,
    ));
    rows.push(Row::new(
        format!("tokens/s: {} clients", settings.many),
        "tokens/s",
        many_clavis.rate,
        many_peer.map(|m| m.rate),
        false,
    ));
    rows.push(Row::new(
        format!("tokens per CPU-s: {} clients", settings.many),
        "tokens/CPU-s",
        many_clavis.per_cpu,
        many_peer.map(|m| m.per_cpu),
        false,
    ));
    rows.push(Row::new(
        "tokens per CPU-s: sign-in log on (median)",
        "tokens/CPU-s",
        with_log,
        None,
        false,
    ));
    rows.push(Row::new(
        "tokens per CPU-s: sign-in log off (median)",
        "tokens/CPU-s",
        without_log,
        None,
        false,
    ));
    if let Some((token, software)) = key_providers {
        rows.push(Row::new(
            "tokens per CPU-s: ES256 signed in PKCS#11 token (median)",
            "tokens/CPU-s",
            token,
            None,
            false,
        ));
        rows.push(Row::new(
            "tokens per CPU-s: ES256 software key (median)",
            "tokens/CPU-s",
            software,
            None,
            false,
        ));
    }
    for (label, pick) in [
        ("p50 @50%", 0usize),
        ("p99 @50%", 1),
        ("p50 @80%", 2),
        ("p99 @80%", 3),
    ] {
        rows.push(Row::new(
            format!("latency: {label}"),
            "ms",
            es.latency[pick],
            es_peer.map(|m| m.latency[pick]),
            true,
        ));
    }
    for (n, m) in &scaling {
        rows.push(Row::new(
            format!("tokens/s: PostgreSQL, {n} node(s)"),
            "tokens/s",
            m.rate,
            None,
            false,
        ));
        rows.push(Row::new(
            format!("tokens per CPU-s: PostgreSQL, {n} node(s)"),
            "tokens/CPU-s",
            m.per_cpu,
            None,
            false,
        ));
        rows.push(Row::new(
            format!("database CPU per 1,000 tokens: {n} node(s)"),
            "ms",
            m.db_ms_per_1000,
            None,
            true,
        ));
    }
    rows.push(Row::new(
        "resident memory idle (10 clients)",
        "MiB",
        es.rss_idle,
        es_peer.map(|m| m.rss_idle),
        true,
    ));
    rows.push(Row::new(
        "resident memory under load (10 clients)",
        "MiB",
        es.keep_alive.rss_peak,
        es_peer.map(|m| m.keep_alive.rss_peak),
        true,
    ));
    rows.push(Row::new(
        format!("resident memory under load ({} clients)", settings.many),
        "MiB",
        many_clavis.rss_peak,
        many_peer.map(|m| m.rss_peak),
        true,
    ));

    let failures: u64 = results
        .iter()
        .map(|(_, _, m)| m.keep_alive.failed + m.new_conn.failed)
        .sum::<u64>()
        + many_clavis.failed
        + many_peer.map(|m| m.failed).unwrap_or(0);
    if failures > 0 {
        notes.push(format!(
            "{failures} requests failed across all runs (not counted as tokens)."
        ));
    }
    notes.push(format!(
        "Load generator CPU at ES256 keep-alive saturation: {:.0}% of its {} thread(s) against Clavis{}.",
        es.keep_alive.loadgen_cpu_share * 100.0,
        args.load_threads,
        es_peer
            .map(|m| format!(", {:.0}% against oidc-provider", m.keep_alive.loadgen_cpu_share * 100.0))
            .unwrap_or_default()
    ));
    notes.push(
        "Both servers speak HTTPS with the same certificate (ECDSA P-256) and get the same requests shape \
         (client_secret_post); Clavis stores clients in SQLite and checks an HMAC of the secret, \
         oidc-provider keeps its static clients in memory."
            .into(),
    );
    let machine = machine();
    let settings_text = format!(
        "{} s per measurement after {} s warm-up; {} connections at saturation; latency runs open-loop at 50% and 80% of the \
         keep-alive saturation rate with up to 64 requests in flight; load generator: Rust (hyper + rustls), {} thread(s); {}",
        settings.run.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        settings.connections,
        args.load_threads,
        if args.smoke { "SMOKE RUN (figures not meaningful)" } else { "full run" }
    );
    let mut markdown = report::markdown(&machine, &settings_text, &rows, &notes);
    if let Some(rs) = get(Kind::Clavis, "RS256") {
        let figures = |m: &Measured| algorithms::Figures {
            tokens_per_s: m.keep_alive.rate,
            tokens_per_cpu_s: m.keep_alive.per_cpu,
            latency: m.latency,
            token_bytes: m.token_bytes,
        };
        markdown.push_str(&algorithms::markdown(&figures(rs), &figures(es)));
    }
    let svg = report::svg(&rows);
    std::fs::write(args.out.join("results.md"), &markdown)?;
    std::fs::write(args.out.join("chart.svg"), &svg)?;
    println!("{markdown}");
    println!(
        "(written to {} and {})",
        args.out.join("results.md").display(),
        args.out.join("chart.svg").display()
    );
    if failures > 0 && args.smoke {
        anyhow::bail!("{failures} requests failed");
    }
    Ok(())
}

/// Everything measured for one server and algorithm.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    cold_start_ms: f64,
    rss_idle: f64,
    keep_alive: Saturation,
    new_conn: Saturation,
    /// p50@50%, p99@50%, p50@80%, p99@80% in ms (NaN when not measured).
    latency: [f64; 4],
    /// Milliseconds per second the hypervisor took from this machine's
    /// CPUs during the 80% latency run (NaN when not measured).
    steal_at_80: f64,
    /// Bytes of one access token.
    token_bytes: usize,
}

/// Keep-alive saturation for every algorithm; latency curves for RS256 (the
/// default) and ES256, set side by side; new-connection runs for ES256.
async fn measure(server: &Server, settings: &Settings, alg: &str) -> anyhow::Result<Measured> {
    eprintln!("   {} on {}: saturation", server.kind.name(), server.addr);
    let rss_idle = procstat::rss_mib(server.pid)?;
    let token_bytes = servers::token_size(server).await?;
    let keep_alive = saturate(server, settings, Connections::KeepAlive).await?;
    let with_latency = alg == "ES256" || alg == "RS256";
    let new_conn = if alg == "ES256" {
        saturate(server, settings, Connections::NewPerRequest).await?
    } else {
        Saturation::default()
    };
    let mut latency = [f64::NAN; 4];
    let mut steal_at_80 = f64::NAN;
    if with_latency {
        let target = target(server)?;
        for (i, share) in [0.5, 0.8].into_iter().enumerate() {
            let stolen = procstat::steal_seconds()?;
            let out = load::open_loop(
                &target,
                keep_alive.rate * share,
                64,
                settings.run,
                Connections::KeepAlive,
            )
            .await;
            latency[i * 2] = out.quantile_ms(0.5);
            latency[i * 2 + 1] = out.quantile_ms(0.99);
            steal_at_80 =
                (procstat::steal_seconds()? - stolen) * 1000.0 / settings.run.as_secs_f64();
        }
    }
    Ok(Measured {
        cold_start_ms: server.cold_start.as_secs_f64() * 1000.0,
        rss_idle,
        keep_alive,
        new_conn,
        latency,
        steal_at_80,
        token_bytes,
    })
}

fn target(server: &Server) -> anyhow::Result<Target> {
    Target::new(
        server.addr,
        &server.token_path,
        &server.ca_pem,
        server.bodies.clone(),
    )
}

async fn saturate(
    server: &Server,
    settings: &Settings,
    mode: Connections,
) -> anyhow::Result<Saturation> {
    let target = target(server)?;
    let _: Outcome = load::closed_loop(&target, settings.connections, settings.warmup, mode).await;
    let me = std::process::id();
    let (cpu0, own0) = (
        procstat::cpu_seconds(server.pid)?,
        procstat::cpu_seconds(me)?,
    );
    let rss = procstat::PeakRss::start(server.pid);
    let out = load::closed_loop(&target, settings.connections, settings.run, mode).await;
    let rss_peak = rss.finish().await;
    let (cpu1, own1) = (
        procstat::cpu_seconds(server.pid)?,
        procstat::cpu_seconds(me)?,
    );
    let cpu = (cpu1 - cpu0).max(0.01);
    Ok(Saturation {
        rate: out.rate(),
        per_cpu: out.ok as f64 / cpu,
        rss_peak,
        failed: out.failed,
        loadgen_cpu_share: (own1 - own0) / out.elapsed.as_secs_f64(),
    })
}

/// CPU model, cores, memory, kernel and tool versions.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<f64>()
                    .unwrap_or(0.0)
                    / 1048576.0
            })
        })
        .unwrap_or(0.0);
    let version = |cmd: &str, arg: &str| {
        std::process::Command::new(cmd)
            .arg(arg)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "absent".into())
    };
    format!(
        "{cpu}, {cores} cores, {mem:.0} GiB RAM, Linux {}; {}; Node.js {}",
        version("uname", "-r"),
        version("rustc", "--version"),
        version("node", "--version")
    )
}

/// What N nodes on one PostgreSQL database did together.
#[derive(Debug, Clone, Copy)]
struct Scaled {
    rate: f64,
    /// Tokens per CPU-second of all the nodes together.
    per_cpu: f64,
    /// CPU of all PostgreSQL processes per 1,000 tokens, in ms.
    db_ms_per_1000: f64,
}

#[allow(clippy::too_many_arguments)]
async fn measure_nodes(
    args: &Args,
    admin: &str,
    n: usize,
    scratch: &std::path::Path,
    tls: &std::path::Path,
    tls_ca: &[u8],
    settings: &Settings,
    stamp: i64,
) -> anyhow::Result<Scaled> {
    let name = format!("clavis_bench_{stamp}_{n}");
    let url = postgres::create_database(admin, &name)?;
    let result = async {
        let flags = vec![
            "--database-url".to_owned(),
            url.clone(),
            "--tls-cert".into(),
            tls.join("server.pem").display().to_string(),
            "--tls-key".into(),
            tls.join("server-key.pem").display().to_string(),
            "--public-url".into(),
            "https://clavis.bench".into(),
        ];
        let first_dir = scratch.join(format!("pg{n}-node1"));
        let mut first = servers::start_clavis_with(
            &args.clavis,
            &first_dir,
            &scratch.join(format!("pg{n}-node1.log")),
            &flags,
            Some(tls_ca),
            false,
            &[],
        )
        .await?;
        servers::provision_clavis(&mut first, "ES256", 10).await?;
        let mut nodes = vec![first];
        for k in 2..=n {
            let dir = scratch.join(format!("pg{n}-node{k}"));
            postgres::share_key(&first_dir, &dir)?;
            nodes.push(
                servers::start_clavis_with(
                    &args.clavis,
                    &dir,
                    &scratch.join(format!("pg{n}-node{k}.log")),
                    &flags,
                    Some(tls_ca),
                    false,
                    &[],
                )
                .await?,
            );
        }
        let mut target = target(&nodes[0])?;
        target.addrs = nodes.iter().map(|s| s.addr).collect();
        let _ = load::closed_loop(
            &target,
            settings.connections,
            settings.warmup,
            Connections::KeepAlive,
        )
        .await;
        let cpu = |nodes: &[Server]| -> anyhow::Result<f64> {
            nodes.iter().map(|s| procstat::cpu_seconds(s.pid)).sum()
        };
        let (cpu0, db0) = (cpu(&nodes)?, postgres::database_cpu_seconds());
        let out = load::closed_loop(
            &target,
            settings.connections,
            settings.run,
            Connections::KeepAlive,
        )
        .await;
        let (cpu1, db1) = (cpu(&nodes)?, postgres::database_cpu_seconds());
        for node in nodes {
            node.stop().await;
        }
        anyhow::ensure!(
            out.failed == 0 || !args.smoke,
            "{} requests failed",
            out.failed
        );
        Ok(Scaled {
            rate: out.rate(),
            per_cpu: out.ok as f64 / (cpu1 - cpu0).max(0.01),
            db_ms_per_1000: (db1 - db0).max(0.0) * 1000.0 / (out.ok.max(1) as f64 / 1000.0),
        })
    }
    .await;
    postgres::drop_database(admin, &name);
    result
}

/// `--latency-only`: the latency target alone, several rounds, each with its
/// own saturation measurement (the rate moves on a shared machine).
async fn latency_only(
    args: &Args,
    settings: &Settings,
    scratch: &std::path::Path,
    rounds: usize,
) -> anyhow::Result<()> {
    let data = scratch.join("clavis-latency");
    let mut server =
        servers::start_clavis(&args.clavis, &data, &scratch.join("clavis-latency.log")).await?;
    servers::provision_clavis(&mut server, "ES256", 10).await?;
    let target = target(&server)?;
    println!(
        "| round | saturation tokens/s | tokens per CPU-s | p50 @50% ms | p99 @50% ms | p50 @80% ms | p99 @80% ms | CPU steal @80% ms/s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for round in 1..=rounds {
        let sat = saturate(&server, settings, Connections::KeepAlive).await?;
        let mut cells = Vec::new();
        let mut steal = 0.0;
        for share in [0.5, 0.8] {
            let stolen = procstat::steal_seconds()?;
            let out = load::open_loop(
                &target,
                sat.rate * share,
                64,
                settings.run,
                Connections::KeepAlive,
            )
            .await;
            steal = (procstat::steal_seconds()? - stolen) * 1000.0 / settings.run.as_secs_f64();
            cells.push(format!("{:.2}", out.quantile_ms(0.5)));
            cells.push(format!("{:.2}", out.quantile_ms(0.99)));
        }
        println!(
            "| {round} | {:.0} | {:.0} | {} | {steal:.0} |",
            sat.rate,
            sat.per_cpu,
            cells.join(" | ")
        );
    }
    server.stop().await;
    Ok(())
}

/// `--timing`: is a refusal's time the same whatever was wrong?
async fn metrics_only(args: &Args, scratch: &std::path::Path, apps: usize) -> anyhow::Result<()> {
    let data = scratch.join("clavis-metrics");
    let mut server =
        servers::start_clavis(&args.clavis, &data, &scratch.join("clavis-metrics.log")).await?;
    eprintln!("== registering {apps} applications with a secret each");
    servers::provision_clavis(&mut server, "ES256", apps).await?;
    eprintln!("== scraping /metrics");
    let report = scrape::run(&server, 200).await?;
    server.stop().await;
    println!("| applications | secrets listed | body | first scrape (rebuild): wall / server CPU | then: median | p99 | server CPU per scrape |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let ms = |d: std::time::Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    println!(
        "| {apps} | {} | {:.1} MiB | {} / {} | {} | {} | {} |",
        report.secrets,
        report.bytes as f64 / (1024.0 * 1024.0),
        ms(report.first),
        ms(report.first_cpu),
        ms(report.median),
        ms(report.p99),
        ms(report.cpu_per_scrape)
    );
    Ok(())
}

async fn timing_only(args: &Args, scratch: &std::path::Path, samples: usize) -> anyhow::Result<()> {
    let data = scratch.join("clavis-timing");
    let no_throttle = [
        "--throttle-failures-per-address",
        "0",
        "--throttle-failures-per-app",
        "0",
        "--sign-in-log",
        "off",
    ]
    .map(String::from);
    let mut server = servers::start_clavis_with(
        &args.clavis,
        &data,
        &scratch.join("clavis-timing.log"),
        &no_throttle,
        None,
        true,
        &[],
    )
    .await?;
    servers::provision_clavis(&mut server, "ES256", 1).await?;
    let mut kinds = timing::kinds(&server.bodies[0])?;
    timing::run(&target(&server)?, &mut kinds, samples).await?;
    server.stop().await;
    println!("| refused request | samples | median µs | t against wrong secret |");
    println!("|---|---:|---:|---:|");
    let base = kinds[0].micros.clone();
    for kind in &kinds {
        let t = if std::ptr::eq(kind, &kinds[0]) {
            "–".to_owned()
        } else {
            format!("{:.1}", timing::welch_t(&base, &kind.micros))
        };
        println!(
            "| {} | {} | {:.1} | {t} |",
            kind.name,
            kind.micros.len(),
            timing::median(&kind.micros)
        );
    }
    println!(
        "(|t| < 4.5: no difference found at this sample size; > 10: the kinds can be told apart)"
    );
    Ok(())
}
