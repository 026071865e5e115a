//! RS256 (the default, as Entra) and ES256 side by side, from the same run:
//! throughput, CPU per token, latency at 50% and 80% of saturation, and the
//! size of the token a resource server receives.

use std::fmt::Write;

/// What one algorithm cost on Clavis, from the run's measurements.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub tokens_per_s: f64,
    pub tokens_per_cpu_s: f64,
    /// p50@50%, p99@50%, p50@80%, p99@80% in ms.
    pub latency: [f64; 4],
    /// Bytes of one access token (the compact JWS).
    pub token_bytes: usize,
}

impl Figures {
    /// Server CPU per token, in microseconds.
    fn cpu_us(&self) -> f64 {
        1e6 / self.tokens_per_cpu_s
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        "–".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The Markdown section: one row per figure, RS256, ES256 and their ratio.
pub fn markdown(rs: &Figures, es: &Figures) -> String {
    let mut rows: Vec<(&str, &str, f64, f64)> = vec![
        (
            "tokens/s, keep-alive saturation",
            "tokens/s",
            rs.tokens_per_s,
            es.tokens_per_s,
        ),
        (
            "tokens per CPU-second",
            "tokens/CPU-s",
            rs.tokens_per_cpu_s,
            es.tokens_per_cpu_s,
        ),
        ("server CPU per token", "µs", rs.cpu_us(), es.cpu_us()),
    ];
    for (i, label) in ["p50 @50%", "p99 @50%", "p50 @80%", "p99 @80%"]
        .into_iter()
        .enumerate()
    {
        rows.push((label, "ms", rs.latency[i], es.latency[i]));
    }
    rows.push((
        "access token size",
        "bytes",
        rs.token_bytes as f64,
        es.token_bytes as f64,
    ));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n## RS256 (default) and ES256, side by side\n\n\
         Latency at 50% and 80% of each algorithm's own keep-alive saturation rate.\n"
    );
    let _ = writeln!(out, "| figure | unit | RS256 | ES256 | RS256 / ES256 |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for (figure, unit, r, e) in rows {
        let _ = writeln!(
            out,
            "| {figure} | {unit} | {} | {} | {:.2}× |",
            fmt(r),
            fmt(e),
            r / e
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_figure_and_ratio() {
        let rs = Figures {
            tokens_per_s: 4000.0,
            tokens_per_cpu_s: 5000.0,
            latency: [1.0, 2.0, 3.0, 4.0],
            token_bytes: 1200,
        };
        let es = Figures {
            tokens_per_s: 20000.0,
            tokens_per_cpu_s: 25000.0,
            latency: [0.5, 1.0, 1.5, 2.0],
            token_bytes: 900,
        };
        let table = markdown(&rs, &es);
        assert!(
            table.contains("| server CPU per token | µs | 200 | 40.00 | 5.00× |"),
            "{table}"
        );
        assert!(
            table.contains("| access token size | bytes | 1200 | 900 | 1.33× |"),
            "{table}"
        );
        assert!(
            table.contains("| p99 @80% | ms | 4.00 | 2.00 | 2.00× |"),
            "{table}"
        );
    }
}
