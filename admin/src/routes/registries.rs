//! `/v1/gateways/{gateway_id}/registries`: the upstreams. Responses never carry a secret:
//! credentials are masked, and a masked value sent back on update keeps the stored one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use sluice_shared::model::{Registry, RegistrySpec};
use sluice_shared::store::Paged;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson};
use crate::health::{__path_registry_health, registry_health};
use crate::openapi::{ErrorBody, PageParams};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(registry_health))
        .routes(routes!(live_tools))
}

/// The tools an MCP server offers, as its `tools/list` answered.
#[derive(Debug, Serialize, ToSchema)]
struct LiveTools {
    registry_id: Uuid,
    /// MCP `Tool` objects: `name`, `description`, `inputSchema`, …
    tools: Vec<Value>,
}

/// The tools an MCP registry's server offers right now, asked over a session of its own
/// with the registry's credentials.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/registries/{registry_id}/tools",
    tag = "registries", operation_id = "list_registry_tools",
    params(("gateway_id" = Uuid, Path), ("registry_id" = Uuid, Path)),
    responses((status = 200, description = "The server's tools", body = LiveTools),
        (status = 409, description = "`not_an_mcp_registry`", body = ErrorBody),
        (status = 422, description = "`registry_unusable`: its target cannot be used", body = ErrorBody),
        (status = 502, description = "`upstream_unavailable`: the server cannot be listed", body = ErrorBody)))]
async fn live_tools(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<LiveTools>, ApiError> {
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
    let tools = tools
        .into_iter()
        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
        .collect();
    Ok(Json(LiveTools {
        registry_id: registry.id,
        tools,
    }))
}

/// A registry as responses show it: secrets opened only to be masked.
fn view(state: &AdminState, mut registry: Registry) -> Registry {
    registry.spec = registry.spec.masked(&state.secrets);
    registry
}

/// Create a registry; its secrets are sealed before they are stored.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/registries", tag = "registries",
    operation_id = "create_registry", params(("gateway_id" = Uuid, Path)),
    request_body = RegistrySpec,
    responses((status = 201, description = "The new registry, secrets masked", body = Registry),
        (status = 409, description = "`already_exists`: the name is taken", body = ErrorBody)))]
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

/// List registries.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/registries", tag = "registries",
    operation_id = "list_registries",
    params(("gateway_id" = Uuid, Path),
        ("name" = Option<String>, Query, description = "only the registry with this name"),
        ("type" = Option<String>, Query, description = "`LLM` or `MCP`"), PageParams),
    responses((status = 200, description = "A page of registries, secrets masked", body = Paged<Registry>)))]
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

/// Read a registry.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/registries/{registry_id}", tag = "registries",
    operation_id = "get_registry", params(("gateway_id" = Uuid, Path), ("registry_id" = Uuid, Path)),
    responses((status = 200, description = "The registry, secrets masked", body = Registry)))]
async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Registry>, ApiError> {
    Ok(Json(view(
        &state,
        state.store.registry(ids[0], ids[1]).await?,
    )))
}

/// Change the fields the body names. A masked secret sent back keeps the stored one.
#[utoipa::path(put, path = "/v1/gateways/{gateway_id}/registries/{registry_id}", tag = "registries",
    operation_id = "update_registry", params(("gateway_id" = Uuid, Path), ("registry_id" = Uuid, Path)),
    request_body(content = RegistrySpec, description = "any subset of the registry's fields"),
    responses((status = 200, description = "The changed registry, secrets masked", body = Registry),
        (status = 409, description = "`already_exists`: the name is taken", body = ErrorBody)))]
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

/// Delete a registry. One still attached to consumers or roles needs `force=true`.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/registries/{registry_id}", tag = "registries",
    operation_id = "delete_registry",
    params(("gateway_id" = Uuid, Path), ("registry_id" = Uuid, Path),
        ("force" = Option<bool>, Query, description = "detach it from consumers and roles first")),
    responses((status = 204, description = "Deleted"),
        (status = 409, description = "`has_dependents`: attached, and not forced", body = ErrorBody)))]
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
