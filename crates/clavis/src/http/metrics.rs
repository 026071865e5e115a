//! `GET /metrics` in the Prometheus text format: tokens issued, refused and
//! throttled by this node, secret hashes computed, and every client
//! secret's seconds to expiry (ids only,
//! never a value), so an alert can fire well before a secret runs out.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use clavis_store::ApplicationFilter;

use crate::app::AppState;

/// Counters kept by this node (relaxed atomics: one add per request).
#[derive(Debug, Default)]
pub struct Counters {
    pub tokens_issued: AtomicU64,
    pub tokens_refused: AtomicU64,
    /// Sizes and deletions of the logs (retention and budgets).
    pub logs: crate::log_retention::LogCounters,
}

/// Prometheus metrics of this node and its store.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
              (status = 503, description = "The store does not answer")))]
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
    let _ = writeln!(out, "# HELP clavis_client_secret_expiry_seconds Seconds until a client secret ends (negative: ended).");
    let _ = writeln!(out, "# TYPE clavis_client_secret_expiry_seconds gauge");
    let now = state.clock.now();
    let store = state.directory.store();
    let tenants = match store.tenants().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: store unavailable");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    for tenant in tenants {
        let mut after = None;
        loop {
            let filter = ApplicationFilter {
                after,
                limit: 500,
                ..Default::default()
            };
            let page = match store.list_applications(tenant.id, &filter).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: store unavailable");
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            };
            for app in &page {
                for c in &app.password_credentials {
                    let _ = writeln!(
                        out,
                        "clavis_client_secret_expiry_seconds{{tenant_id=\"{}\",app_id=\"{}\",key_id=\"{}\"}} {}",
                        tenant.id,
                        app.app_id,
                        c.key_id,
                        (c.end_at - now).whole_seconds()
                    );
                }
            }
            after = page.last().map(|a| a.id);
            if page.len() < 500 {
                break;
            }
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
