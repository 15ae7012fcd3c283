//! Sharing health with the other proxy replicas through Redis (production mode):
//! this proxy's state changes go out, theirs come in.

use std::sync::Arc;

use sluice_shared::bus::RedisHealth;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::Health;

/// Run until `stopped`: publish local changes, apply remote ones. Redis being down
/// costs only the sharing; each proxy keeps judging health on its own.
pub async fn share(health: Arc<Health>, redis_url: String, mut stopped: watch::Receiver<bool>) {
    let redis = match RedisHealth::connect(&redis_url).await {
        Ok(r) => r,
        Err(error) => {
            warn!(%error, "health sharing through Redis is off");
            return;
        }
    };
    let (tx, mut outgoing) = mpsc::unbounded_channel();
    health.share_through(tx);
    for note in redis.current().await.unwrap_or_default() {
        health.apply(&note);
    }
    let mut incoming = match redis.subscribe().await {
        Ok(rx) => rx,
        Err(error) => {
            warn!(%error, "cannot subscribe to shared health; publishing only");
            let (_tx, rx) = mpsc::channel(1);
            rx
        }
    };
    info!("sharing registry health with the other proxies through Redis");
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            Some(note) = outgoing.recv() => {
                if let Err(error) = redis.publish(&note).await {
                    warn!(%error, registry = %note.registry_id, "cannot share a health change");
                }
            }
            Some(note) = incoming.recv() => health.apply(&note),
        }
    }
}
