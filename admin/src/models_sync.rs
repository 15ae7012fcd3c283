//! Keeping the models catalog current from a URL, when one is configured. A fetch that
//! fails or returns something that is not a valid catalog leaves the catalog in force.

use std::time::Duration;

use sluice_shared::catalog::replace_models;
use tokio::sync::watch;
use tracing::{info, warn};

/// Fetch the catalog once and install it.
pub async fn sync_models_catalog(url: &str) -> Result<usize, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("fetch failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the catalog URL answered {}", response.status()));
    }
    let body = response
        .text()
        .await
        .map_err(|e| format!("reading the catalog: {e}"))?;
    replace_models(&body)
}

/// Sync every `every` (the first sync, at boot, is the caller's), until `shutdown`
/// turns true.
pub async fn models_sync_loop(url: String, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let every = every.max(Duration::from_secs(60));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => match sync_models_catalog(&url).await {
                Ok(models) => info!(models, "models catalog synced"),
                Err(error) => warn!(%error, "models catalog sync failed; keeping the catalog in force"),
            },
        }
    }
}
