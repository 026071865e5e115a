//! What a compromised client secret was used for, built from the sign-in
//! log and the audit log: every token it minted (time, source address, user
//! agent, resource) and every authentication with it at introspection or
//! revocation (the same, with no resource), its first and last use, the
//! application's failed client authentications, and the management actions
//! the application took.
//! [`gather`] reads the store; [`build`] is the pure part that shapes the
//! report, tested on its own. Nothing here holds a secret value.

use std::collections::HashMap;

use clavis_store::{
    Application, AuditEvent, AuditQuery, AuditResult, PasswordCredential, SignIn, SignInCount,
    SignInQuery, Store, StoreResult,
};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// At most this many tokens are listed one by one (the newest); counts,
/// first and last use stay exact beyond it.
pub const MAX_TOKENS_LISTED: usize = 10_000;
/// At most this many management actions are listed (the newest).
pub const MAX_ACTIONS_LISTED: usize = 10_000;
/// Rows per store read while paging.
const PAGE: u32 = 1_000;

/// The report (`report` in the `reportCompromisedPassword` response).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompromiseReport {
    pub credential: CredentialSummary,
    /// The credential's first successful sign-in (`null`: it was never used).
    pub first_used_date_time: Option<String>,
    /// The credential's last successful sign-in.
    pub last_used_date_time: Option<String>,
    /// Every successful sign-in with the credential (exact, even when the
    /// list is truncated): the tokens it minted, and its authentications
    /// at introspection or revocation (listed with `resource` null).
    pub tokens_issued_count: u64,
    /// Those sign-ins, newest first; at most 10,000 (then `truncated` is true).
    pub tokens_issued: Vec<TokenIssued>,
    /// True when `tokensIssued` lists only the newest 10,000.
    pub truncated: bool,
    /// Source addresses the credential signed in from, most sign-ins first.
    pub distinct_client_ips: Vec<String>,
    /// The application's refused requests at the token, introspection and
    /// revocation endpoints (wrong or expired secret, …).
    pub failed_attempts: FailedAttempts,
    /// Audit events where the application was the actor (with any of its
    /// credentials), newest first; at most 10,000.
    pub management_actions: Vec<ManagementAction>,
    /// True when `managementActions` lists only the newest 10,000.
    pub management_actions_truncated: bool,
}

/// The credential the report is about (as it was before removal).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSummary {
    pub key_id: Uuid,
    pub display_name: String,
    pub hint: String,
    pub start_date_time: String,
    pub end_date_time: String,
    pub created_date_time: String,
}

/// One token the credential minted (or, with `resource` null, one
/// authentication with it at introspection or revocation).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenIssued {
    /// When it was issued (the first, when `count` > 1).
    pub time: String,
    /// Identical requests within a second are logged once with their count.
    pub count: u32,
    /// The last of them.
    pub last_time: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The resource's appId (the token's `aud`); `null`: no token was
    /// minted (introspection or revocation).
    pub resource: Option<Uuid>,
    /// The resource's display name (`null` if it was deleted since).
    pub resource_display_name: Option<String>,
}

/// The application's refused token requests.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedAttempts {
    pub count: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Most attempts first.
    pub by_client_ip: Vec<IpCount>,
}

/// Requests from one source address.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpCount {
    pub client_ip: Option<String>,
    pub count: u64,
}

/// One management call the application made.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagementAction {
    pub time: String,
    pub activity: String,
    pub target: ActionTarget,
    /// `success` or `failure` (refused).
    pub result: &'static str,
    pub client_ip: Option<String>,
    /// The credential the application authenticated with.
    pub key_id: Option<Uuid>,
    /// True when that credential is the compromised one.
    pub used_compromised_credential: bool,
}

/// What a management action was about.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionTarget {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub display_name: String,
    /// The credential the action concerned (add/removePassword).
    pub key_id: Option<Uuid>,
}

/// What the report is built from, as read from the store.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Successful sign-ins with the credential, newest first (at most
    /// [`MAX_TOKENS_LISTED`]).
    pub tokens: Vec<SignIn>,
    /// Whether there were more than `tokens` holds.
    pub tokens_truncated: bool,
    /// Successful sign-ins with the credential, per source address.
    pub token_counts: Vec<SignInCount>,
    /// The application's refused sign-ins, per source address.
    pub failures: Vec<SignInCount>,
    /// Audit events with the application as actor, newest first.
    pub actions: Vec<AuditEvent>,
    /// Whether there were more than `actions` holds.
    pub actions_truncated: bool,
    /// Display names of the resources the tokens were for, by appId.
    pub resource_names: HashMap<Uuid, String>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    crate::graph::shapes::rfc3339(t)
}

/// Shape the report for `credential` from `evidence`.
pub fn build(credential: &PasswordCredential, evidence: &Evidence) -> CompromiseReport {
    let first = evidence.token_counts.iter().map(|c| c.first).min();
    let last = evidence.token_counts.iter().map(|c| c.last).max();
    let failed_first = evidence.failures.iter().map(|c| c.first).min();
    let failed_last = evidence.failures.iter().map(|c| c.last).max();
    CompromiseReport {
        credential: CredentialSummary {
            key_id: credential.key_id,
            display_name: credential.display_name.clone(),
            hint: credential.hint.clone(),
            start_date_time: rfc3339(credential.start_at),
            end_date_time: rfc3339(credential.end_at),
            created_date_time: rfc3339(credential.created_at),
        },
        first_used_date_time: first.map(rfc3339),
        last_used_date_time: last.map(rfc3339),
        tokens_issued_count: evidence.token_counts.iter().map(|c| c.count).sum(),
        tokens_issued: evidence
            .tokens
            .iter()
            .map(|s| TokenIssued {
                time: rfc3339(s.at),
                count: s.count,
                last_time: rfc3339(s.last_at),
                client_ip: s.client_ip.clone(),
                user_agent: s.user_agent.clone(),
                resource: s.resource,
                resource_display_name: s
                    .resource
                    .and_then(|r| evidence.resource_names.get(&r).cloned()),
            })
            .collect(),
        truncated: evidence.tokens_truncated,
        distinct_client_ips: evidence
            .token_counts
            .iter()
            .filter_map(|c| c.client_ip.clone())
            .collect(),
        failed_attempts: FailedAttempts {
            count: evidence.failures.iter().map(|c| c.count).sum(),
            first: failed_first.map(rfc3339),
            last: failed_last.map(rfc3339),
            by_client_ip: evidence
                .failures
                .iter()
                .map(|c| IpCount {
                    client_ip: c.client_ip.clone(),
                    count: c.count,
                })
                .collect(),
        },
        management_actions: evidence
            .actions
            .iter()
            .map(|e| ManagementAction {
                time: rfc3339(e.at),
                activity: e.activity.clone(),
                target: ActionTarget {
                    kind: e.target_type.clone(),
                    id: e.target_id.clone(),
                    display_name: e.target_display_name.clone(),
                    key_id: e.target_key_id,
                },
                result: match e.result {
                    AuditResult::Success => "success",
                    AuditResult::Failure => "failure",
                },
                client_ip: e.client_ip.clone(),
                key_id: e.actor_key_id,
                used_compromised_credential: e.actor_key_id == Some(credential.key_id),
            })
            .collect(),
        management_actions_truncated: evidence.actions_truncated,
    }
}

/// Read the evidence about `credential` of `app` from the store (paging
/// through the logs, newest first) and build the report. Sign-ins still
/// queued in memory are not seen: flush the sign-in log first.
pub async fn gather(
    store: &dyn Store,
    app: &Application,
    credential: &PasswordCredential,
) -> StoreResult<CompromiseReport> {
    let sign_ins = |key_id, result| SignInQuery {
        tenant_id: app.tenant_id,
        app_id: Some(app.app_id),
        key_id,
        result: Some(result),
        since: None,
        until: None,
        before: None,
        limit: PAGE,
    };
    let mut evidence = Evidence::default();

    let mut q = sign_ins(Some(credential.key_id), AuditResult::Success);
    'tokens: loop {
        let page = store.sign_ins(&q).await?;
        let full = page.len() == PAGE as usize;
        q.before = page.last().map(|s| (s.at, s.id));
        for s in page {
            if evidence.tokens.len() == MAX_TOKENS_LISTED {
                evidence.tokens_truncated = true;
                break 'tokens;
            }
            evidence.tokens.push(s);
        }
        if !full {
            break;
        }
    }
    evidence.token_counts = store
        .sign_in_counts(&sign_ins(Some(credential.key_id), AuditResult::Success))
        .await?;
    evidence.failures = store
        .sign_in_counts(&sign_ins(None, AuditResult::Failure))
        .await?;

    let mut q = AuditQuery {
        tenant_id: app.tenant_id,
        since: None,
        until: None,
        activity: None,
        target_id: None,
        actor_app_id: Some(app.app_id),
        before: None,
        limit: PAGE,
    };
    'actions: loop {
        let page = store.audit_events(&q).await?;
        let full = page.len() == PAGE as usize;
        q.before = page.last().map(|e| (e.at, e.id));
        for e in page {
            if evidence.actions.len() == MAX_ACTIONS_LISTED {
                evidence.actions_truncated = true;
                break 'actions;
            }
            evidence.actions.push(e);
        }
        if !full {
            break;
        }
    }

    let mut resources: Vec<Uuid> = evidence.tokens.iter().filter_map(|s| s.resource).collect();
    resources.sort_unstable();
    resources.dedup();
    for resource in resources {
        if let Some(found) = store.application_by_app_id(app.tenant_id, resource).await? {
            evidence
                .resource_names
                .insert(resource, found.display_name.clone());
        }
    }
    Ok(build(credential, &evidence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    fn credential() -> PasswordCredential {
        PasswordCredential {
            key_id: Uuid::from_u128(0xA),
            display_name: "ci".into(),
            hint: "AbC".into(),
            secret_hash: [7; 32],
            start_at: T0,
            end_at: T0 + time::Duration::days(90),
            created_at: T0,
            last_used_at: None,
        }
    }

    fn token(secs: i64, ip: &str, agent: &str, resource: Uuid) -> SignIn {
        SignIn {
            id: Uuid::new_v4(),
            tenant_id: Uuid::nil(),
            at: T0 + time::Duration::seconds(secs),
            last_at: T0 + time::Duration::seconds(secs),
            count: 1,
            app_id: Some(Uuid::from_u128(1)),
            key_id: Some(Uuid::from_u128(0xA)),
            resource: Some(resource),
            client_ip: Some(ip.into()),
            user_agent: Some(agent.into()),
            result: AuditResult::Success,
            error_code: None,
        }
    }

    fn count(ip: Option<&str>, n: u64, first: i64, last: i64) -> SignInCount {
        SignInCount {
            client_ip: ip.map(Into::into),
            count: n,
            first: T0 + time::Duration::seconds(first),
            last: T0 + time::Duration::seconds(last),
        }
    }

    fn action(actor_key: u128, activity: &str, result: AuditResult) -> AuditEvent {
        AuditEvent {
            id: Uuid::new_v4(),
            tenant_id: Uuid::nil(),
            at: T0 + time::Duration::seconds(30),
            actor_app_id: Some(Uuid::from_u128(1)),
            actor_service_principal_id: None,
            actor_display_name: "worker".into(),
            actor_key_id: Some(Uuid::from_u128(actor_key)),
            client_ip: Some("192.0.2.9".into()),
            activity: activity.into(),
            category: "ApplicationManagement".into(),
            operation_type: "Add".into(),
            target_type: "Application".into(),
            target_id: "app-2".into(),
            target_display_name: "orders".into(),
            target_key_id: None,
            result,
            result_reason: String::new(),
            correlation_id: Uuid::nil(),
            client_request_id: None,
        }
    }

    #[test]
    fn report_lists_tokens_counts_failures_and_actions() {
        let orders = Uuid::from_u128(0x0D);
        let gone = Uuid::from_u128(0x0E);
        let evidence = Evidence {
            tokens: vec![
                token(20, "192.0.2.9", "curl/8", gone),
                token(10, "192.0.2.1", "msal/1", orders),
            ],
            tokens_truncated: false,
            token_counts: vec![
                count(Some("192.0.2.1"), 1, 10, 10),
                count(Some("192.0.2.9"), 1, 20, 20),
            ],
            failures: vec![count(Some("198.51.100.7"), 3, 5, 40), count(None, 1, 1, 1)],
            actions: vec![
                action(0xA, "Add application", AuditResult::Success),
                action(0xB, "Delete application", AuditResult::Failure),
            ],
            actions_truncated: false,
            resource_names: HashMap::from([(orders, "Orders API".to_owned())]),
        };
        let report = build(&credential(), &evidence);
        assert_eq!(report.credential.key_id, Uuid::from_u128(0xA));
        assert_eq!(report.credential.hint, "AbC");
        assert_eq!(report.credential.end_date_time, "2026-05-30T12:00:00Z");
        assert_eq!(
            report.first_used_date_time.as_deref(),
            Some("2026-03-01T12:00:10Z")
        );
        assert_eq!(
            report.last_used_date_time.as_deref(),
            Some("2026-03-01T12:00:20Z")
        );
        assert_eq!(report.tokens_issued_count, 2);
        assert_eq!(
            report.tokens_issued[0].user_agent.as_deref(),
            Some("curl/8")
        );
        assert_eq!(report.tokens_issued[0].resource_display_name, None);
        assert_eq!(
            report.tokens_issued[1].resource_display_name.as_deref(),
            Some("Orders API")
        );
        assert_eq!(report.distinct_client_ips, ["192.0.2.1", "192.0.2.9"]);
        assert_eq!(report.failed_attempts.count, 4);
        assert_eq!(
            report.failed_attempts.first.as_deref(),
            Some("2026-03-01T12:00:01Z")
        );
        assert_eq!(
            report.failed_attempts.last.as_deref(),
            Some("2026-03-01T12:00:40Z")
        );
        assert_eq!(report.failed_attempts.by_client_ip[0].count, 3);
        assert_eq!(report.failed_attempts.by_client_ip[1].client_ip, None);
        let used: Vec<bool> = report
            .management_actions
            .iter()
            .map(|a| a.used_compromised_credential)
            .collect();
        assert_eq!(used, [true, false]);
        assert_eq!(report.management_actions[1].result, "failure");
        assert!(!report.truncated && !report.management_actions_truncated);

        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["managementActions"][0]["target"]["type"],
            "Application"
        );
        assert_eq!(json["tokensIssued"][1]["clientIp"], "192.0.2.1");
        assert!(json["failedAttempts"]["byClientIp"].is_array());
    }

    #[test]
    fn an_unused_credential_has_an_empty_report() {
        let report = build(&credential(), &Evidence::default());
        assert_eq!(report.first_used_date_time, None);
        assert_eq!(report.last_used_date_time, None);
        assert_eq!(report.tokens_issued_count, 0);
        assert!(report.tokens_issued.is_empty() && report.distinct_client_ips.is_empty());
        assert_eq!(report.failed_attempts.count, 0);
        assert_eq!(report.failed_attempts.first, None);
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("secret"), "{json}");
    }
}
