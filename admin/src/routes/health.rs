//! Liveness and readiness of the admin plane.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AdminState;
use crate::error::ApiError;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

/// The process's Prometheus metrics (in `sluice all`, the proxy's too).
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        sluice_telemetry::metrics::METRICS.render(),
    )
}

/// Ready when the store answers.
async fn ready(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await.map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the store is unreachable",
        )
    })?;
    Ok(Json(json!({"status": "ready"})))
}
