//! `clavis audit list`: the tenant's management audit log
//! (`GET /v1.0/auditLogs/directoryAudits`, Graph's `directoryAudit` shape):
//! who did what, from where (IP address) and with which credential (key id).

use reqwest::Url;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::Error;
use crate::model::{view, DirectoryAudit};
use crate::odata::with_query;
use crate::output::{self, OutputFormat, Table};
use crate::when;
use crate::Ctx;

/// `clavis audit ...`
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// List audit events, newest first as the server orders them.
    List {
        /// At most this many events (pages are followed until there are enough).
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        top: u32,
        /// Only events at or after this time: RFC 3339, or a duration back from now (24h, 7d).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: AuditCommand) -> Result<(), Error> {
    let AuditCommand::List { top, since } = cmd;
    let since = since
        .map(|s| when::parse_since(&s, OffsetDateTime::now_utc()))
        .transpose()?;
    let s = ctx.session().await?;
    let url = list_url(s.url(&["auditLogs", "directoryAudits"]), top, since);
    let events = s.list(url, Some(top as usize)).await?;
    output::emit(&match ctx.global.output {
        OutputFormat::Json => output::json(&Value::from(events)),
        OutputFormat::Table => table(&events)?,
    });
    Ok(())
}

/// Largest page the management API serves; more events take more pages.
const MAX_PAGE: u32 = 999;

/// The collection URL with `$top` (the page size) and, with `since`,
/// `$filter=activityDateTime ge ...`.
fn list_url(collection: Url, top: u32, since: Option<OffsetDateTime>) -> Url {
    let top = top.min(MAX_PAGE).to_string();
    let filter = since.map(|t| format!("activityDateTime ge {}", output::rfc3339(t)));
    let mut pairs = vec![("$top", top.as_str())];
    if let Some(filter) = &filter {
        pairs.push(("$filter", filter));
    }
    with_query(collection, &pairs)
}

fn table(events: &[Value]) -> Result<String, Error> {
    let mut table = Table::new(&[
        "TIME",
        "ACTIVITY",
        "RESULT",
        "INITIATED BY",
        "FROM",
        "CREDENTIAL",
        "TARGETS",
        "CORRELATION ID",
    ]);
    for raw in events {
        let e: DirectoryAudit = view(raw, "audit event")?;
        let credential = e.detail("ActorCredentialKeyId").to_owned();
        let result = if e.result_reason.is_empty() {
            e.result
        } else {
            format!("{} ({})", e.result, e.result_reason)
        };
        let app = &e.initiated_by.app;
        let by = if app.display_name.is_empty() {
            app.app_id.clone()
        } else {
            app.display_name.clone()
        };
        let targets: Vec<String> = e
            .target_resources
            .iter()
            .map(|t| {
                let name = if t.display_name.is_empty() {
                    &t.id
                } else {
                    &t.display_name
                };
                if t.kind.is_empty() {
                    name.clone()
                } else {
                    format!("{}:{name}", t.kind)
                }
            })
            .collect();
        table.row(vec![
            output::time(&e.activity_date_time),
            e.activity_display_name,
            result,
            by,
            app.ip_address.clone(),
            credential,
            targets.join(", "),
            e.correlation_id,
        ]);
    }
    Ok(table.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn list_url_has_top_and_filter() {
        let base = Url::parse("https://h/v1.0/auditLogs/directoryAudits").unwrap();
        assert_eq!(
            list_url(base.clone(), 5, None).as_str(),
            "https://h/v1.0/auditLogs/directoryAudits?$top=5"
        );
        assert!(list_url(base.clone(), 5000, None)
            .as_str()
            .ends_with("$top=999"));
        let url = list_url(base, 5, Some(datetime!(2026-01-02 03:04:05.6 +01:00)));
        let pairs: Vec<_> = url.query_pairs().collect();
        assert_eq!(pairs[1].1, "activityDateTime ge 2026-01-02T02:04:05Z");
    }

    #[test]
    fn table_row_per_event() {
        let events = [json!({
            "id":"e1","category":"ApplicationManagement","correlationId":"c1","result":"failure",
            "resultReason":"Authorization_RequestDenied","activityDisplayName":"Add application",
            "activityDateTime":"2026-01-02T03:04:05.123Z","operationType":"Add",
            "initiatedBy":{"app":{"appId":"a1","displayName":"ci","servicePrincipalId":"s1","ipAddress":"10.0.0.7"}},
            "targetResources":[{"id":"t1","displayName":"orders","type":"Application"}],
            "additionalDetails":[{"key":"TenantId","value":"t"},{"key":"ActorCredentialKeyId","value":"k1"}]
        })];
        assert_eq!(
            table(&events).unwrap(),
            "TIME                  ACTIVITY         RESULT                                 INITIATED BY  FROM      CREDENTIAL  TARGETS             CORRELATION ID\n\
             2026-01-02T03:04:05Z  Add application  failure (Authorization_RequestDenied)  ci            10.0.0.7  k1          Application:orders  c1\n"
        );
    }
}
