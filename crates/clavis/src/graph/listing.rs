//! Listing applications and service principals (they are the same records
//! seen two ways): `$filter` parsing, keyset pages, `@odata.nextLink`.

use clavis_store::{Application, ApplicationFilter};
use uuid::Uuid;

use super::caller::Caller;
use super::error::GraphError;
use super::json::{eq_clause, quoted, ListQuery};
use crate::app::AppState;

const FILTERS: &str = "Unsupported $filter: use appId eq '…', displayName eq '…', \
    identifierUris/any(x:x eq '…') or servicePrincipalNames/any(x:x eq '…').";

/// One page of the applications `caller` may see, and the nextLink to the
/// following page (None on the last page).
pub async fn applications(
    state: &AppState,
    caller: &Caller,
    query: &ListQuery,
    collection: &str,
) -> Result<(Vec<Application>, Option<String>), GraphError> {
    let owner = caller.read_scope()?;
    let mut filter = ApplicationFilter {
        owner,
        limit: query.page_size(),
        after: query
            .skiptoken
            .as_deref()
            .map(|t| {
                Uuid::try_parse(t).map_err(|_| {
                    GraphError::bad("$skiptoken is not valid; use the @odata.nextLink as given.")
                })
            })
            .transpose()?,
        ..Default::default()
    };
    let store = state.directory.store();
    if let Some(f) = &query.filter {
        if let Some(uri) = uri_clause(f) {
            // At most one application has a given URI: one page, no nextLink.
            let found = store
                .application_by_identifier_uri(caller.tenant.id, &uri)
                .await?
                .into_iter()
                .filter(|a| owner.is_none_or(|o| a.owners.contains(&o)))
                .collect();
            return Ok((found, None));
        }
        if let Some(v) = eq_clause(f, "appId") {
            let id = Uuid::try_parse(&v)
                .map_err(|_| GraphError::bad("appId in $filter must be a GUID."))?;
            filter.app_id = Some(id);
        } else if let Some(v) = eq_clause(f, "displayName") {
            filter.display_name = Some(v);
        } else {
            return Err(GraphError::bad(FILTERS));
        }
    }
    let apps = store.list_applications(caller.tenant.id, &filter).await?;
    let next_link = (apps.len() as u32 == filter.limit).then(|| {
        let last = apps.last().map(|a| a.id).unwrap_or_default();
        let mut link = format!(
            "{}/v1.0/{collection}?$top={}&$skiptoken={last}",
            state.base_url, filter.limit
        );
        if let Some(f) = &query.filter {
            link.push_str("&$filter=");
            link.push_str(&super::encode_query(f));
        }
        link
    });
    Ok((apps, next_link))
}

/// `identifierUris/any(x:x eq '…')` or `servicePrincipalNames/any(x:x eq '…')`.
pub(crate) fn uri_clause(filter: &str) -> Option<String> {
    let f = filter.trim();
    [
        "identifierUris/any(x:x eq ",
        "servicePrincipalNames/any(x:x eq ",
    ]
    .iter()
    .find_map(|prefix| f.strip_prefix(prefix))
    .and_then(|r| r.strip_suffix(')'))
    .and_then(quoted)
}
