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
