//! The MCP plane: one governed MCP endpoint per consumer, `/{consumer_slug}/mcp`, over
//! the MCP servers (registries) the consumer may use.
//!
//! The protocol itself (the streamable-HTTP transport, sessions, both protocol eras)
//! is the official Rust SDK's; this crate authenticates the caller before the
//! transport sees a request ([`access`]), aggregates and renames what the upstream
//! servers offer ([`catalog`]), forwards calls to them over pooled SDK clients
//! ([`upstream`]), applies the consumer's policies ([`governance`]) and records every
//! call. With Redis, agent sessions survive a hop to another replica ([`sessions`]).

pub mod access;
pub mod catalog;
pub mod errors;
pub mod forwarded;
pub mod governance;
pub mod handler;
pub mod oauth;
pub mod sessions;
pub mod signing;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{any, get};
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::SessionStore;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use sluice_shared::bearer::Verifier;
use sluice_shared::bus::{LocalLimits, RedisLimits};
use sluice_shared::secrets::SecretBox;
use sluice_shared::sync::SnapshotHandle;
use sluice_telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::forwarded::Forwarded;
use crate::governance::Limits;
use crate::handler::{Gateway, Notifier, Plane};
use crate::oauth::OAuth;
use crate::signing::Signer;
use crate::upstream::Upstreams;

/// What the MCP plane runs with besides its config.
pub struct McpOptions {
    /// Shared rate limits and agent sessions across replicas.
    pub redis: Option<RedisLimits>,
    pub telemetry: Telemetry,
    /// The largest JSON-RPC request body accepted.
    pub max_body_bytes: usize,
    /// Seals the users' tokens of `forwarded` servers and the consent links.
    pub secrets: Option<SecretBox>,
}

impl Default for McpOptions {
    fn default() -> Self {
        Self {
            redis: None,
            telemetry: Telemetry::off(),
            max_body_bytes: 4 * 1024 * 1024,
            secrets: None,
        }
    }
}

type Transport = StreamableHttpService<Gateway, LocalSessionManager>;

#[derive(Clone)]
struct Endpoint {
    snapshots: SnapshotHandle,
    oauth: Arc<OAuth>,
    verifier: Arc<Verifier>,
    transport: Transport,
}

/// The MCP plane's routes; `stop` ends open agent streams at shutdown.
pub fn router(snapshots: SnapshotHandle, options: McpOptions, stop: CancellationToken) -> Router {
    let notifier = Arc::new(Notifier::default());
    let verifier = Arc::new(Verifier::default());
    let oauth = Arc::new(OAuth::new(
        snapshots.clone(),
        options.redis.as_ref().map(RedisLimits::cache),
        verifier.clone(),
    ));
    let signer = options.secrets.as_ref().and_then(Signer::new).map(Arc::new);
    let forwarded = Arc::new(Forwarded::new(oauth.store.clone(), options.secrets));
    let plane = Arc::new(Plane {
        upstreams: Upstreams::new(notifier.clone(), forwarded.clone(), signer.clone()),
        notifier,
        limits: Limits {
            redis: options.redis.clone(),
            local: LocalLimits::default(),
        },
        telemetry: options.telemetry,
    });
    // Gateways are addressed by Host, so any host is accepted; callers are
    // authenticated on every request instead.
    let mut config = StreamableHttpServerConfig::default().disable_allowed_hosts();
    config.cancellation_token = stop;
    config.max_request_body_bytes = options.max_body_bytes;
    config.sse_keep_alive = Some(Duration::from_secs(15));
    config.session_store = options.redis.map(|redis| {
        Arc::new(sessions::RedisSessions::new(redis.cache())) as Arc<dyn SessionStore>
    });
    let transport = StreamableHttpService::new(
        move || Ok(Gateway::new(plane.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let endpoint = Endpoint {
        snapshots: snapshots.clone(),
        oauth: oauth.clone(),
        verifier,
        transport,
    };
    Router::new()
        .route("/{consumer}/mcp", any(mcp).with_state(endpoint))
        .merge(oauth::routes(oauth))
        .merge(forwarded::routes(forwarded, snapshots.clone()))
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let keys = signer
                    .as_ref()
                    .map_or_else(|| json!({"keys": []}), |s| s.jwks());
                async move {
                    (
                        [(axum::http::header::CACHE_CONTROL, "max-age=300")],
                        Json(keys),
                    )
                }
            }),
        )
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

/// `/{consumer}/mcp`: authenticate, then hand the request to the MCP transport.
async fn mcp(
    State(endpoint): State<Endpoint>,
    Path(consumer): Path<String>,
    mut request: Request,
) -> Response {
    let snapshot = endpoint.snapshots.load();
    let headers = request.headers();
    let resolved = access::resolve(
        &snapshot,
        &endpoint.oauth,
        &endpoint.verifier,
        &consumer,
        headers,
    )
    .await;
    match resolved {
        Err(refusal) => {
            tracing::debug!(%consumer, %refusal, "mcp caller refused");
            let gateway = access::gateway(&snapshot, headers)
                .map(|g| g.slug.as_str())
                .unwrap_or_default();
            let mut response =
                refusal.response(&oauth::resource_metadata_url(headers, gateway, &consumer));
            if !read_past(request.into_body()).await {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            response
        }
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            match endpoint.transport.oneshot(request).await {
                Ok(response) => response.map(axum::body::Body::new),
                Err(never) => match never {},
            }
        }
    }
}

/// The most of a refused request's body read so its connection stays usable.
const MAX_REFUSED_BODY: usize = 64 * 1024;
/// The longest a refused request's body is waited for.
const REFUSED_BODY_WAIT: Duration = Duration::from_secs(2);

/// Read a refused request's body to its end, so the connection can carry the client's
/// next request (its retry with credentials, usually). Dropped unread, a body still on
/// its way got one read from hyper, which then closed the connection after an answer
/// that had not said so: a client reusing it at that moment saw it drop with no
/// answer. `false` when the body is too long or too slow: the answer then says
/// `Connection: close`.
async fn read_past(body: axum::body::Body) -> bool {
    let read = axum::body::to_bytes(body, MAX_REFUSED_BODY);
    matches!(
        tokio::time::timeout(REFUSED_BODY_WAIT, read).await,
        Ok(Ok(_))
    )
}

/// Serve the MCP plane until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    snapshots: SnapshotHandle,
    options: McpOptions,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let app = router(snapshots, options, stop.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
            // Open agent streams would hold the shutdown forever.
            stop.cancel();
        })
        .await
}
