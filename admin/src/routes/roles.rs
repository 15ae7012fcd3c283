//! `/v1/gateways/{gateway_id}/roles`: CRUD and `POST|DELETE /{id}/registries/{registry_id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use sluice_shared::model::{Role, RoleSpec};
use sluice_shared::store::Paged;

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/v1/gateways/{gateway_id}/roles", get(list).post(create))
        .route(
            "/v1/gateways/{gateway_id}/roles/{role_id}",
            get(read).put(update).delete(remove),
        )
        .route(
            "/v1/gateways/{gateway_id}/roles/{role_id}/registries/{registry_id}",
            post(attach).delete(detach),
        )
}

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

async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<Role>>, ApiError> {
    state.store.gateway(ids[0]).await?;
    Ok(Json(state.store.list_roles(ids[0], query.page).await?))
}

async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Role>, ApiError> {
    Ok(Json(state.store.role(ids[0], ids[1]).await?))
}

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

async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_role(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn attach(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Role>, ApiError> {
    let role = state
        .store
        .attach_role_registry(ids[0], ids[1], ids[2])
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(role))
}

async fn detach(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Role>, ApiError> {
    let role = state
        .store
        .detach_role_registry(ids[0], ids[1], ids[2])
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(role))
}
