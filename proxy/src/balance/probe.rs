//! Active health checks: a background service of the proxy that probes every registry
//! of the current snapshot that asks for it (`health_checks`), each on its own
//! interval. A probe is `GET base_url + path` with the check's headers and the
//! registry's credential, alive when the provider answers below 500; without a path
//! it is a TCP connect. Failures count toward the same threshold as real traffic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use sluice_shared::snapshot::{ActiveCheck, UpstreamTarget};
use sluice_shared::sync::SnapshotHandle;
use tracing::{debug, info};
use uuid::Uuid;

use super::Health;

/// The background prober.
pub struct Prober {
    pub snapshots: SnapshotHandle,
    pub health: Arc<Health>,
}

/// Every distinct registry with an active check, across all gateways.
fn targets(snapshots: &SnapshotHandle) -> HashMap<Uuid, Arc<UpstreamTarget>> {
    let snapshot = snapshots.load();
    let mut out = HashMap::new();
    for gateway in snapshot.gateways().values() {
        for consumer in gateway.consumers() {
            let pools = consumer.pools.values().flatten();
            let chain = consumer.fallback.iter().flat_map(|f| f.chain.iter());
            let embedding = consumer.lb.embedding.iter().map(|(t, _)| t);
            let targets = consumer
                .upstreams
                .iter()
                .chain(pools)
                .chain(chain)
                .filter_map(|u| u.target.as_ref().ok())
                .chain(embedding);
            for t in targets {
                if t.health.active.is_some() {
                    out.entry(t.registry_id).or_insert_with(|| t.clone());
                }
            }
        }
    }
    out
}

async fn probe(client: &reqwest::Client, target: &UpstreamTarget, check: &ActiveCheck) -> bool {
    let timeout = check.interval.min(Duration::from_secs(5));
    match &check.path {
        None => tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((target.host.as_str(), target.port)),
        )
        .await
        .is_ok_and(|r| r.is_ok()),
        Some(path) => {
            let scheme = if target.tls { "https" } else { "http" };
            let url = format!("{scheme}://{}{}{path}", target.authority, target.base_path);
            let mut req = super::authorized(client.get(url).timeout(timeout), target);
            for (name, value) in &check.headers {
                req = req.header(name, value);
            }
            req.send().await.is_ok_and(|r| r.status().as_u16() < 500)
        }
    }
}

#[async_trait]
impl BackgroundService for Prober {
    /// Probes each registry when its interval is up and sleeps in between, until the
    /// next one is due or the config changes; with no active check configured it only
    /// waits for the config. (It used to wake four times a second and walk every
    /// consumer of every gateway each time, however large the config and whether or not
    /// any check was configured.)
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let client = reqwest::Client::new();
        let mut changes = self.snapshots.subscribe();
        let mut due: HashMap<Uuid, Instant> = HashMap::new();
        loop {
            changes.borrow_and_update();
            let targets = targets(&self.snapshots);
            due.retain(|id, _| targets.contains_key(id));
            loop {
                self.probe_due(&client, &targets, &mut due).await;
                let next = due.values().min().copied();
                tokio::select! {
                    _ = shutdown.changed() => return,
                    changed = changes.changed() => {
                        if changed.is_err() {
                            // Every handle is gone: no config will come.
                            return;
                        }
                        break;
                    }
                    () = wait_until(next) => {}
                }
            }
        }
    }
}

/// Until `at`, or for ever.
async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Prober {
    /// Probe every target whose interval is up, and note when each is next due.
    async fn probe_due(
        &self,
        client: &reqwest::Client,
        targets: &HashMap<Uuid, Arc<UpstreamTarget>>,
        due: &mut HashMap<Uuid, Instant>,
    ) {
        let now = Instant::now();
        for (id, target) in targets {
            let Some(check) = &target.health.active else {
                continue;
            };
            if due.get(id).is_some_and(|at| *at > now) {
                continue;
            }
            due.insert(*id, now + check.interval);
            let alive = probe(client, target, check).await;
            let backend = self.health.backend(*id);
            backend.mark_probed();
            let was_ejected = self.health.is_ejected(&backend);
            if alive {
                self.health.recovered(&backend);
            } else {
                self.health.failure(&backend, &target.health, false);
            }
            let ejected = self.health.is_ejected(&backend);
            if was_ejected != ejected {
                info!(registry = %id, name = %target.registry_name, healthy = !ejected, "active health check changed state");
            } else {
                debug!(registry = %id, alive, "health probe");
            }
        }
    }
}
