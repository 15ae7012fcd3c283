//! `/v1/gateways/{gateway_id}/registries`: the upstreams. Responses never carry a secret:
//! credentials are masked, and a masked value sent back on update keeps the stored one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use sluice_shared::model::{Registry, RegistrySpec};
use sluice_shared::store::Paged;

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route(
            "/v1/gateways/{gateway_id}/registries",
            get(list).post(create),
        )
        .route(
            "/v1/gateways/{gateway_id}/registries/{registry_id}",
            get(read).put(update).delete(remove),
        )
        .route(
            "/v1/gateways/{gateway_id}/registries/{registry_id}/health",
            get(crate::health::registry_health),
        )
        .route(
            "/v1/gateways/{gateway_id}/registries/{registry_id}/tools",
            get(live_tools),
        )
}

/// `GET …/registries/{id}/tools`: the tools an MCP registry's server offers right now,
/// asked over a session of its own with the registry's credentials.
async fn live_tools(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Value>, ApiError> {
    let registry = state.store.registry(ids[0], ids[1]).await?;
    if registry.spec.kind != sluice_shared::model::RegistryKind::Mcp {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_an_mcp_registry",
            "only an MCP registry has tools",
        ));
    }
    let server = sluice_shared::snapshot::mcp::McpServer::compile(&registry, Some(&state.secrets))
        .map_err(|reason| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "registry_unusable",
                reason,
            )
        })?;
    let tools = sluice_mcp::upstream::live_tools(&server)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                format!("the MCP server cannot be listed: {e}"),
            )
        })?;
    Ok(Json(serde_json::json!({
        "registry_id": registry.id,
        "tools": tools,
    })))
}

/// A registry as responses show it: secrets opened only to be masked.
fn view(state: &AdminState, mut registry: Registry) -> Registry {
    registry.spec = registry.spec.masked(&state.secrets);
    registry
}

async fn create(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(spec): StrictJson<RegistrySpec>,
) -> Result<impl IntoResponse, ApiError> {
    spec.validate()?;
    let registry = state
        .store
        .create_registry(ids[0], &spec.sealed(&state.secrets))
        .await?;
    state.publish(ids[0]).await;
    Ok(created(view(&state, registry)))
}

async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<Registry>>, ApiError> {
    state.store.gateway(ids[0]).await?;
    let kind = match query.get("type").map(str::to_ascii_uppercase) {
        None => None,
        Some(t) if t == "LLM" || t == "MCP" => Some(t),
        Some(_) => return Err(ApiError::invalid_query("type must be LLM or MCP")),
    };
    let mut page = state
        .store
        .list_registries(ids[0], query.get("name"), kind.as_deref(), query.page)
        .await?;
    page.items = page.items.into_iter().map(|r| view(&state, r)).collect();
    Ok(Json(page))
}

async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Registry>, ApiError> {
    Ok(Json(view(
        &state,
        state.store.registry(ids[0], ids[1]).await?,
    )))
}

async fn update(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(body): StrictJson<Value>,
) -> Result<Json<Registry>, ApiError> {
    let stored = state.store.registry(ids[0], ids[1]).await?;
    let mut spec: RegistrySpec = merge(&stored.spec, body)?;
    spec.keep_masked_secrets(&stored.spec, &state.secrets);
    spec.validate()?;
    let registry = state
        .store
        .update_registry(ids[0], ids[1], &spec.sealed(&state.secrets))
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(view(&state, registry)))
}

async fn remove(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_registry(ids[0], ids[1], query.flag("force")?)
        .await?;
    state.publish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}
