//! The results: one Markdown table (Clavis, peer, ratio per figure, the
//! machine beside it) and an SVG chart of throughput and latency.

use std::fmt::Write;

/// One figure measured on both servers.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub unit: &'static str,
    pub clavis: f64,
    pub peer: Option<f64>,
    /// True when smaller is better (latency, memory, start time).
    pub lower_is_better: bool,
}

impl Row {
    pub fn new(
        figure: impl Into<String>,
        unit: &'static str,
        clavis: f64,
        peer: Option<f64>,
        lower_is_better: bool,
    ) -> Self {
        Self {
            figure: figure.into(),
            unit,
            clavis,
            peer,
            lower_is_better,
        }
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v >= 100.0 {
        format!("{:.0}", v)
    } else if v >= 10.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

/// The results as Markdown.
pub fn markdown(machine: &str, settings: &str, rows: &[Row], notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| figure | unit | better | Clavis | oidc-provider | Clavis / peer |"
    );
    let _ = writeln!(out, "|---|---|:-:|---:|---:|---:|");
    for r in rows {
        let (peer, ratio) = match r.peer {
            Some(p) => (fmt(p), format!("{:.2}×", r.clavis / p)),
            None => ("–".into(), "–".into()),
        };
        let better = if r.lower_is_better { "lower" } else { "higher" };
        let _ = writeln!(
            out,
            "| {} | {} | {better} | {} | {} | {} |",
            r.figure,
            r.unit,
            fmt(r.clavis),
            peer,
            ratio
        );
    }
    let mut doc = String::new();
    let _ = writeln!(doc, "# Client-credentials benchmark\n");
    let _ = writeln!(doc, "**Machine:** {machine}\n");
    let _ = writeln!(doc, "**Settings:** {settings}\n");
    doc.push_str(&out);
    if !notes.is_empty() {
        doc.push('\n');
        for n in notes {
            let _ = writeln!(doc, "- {n}");
        }
    }
    doc
}

/// A bar chart panel: groups of (label, Clavis, peer).
struct Panel<'a> {
    title: &'a str,
    groups: Vec<(String, f64, Option<f64>)>,
}

/// The chart: throughput, throughput per CPU-second, and latency.
pub fn svg(rows: &[Row]) -> String {
    let pick = |prefix: &str| -> Vec<(String, f64, Option<f64>)> {
        rows.iter()
            .filter(|r| r.figure.starts_with(prefix))
            .map(|r| (short(r.figure[prefix.len()..].trim()), r.clavis, r.peer))
            .collect()
    };
    let panels = [
        Panel {
            title: "Tokens per second at saturation (higher is better)",
            groups: pick("tokens/s:"),
        },
        Panel {
            title: "Tokens per CPU-second of the server (higher is better)",
            groups: pick("tokens per CPU-s:"),
        },
        Panel {
            title: "Latency, ES256 keep-alive, ms (lower is better)",
            groups: pick("latency:"),
        },
    ];
    let (width, panel_height) = (960.0, 250.0);
    let height = panel_height * panels.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<rect x="700" y="8" width="12" height="12" fill="#2b6cb0"/><text x="716" y="19">Clavis</text><rect x="780" y="8" width="12" height="12" fill="#dd6b20"/><text x="796" y="19">oidc-provider</text>"##
    );
    for (i, panel) in panels.iter().enumerate() {
        let top = 30.0 + i as f64 * panel_height;
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}" font-size="14" font-weight="bold">{}</text>"#,
            top + 16.0,
            panel.title
        );
        let max = panel
            .groups
            .iter()
            .flat_map(|(_, c, p)| [Some(*c), *p])
            .flatten()
            .filter(|v| v.is_finite())
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let (plot_top, plot_height) = (top + 30.0, panel_height - 80.0);
        let n = panel.groups.len().max(1) as f64;
        let slot = (width - 40.0) / n;
        let bar = (slot * 0.35).min(60.0);
        for (j, (label, clavis, peer)) in panel.groups.iter().enumerate() {
            let x = 20.0 + j as f64 * slot + slot / 2.0;
            for (k, value, colour) in [(0.0, Some(*clavis), "#2b6cb0"), (1.0, *peer, "#dd6b20")] {
                let Some(v) = value.filter(|v| v.is_finite()) else {
                    continue;
                };
                let h = v / max * plot_height;
                let bx = x - bar + k * bar;
                let by = plot_top + plot_height - h;
                let _ = writeln!(
                    s,
                    r#"<rect x="{bx:.1}" y="{by:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/>"#,
                    bar - 2.0
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                    bx + bar / 2.0 - 1.0,
                    by - 3.0,
                    fmt(v)
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                plot_top + plot_height + 16.0,
                escape(label)
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="15" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#888"/>"##,
            width - 15.0,
            y = plot_top + plot_height
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A chart label short enough to sit under its bars.
fn short(label: &str) -> String {
    label
        .replace(" keep-alive", "")
        .replace("new TLS conn.", "new conn.")
        .replace("PostgreSQL, ", "PG ×")
        .replace(" node(s)", "")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_ratios_and_chart_has_bars() {
        let rows = vec![
            Row::new(
                "tokens/s: ES256 keep-alive",
                "tokens/s",
                40_000.0,
                Some(8_000.0),
                false,
            ),
            Row::new("latency: p99 @80%", "ms", 2.0, None, true),
        ];
        let md = markdown("test machine", "settings", &rows, &["a note".into()]);
        assert!(
            md.contains(
                "| tokens/s: ES256 keep-alive | tokens/s | higher | 40000 | 8000 | 5.00× |"
            ),
            "{md}"
        );
        assert!(md.contains("| latency: p99 @80% | ms | lower | 2.00 | – | – |"));
        assert!(md.contains("- a note"));
        let chart = svg(&rows);
        assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
        assert_eq!(
            chart.matches("<rect").count(),
            1 + 2 + 2 + 1,
            "background, two legend swatches, two throughput bars, one latency bar"
        );
    }
}
