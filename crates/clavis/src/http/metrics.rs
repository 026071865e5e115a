//! `GET /metrics` in the Prometheus text format: tokens issued, refused and
//! throttled by this node, secret hashes computed, connections, and every
//! client secret's seconds to expiry (ids only, never a value), so an alert
//! can fire well before a secret runs out. Served on its own listener
//! (`--metrics-listen`, loopback by default), never on the main one: the
//! ids of every tenant, application and secret are not for the public.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;

/// Counters kept by this node (relaxed atomics: one add per request).
#[derive(Debug, Default)]
pub struct Counters {
    pub tokens_issued: AtomicU64,
    pub tokens_refused: AtomicU64,
    /// Sizes and deletions of the logs (retention and budgets).
    pub logs: crate::log_retention::LogCounters,
}

/// The metrics listener's routes: `GET /metrics`, behind the bearer token
/// when one is configured; anything else is 404.
pub fn router(state: Arc<AppState>, token: Option<super::metrics_auth::MetricsToken>) -> Router {
    let mut router = Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "404: this listener serves /metrics only\n",
            )
        })
        .with_state(state.clone());
    if let Some(token) = token {
        router = router.layer(from_fn_with_state(
            token,
            super::metrics_auth::require_token,
        ));
    }
    router.layer(from_fn_with_state(
        state,
        super::transport::security_headers,
    ))
}

/// Prometheus metrics of this node and its store.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::new();
    let c = &state.counters;
    let _ = writeln!(
        out,
        "# HELP clavis_tokens_issued_total Access tokens issued by this node."
    );
    let _ = writeln!(out, "# TYPE clavis_tokens_issued_total counter");
    let _ = writeln!(
        out,
        "clavis_tokens_issued_total {}",
        c.tokens_issued.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# HELP clavis_token_requests_refused_total Token requests refused by this node (any OAuth error).");
    let _ = writeln!(out, "# TYPE clavis_token_requests_refused_total counter");
    let _ = writeln!(
        out,
        "clavis_token_requests_refused_total {}",
        c.tokens_refused.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# HELP clavis_token_requests_throttled_total Token, introspection and revocation requests refused with 429 (too many failed client authentications), by this node.");
    let _ = writeln!(out, "# TYPE clavis_token_requests_throttled_total counter");
    let _ = writeln!(
        out,
        "clavis_token_requests_throttled_total {}",
        state.throttle.throttled.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# HELP clavis_client_secret_hashes_total Client secret hashes (HMAC) computed by this node.");
    let _ = writeln!(out, "# TYPE clavis_client_secret_hashes_total counter");
    let _ = writeln!(
        out,
        "clavis_client_secret_hashes_total {}",
        state.hasher.computed()
    );
    let _ = writeln!(out, "# HELP clavis_sign_ins_dropped_total Sign-ins not logged because the log's queue was full.");
    let _ = writeln!(out, "# TYPE clavis_sign_ins_dropped_total counter");
    let _ = writeln!(
        out,
        "clavis_sign_ins_dropped_total {}",
        state.sign_ins.dropped.load(Ordering::Relaxed)
    );
    c.logs.render(
        &mut out,
        &state.log_budgets,
        (
            state.sign_ins.not_itemised.load(Ordering::Relaxed),
            state.refusals.not_itemised.load(Ordering::Relaxed),
        ),
    );
    let c = &state.connections;
    let _ = writeln!(
        out,
        "# HELP clavis_connections_open Connections open on the main listener."
    );
    let _ = writeln!(out, "# TYPE clavis_connections_open gauge");
    let _ = writeln!(out, "clavis_connections_open {}", c.open());
    let _ = writeln!(
        out,
        "# HELP clavis_connections_max Most connections served at once (--max-connections)."
    );
    let _ = writeln!(out, "# TYPE clavis_connections_max gauge");
    let _ = writeln!(out, "clavis_connections_max {}", c.max());
    let _ = writeln!(out, "# HELP clavis_connections_limit_reached_total Times a new connection had to wait in the listen backlog because --max-connections were open.");
    let _ = writeln!(out, "# TYPE clavis_connections_limit_reached_total counter");
    let _ = writeln!(out, "clavis_connections_limit_reached_total {}", c.waited());
    match state.expiry_gauge.lines(&state.directory).await {
        Ok(lines) => lines.write(state.clock.now(), &mut out),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: store unavailable");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
