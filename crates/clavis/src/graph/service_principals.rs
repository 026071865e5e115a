//! `/v1.0/servicePrincipals`: each application's identity in its tenant,
//! and app role grants (`appRoleAssignedTo` on the resource,
//! `appRoleAssignments` on the client).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clavis_store::{Application, Mutation, RoleAssignment};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::caller::Caller;
use super::error::GraphError;
use super::json::{GraphJson, ListQuery};
use super::last_admin::{self, Loss};
use super::shapes::{AppRoleAssignmentDto, Collection, ServicePrincipalDto};
use super::{commit, listing, object_id, Audited};
use crate::app::AppState;
use crate::audit::Action;

/// Body of `POST /v1.0/servicePrincipals/{id}/appRoleAssignedTo`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignRole {
    /// Service principal of the client that gets the role.
    pub principal_id: Uuid,
    /// Service principal of the resource (must equal `{id}`).
    pub resource_id: Uuid,
    /// The app role's id, from the resource's appRoles.
    pub app_role_id: Uuid,
}

async fn load_sp(state: &AppState, caller: &Caller, id: Uuid) -> Result<Application, GraphError> {
    state
        .directory
        .store()
        .application_by_service_principal(caller.tenant.id, id)
        .await?
        .ok_or_else(|| GraphError::not_found("servicePrincipal", id))
}

/// List service principals (`$filter=appId eq '…'`, `$top`, `$skiptoken`).
#[utoipa::path(get, path = "/v1.0/servicePrincipals", tag = "servicePrincipals", security(("bearer" = [])),
    params(("$top" = Option<u32>, Query, description = "Page size, 1–999"),
           ("$filter" = Option<String>, Query, description = "appId eq '…', displayName eq '…' or servicePrincipalNames/any(x:x eq '…')"),
           ("$skiptoken" = Option<String>, Query, description = "From @odata.nextLink")),
    responses((status = 200, body = Collection<ServicePrincipalDto>), (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Collection<ServicePrincipalDto>>, GraphError> {
    let query = ListQuery::parse(raw.as_deref())?;
    let (apps, next_link) =
        listing::applications(&state, &caller, &query, "servicePrincipals").await?;
    Ok(Json(Collection {
        context: format!("{}/v1.0/$metadata#servicePrincipals", state.base_url),
        value: apps.iter().map(ServicePrincipalDto::from).collect(),
        next_link,
    }))
}

/// Read one service principal.
#[utoipa::path(get, path = "/v1.0/servicePrincipals/{id}", tag = "servicePrincipals", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Service principal object id")),
    responses((status = 200, body = ServicePrincipalDto), (status = 401), (status = 403), (status = 404)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ServicePrincipalDto>, GraphError> {
    caller.read_scope()?;
    let app = load_sp(&state, &caller, object_id(id)?).await?;
    caller.can_read(&app)?;
    Ok(Json(ServicePrincipalDto::from(&app)))
}

async fn describe(
    state: &AppState,
    caller: &Caller,
    list: Vec<RoleAssignment>,
) -> Result<Vec<AppRoleAssignmentDto>, GraphError> {
    let store = state.directory.store();
    let mut out = Vec::with_capacity(list.len());
    for a in &list {
        let principal = store
            .application_by_service_principal(caller.tenant.id, a.principal_id)
            .await?;
        let resource = store
            .application_by_service_principal(caller.tenant.id, a.resource_id)
            .await?;
        let name = |app: Option<Application>| app.map(|a| a.display_name).unwrap_or_default();
        out.push(AppRoleAssignmentDto::new(
            a,
            &name(principal),
            &name(resource),
        ));
    }
    Ok(out)
}

/// Grant an app role of this resource to a client's service principal.
#[utoipa::path(post, path = "/v1.0/servicePrincipals/{id}/appRoleAssignedTo", tag = "servicePrincipals",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Resource service principal object id")),
    request_body = AssignRole,
    responses((status = 201, body = AppRoleAssignmentDto), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn assign(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    GraphJson(body): GraphJson<AssignRole>,
) -> Result<Response, GraphError> {
    let id = object_id(id)?;
    let early = Action::on_id(
        "Add app role assignment to service principal",
        "RoleManagement",
        "Assign",
        "ServicePrincipal",
        id,
    );
    Audited::check(&state, &caller, caller.may_write(), early).await?;
    let resource = load_sp(&state, &caller, id).await?;
    let action = Action {
        activity: "Add app role assignment to service principal",
        category: "RoleManagement",
        operation: "Assign",
        target_type: "ServicePrincipal",
        target_id: resource.service_principal_id.to_string(),
        target_name: resource.display_name.clone(),
        target_key_id: None,
    };
    Audited::check(&state, &caller, caller.can_write(&resource), action.clone()).await?;
    if body.resource_id != resource.service_principal_id {
        return Err(GraphError::bad(
            "resourceId must be the service principal named in the URL.",
        ));
    }
    let role = resource
        .app_roles
        .iter()
        .find(|r| r.id == body.app_role_id)
        .ok_or_else(|| GraphError::bad("Permission being assigned was not found on application: appRoleId is not one of the resource's appRoles."))?;
    if !role.is_enabled || !role.allowed_member_types.iter().any(|t| t == "Application") {
        return Err(GraphError::bad(format!(
            "The app role '{}' is disabled or cannot be assigned to applications (allowedMemberTypes).",
            role.value
        )));
    }
    let principal = state
        .directory
        .store()
        .application_by_service_principal(caller.tenant.id, body.principal_id)
        .await?
        .ok_or_else(|| {
            GraphError::bad(format!(
                "principalId {} is not a service principal of this tenant.",
                body.principal_id
            ))
        })?;
    let assignment = RoleAssignment {
        id: Uuid::new_v4(),
        tenant_id: caller.tenant.id,
        principal_id: principal.service_principal_id,
        resource_id: resource.service_principal_id,
        app_role_id: role.id,
        created_at: state.clock.now(),
    };
    let mut action = action;
    action.target_name = format!(
        "{} → {} ({})",
        principal.display_name, resource.display_name, role.value
    );
    let event = Audited::success(&state, &caller, action);
    commit(
        &state,
        vec![Mutation::InsertRoleAssignment(assignment.clone())],
        event,
    )
    .await?;
    let dto =
        AppRoleAssignmentDto::new(&assignment, &principal.display_name, &resource.display_name);
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

/// The role grants of this resource.
#[utoipa::path(get, path = "/v1.0/servicePrincipals/{id}/appRoleAssignedTo", tag = "servicePrincipals",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Resource service principal object id")),
    responses((status = 200, body = Collection<AppRoleAssignmentDto>), (status = 401), (status = 403), (status = 404)))]
pub async fn assigned_to(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Collection<AppRoleAssignmentDto>>, GraphError> {
    caller.read_scope()?;
    let resource = load_sp(&state, &caller, object_id(id)?).await?;
    caller.can_read(&resource)?;
    let list = state
        .directory
        .store()
        .role_assignments_to(caller.tenant.id, resource.service_principal_id)
        .await?;
    Ok(Json(Collection {
        context: format!("{}/v1.0/$metadata#appRoleAssignments", state.base_url),
        value: describe(&state, &caller, list).await?,
        next_link: None,
    }))
}

/// Revoke a role grant of this resource. Refused (400) when it is the
/// tenant's last live `Application.ReadWrite.All` (`graph::last_admin`).
#[utoipa::path(delete, path = "/v1.0/servicePrincipals/{id}/appRoleAssignedTo/{assignment_id}", tag = "servicePrincipals",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Resource service principal object id"),
           ("assignment_id" = Uuid, Path, description = "appRoleAssignment id")),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn unassign(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, GraphError> {
    let Path((id, assignment_id)) =
        ids.map_err(|_| GraphError::bad("The ids in the URL are not valid."))?;
    let id = object_id(Ok(Path(id)))?;
    let early = Action::on_id(
        "Remove app role assignment from service principal",
        "RoleManagement",
        "Unassign",
        "ServicePrincipal",
        id,
    );
    Audited::check(&state, &caller, caller.may_write(), early).await?;
    let resource = load_sp(&state, &caller, id).await?;
    let assignment_id = object_id(Ok(Path(assignment_id)))?;
    let action = Action {
        activity: "Remove app role assignment from service principal",
        category: "RoleManagement",
        operation: "Unassign",
        target_type: "AppRoleAssignment",
        target_id: assignment_id.to_string(),
        target_name: resource.display_name.clone(),
        target_key_id: None,
    };
    Audited::check(&state, &caller, caller.can_write(&resource), action.clone()).await?;
    let _held = state.last_admin.hold().await;
    let grant = state
        .directory
        .store()
        .role_assignments_to(caller.tenant.id, resource.service_principal_id)
        .await?
        .into_iter()
        .find(|a| a.id == assignment_id)
        .ok_or_else(|| GraphError::not_found("appRoleAssignment", assignment_id))?;
    last_admin::check(&state, &caller, Loss::Grant(&grant), &action).await?;
    let event = Audited::success(&state, &caller, action);
    commit(
        &state,
        vec![Mutation::DeleteRoleAssignment {
            tenant_id: caller.tenant.id,
            id: assignment_id,
        }],
        event,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The roles this service principal holds (as a client).
#[utoipa::path(get, path = "/v1.0/servicePrincipals/{id}/appRoleAssignments", tag = "servicePrincipals",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Client service principal object id")),
    responses((status = 200, body = Collection<AppRoleAssignmentDto>), (status = 401), (status = 403), (status = 404)))]
pub async fn assignments(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Collection<AppRoleAssignmentDto>>, GraphError> {
    caller.read_scope()?;
    let client = load_sp(&state, &caller, object_id(id)?).await?;
    caller.can_read(&client)?;
    let list = state
        .directory
        .store()
        .role_assignments_of(caller.tenant.id, client.service_principal_id)
        .await?;
    Ok(Json(Collection {
        context: format!("{}/v1.0/$metadata#appRoleAssignments", state.base_url),
        value: describe(&state, &caller, list).await?,
        next_link: None,
    }))
}
