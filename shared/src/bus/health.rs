//! Registry health shared across proxy replicas through Redis.
//!
//! When one proxy ejects a registry (passive failures, a failed probe, a 429's
//! `Retry-After`) or sees it recover, it writes the state to the hash `sluice:health`
//! (registry id → wall-clock millisecond until which it sits out, 0 when healthy) and
//! publishes it on `sluice:health`. Every other proxy applies it, so a dead provider
//! costs the fleet a few failed requests, not a few per replica. A proxy that starts
//! or reconnects reads the hash. The origin id lets a proxy ignore its own notes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::clients::SubscriberClient;
use fred::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, warn};
use uuid::Uuid;

use super::BusError;

const CHANNEL: &str = "sluice:health";
const HASH: &str = "sluice:health";

/// One registry's state, as replicas tell each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthNote {
    pub registry_id: Uuid,
    /// Wall-clock milliseconds since the epoch until which the registry is ejected;
    /// 0 when it is healthy.
    pub until_ms: u64,
    /// The proxy that wrote the note.
    pub origin: Uuid,
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The Redis side of shared health.
#[derive(Clone)]
pub struct RedisHealth {
    client: Client,
    config: Config,
}

impl std::fmt::Debug for RedisHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHealth").finish_non_exhaustive()
    }
}

/// Commands fail after this long rather than wait for a reconnect.
const TIMEOUT: Duration = Duration::from_secs(2);

fn builder(config: &Config) -> Builder {
    super::redis::builder(config, TIMEOUT)
}

impl RedisHealth {
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let config = Config::from_url(url)?;
        let client = builder(&config).build()?;
        client.init().await?;
        Ok(Self { client, config })
    }

    /// Record and announce a note.
    pub async fn publish(&self, note: &HealthNote) -> Result<(), BusError> {
        let id = note.registry_id.to_string();
        if note.until_ms == 0 {
            let _: () = self.client.hdel(HASH, &id).await?;
        } else {
            let _: () = self
                .client
                .hset(HASH, (id.as_str(), note.until_ms.to_string()))
                .await?;
        }
        let json = serde_json::to_string(note).unwrap_or_default();
        let _: () = self.client.publish(CHANNEL, json).await?;
        Ok(())
    }

    /// Every registry currently ejected somewhere.
    pub async fn current(&self) -> Result<Vec<HealthNote>, BusError> {
        let all: std::collections::HashMap<String, String> = self.client.hgetall(HASH).await?;
        let now = wall_ms();
        Ok(all
            .into_iter()
            .filter_map(|(id, until)| {
                Some(HealthNote {
                    registry_id: Uuid::parse_str(&id).ok()?,
                    until_ms: until.parse().ok()?,
                    origin: Uuid::nil(),
                })
            })
            .filter(|n| n.until_ms > now)
            .collect())
    }

    /// Notes from other replicas, as they come; after a reconnect the hash is read
    /// again, since notes sent meanwhile were lost.
    pub async fn subscribe(&self) -> Result<mpsc::Receiver<HealthNote>, BusError> {
        let subscriber: SubscriberClient = builder(&self.config).build_subscriber_client()?;
        subscriber.init().await?;
        let _resubscribe = subscriber.manage_subscriptions();
        subscriber.subscribe(CHANNEL).await?;
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        tokio::spawn(async move {
            let _subscriber = subscriber;
            loop {
                let notes: Vec<HealthNote> = tokio::select! {
                    message = messages.recv() => match message {
                        Ok(m) => m
                            .value
                            .as_str()
                            .and_then(|s| serde_json::from_str(&s).ok())
                            .into_iter()
                            .collect(),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            this.current().await.unwrap_or_default()
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    reconnect = reconnects.recv() => match reconnect {
                        Ok(server) => {
                            debug!(%server, "health subscriber reconnected");
                            this.current().await.unwrap_or_default()
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                };
                for note in notes {
                    if tx.send(note).await.is_err() {
                        warn!("health subscriber dropped");
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}
