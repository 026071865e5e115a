//! Refused requests cannot fill the disk: a flood of refusals with random
//! client ids, user agents and addresses writes a bounded number of
//! sign-in rows (and counts what it did not itemise), the sign-in log is
//! trimmed to its budget and both logs to their retention, expired revoked
//! tokens are purged, and refused management calls by a caller without a
//! role are summarised rather than itemised one by one.

use std::sync::atomic::Ordering;

use clavis::log_retention::{self, Budgets};
use clavis::Tls;
use clavis_store::{AuditQuery, AuditResult, SignIn, SignInQuery};
use reqwest::StatusCode;
use serde_json::{json, Value};
use time::Duration;
use uuid::Uuid;

use super::helpers::{spawn_tuned, TestApp};

/// Every sign-in row of the tenant, newest first.
async fn sign_in_rows(app: &TestApp) -> Vec<SignIn> {
    app.state.sign_ins.flush().await;
    let tenant = Uuid::parse_str(&app.tenant_id).unwrap();
    let mut q = SignInQuery {
        tenant_id: tenant,
        app_id: None,
        key_id: None,
        result: None,
        since: None,
        until: None,
        before: None,
        limit: 500,
    };
    let mut rows = Vec::new();
    loop {
        let page = app.state.directory.store().sign_ins(&q).await.unwrap();
        let full = page.len() == 500;
        q.before = page.last().map(|s| (s.at, s.id));
        rows.extend(page);
        if !full {
            return rows;
        }
    }
}

async fn spawn_budgeted(budgets: Budgets) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    spawn_tuned(dir, Tls::Off, move |c| {
        // The flood's addresses come in X-Forwarded-For from this proxy.
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.log_budgets = budgets;
    })
    .await
}

#[tokio::test]
async fn a_flood_of_refusals_writes_a_bounded_number_of_rows() {
    let app = spawn_budgeted(Budgets {
        sign_in_failure_entries_per_minute: 50,
        ..Budgets::default()
    })
    .await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    let before = sign_in_rows(&app).await.len();

    // 20,000 refusals: random client ids (unknown: AADSTS700016), a wrong
    // secret for a real client, random user agents, 400 addresses.
    const TASKS: usize = 16;
    const EACH: usize = 1250;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (http, url) = (app.http.clone(), app.token_url("default"));
        let known = (client.app_id.clone(), format!("{}x", client.secret));
        tasks.spawn(async move {
            let mut refused = 0;
            for i in 0..EACH {
                let n = t * EACH + i;
                let (id, secret) = if n.is_multiple_of(10) {
                    known.clone()
                } else {
                    (Uuid::new_v4().to_string(), "not-a-secret".to_owned())
                };
                let r = http
                    .post(&url)
                    .header("user-agent", format!("flood/{}", Uuid::new_v4()))
                    .header("x-forwarded-for", format!("2001:db8::{:x}", n % 400))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", id.as_str()),
                        ("client_secret", secret.as_str()),
                        ("scope", "api://clavis/.default"),
                    ])
                    .send()
                    .await
                    .expect("request");
                if !r.status().is_success() {
                    refused += 1;
                }
            }
            refused
        });
    }
    let mut refused = 0;
    while let Some(n) = tasks.join_next().await {
        refused += n.unwrap();
    }
    assert_eq!(refused, TASKS * EACH);

    let rows = sign_in_rows(&app).await;
    let failures: Vec<&SignIn> = rows
        .iter()
        .filter(|s| s.result == AuditResult::Failure)
        .collect();
    // Today's code wrote one row per refusal here (20,000).
    assert!(
        failures.len() <= 51,
        "{} failure rows for {refused} refusals",
        failures.len()
    );
    assert!(rows.len() <= before + 51);
    // Nothing is lost: the rows' counts add up to every refusal.
    let counted: u64 = failures.iter().map(|s| u64::from(s.count)).sum();
    assert_eq!(counted, refused as u64);
    let overflow: Vec<&&SignIn> = failures.iter().filter(|s| s.error_code.is_none()).collect();
    assert_eq!(overflow.len(), 1, "one 'not itemised' entry for the minute");
    assert_eq!(
        u64::from(overflow[0].count),
        app.state.sign_ins.not_itemised.load(Ordering::Relaxed),
        "the overflow counter counts what the entry stands for"
    );
    assert!(overflow[0].client_ip.is_none() && overflow[0].user_agent.is_none());
    // Unknown client ids are pooled: no "unknown application" row names one.
    assert!(failures
        .iter()
        .filter(|s| s.error_code == Some(700016))
        .all(|s| s.app_id.is_none()));
    // A row keeps a user agent (the latest, cut short), not one per request.
    assert!(failures.iter().filter(|s| s.error_code.is_some()).all(|s| s
        .user_agent
        .as_deref()
        .is_some_and(|a| a.starts_with("flood/") && a.len() <= 128)));

    // The next minute has its own budget.
    app.clock.advance(Duration::seconds(60));
    let r = app
        .http
        .post(app.token_url("default"))
        .header("x-forwarded-for", "2001:db8::ffff")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.app_id.as_str()),
            ("client_secret", "wrong"),
            ("scope", "api://clavis/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert!(!r.status().is_success());
    let rows = sign_in_rows(&app).await;
    let newest = &rows[0];
    assert_eq!(
        (newest.client_ip.as_deref(), newest.error_code.is_some()),
        (Some("2001:db8::ffff"), true),
        "itemised again: {newest:?}"
    );

    // The Graph view reads sensibly: counts, first and last time, and the
    // overflow entry saying what it stands for.
    let (status, body) = app
        .get(
            "/v1.0/auditLogs/signIns?$top=999&$filter=status/errorCode%20ne%200",
            &admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body["value"].as_array().unwrap();
    let summary = entries
        .iter()
        .find(|e| e["status"]["errorCode"].is_null())
        .expect("the overflow entry");
    assert_eq!(summary["requestCount"], json!(overflow[0].count));
    assert!(
        summary["status"]["failureReason"]
            .as_str()
            .unwrap()
            .contains("not itemised"),
        "{summary}"
    );
    assert!(entries.iter().any(|e| e["requestCount"].as_u64() > Some(1)));
}

/// Three successful sign-ins, each written in its own batch one second apart.
async fn three_sign_ins(app: &TestApp, id: &str, secret: &str) {
    for _ in 0..3 {
        app.token(id, secret, "api://clavis/.default").await;
        app.state.sign_ins.flush().await;
        app.clock.advance(Duration::seconds(1));
    }
}

#[tokio::test]
async fn logs_keep_to_their_budget_and_retention_and_expired_revocations_go() {
    let app = spawn_budgeted(Budgets {
        sign_in_max_rows: 4,
        audit_max_rows: 3,
        ..Budgets::default()
    })
    .await;
    let admin = app.admin_token().await;
    let client = app.register_client(&admin, "worker").await;
    three_sign_ins(&app, &client.app_id, &client.secret).await;
    three_sign_ins(&app, &client.app_id, &client.secret).await;
    let rows = sign_in_rows(&app).await;
    assert!(rows.len() > 4, "{}", rows.len());
    let newest: Vec<Uuid> = rows.iter().take(4).map(|s| s.id).collect();

    // A token revoked one by one.
    let token = app
        .token(&client.app_id, &client.secret, "api://clavis/.default")
        .await;
    let r = app
        .http
        .post(format!("{}/default/oauth2/v2.0/revoke", app.base))
        .form(&[
            ("token", token.as_str()),
            ("client_id", client.app_id.as_str()),
            ("client_secret", client.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tenant = Uuid::parse_str(&app.tenant_id).unwrap();
    let jti = Uuid::parse_str(super::helpers::claims(&token)["jti"].as_str().unwrap()).unwrap();
    let store = app.state.directory.store().clone();
    let audit_events = || {
        let store = store.clone();
        async move {
            store
                .audit_events(&AuditQuery {
                    tenant_id: tenant,
                    since: None,
                    until: None,
                    activity: None,
                    target_id: None,
                    actor_app_id: None,
                    before: None,
                    limit: 10_000,
                })
                .await
                .unwrap()
                .len()
        }
    };
    let audit_before = audit_events().await;
    assert!(audit_before > 3);

    // The sign-in log is trimmed to its newest rows; the audit log, over
    // its budget, is only reported: nothing younger than its retention goes.
    let all: Vec<Uuid> = sign_in_rows(&app).await.iter().map(|s| s.id).collect();
    assert!(all.ends_with(&rows.iter().map(|s| s.id).collect::<Vec<_>>()));
    let report = log_retention::run_once(&app.state).await.unwrap();
    let kept: Vec<Uuid> = sign_in_rows(&app).await.iter().map(|s| s.id).collect();
    assert_eq!(kept, all[..4], "the newest stay: {report:?}");
    assert!(kept.contains(&newest[0]));
    assert_eq!(report.sign_ins_past_budget as usize, all.len() - 4);
    assert_eq!(report.audit_past_retention, 0);
    assert_eq!(report.audit_over_budget, [(tenant, audit_before as u64)]);
    assert_eq!(audit_events().await, audit_before, "no audit event deleted");
    assert_eq!(
        report.revoked_tokens_expired, 0,
        "the token has not expired"
    );
    assert!(store.token_revoked(tenant, jti).await.unwrap());
    let logs = &app.state.counters.logs;
    assert_eq!(logs.audit_tenants_over_budget.load(Ordering::Relaxed), 1);
    assert_eq!(logs.sign_in_rows.load(Ordering::Relaxed), 4);
    assert_eq!(
        logs.sign_ins_deleted_for_budget.load(Ordering::Relaxed),
        report.sign_ins_past_budget
    );

    // Past the token's expiry (and the grace), its revocation goes; the
    // token stays inactive.
    app.clock
        .advance(Duration::hours(1) + log_retention::REVOKED_TOKEN_GRACE + Duration::seconds(1));
    let report = log_retention::run_once(&app.state).await.unwrap();
    assert_eq!(report.revoked_tokens_expired, 1);
    assert!(!store.token_revoked(tenant, jti).await.unwrap());
    let r = app
        .http
        .post(format!("{}/default/oauth2/v2.0/introspect", app.base))
        .form(&[
            ("token", token.as_str()),
            ("client_id", client.app_id.as_str()),
            ("client_secret", client.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["active"], false, "{body}");

    // Past the retention periods (30 days of sign-ins, a year of audit).
    // The introspection above is a sign-in too: written before the purge.
    app.state.sign_ins.flush().await;
    app.clock.advance(Duration::days(31));
    let report = log_retention::run_once(&app.state).await.unwrap();
    assert!(report.sign_ins_past_retention >= 4, "{report:?}");
    assert!(sign_in_rows(&app).await.is_empty());
    assert_eq!(report.audit_past_retention, 0);
    app.clock.advance(Duration::days(365));
    let report = log_retention::run_once(&app.state).await.unwrap();
    assert!(
        report.audit_past_retention as usize >= audit_before,
        "{report:?}"
    );
    assert!(report.audit_over_budget.is_empty());
    assert_eq!(logs.audit_tenants_over_budget.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn refusals_of_a_caller_without_a_role_are_summarised() {
    let app = spawn_budgeted(Budgets::default()).await;
    let admin = app.admin_token().await;
    let no_role = app.register_client(&admin, "no role").await;
    let reader = app.register_client(&admin, "reader").await;
    app.grant_management(&admin, &reader.sp_id, "Application.Read.All")
        .await;
    let tenant = Uuid::parse_str(&app.tenant_id).unwrap();
    let store = app.state.directory.store().clone();
    let refused_by = |caller: String| {
        let store = store.clone();
        async move {
            let q = AuditQuery {
                tenant_id: tenant,
                since: None,
                until: None,
                activity: None,
                target_id: None,
                actor_app_id: Some(Uuid::parse_str(&caller).unwrap()),
                before: None,
                limit: 10_000,
            };
            store.audit_events(&q).await.unwrap()
        }
    };
    for who in [&no_role, &reader] {
        let token = app
            .token(&who.app_id, &who.secret, "api://clavis/.default")
            .await;
        for i in 0..30 {
            let (status, _) = app
                .post(
                    "/v1.0/applications",
                    &token,
                    json!({"displayName": format!("nope {i}")}),
                )
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
    }
    let itemised = refused_by(no_role.app_id.clone()).await;
    assert_eq!(itemised.len(), 10, "the first ten of the minute");
    assert_eq!(app.state.refusals.not_itemised.load(Ordering::Relaxed), 20);
    // A caller holding a role has every refusal itemised.
    assert_eq!(refused_by(reader.app_id.clone()).await.len(), 30);

    app.state
        .refusals
        .flush(store.as_ref(), clavis::clock::Clock::now(&app.clock))
        .await;
    let events = refused_by(no_role.app_id.clone()).await;
    assert_eq!(events.len(), 11);
    let summary = events
        .iter()
        .find(|e| e.activity == clavis::audit_refusals::SUMMARY_ACTIVITY)
        .expect("a summary");
    assert_eq!(summary.result, AuditResult::Failure);
    assert!(
        summary.result_reason.starts_with("20 more refused calls"),
        "{}",
        summary.result_reason
    );
    assert_eq!(
        summary.actor_key_id.map(|k| k.to_string()),
        Some(no_role.key_id.clone())
    );
    // Readable in the Graph shape like any event.
    let (status, body) = app.get("/v1.0/auditLogs/directoryAudits", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.to_string().contains("20 more refused calls"), "{body}");
}
