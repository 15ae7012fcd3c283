//! The read-only catalogs: providers, models (`?provider=`), policy kinds and MCP servers.

use axum::Json;
use serde::Serialize;
use sluice_shared::catalog::{self, McpServerEntry, ModelEntry, PolicyKind, ProviderEntry};
use sluice_shared::model::Provider;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::ApiError;
use crate::extract::ListQuery;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(providers))
        .routes(routes!(models))
        .routes(routes!(policy_kinds))
        .routes(routes!(mcp_servers))
}

/// A catalog's answer: every entry, unpaged.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// Every provider family: wire format, default base URL, auth types, and the schema of
/// its `provider_options`.
#[utoipa::path(get, path = "/v1/providers-catalog", tag = "catalogs", operation_id = "providers_catalog",
    responses((status = 200, description = "The provider families", body = Items<ProviderEntry>)))]
async fn providers() -> Json<Items<ProviderEntry>> {
    Json(Items {
        items: catalog::providers(),
    })
}

/// The models catalog: context window, output limit, prices per million tokens and
/// capabilities.
#[utoipa::path(get, path = "/v1/models-catalog", tag = "catalogs", operation_id = "models_catalog",
    params(("provider" = Option<String>, Query, description = "only this provider family's models")),
    responses((status = 200, description = "The models", body = Items<ModelEntry>)))]
async fn models(query: ListQuery) -> Result<Json<Items<ModelEntry>>, ApiError> {
    let provider = query.get("provider");
    if let Some(p) = provider
        && !Provider::ALL.iter().any(|known| known.as_str() == p)
    {
        return Err(ApiError::invalid_query(format!("unknown provider {p}")));
    }
    let items = catalog::models()
        .iter()
        .filter(|m| provider.is_none_or(|p| m.provider == p))
        .cloned()
        .collect();
    Ok(Json(Items { items }))
}

/// Every policy kind: its stages, whether it can throttle, whether the proxy enforces
/// it, and the schema of its `settings`.
#[utoipa::path(get, path = "/v1/policies-catalog", tag = "catalogs", operation_id = "policies_catalog",
    responses((status = 200, description = "The policy kinds", body = Items<PolicyKind>)))]
async fn policy_kinds() -> Json<Items<PolicyKind>> {
    Json(Items {
        items: catalog::policy_kinds().to_vec(),
    })
}

/// Well-known MCP servers a registry can start from.
#[utoipa::path(get, path = "/v1/mcp-servers-catalog", tag = "catalogs", operation_id = "mcp_servers_catalog",
    responses((status = 200, description = "The MCP servers", body = Items<McpServerEntry>)))]
async fn mcp_servers() -> Json<Items<McpServerEntry>> {
    Json(Items {
        items: catalog::mcp_servers().to_vec(),
    })
}
