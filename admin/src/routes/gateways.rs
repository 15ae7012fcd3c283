//! `/v1/gateways`: create, list (`?slug`), read, update, delete (with everything under it).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use sluice_shared::model::{Gateway, GatewaySpec};
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
}

/// Create a gateway.
#[utoipa::path(post, path = "/v1/gateways", tag = "gateways", operation_id = "create_gateway",
    request_body = GatewaySpec,
    responses((status = 201, description = "The new gateway", body = Gateway),
        (status = 409, description = "`already_exists`: the slug is taken", body = crate::openapi::ErrorBody)))]
async fn create(
    State(state): State<AdminState>,
    StrictJson(spec): StrictJson<GatewaySpec>,
) -> Result<impl IntoResponse, ApiError> {
    spec.validate()?;
    let gateway = state.store.create_gateway(&spec).await?;
    state.publish(gateway.id).await;
    Ok(created(gateway))
}

/// List gateways, optionally the one with a slug.
#[utoipa::path(get, path = "/v1/gateways", tag = "gateways", operation_id = "list_gateways",
    params(("slug" = Option<String>, Query, description = "only the gateway with this slug"), PageParams),
    responses((status = 200, description = "A page of gateways", body = Paged<Gateway>)))]
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

/// Read a gateway.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}", tag = "gateways", operation_id = "get_gateway",
    params(("gateway_id" = Uuid, Path)),
    responses((status = 200, description = "The gateway", body = Gateway)))]
async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Gateway>, ApiError> {
    Ok(Json(state.store.gateway(ids[0]).await?))
}

/// Change the fields the body names; the others keep their values.
#[utoipa::path(put, path = "/v1/gateways/{gateway_id}", tag = "gateways", operation_id = "update_gateway",
    params(("gateway_id" = Uuid, Path)),
    request_body(content = GatewaySpec, description = "any subset of the gateway's fields"),
    responses((status = 200, description = "The changed gateway", body = Gateway),
        (status = 409, description = "`already_exists`: the slug is taken", body = crate::openapi::ErrorBody)))]
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

/// Delete a gateway and everything under it.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}", tag = "gateways", operation_id = "delete_gateway",
    params(("gateway_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted")))]
async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_gateway(ids[0]).await?;
    state.unpublish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}
