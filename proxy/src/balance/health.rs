//! Live health of each registry, shared by every request of a proxy and kept across
//! snapshot swaps (keyed by registry id): in-flight requests, peak-EWMA latency, and
//! passive ejection after consecutive failures.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sluice_shared::bus::{HealthNote, wall_ms};
use sluice_shared::map::Map;
use sluice_shared::snapshot::TargetHealth;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The state of one registry.
#[derive(Debug)]
pub struct Backend {
    id: Uuid,
    in_flight: AtomicU32,
    /// Peak-EWMA of the time to the response header, in microseconds.
    ewma_us: AtomicU64,
    failures: AtomicU32,
    /// Milliseconds since [`Health`]'s epoch until which the registry sits out.
    ejected_until: AtomicU64,
    last_failure: AtomicU64,
    /// Requests sent to it while every candidate was ejected.
    forced: AtomicU64,
    ejections: AtomicU64,
    /// An active check has run at least once.
    probed: std::sync::atomic::AtomicBool,
}

impl Backend {
    fn new(id: Uuid) -> Self {
        Self {
            id,
            in_flight: AtomicU32::new(0),
            ewma_us: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
            forced: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
            probed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Expected cost of one more request: latency times the queue it would join.
    /// A registry never measured scores 0, so it gets tried.
    pub fn load_score(&self) -> u64 {
        self.ewma_us.load(Ordering::Relaxed) * (u64::from(self.in_flight()) + 1)
    }

    pub fn last_failure(&self) -> u64 {
        self.last_failure.load(Ordering::Relaxed)
    }

    /// Whether an active check has run; a registry that has one configured serves
    /// only once it has (unless nothing else can).
    pub fn probed(&self) -> bool {
        self.probed.load(Ordering::Relaxed)
    }

    pub fn mark_probed(&self) {
        self.probed.store(true, Ordering::Relaxed);
    }

    pub fn count_forced(&self) {
        self.forced.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request in flight on a registry; dropping it ends the count.
pub struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The health of every registry this proxy has sent traffic to or probed.
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    table: RwLock<Map<Uuid, Arc<Backend>>>,
    /// This proxy, in the notes it shares.
    origin: Uuid,
    /// Where state changes go to be shared with other replicas (production mode).
    outbox: OnceLock<mpsc::UnboundedSender<HealthNote>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            table: RwLock::default(),
            origin: Uuid::now_v7(),
            outbox: OnceLock::new(),
        }
    }
}

/// One registry's health as reported.
#[derive(Debug, Serialize)]
pub struct HealthView {
    pub registry_id: Uuid,
    pub healthy: bool,
    /// An active check has run (registries with active checks serve only then).
    pub probed: bool,
    pub in_flight: u32,
    pub latency_ewma_ms: f64,
    pub consecutive_failures: u32,
    pub ejections: u64,
    pub forced_requests: u64,
}

impl Health {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn backend(&self, id: Uuid) -> Arc<Backend> {
        if let Some(b) = self.table.read().ok().and_then(|t| t.get(&id).cloned()) {
            return b;
        }
        match self.table.write() {
            Ok(mut t) => t
                .entry(id)
                .or_insert_with(|| Arc::new(Backend::new(id)))
                .clone(),
            Err(_) => Arc::new(Backend::new(id)),
        }
    }

    pub fn is_ejected(&self, b: &Backend) -> bool {
        b.ejected_until.load(Ordering::Relaxed) > self.now_ms()
    }

    pub fn start(&self, b: &Arc<Backend>) -> InFlight {
        b.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(b.clone())
    }

    /// Send state changes to `outbox` from now on, to share them.
    pub fn share_through(&self, outbox: mpsc::UnboundedSender<HealthNote>) {
        let _ = self.outbox.set(outbox);
    }

    fn announce(&self, b: &Backend, until_ms: u64) {
        if let Some(outbox) = self.outbox.get() {
            let _ = outbox.send(HealthNote {
                registry_id: b.id,
                until_ms,
                origin: self.origin,
            });
        }
    }

    /// Apply another replica's note.
    pub fn apply(&self, note: &HealthNote) {
        if note.origin == self.origin {
            return;
        }
        let b = self.backend(note.registry_id);
        if note.until_ms == 0 {
            b.failures.store(0, Ordering::Relaxed);
            b.ejected_until.store(0, Ordering::Relaxed);
            return;
        }
        let remaining = note.until_ms.saturating_sub(wall_ms());
        if remaining > 0 {
            let until = self.now_ms() + remaining;
            if b.ejected_until.fetch_max(until, Ordering::Relaxed) <= self.now_ms() {
                b.ejections.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Back in rotation; announced when it was out.
    fn restore(&self, b: &Backend) {
        b.failures.store(0, Ordering::Relaxed);
        if b.ejected_until.swap(0, Ordering::Relaxed) > self.now_ms() {
            self.announce(b, 0);
        }
    }

    /// A success: failures reset, the registry is back, latency joins the average.
    pub fn success(&self, b: &Backend, latency: Duration) {
        if b.failures.load(Ordering::Relaxed) != 0 || b.ejected_until.load(Ordering::Relaxed) != 0 {
            self.restore(b);
        }
        let sample = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let old = b.ewma_us.load(Ordering::Relaxed);
        // Peak-EWMA: a slower sample counts at once, faster ones decay it gradually.
        let new = if old == 0 || sample > old {
            sample
        } else {
            (old * 4 + sample) / 5
        };
        b.ewma_us.store(new, Ordering::Relaxed);
    }

    /// A passing probe: the registry is back, without a latency sample (a probe's
    /// latency says nothing about a completion's).
    pub fn recovered(&self, b: &Backend) {
        self.restore(b);
    }

    /// A failure of real traffic or of a probe: after `threshold` in a row the
    /// registry is ejected for its cooldown.
    pub fn failure(&self, b: &Backend, rules: &TargetHealth, passive: bool) {
        let now = self.now_ms();
        b.last_failure.store(now, Ordering::Relaxed);
        if passive && !rules.passive {
            return;
        }
        let failures = b.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= rules.threshold {
            self.eject(b, rules.cooldown);
        }
    }

    /// Take a registry out of rotation for `how_long` (a cooldown, or a 429's
    /// `Retry-After`).
    pub fn eject(&self, b: &Backend, how_long: Duration) {
        let millis = u64::try_from(how_long.as_millis()).unwrap_or(u64::MAX / 4);
        let until = self.now_ms() + millis;
        if b.ejected_until.fetch_max(until, Ordering::Relaxed) <= self.now_ms() {
            b.ejections.fetch_add(1, Ordering::Relaxed);
            self.announce(b, wall_ms() + millis);
        }
    }

    /// Every known registry's state.
    pub fn view(&self) -> Vec<HealthView> {
        let Ok(table) = self.table.read() else {
            return Vec::new();
        };
        let mut out: Vec<HealthView> = table
            .iter()
            .map(|(id, b)| HealthView {
                registry_id: *id,
                healthy: !self.is_ejected(b),
                probed: b.probed(),
                in_flight: b.in_flight(),
                latency_ewma_ms: b.ewma_us.load(Ordering::Relaxed) as f64 / 1000.0,
                consecutive_failures: b.failures.load(Ordering::Relaxed),
                ejections: b.ejections.load(Ordering::Relaxed),
                forced_requests: b.forced.load(Ordering::Relaxed),
            })
            .collect();
        out.sort_by_key(|v| v.registry_id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(threshold: u32) -> TargetHealth {
        TargetHealth {
            passive: true,
            threshold,
            cooldown: Duration::from_secs(60),
            active: None,
        }
    }

    #[test]
    fn consecutive_failures_eject_and_a_success_restores() {
        let h = Health::default();
        let b = h.backend(Uuid::now_v7());
        h.failure(&b, &rules(2), true);
        assert!(!h.is_ejected(&b));
        h.failure(&b, &rules(2), true);
        assert!(h.is_ejected(&b));
        h.success(&b, Duration::from_millis(5));
        assert!(!h.is_ejected(&b));
        let mut off = rules(1);
        off.passive = false;
        h.failure(&b, &off, true);
        assert!(!h.is_ejected(&b), "passive checks off");
    }

    #[test]
    fn latency_is_peak_weighted_and_in_flight_counted() {
        let h = Health::default();
        let b = h.backend(Uuid::now_v7());
        assert_eq!(b.load_score(), 0);
        h.success(&b, Duration::from_millis(10));
        h.success(&b, Duration::from_millis(1));
        let after_fast = b.ewma_us.load(Ordering::Relaxed);
        assert!(after_fast < 10_000 && after_fast > 1_000, "{after_fast}");
        h.success(&b, Duration::from_millis(50));
        assert_eq!(b.ewma_us.load(Ordering::Relaxed), 50_000);
        let guard = h.start(&b);
        assert_eq!(b.load_score(), 100_000);
        drop(guard);
        assert_eq!(b.in_flight(), 0);
    }
}
