//! Keeping a plane's snapshot current: subscribe to the bus, coalesce notifications,
//! fetch the changed documents, compile off the request path and swap the snapshot in
//! one atomic store. A periodic full resync heals missed notifications; when the bus is
//! unreachable the plane keeps serving its last good snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::bus::{BusEvent, ConfigBus, Subscription};
use crate::document::GatewayDocument;
use crate::map::Map;
use crate::secrets::SecretBox;
use crate::snapshot::{CompiledGateway, Snapshot};

/// The shared, swappable snapshot of a plane. Cloning shares it.
#[derive(Clone, Debug)]
pub struct SnapshotHandle {
    current: Arc<ArcSwap<Snapshot>>,
    loaded: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
    /// The generation of each snapshot stored, for background work that follows the
    /// config (active health checks) without polling it.
    swapped: Arc<watch::Sender<u64>>,
}

impl Default for SnapshotHandle {
    fn default() -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            loaded: Arc::new(AtomicBool::new(false)),
            generation: Arc::new(AtomicU64::new(0)),
            swapped: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl SnapshotHandle {
    /// The snapshot in force; a request pins it once and keeps it.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Whether a config load has succeeded at least once (readiness).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    fn store(&self, gateways: Map<Uuid, Arc<CompiledGateway>>, base_domain: Option<String>) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.current
            .store(Arc::new(Snapshot::new(generation, gateways, base_domain)));
        self.loaded.store(true, Ordering::Release);
        self.swapped.send_replace(generation);
    }

    /// Told of every snapshot stored from now on: `changed()` returns once one is.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.swapped.subscribe()
    }
}

/// Compiles documents into gateways, reusing a gateway whose version did not change and
/// keeping the last good version of a gateway whose new document does not compile.
#[derive(Debug, Default)]
struct Compiler {
    gateways: Map<Uuid, Arc<CompiledGateway>>,
    /// The version of each gateway whose document did not compile: not fetched and
    /// rejected again on every resync, only once a newer version is published.
    rejected: HashMap<Uuid, i64>,
    secrets: Option<SecretBox>,
}

impl Compiler {
    fn apply(&mut self, doc: &GatewayDocument) {
        let id = doc.gateway_id();
        if let Some(current) = self.gateways.get(&id)
            && current.version >= doc.version
        {
            return;
        }
        match CompiledGateway::compile(doc, self.secrets.as_ref()) {
            Ok(compiled) => {
                debug!(gateway = %id, version = doc.version, "compiled gateway config");
                self.gateways.insert(id, Arc::new(compiled));
            }
            Err(error) => {
                warn!(gateway = %id, version = doc.version, %error,
                    "config document rejected; keeping the last good version");
                self.rejected.insert(id, doc.version);
            }
        }
    }

    /// The gateways of `on_bus` whose published version is neither compiled nor known to
    /// be rejected: the only documents a resync needs to fetch.
    fn stale(&self, on_bus: &HashMap<Uuid, i64>) -> Vec<Uuid> {
        on_bus
            .iter()
            .filter(|&(id, version)| {
                self.gateways.get(id).is_none_or(|g| g.version < *version)
                    && self.rejected.get(id) != Some(version)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Bring the set in line with the bus: gateways not on it are gone, and `docs` (the
    /// stale ones, see `stale`) are compiled.
    fn resync(&mut self, on_bus: &HashMap<Uuid, i64>, docs: &[Arc<GatewayDocument>]) {
        self.gateways.retain(|id, _| on_bus.contains_key(id));
        self.rejected.retain(|id, _| on_bus.contains_key(id));
        for doc in docs {
            self.apply(doc);
        }
    }
}

/// Run the sync loop until `shutdown` turns true. The first full load happens before
/// this returns control to the caller's select, so `handle.is_loaded()` soon holds.
pub async fn run(
    bus: ConfigBus,
    handle: SnapshotHandle,
    base_domain: Option<String>,
    resync_every: Duration,
    secrets: Option<SecretBox>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut compiler = Compiler {
        secrets,
        ..Compiler::default()
    };
    let mut subscription: Option<Subscription> = subscribe(&bus).await;
    full_resync(&bus, &mut compiler, &handle, &base_domain).await;
    let mut ticker = tokio::time::interval(resync_every);
    ticker.tick().await;
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {
                if subscription.is_none() {
                    subscription = subscribe(&bus).await;
                }
                Some(BusEvent::Resync)
            }
            event = next(&mut subscription) => event,
        };
        let Some(first) = event else {
            warn!("config bus subscription ended; relying on periodic resync");
            subscription = None;
            continue;
        };
        // Coalesce: everything already queued is applied with this one compile. There is
        // no waiting for more, so a change is live as soon as it is compiled.
        let mut resync = first == BusEvent::Resync;
        let mut changed = HashSet::new();
        if let BusEvent::Changed(id) = first {
            changed.insert(id);
        }
        if let Some(sub) = subscription.as_mut() {
            while let Ok(event) = sub.try_recv() {
                match event {
                    BusEvent::Changed(id) => {
                        changed.insert(id);
                    }
                    BusEvent::Resync => resync = true,
                }
            }
        }
        if resync {
            full_resync(&bus, &mut compiler, &handle, &base_domain).await;
        } else {
            apply_changes(&bus, &mut compiler, &handle, &base_domain, changed).await;
        }
    }
}

async fn next(subscription: &mut Option<Subscription>) -> Option<BusEvent> {
    match subscription {
        Some(sub) => sub.recv().await,
        None => std::future::pending().await,
    }
}

async fn subscribe(bus: &ConfigBus) -> Option<Subscription> {
    match bus.subscribe().await {
        Ok(sub) => Some(sub),
        Err(error) => {
            warn!(%error, "cannot subscribe to the config bus; will retry");
            None
        }
    }
}

/// Read every gateway's version and fetch only the documents that changed: with the
/// Redis bus, fetching and decoding every document every period cost the whole config
/// (100,000 consumers) each time to find it unchanged.
async fn full_resync(
    bus: &ConfigBus,
    compiler: &mut Compiler,
    handle: &SnapshotHandle,
    base_domain: &Option<String>,
) {
    let fetched = match bus.versions().await {
        Ok(on_bus) => {
            let stale = compiler.stale(&on_bus);
            let docs = if stale.is_empty() {
                Ok(Vec::new())
            } else {
                bus.fetch_many(&stale).await
            };
            docs.map(|docs| (on_bus, docs))
        }
        Err(error) => Err(error),
    };
    match fetched {
        Ok((on_bus, docs)) => {
            let before = compiled_versions(compiler);
            compiler.resync(&on_bus, &docs);
            if before != compiled_versions(compiler) || !handle.is_loaded() {
                handle.store(compiler.gateways.clone(), base_domain.clone());
                info!(
                    gateways = compiler.gateways.len(),
                    fetched = docs.len(),
                    "config snapshot swapped (full resync)"
                );
            }
        }
        Err(error) => warn!(%error, "config resync failed; serving the last good snapshot"),
    }
}

async fn apply_changes(
    bus: &ConfigBus,
    compiler: &mut Compiler,
    handle: &SnapshotHandle,
    base_domain: &Option<String>,
    changed: HashSet<Uuid>,
) {
    let mut touched = false;
    for id in changed {
        match bus.fetch(id).await {
            Ok(Some(doc)) => {
                compiler.apply(&doc);
                touched = true;
            }
            Ok(None) => touched |= compiler.gateways.remove(&id).is_some(),
            Err(error) => {
                warn!(gateway = %id, %error, "cannot fetch changed config; keeping the last good one")
            }
        }
    }
    if touched {
        handle.store(compiler.gateways.clone(), base_domain.clone());
        debug!(
            gateways = compiler.gateways.len(),
            "config snapshot swapped"
        );
    }
}

fn compiled_versions(compiler: &Compiler) -> Vec<(Uuid, i64)> {
    let mut v: Vec<(Uuid, i64)> = compiler
        .gateways
        .iter()
        .map(|(id, g)| (*id, g.version))
        .collect();
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(id: Uuid, version: i64, duplicate: bool) -> GatewayDocument {
        let consumer = |cid: Uuid| {
            json!({"id": cid, "gateway_id": id, "slug": "app", "name": "App",
            "created_at": "t", "updated_at": "t"})
        };
        let mut consumers = vec![consumer(Uuid::now_v7())];
        if duplicate {
            consumers.push(consumer(Uuid::now_v7()));
        }
        serde_json::from_value(json!({
            "version": version,
            "gateway": {"id": id, "slug": "gw", "version": version, "created_at": "t", "updated_at": "t"},
            "consumers": consumers
        }))
        .expect("document")
    }

    #[test]
    fn a_rejected_document_keeps_the_last_good_version() {
        let id = Uuid::now_v7();
        let mut compiler = Compiler::default();
        compiler.apply(&doc(id, 1, false));
        compiler.apply(&doc(id, 2, true));
        assert_eq!(
            compiler.gateways[&id].version, 1,
            "bad v2 must not replace good v1"
        );
        compiler.apply(&doc(id, 3, false));
        assert_eq!(compiler.gateways[&id].version, 3);
        // An older document never replaces a newer one.
        compiler.apply(&doc(id, 2, false));
        assert_eq!(compiler.gateways[&id].version, 3);
        // A resync fetches nothing unchanged, and reuses the compiled gateway.
        let on_bus = HashMap::from([(id, 3)]);
        assert!(compiler.stale(&on_bus).is_empty());
        let before = compiler.gateways[&id].clone();
        compiler.resync(&on_bus, &[]);
        assert!(Arc::ptr_eq(&before, &compiler.gateways[&id]));
        // A rejected version is not fetched again; a newer one is.
        compiler.apply(&doc(id, 4, true));
        assert!(compiler.stale(&HashMap::from([(id, 4)])).is_empty());
        assert_eq!(compiler.stale(&HashMap::from([(id, 5)])), vec![id]);
        // A gateway gone from the bus is gone.
        compiler.resync(&HashMap::new(), &[]);
        assert!(compiler.gateways.is_empty());
        assert!(compiler.rejected.is_empty());
    }

    /// Waits on `swaps` until `done` holds of the snapshot in force: each store is
    /// announced after it is made.
    async fn swapped_until(
        handle: &SnapshotHandle,
        swaps: &mut watch::Receiver<u64>,
        done: impl Fn(&Snapshot) -> bool,
    ) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !done(&handle.load()) {
                swaps.changed().await.expect("the handle lives");
            }
        })
        .await
        .expect("no snapshot swap announced the change");
    }

    #[tokio::test]
    async fn the_local_bus_feeds_the_snapshot_and_each_swap_is_announced() {
        let bus = ConfigBus::Local(crate::bus::LocalBus::default());
        let handle = SnapshotHandle::default();
        let mut swaps = handle.subscribe();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            bus.clone(),
            handle.clone(),
            None,
            Duration::from_secs(60),
            None,
            stopped,
        ));
        let id = Uuid::now_v7();
        bus.publish(&doc(id, 1, false)).await.expect("publish");
        swapped_until(&handle, &mut swaps, |s| s.gateway_by_slug("gw").is_some()).await;
        assert!(handle.is_loaded());
        bus.remove(id).await.expect("remove");
        swapped_until(&handle, &mut swaps, |s| s.gateway_by_slug("gw").is_none()).await;
        let _ = stop.send(true);
        let _ = task.await;
    }
}
