//! The in-process bus of the embedded default: a map of documents behind a lock and a
//! broadcast channel of notifications. Cloning it shares it.
//!
//! Documents are kept behind `Arc`s: the proxy's periodic resync reads every one of
//! them, and copying each consumer of every gateway every 10 s only to find the
//! versions unchanged made a spike of several MiB each time (1,000 consumers).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::{BusEvent, Subscription};
use crate::document::GatewayDocument;

#[derive(Clone, Debug)]
pub struct LocalBus {
    docs: Arc<RwLock<HashMap<Uuid, Arc<GatewayDocument>>>>,
    events: broadcast::Sender<Uuid>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            docs: Arc::default(),
            events: broadcast::channel(1024).0,
        }
    }
}

impl LocalBus {
    pub fn publish(&self, doc: &GatewayDocument) -> bool {
        let id = doc.gateway_id();
        {
            let mut docs = self.docs.write().unwrap_or_else(|p| p.into_inner());
            if docs.get(&id).is_some_and(|old| old.version > doc.version) {
                return false;
            }
            docs.insert(id, Arc::new(doc.clone()));
        }
        // No subscriber yet is not an error: they load everything when they start.
        let _ = self.events.send(id);
        true
    }

    pub fn remove(&self, gateway_id: Uuid) {
        self.docs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&gateway_id);
        let _ = self.events.send(gateway_id);
    }

    pub fn fetch(&self, gateway_id: Uuid) -> Option<Arc<GatewayDocument>> {
        self.docs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&gateway_id)
            .cloned()
    }

    pub fn versions(&self) -> HashMap<Uuid, i64> {
        self.docs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, doc)| (*id, doc.version))
            .collect()
    }

    pub fn fetch_many(&self, ids: &[Uuid]) -> Vec<Arc<GatewayDocument>> {
        let docs = self.docs.read().unwrap_or_else(|p| p.into_inner());
        ids.iter().filter_map(|id| docs.get(id).cloned()).collect()
    }

    pub fn fetch_all(&self) -> Vec<Arc<GatewayDocument>> {
        self.docs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn subscribe(&self) -> Subscription {
        let mut rx = self.events.subscribe();
        let (tx, out) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(id) => BusEvent::Changed(id),
                    Err(broadcast::error::RecvError::Lagged(_)) => BusEvent::Resync,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        out
    }
}
