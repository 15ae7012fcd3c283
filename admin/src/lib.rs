//! The admin plane: a REST API over the config store. Every write validates, commits to
//! the store, then publishes the gateway's new config document on the bus, which is how
//! the proxy and mcp planes learn of it without a restart. The store stays the source of
//! truth: admin republishes everything on boot and on a timer, so a lost publish or a
//! flushed Redis heals itself.

mod auth;
mod error;
mod extract;
mod health;
mod models_sync;
pub mod openapi;
mod publish;
mod routes;
mod scope;

use std::time::Duration;

use std::sync::Arc;

use axum::Router;

use sluice_shared::bus::ConfigBus;
use sluice_shared::secrets::SecretBox;
use sluice_shared::store::{Backend, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use auth::load_or_create_token;
pub use error::ApiError;
pub use health::HealthSource;
pub use models_sync::{models_sync_loop, sync_models_catalog};
pub use publish::{publish_all, republish_loop};

/// What every handler needs.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub store: Store,
    pub bus: ConfigBus,
    /// Seals upstream secrets before they are stored or published.
    pub secrets: SecretBox,
    /// The bearer token every non-probe request must carry.
    pub token: Arc<str>,
    /// Where registry health is read.
    pub health: HealthSource,
}

/// The admin API's routes.
pub fn router(state: AdminState) -> Router {
    let (routes, _document) = routes::router().split_for_parts();
    routes
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// Serve the admin API on `listener` until `shutdown` turns true, and republish every
/// gateway every `republish_every` meanwhile.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    republish_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let republisher = needs_republish(&state).then(|| {
        tokio::spawn(republish_loop(
            state.clone(),
            republish_every,
            shutdown.clone(),
        ))
    });
    let app = router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await;
    if let Some(republisher) = republisher {
        republisher.abort();
    }
    result
}

/// Whether anything can lose or miss a publish. The embedded default (a SQLite store
/// and the in-process bus) has one writer, this process, and a bus that lives and dies
/// with it: every write is published as it commits, so a periodic republish heals
/// nothing, and it read the whole store every minute (with 1,000 consumers, the first
/// one raised an idle process's RSS by 11 MiB for good). A shared store (Postgres,
/// other admin replicas writing) or Redis (flushed, restarted) keep it.
fn needs_republish(state: &AdminState) -> bool {
    !(matches!(state.bus, ConfigBus::Local(_)) && state.store.backend() == Backend::Sqlite)
}
