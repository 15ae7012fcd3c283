//! `/v1/gateways`: create, list (`?slug`), read, update, delete (with everything under it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use sluice_shared::model::{Gateway, GatewaySpec};
use sluice_shared::store::Paged;

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/v1/gateways", get(list).post(create))
        .route(
            "/v1/gateways/{gateway_id}",
            get(read).put(update).delete(remove),
        )
}

async fn create(
    State(state): State<AdminState>,
    StrictJson(spec): StrictJson<GatewaySpec>,
) -> Result<impl IntoResponse, ApiError> {
    spec.validate()?;
    let gateway = state.store.create_gateway(&spec).await?;
    state.publish(gateway.id).await;
    Ok(created(gateway))
}

async fn list(
    State(state): State<AdminState>,
    query: ListQuery,
) -> Result<Json<Paged<Gateway>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_gateways(query.get("slug"), query.page)
            .await?,
    ))
}

async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Gateway>, ApiError> {
    Ok(Json(state.store.gateway(ids[0]).await?))
}

async fn update(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(body): StrictJson<Value>,
) -> Result<Json<Gateway>, ApiError> {
    let stored = state.store.gateway(ids[0]).await?;
    let spec: GatewaySpec = merge(&stored.spec, body)?;
    spec.validate()?;
    let gateway = state.store.update_gateway(ids[0], &spec).await?;
    state.publish(gateway.id).await;
    Ok(Json(gateway))
}

async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_gateway(ids[0]).await?;
    state.unpublish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}
