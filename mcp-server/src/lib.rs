//! The MCP plane. It runs beside the proxy with its own config snapshot, and for now
//! serves its health and readiness endpoints; the MCP endpoint per consumer arrives with
//! the MCP plane's own work. Any other path answers a JSON 404.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sluice_shared::sync::SnapshotHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The MCP plane's routes.
pub fn router(snapshots: SnapshotHandle) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    sluice_telemetry::metrics::METRICS.render(),
                )
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = snapshots.is_loaded();
                async move {
                    if ready {
                        (StatusCode::OK, Json(json!({"status": "ready"})))
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"error": "not_ready", "message": "no config loaded yet"})),
                        )
                    }
                }
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "not_found", "message": "no route for this path"})),
            )
        })
}

/// Serve the MCP plane until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    snapshots: SnapshotHandle,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(snapshots))
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}
