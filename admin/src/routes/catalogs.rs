//! The read-only catalogs: providers, models (`?provider=`), policy kinds and MCP servers.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_shared::catalog;
use sluice_shared::model::Provider;

use crate::AdminState;
use crate::error::ApiError;
use crate::extract::ListQuery;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route(
            "/v1/providers-catalog",
            get(|| async { Json(json!({"items": catalog::providers()})) }),
        )
        .route("/v1/models-catalog", get(models))
        .route(
            "/v1/policies-catalog",
            get(|| async { Json(json!({"items": catalog::policy_kinds()})) }),
        )
        .route(
            "/v1/mcp-servers-catalog",
            get(|| async { Json(json!({"items": catalog::mcp_servers()})) }),
        )
}

async fn models(query: ListQuery) -> Result<Json<Value>, ApiError> {
    let provider = query.get("provider");
    if let Some(p) = provider
        && !Provider::ALL.iter().any(|known| known.as_str() == p)
    {
        return Err(ApiError::invalid_query(format!("unknown provider {p}")));
    }
    let all = catalog::models();
    let items: Vec<_> = all
        .iter()
        .filter(|m| provider.is_none_or(|p| m.provider == p))
        .collect();
    Ok(Json(json!({"items": items})))
}
