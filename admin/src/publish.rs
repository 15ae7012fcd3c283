//! Publishing config documents on the bus after writes, at boot and on a timer.
//!
//! A publish that fails (Redis down) does not fail the write: the store already holds
//! it, and the periodic republish delivers it once the bus is back.

use std::time::Duration;

use sluice_shared::store::StoreError;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::AdminState;

impl AdminState {
    /// Publish the current document of one gateway.
    pub async fn publish(&self, gateway_id: Uuid) {
        match self.store.gateway_document(gateway_id).await {
            Ok(doc) => match self.bus.publish(&doc).await {
                Ok(written) => {
                    debug!(gateway = %gateway_id, version = doc.version, written, "published config")
                }
                Err(error) => {
                    warn!(gateway = %gateway_id, %error, "publish failed; the periodic republish will retry")
                }
            },
            Err(StoreError::NotFound(_)) => self.unpublish(gateway_id).await,
            Err(error) => warn!(gateway = %gateway_id, %error, "cannot build config document"),
        }
    }

    /// Remove a deleted gateway's document.
    pub async fn unpublish(&self, gateway_id: Uuid) {
        if let Err(error) = self.bus.remove(gateway_id).await {
            warn!(gateway = %gateway_id, %error, "unpublish failed; the periodic republish will retry");
        }
    }
}

/// Publish every gateway in the store, and remove from the bus any gateway the store no
/// longer has. Returns how many were published.
pub async fn publish_all(state: &AdminState) -> Result<usize, StoreError> {
    let ids = state.store.gateway_ids().await?;
    for id in &ids {
        state.publish(*id).await;
    }
    if let Ok(docs) = state.bus.fetch_all().await {
        for doc in docs.iter().filter(|d| !ids.contains(&d.gateway_id())) {
            state.unpublish(doc.gateway_id()).await;
        }
    }
    Ok(ids.len())
}

/// Republish everything every `every` until `shutdown` turns true.
pub async fn republish_loop(
    state: AdminState,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => match publish_all(&state).await {
                Ok(count) => info!(gateways = count, "republished config"),
                Err(error) => warn!(%error, "periodic republish failed"),
            },
        }
    }
}
