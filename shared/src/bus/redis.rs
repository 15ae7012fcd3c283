//! The Redis bus of production mode.
//!
//! Layout: `sluice:config:gw:{id}` holds a gateway's document as JSON, the hash
//! `sluice:config:versions` its version (and so lists every gateway), the set
//! `sluice:config:gateways` every id (still written for proxies that read it), and
//! `PUBLISH sluice:config {id}` tells subscribers. A Lua script makes "write if not
//! older, then notify" one atomic step, so two admin replicas racing cannot leave an
//! older document in place.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use uuid::Uuid;

use super::{BusError, BusEvent, Subscription};
use crate::document::GatewayDocument;

const CHANNEL: &str = "sluice:config";
const IDS: &str = "sluice:config:gateways";
const VERSIONS: &str = "sluice:config:versions";

fn doc_key(id: Uuid) -> String {
    format!("sluice:config:gw:{id}")
}

const PUBLISH_SCRIPT: &str = r#"
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1')
if tonumber(ARGV[2]) < current then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PUBLISH', KEYS[4], ARGV[1])
return 1
"#;

#[derive(Clone)]
pub struct RedisBus {
    client: Client,
    config: Config,
    timeout: Duration,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus").finish_non_exhaustive()
    }
}

pub(super) fn builder(config: &Config, timeout: Duration) -> Builder {
    let mut builder = Builder::from_config(config.clone());
    builder
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
            c.max_command_attempts = 1;
        })
        .with_performance_config(|p| p.default_command_timeout = timeout)
        // Reconnect forever: a proxy outlives Redis outages on its last snapshot.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    builder
}

impl RedisBus {
    /// Connect to Redis at `url`. Every command fails after `timeout` instead of waiting
    /// for a reconnect, so a Redis outage never stalls a plane.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, BusError> {
        let config = Config::from_url(url)?;
        let client = builder(&config, timeout).build()?;
        client.init().await?;
        Ok(Self {
            client,
            config,
            timeout,
        })
    }

    pub async fn publish(&self, doc: &GatewayDocument) -> Result<bool, BusError> {
        let id = doc.gateway_id();
        let json = serde_json::to_string(doc).map_err(|e| BusError::Corrupt {
            gateway_id: id.to_string(),
            reason: e.to_string(),
        })?;
        let written: i64 = self
            .client
            .eval(
                PUBLISH_SCRIPT,
                vec![
                    doc_key(id),
                    VERSIONS.to_string(),
                    IDS.to_string(),
                    CHANNEL.to_string(),
                ],
                vec![id.to_string(), doc.version.to_string(), json],
            )
            .await?;
        Ok(written == 1)
    }

    pub async fn remove(&self, gateway_id: Uuid) -> Result<(), BusError> {
        let id = gateway_id.to_string();
        let _: () = self.client.del(doc_key(gateway_id)).await?;
        let _: () = self.client.hdel(VERSIONS, &id).await?;
        let _: () = self.client.srem(IDS, &id).await?;
        let _: () = self.client.publish(CHANNEL, &id).await?;
        Ok(())
    }

    pub async fn fetch(&self, gateway_id: Uuid) -> Result<Option<Arc<GatewayDocument>>, BusError> {
        let json: Option<String> = self.client.get(doc_key(gateway_id)).await?;
        json.map(|j| decode(&gateway_id.to_string(), &j).map(Arc::new))
            .transpose()
    }

    /// Every gateway on the bus with its version, without the documents: what a
    /// periodic resync reads to find the few documents it must fetch.
    pub async fn versions(&self) -> Result<HashMap<Uuid, i64>, BusError> {
        let raw: HashMap<String, i64> = self.client.hgetall(VERSIONS).await?;
        Ok(raw
            .into_iter()
            .filter_map(|(id, version)| Some((Uuid::parse_str(&id).ok()?, version)))
            .collect())
    }

    /// The documents of `ids` that the bus holds, in one round trip. One that does not
    /// decode is left out with a warning, so it cannot hold back the others; its gateway
    /// keeps its last good version.
    pub async fn fetch_many(&self, ids: &[Uuid]) -> Result<Vec<Arc<GatewayDocument>>, BusError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| doc_key(*id)).collect();
        let docs: Vec<Option<String>> = self.client.mget(keys).await?;
        let mut out = Vec::with_capacity(docs.len());
        for (id, json) in ids.iter().zip(docs) {
            let Some(json) = json else { continue };
            match decode(&id.to_string(), &json) {
                Ok(doc) => out.push(Arc::new(doc)),
                Err(error) => warn!(gateway = %id, %error, "skipping a config document"),
            }
        }
        Ok(out)
    }

    pub async fn fetch_all(&self) -> Result<Vec<Arc<GatewayDocument>>, BusError> {
        let ids: Vec<Uuid> = self.versions().await?.into_keys().collect();
        self.fetch_many(&ids).await
    }

    /// Subscribe to notifications on a dedicated connection. After every reconnect the
    /// subscriber is told to resync, since messages sent meanwhile are lost.
    pub async fn subscribe(&self) -> Result<Subscription, BusError> {
        let subscriber: SubscriberClient =
            builder(&self.config, self.timeout).build_subscriber_client()?;
        subscriber.init().await?;
        let _resubscribe = subscriber.manage_subscriptions();
        subscriber.subscribe(CHANNEL).await?;
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let (tx, out) = mpsc::channel(256);
        tokio::spawn(async move {
            // The subscriber lives as long as this task.
            let _subscriber = subscriber;
            loop {
                let event = tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => match message.value.as_str().and_then(|s| Uuid::parse_str(&s).ok()) {
                            Some(id) => BusEvent::Changed(id),
                            None => continue,
                        },
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => BusEvent::Resync,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    reconnect = reconnects.recv() => match reconnect {
                        Ok(server) => {
                            debug!(%server, "config bus subscriber reconnected");
                            BusEvent::Resync
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => BusEvent::Resync,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                };
                if tx.send(event).await.is_err() {
                    warn!("config bus subscriber dropped");
                    return;
                }
            }
        });
        Ok(out)
    }
}

fn decode(id: &str, json: &str) -> Result<GatewayDocument, BusError> {
    serde_json::from_str(json).map_err(|e| BusError::Corrupt {
        gateway_id: id.to_string(),
        reason: e.to_string(),
    })
}
