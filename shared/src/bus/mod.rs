//! The config bus: how a gateway's config document travels from admin to the proxy and
//! mcp planes. In one process (`sluice all` without `REDIS_URL`) it is an in-process map
//! and channel; in production it is Redis, a document per gateway plus a pub/sub
//! notification, so proxies need only Redis to run.
//!
//! Notifications are hints: Redis pub/sub can drop them, so planes also resync on a
//! timer and after every reconnect. Documents carry their version and the bus never
//! replaces a newer one with an older one.

mod cache;
mod counters;
mod health;
mod limits;
mod local;
mod redis;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use self::cache::RedisCache;
pub use self::counters::LocalLimits;
pub use self::health::{HealthNote, RedisHealth, wall_ms};
pub use self::limits::{Decision, EXACT_LOG_MAX, RedisLimits, count_request};
pub use self::local::LocalBus;
pub use self::redis::RedisBus;
use crate::document::GatewayDocument;

/// What a bus operation can fail with.
#[derive(Debug, Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("config document for gateway {gateway_id} is unreadable: {reason}")]
    Corrupt { gateway_id: String, reason: String },
}

/// What a subscriber is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusEvent {
    /// The document of this gateway changed or was removed.
    Changed(Uuid),
    /// Notifications may have been missed (lag, reconnect): reload everything.
    Resync,
}

/// A stream of bus events for one subscriber.
pub type Subscription = mpsc::Receiver<BusEvent>;

/// The config bus of this process.
#[derive(Clone, Debug)]
pub enum ConfigBus {
    Local(LocalBus),
    Redis(RedisBus),
}

impl ConfigBus {
    /// The bus the settings ask for: Redis when a URL is given, in-process otherwise.
    pub async fn connect(redis_url: Option<&str>) -> Result<Self, BusError> {
        match redis_url {
            Some(url) => Ok(Self::Redis(
                RedisBus::connect(url, Duration::from_secs(2)).await?,
            )),
            None => Ok(Self::Local(LocalBus::default())),
        }
    }

    /// Store a gateway's document and notify subscribers. Returns `false`, changing
    /// nothing, when the bus already holds a newer version.
    pub async fn publish(&self, doc: &GatewayDocument) -> Result<bool, BusError> {
        match self {
            Self::Local(bus) => Ok(bus.publish(doc)),
            Self::Redis(bus) => bus.publish(doc).await,
        }
    }

    /// Remove a gateway's document and notify subscribers.
    pub async fn remove(&self, gateway_id: Uuid) -> Result<(), BusError> {
        match self {
            Self::Local(bus) => {
                bus.remove(gateway_id);
                Ok(())
            }
            Self::Redis(bus) => bus.remove(gateway_id).await,
        }
    }

    /// The current document of one gateway, `None` when it has none.
    pub async fn fetch(&self, gateway_id: Uuid) -> Result<Option<Arc<GatewayDocument>>, BusError> {
        match self {
            Self::Local(bus) => Ok(bus.fetch(gateway_id)),
            Self::Redis(bus) => bus.fetch(gateway_id).await,
        }
    }

    /// Every gateway on the bus with its version, without the documents.
    pub async fn versions(&self) -> Result<HashMap<Uuid, i64>, BusError> {
        match self {
            Self::Local(bus) => Ok(bus.versions()),
            Self::Redis(bus) => bus.versions().await,
        }
    }

    /// The documents of `ids` the bus holds; ids it does not hold are left out.
    pub async fn fetch_many(&self, ids: &[Uuid]) -> Result<Vec<Arc<GatewayDocument>>, BusError> {
        match self {
            Self::Local(bus) => Ok(bus.fetch_many(ids)),
            Self::Redis(bus) => bus.fetch_many(ids).await,
        }
    }

    /// Every document on the bus.
    pub async fn fetch_all(&self) -> Result<Vec<Arc<GatewayDocument>>, BusError> {
        match self {
            Self::Local(bus) => Ok(bus.fetch_all()),
            Self::Redis(bus) => bus.fetch_all().await,
        }
    }

    /// Subscribe to change notifications.
    pub async fn subscribe(&self) -> Result<Subscription, BusError> {
        match self {
            Self::Local(bus) => Ok(bus.subscribe()),
            Self::Redis(bus) => bus.subscribe().await,
        }
    }
}
