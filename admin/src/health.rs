//! `GET /v1/gateways/{gateway_id}/registries/{registry_id}/health`: a registry's health
//! as the proxies see it. In one process (`sluice all`) that is the proxy's own live
//! state (in flight, latency, failures); in production it is what the proxies share
//! through Redis (whether, and until when, the registry is ejected).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use sluice_shared::bus::{RedisHealth, wall_ms};
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
