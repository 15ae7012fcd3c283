//! `GET /v1/gateways/{gateway_id}/registries/{registry_id}/health`: a registry's health
//! as the proxies see it. In one process (`sluice all`) that is the proxy's own live
//! state (in flight, latency, failures); in production it is what the proxies share
//! through Redis (whether, and until when, the registry is ejected).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sluice_shared::bus::{RedisHealth, wall_ms};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AdminState;
use crate::error::ApiError;
use crate::extract::Ids;

/// Where admin reads registry health.
#[derive(Clone, Default)]
pub enum HealthSource {
    /// No proxy reports to this admin.
    #[default]
    None,
    /// The proxy of this process: its view of one registry, if it has one.
    Local(Arc<dyn Fn(Uuid) -> Option<Value> + Send + Sync>),
    /// The ejections the proxies share through Redis.
    Shared(RedisHealth),
}

impl std::fmt::Debug for HealthSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Local(_) => "Local",
            Self::Shared(_) => "Shared",
        })
    }
}

/// A registry's health. Which fields are present depends on `source`: `proxy` (the
/// in-process proxy's live view), `shared` (ejections the proxies share through Redis)
/// or `none` (no proxy reports to this admin).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // built as JSON from the proxy's view; this type gives it a schema
pub struct RegistryHealth {
    registry_id: Uuid,
    /// `null` when no proxy reports to this admin.
    healthy: Option<bool>,
    /// `proxy`, `shared` or `none`.
    source: String,
    /// `proxy`: false until the proxy has sent it traffic or probed it.
    observed: Option<bool>,
    /// `proxy`: whether its first active probe has run.
    probed: Option<bool>,
    /// `proxy`: requests in flight on this proxy.
    in_flight: Option<u32>,
    /// `proxy`: peak-EWMA time to first byte.
    latency_ewma_ms: Option<f64>,
    /// `proxy`: failures in a row.
    consecutive_failures: Option<u32>,
    /// `proxy`: how often it was ejected.
    ejections: Option<u64>,
    /// `proxy`: requests sent to it while every candidate was ejected.
    forced_requests: Option<u64>,
    /// `shared`: how much longer it stays ejected.
    ejected_for_ms: Option<u64>,
}

/// A registry's health as the proxies see it.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/registries/{registry_id}/health",
    tag = "registries", operation_id = "get_registry_health",
    params(("gateway_id" = Uuid, Path), ("registry_id" = Uuid, Path)),
    responses((status = 200, description = "Its health", body = RegistryHealth),
        (status = 503, description = "`unavailable`: the shared state cannot be read", body = crate::openapi::ErrorBody)))]
pub async fn registry_health(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Value>, ApiError> {
    let registry = state.store.registry(ids[0], ids[1]).await?;
    let id = registry.id;
    let body = match &state.health {
        HealthSource::None => json!({"registry_id": id, "healthy": null, "source": "none"}),
        HealthSource::Local(view) => match view(id) {
            Some(mut v) => {
                v["source"] = json!("proxy");
                v
            }
            // The proxy has neither sent it traffic nor probed it yet.
            None => {
                json!({"registry_id": id, "healthy": true, "source": "proxy", "observed": false})
            }
        },
        HealthSource::Shared(redis) => {
            let notes = redis.current().await.map_err(|e| {
                ApiError::unavailable(format!("the shared health state cannot be read: {e}"))
            })?;
            let until = notes
                .iter()
                .find(|n| n.registry_id == id)
                .map(|n| n.until_ms);
            json!({
                "registry_id": id,
                "healthy": until.is_none(),
                "ejected_for_ms": until.map(|u| u.saturating_sub(wall_ms())),
                "source": "shared",
            })
        }
    };
    Ok(Json(body))
}
