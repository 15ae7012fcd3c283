//! Liveness, readiness and metrics of the admin plane.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::ApiError;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
struct Status {
    /// `ok` (liveness) or `ready` (readiness).
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Status)))]
async fn live() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The process's Prometheus metrics (in `sluice all`, the proxy's too).
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format", body = String,
        content_type = "text/plain; version=0.0.4")))]
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        sluice_telemetry::metrics::METRICS.render(),
    )
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses((status = 200, description = "Ready", body = Status),
        (status = 503, description = "`not_ready`: the store is unreachable", body = crate::openapi::ErrorBody)))]
async fn ready(State(state): State<AdminState>) -> Result<Json<Status>, ApiError> {
    state.store.ping().await.map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the store is unreachable",
        )
    })?;
    Ok(Json(Status { status: "ready" }))
}
