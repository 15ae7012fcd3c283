//! `/v1/gateways/{gateway_id}/policies`: CRUD, `POST|DELETE /{id}/global` to apply a
//! policy to every consumer of the gateway or stop that, `POST /{id}/duplicate`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use sluice_shared::model::{Policy, PolicySpec};
use sluice_shared::store::Paged;

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/v1/gateways/{gateway_id}/policies", get(list).post(create))
        .route(
            "/v1/gateways/{gateway_id}/policies/{policy_id}",
            get(read).put(update).delete(remove),
        )
        .route(
            "/v1/gateways/{gateway_id}/policies/{policy_id}/global",
            post(make_global).delete(make_local),
        )
        .route(
            "/v1/gateways/{gateway_id}/policies/{policy_id}/duplicate",
            post(duplicate),
        )
}

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

async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<Policy>>, ApiError> {
    state.store.gateway(ids[0]).await?;
    Ok(Json(state.store.list_policies(ids[0], query.page).await?))
}

async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Policy>, ApiError> {
    Ok(Json(state.store.policy(ids[0], ids[1]).await?))
}

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

async fn make_global(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Policy>, ApiError> {
    set_global(state, &ids, true).await
}

async fn make_local(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Policy>, ApiError> {
    set_global(state, &ids, false).await
}

async fn duplicate(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<impl IntoResponse, ApiError> {
    let policy = state.store.duplicate_policy(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(created(policy))
}
