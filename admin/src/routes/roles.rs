//! `/v1/gateways/{gateway_id}/roles`: CRUD and `POST|DELETE /{id}/registries/{registry_id}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use sluice_shared::model::{Role, RoleSpec};
use sluice_shared::store::Paged;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson};
use crate::openapi::PageParams;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(attach, detach))
}

/// Create a role.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/roles", tag = "roles", operation_id = "create_role",
    params(("gateway_id" = Uuid, Path)), request_body = RoleSpec,
    responses((status = 201, description = "The new role", body = Role),
        (status = 409, description = "`already_exists`: the name is taken", body = crate::openapi::ErrorBody)))]
async fn create(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(spec): StrictJson<RoleSpec>,
) -> Result<impl IntoResponse, ApiError> {
    spec.validate()?;
    let role = state.store.create_role(ids[0], &spec).await?;
    state.publish(ids[0]).await;
    Ok(created(role))
}

/// List roles.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/roles", tag = "roles", operation_id = "list_roles",
    params(("gateway_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "A page of roles", body = Paged<Role>)))]
async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<Role>>, ApiError> {
    state.store.gateway(ids[0]).await?;
    Ok(Json(state.store.list_roles(ids[0], query.page).await?))
}

/// Read a role.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/roles/{role_id}", tag = "roles", operation_id = "get_role",
    params(("gateway_id" = Uuid, Path), ("role_id" = Uuid, Path)),
    responses((status = 200, description = "The role", body = Role)))]
async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Role>, ApiError> {
    Ok(Json(state.store.role(ids[0], ids[1]).await?))
}

/// Change the fields the body names; the others keep their values.
#[utoipa::path(put, path = "/v1/gateways/{gateway_id}/roles/{role_id}", tag = "roles", operation_id = "update_role",
    params(("gateway_id" = Uuid, Path), ("role_id" = Uuid, Path)),
    request_body(content = RoleSpec, description = "any subset of the role's fields"),
    responses((status = 200, description = "The changed role", body = Role),
        (status = 409, description = "`already_exists`: the name is taken", body = crate::openapi::ErrorBody)))]
async fn update(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(body): StrictJson<Value>,
) -> Result<Json<Role>, ApiError> {
    let stored = state.store.role(ids[0], ids[1]).await?;
    let spec: RoleSpec = merge(&stored.spec, body)?;
    spec.validate()?;
    let role = state.store.update_role(ids[0], ids[1], &spec).await?;
    state.publish(ids[0]).await;
    Ok(Json(role))
}

/// Delete a role; it is detached from its consumers.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/roles/{role_id}", tag = "roles", operation_id = "delete_role",
    params(("gateway_id" = Uuid, Path), ("role_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted")))]
async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_role(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Give the role a registry.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/roles/{role_id}/registries/{registry_id}", tag = "roles",
    operation_id = "attach_role_registry",
    params(("gateway_id" = Uuid, Path), ("role_id" = Uuid, Path), ("registry_id" = Uuid, Path)),
    responses((status = 200, description = "The role", body = Role)))]
async fn attach(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Role>, ApiError> {
    let role = state
        .store
        .attach_role_registry(ids[0], ids[1], ids[2])
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(role))
}

/// Take a registry from the role.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/roles/{role_id}/registries/{registry_id}", tag = "roles",
    operation_id = "detach_role_registry",
    params(("gateway_id" = Uuid, Path), ("role_id" = Uuid, Path), ("registry_id" = Uuid, Path)),
    responses((status = 200, description = "The role", body = Role)))]
async fn detach(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Role>, ApiError> {
    let role = state
        .store
        .detach_role_registry(ids[0], ids[1], ids[2])
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(role))
}
