//! The few Azure Resource Manager routes the Azure CLI needs to sign in to
//! Clavis as a cloud of its own (`az cloud register`, `az login
//! --service-principal --allow-no-subscriptions`): the cloud metadata
//! document ([`metadata`]), and an empty subscription list and the caller's
//! tenant ([`tenants`]). Errors are ARM's ([`error`]); callers are verified
//! as management API callers ([`ArmCaller`]).

pub mod error;
pub mod metadata;
pub mod tenants;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use clavis_store::Tenant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::error::ArmError;
use crate::app::AppState;
use crate::graph::caller::{verify, Unverified};

/// The ARM routes (with their OpenAPI descriptions).
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(metadata::endpoints))
        .routes(routes!(tenants::subscriptions))
        .routes(routes!(tenants::tenants))
}

/// Is `path` one of the ARM routes (which answer errors in ARM's shape)?
pub fn is_arm_path(path: &str) -> bool {
    matches!(
        path,
        "/subscriptions" | "/tenants" | "/metadata/endpoints" | "//metadata/endpoints"
    )
}

/// Check the `api-version` query parameter every ARM request carries: a
/// date (`2022-12-01`), optionally `-preview`. Clavis answers every version
/// the same way (the shapes it serves have not changed across them).
pub fn api_version(query: Option<&str>) -> Result<(), ArmError> {
    let pairs = crate::form::decode(query.unwrap_or_default().as_bytes())
        .map_err(|e| ArmError::BadQuery(e.to_string()))?;
    let mut versions = pairs.iter().filter(|(k, _)| k == "api-version");
    let version = versions.next().ok_or(ArmError::MissingApiVersion)?;
    if versions.next().is_some() {
        return Err(ArmError::InvalidApiVersion);
    }
    let value = version.1.as_str();
    let date = value.strip_suffix("-preview").unwrap_or(value);
    let bytes = date.as_bytes();
    let is_date = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if is_date {
        Ok(())
    } else {
        Err(ArmError::InvalidApiVersion)
    }
}

/// A caller of the ARM routes: a valid token of this server for the
/// management API (the audience the cloud metadata publishes). No role is
/// needed: what these routes show is the caller's own tenant.
#[derive(Debug)]
pub struct ArmCaller {
    pub tenant: Arc<Tenant>,
}

impl FromRequestParts<Arc<AppState>> for ArmCaller {
    type Rejection = ArmError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match verify(state, &parts.headers).await {
            Ok(verified) => Ok(ArmCaller {
                tenant: verified.tenant,
            }),
            Err(Unverified::Missing) => Err(ArmError::MissingToken),
            Err(Unverified::Invalid(why)) => Err(ArmError::InvalidToken(why)),
            Err(Unverified::OtherAudience) => Err(ArmError::WrongAudience),
            Err(Unverified::Failed(crate::graph::error::GraphError::Unavailable)) => {
                Err(ArmError::Unavailable)
            }
            Err(Unverified::Failed(_)) => Err(ArmError::Internal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_is_a_date() {
        for good in [
            "api-version=2022-12-01",
            "api-version=2016-06-01-preview",
            "x=1&api-version=2022-09-01",
        ] {
            assert!(api_version(Some(good)).is_ok(), "{good}");
        }
        for (bad, missing) in [
            (None, true),
            (Some(""), true),
            (Some("apiversion=2022-12-01"), true),
            (Some("api-version="), false),
            (Some("api-version=latest"), false),
            (Some("api-version=2022-1-01"), false),
            (Some("api-version=2022-12-01&api-version=2022-12-01"), false),
        ] {
            let err = api_version(bad).unwrap_err();
            assert_eq!(
                matches!(err, ArmError::MissingApiVersion),
                missing,
                "{bad:?}: {err:?}"
            );
        }
        assert!(matches!(
            api_version(Some("api-version=%zz")),
            Err(ArmError::BadQuery(_))
        ));
    }
}
