//! `/v1/gateways/{gateway_id}/policies`: CRUD, `POST|DELETE /{id}/global` to apply a
//! policy to every consumer of the gateway or stop that, `POST /{id}/duplicate`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use sluice_shared::model::{Policy, PolicySpec};
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
        .routes(routes!(make_global, make_local))
        .routes(routes!(duplicate))
}

/// Create a policy; its `settings` are checked against its kind's schema.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/policies", tag = "policies", operation_id = "create_policy",
    params(("gateway_id" = Uuid, Path)), request_body = PolicySpec,
    responses((status = 201, description = "The new policy", body = Policy),
        (status = 409, description = "`already_exists`: the name is taken", body = crate::openapi::ErrorBody)))]
async fn create(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(spec): StrictJson<PolicySpec>,
) -> Result<impl IntoResponse, ApiError> {
    spec.validate()?;
    let policy = state.store.create_policy(ids[0], &spec).await?;
    state.publish(ids[0]).await;
    Ok(created(policy))
}

/// List policies.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/policies", tag = "policies", operation_id = "list_policies",
    params(("gateway_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "A page of policies", body = Paged<Policy>)))]
async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<Policy>>, ApiError> {
    state.store.gateway(ids[0]).await?;
    Ok(Json(state.store.list_policies(ids[0], query.page).await?))
}

/// Read a policy.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/policies/{policy_id}", tag = "policies", operation_id = "get_policy",
    params(("gateway_id" = Uuid, Path), ("policy_id" = Uuid, Path)),
    responses((status = 200, description = "The policy", body = Policy)))]
async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Policy>, ApiError> {
    Ok(Json(state.store.policy(ids[0], ids[1]).await?))
}

/// Change the fields the body names; the others keep their values.
#[utoipa::path(put, path = "/v1/gateways/{gateway_id}/policies/{policy_id}", tag = "policies", operation_id = "update_policy",
    params(("gateway_id" = Uuid, Path), ("policy_id" = Uuid, Path)),
    request_body(content = PolicySpec, description = "any subset of the policy's fields"),
    responses((status = 200, description = "The changed policy", body = Policy),
        (status = 409, description = "`already_exists`: the name is taken", body = crate::openapi::ErrorBody)))]
async fn update(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(body): StrictJson<Value>,
) -> Result<Json<Policy>, ApiError> {
    let stored = state.store.policy(ids[0], ids[1]).await?;
    let spec: PolicySpec = merge(&stored.spec, body)?;
    spec.validate()?;
    let policy = state.store.update_policy(ids[0], ids[1], &spec).await?;
    state.publish(ids[0]).await;
    Ok(Json(policy))
}

/// Delete a policy; it is detached from its consumers.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/policies/{policy_id}", tag = "policies", operation_id = "delete_policy",
    params(("gateway_id" = Uuid, Path), ("policy_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted")))]
async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_policy(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_global(
    state: AdminState,
    ids: &[uuid::Uuid],
    global: bool,
) -> Result<Json<Policy>, ApiError> {
    let policy = state
        .store
        .set_policy_global(ids[0], ids[1], global)
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(policy))
}

/// Apply the policy to every consumer of the gateway.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/policies/{policy_id}/global", tag = "policies",
    operation_id = "make_policy_global", params(("gateway_id" = Uuid, Path), ("policy_id" = Uuid, Path)),
    responses((status = 200, description = "The policy", body = Policy)))]
async fn make_global(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Policy>, ApiError> {
    set_global(state, &ids, true).await
}

/// Stop applying the policy to every consumer; it stays on those it is attached to.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/policies/{policy_id}/global", tag = "policies",
    operation_id = "make_policy_local", params(("gateway_id" = Uuid, Path), ("policy_id" = Uuid, Path)),
    responses((status = 200, description = "The policy", body = Policy)))]
async fn make_local(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Policy>, ApiError> {
    set_global(state, &ids, false).await
}

/// Copy a policy under a new name (`… (copy)`), attached to no consumer.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/policies/{policy_id}/duplicate", tag = "policies",
    operation_id = "duplicate_policy", params(("gateway_id" = Uuid, Path), ("policy_id" = Uuid, Path)),
    responses((status = 201, description = "The copy", body = Policy)))]
async fn duplicate(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<impl IntoResponse, ApiError> {
    let policy = state.store.duplicate_policy(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(created(policy))
}
