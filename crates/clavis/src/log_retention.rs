//! Keeps what refused and accepted requests leave behind within bounds:
//! every ten minutes each node deletes sign-ins older than
//! `--sign-in-retention-days` and, per tenant, the oldest past
//! `--sign-in-log-max-rows`; audit events older than
//! `--audit-retention-days`; and tokens revoked one by one once they have
//! expired. It counts each tenant's rows for `/metrics` (the scrape itself
//! reads only counters).
//!
//! The audit log's size budget is an alarm, not a deletion: an audit event
//! younger than its retention is never deleted to make room. Deleting
//! evidence because someone produced more of it is what an intruder covering
//! their tracks wants; what an outsider can add is already bounded (refused
//! calls by callers without a role are summarised, see
//! [`crate::audit_refusals`]), and what remains takes a management role. A
//! tenant over budget gets an error line at every check and
//! `clavis_log_over_budget{log="audit"}`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Weak;
use std::time::Duration as StdDuration;

use clavis_store::StoreResult;
use time::Duration;
use uuid::Uuid;

use crate::app::AppState;

/// How often the logs are checked.
const EVERY: StdDuration = StdDuration::from_secs(600);
/// How long after its expiry a revoked token's row is kept: longer than
/// the leeway any check grants on `exp`, so purging never revives a token.
pub const REVOKED_TOKEN_GRACE: Duration =
    Duration::seconds(10 * crate::oauth::introspection::LEEWAY_SECS);

/// What the logs may hold (`clavis serve` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Itemised failure entries per tenant and minute in the sign-in log
    /// (per node); the rest are counted in one overflow entry.
    pub sign_in_failure_entries_per_minute: u32,
    /// Most sign-in rows a tenant keeps; the oldest past it are deleted.
    pub sign_in_max_rows: u64,
    /// How long an audit event is kept.
    pub audit_retention: Duration,
    /// Audit events per tenant past which Clavis raises the alarm.
    pub audit_max_rows: u64,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            sign_in_failure_entries_per_minute: 100,
            sign_in_max_rows: 1_000_000,
            audit_retention: Duration::days(365),
            audit_max_rows: 1_000_000,
        }
    }
}

/// What the checks found and did, for `/metrics` (relaxed atomics).
#[derive(Debug, Default)]
pub struct LogCounters {
    /// Rows of every tenant's sign-in log at the last check.
    pub sign_in_rows: AtomicU64,
    /// Audit events of every tenant at the last check.
    pub audit_rows: AtomicU64,
    /// Tenants whose audit log exceeded its budget at the last check.
    pub audit_tenants_over_budget: AtomicU64,
    pub sign_ins_deleted_for_age: AtomicU64,
    pub sign_ins_deleted_for_budget: AtomicU64,
    pub audit_deleted_for_age: AtomicU64,
    pub revoked_tokens_deleted: AtomicU64,
}

/// What one check did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub sign_ins_past_retention: u64,
    pub sign_ins_past_budget: u64,
    pub audit_past_retention: u64,
    pub revoked_tokens_expired: u64,
    /// Tenants whose audit log is over budget, with their event counts.
    pub audit_over_budget: Vec<(Uuid, u64)>,
}

/// Check every tenant's logs once (by the server's clock).
pub async fn run_once(state: &AppState) -> StoreResult<Report> {
    let store = state.directory.store();
    let budgets = &state.log_budgets;
    let counters = &state.counters.logs;
    let now = state.clock.now();
    let mut report = Report {
        sign_ins_past_retention: crate::signin_log::purge_expired(state).await?,
        revoked_tokens_expired: store
            .purge_revoked_tokens(now - REVOKED_TOKEN_GRACE)
            .await?,
        ..Report::default()
    };
    let (mut sign_in_rows, mut audit_rows) = (0, 0);
    for tenant in store.tenants().await? {
        report.audit_past_retention += store
            .purge_audit_events(tenant.id, now - budgets.audit_retention)
            .await?;
        report.sign_ins_past_budget += store
            .trim_sign_ins(tenant.id, budgets.sign_in_max_rows)
            .await?;
        let rows = store.log_rows(tenant.id).await?;
        sign_in_rows += rows.sign_ins;
        audit_rows += rows.audit_events;
        if rows.audit_events > budgets.audit_max_rows {
            report
                .audit_over_budget
                .push((tenant.id, rows.audit_events));
        }
    }
    counters.sign_in_rows.store(sign_in_rows, Ordering::Relaxed);
    counters.audit_rows.store(audit_rows, Ordering::Relaxed);
    counters
        .audit_tenants_over_budget
        .store(report.audit_over_budget.len() as u64, Ordering::Relaxed);
    let add = |counter: &AtomicU64, n| counter.fetch_add(n, Ordering::Relaxed);
    add(
        &counters.sign_ins_deleted_for_age,
        report.sign_ins_past_retention,
    );
    add(
        &counters.sign_ins_deleted_for_budget,
        report.sign_ins_past_budget,
    );
    add(&counters.audit_deleted_for_age, report.audit_past_retention);
    add(
        &counters.revoked_tokens_deleted,
        report.revoked_tokens_expired,
    );
    Ok(report)
}

/// Check now and every ten minutes (writing the summaries of refused
/// management calls every minute), for as long as the server runs.
pub async fn keep_within_budgets(state: Weak<AppState>) {
    let mut tick = tokio::time::interval(StdDuration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let checks_every = (EVERY.as_secs() / 60).max(1);
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else { return };
        state
            .refusals
            .flush(state.directory.store().as_ref(), state.clock.now())
            .await;
        ticks += 1;
        if !(ticks - 1).is_multiple_of(checks_every) {
            continue;
        }
        match run_once(&state).await {
            Ok(report) => log(&report, &state.log_budgets),
            Err(e) => tracing::warn!(error = %e, "could not apply the logs' retention; will retry"),
        }
    }
}

fn log(report: &Report, budgets: &Budgets) {
    let deleted = report.sign_ins_past_retention
        + report.sign_ins_past_budget
        + report.audit_past_retention
        + report.revoked_tokens_expired;
    if deleted > 0 {
        tracing::info!(
            sign_ins_past_retention = report.sign_ins_past_retention,
            sign_ins_past_budget = report.sign_ins_past_budget,
            audit_events_past_retention = report.audit_past_retention,
            expired_revoked_tokens = report.revoked_tokens_expired,
            "deleted log rows past their retention or budget"
        );
    }
    for (tenant, events) in &report.audit_over_budget {
        tracing::error!(
            %tenant,
            events,
            budget = budgets.audit_max_rows,
            retention_days = budgets.audit_retention.whole_days(),
            "the audit log is over its size budget; Clavis deletes no audit event younger than \
             its retention, so it keeps growing: find who writes so much (GET \
             /v1.0/auditLogs/directoryAudits), then raise --audit-log-max-rows, shorten \
             --audit-retention-days or export and free disk"
        );
    }
}

impl LogCounters {
    /// The Prometheus lines of the logs' budgets.
    pub fn render(&self, out: &mut String, budgets: &Budgets, not_itemised: (u64, u64)) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut line = |text: String| {
            let _ = writeln!(out, "{text}");
        };
        line("# HELP clavis_log_rows Rows of every tenant's log at the last check (every ten minutes).".into());
        line("# TYPE clavis_log_rows gauge".into());
        line(format!(
            "clavis_log_rows{{log=\"sign_ins\"}} {}",
            get(&self.sign_in_rows)
        ));
        line(format!(
            "clavis_log_rows{{log=\"audit\"}} {}",
            get(&self.audit_rows)
        ));
        line("# HELP clavis_log_rows_budget Most rows one tenant's log should hold (sign-ins: the oldest past it are deleted; audit: an alarm).".into());
        line("# TYPE clavis_log_rows_budget gauge".into());
        line(format!(
            "clavis_log_rows_budget{{log=\"sign_ins\"}} {}",
            budgets.sign_in_max_rows
        ));
        line(format!(
            "clavis_log_rows_budget{{log=\"audit\"}} {}",
            budgets.audit_max_rows
        ));
        line("# HELP clavis_log_over_budget Tenants whose log exceeded its budget at the last check.".into());
        line("# TYPE clavis_log_over_budget gauge".into());
        line(format!(
            "clavis_log_over_budget{{log=\"audit\"}} {}",
            get(&self.audit_tenants_over_budget)
        ));
        line(
            "# HELP clavis_log_deleted_total Log rows deleted by this node, by log and reason."
                .into(),
        );
        line("# TYPE clavis_log_deleted_total counter".into());
        for (log, reason, counter) in [
            ("sign_ins", "age", &self.sign_ins_deleted_for_age),
            ("sign_ins", "budget", &self.sign_ins_deleted_for_budget),
            ("audit", "age", &self.audit_deleted_for_age),
            ("revoked_tokens", "expired", &self.revoked_tokens_deleted),
        ] {
            line(format!(
                "clavis_log_deleted_total{{log=\"{log}\",reason=\"{reason}\"}} {}",
                get(counter)
            ));
        }
        let (sign_ins, audit) = not_itemised;
        line("# HELP clavis_sign_in_failures_not_itemised_total Refused token requests counted in a tenant's \"not itemised\" sign-in entry (its per-minute budget was full), by this node.".into());
        line("# TYPE clavis_sign_in_failures_not_itemised_total counter".into());
        line(format!(
            "clavis_sign_in_failures_not_itemised_total {sign_ins}"
        ));
        line("# HELP clavis_audit_refusals_not_itemised_total Refused management calls by callers without a management role counted in a summary audit event rather than itemised, by this node.".into());
        line("# TYPE clavis_audit_refusals_not_itemised_total counter".into());
        line(format!("clavis_audit_refusals_not_itemised_total {audit}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_name_every_log_budget_and_deletion() {
        let counters = LogCounters::default();
        counters.sign_in_rows.store(12, Ordering::Relaxed);
        counters
            .audit_tenants_over_budget
            .store(1, Ordering::Relaxed);
        counters
            .sign_ins_deleted_for_budget
            .store(3, Ordering::Relaxed);
        let mut out = String::new();
        counters.render(&mut out, &Budgets::default(), (7, 2));
        for line in [
            "clavis_log_rows{log=\"sign_ins\"} 12",
            "clavis_log_rows{log=\"audit\"} 0",
            "clavis_log_rows_budget{log=\"sign_ins\"} 1000000",
            "clavis_log_over_budget{log=\"audit\"} 1",
            "clavis_log_deleted_total{log=\"sign_ins\",reason=\"budget\"} 3",
            "clavis_log_deleted_total{log=\"revoked_tokens\",reason=\"expired\"} 0",
            "clavis_sign_in_failures_not_itemised_total 7",
            "clavis_audit_refusals_not_itemised_total 2",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line} missing from:\n{out}"
            );
        }
        // Every sample has its HELP and TYPE.
        for name in out
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap_or_default())
        {
            assert!(out.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
