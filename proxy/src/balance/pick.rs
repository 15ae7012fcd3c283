//! The balancing algorithms.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use sluice_shared::model::LbAlgorithm;
use sluice_shared::snapshot::{CompiledLb, WeightedUpstream};
use uuid::Uuid;

use super::health::Health;

fn registry_id(u: &WeightedUpstream) -> Option<Uuid> {
    u.target.as_ref().ok().map(|t| t.registry_id)
}

fn weighted_random<'c>(candidates: &[&'c WeightedUpstream]) -> Option<&'c WeightedUpstream> {
    let total: u32 = candidates.iter().map(|u| u32::from(u.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rand::rng().random_range(0..total);
    for u in candidates {
        let w = u32::from(u.weight);
        if roll < w {
            return Some(u);
        }
        roll -= w;
    }
    None
}

/// Weighted round robin by position: over a cycle of `total weight` turns each member
/// gets its weight's share, interleaved (smooth weighted round robin, recomputed from
/// the turn number so it needs no shared mutable state beyond the counter).
fn weighted_turn<'c>(
    candidates: &[&'c WeightedUpstream],
    turn: usize,
) -> Option<&'c WeightedUpstream> {
    let total: i64 = candidates.iter().map(|u| i64::from(u.weight)).sum();
    if total == 0 {
        return None;
    }
    let step = turn % usize::try_from(total).unwrap_or(1);
    let mut current: Vec<i64> = vec![0; candidates.len()];
    let mut chosen = 0;
    for _ in 0..=step {
        for (c, u) in current.iter_mut().zip(candidates) {
            *c += i64::from(u.weight);
        }
        chosen = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
            .map_or(0, |(i, _)| i);
        current[chosen] -= total;
    }
    candidates.get(chosen).copied()
}

/// Rendezvous hashing: the member with the highest hash of (key, member) wins, so a
/// key keeps its member while others come and go.
fn rendezvous<'c>(candidates: &[&'c WeightedUpstream], key: &[u8]) -> Option<&'c WeightedUpstream> {
    candidates.iter().copied().max_by_key(|u| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        registry_id(u).hash(&mut h);
        h.finish()
    })
}

/// Choose among `candidates` (already filtered to those that allow the model and were
/// not tried). Ejected registries are skipped; when every candidate is ejected the one
/// that failed longest ago is tried anyway rather than refusing the request, and that
/// is counted. Returns the choice and whether it was such a forced one.
pub fn pick<'c>(
    lb: &CompiledLb,
    turn: &AtomicUsize,
    candidates: &[&'c WeightedUpstream],
    health: &Health,
    hash_key: Option<&[u8]>,
) -> Option<(&'c WeightedUpstream, bool)> {
    if candidates.is_empty() {
        return None;
    }
    // In rotation: not ejected, and, for a registry with active checks, probed once
    // (a new registry is checked before it serves).
    let healthy: Vec<&WeightedUpstream> = candidates
        .iter()
        .copied()
        .filter(|u| match &u.target {
            Ok(t) => {
                let b = health.backend(t.registry_id);
                !health.is_ejected(&b) && (t.health.active.is_none() || b.probed())
            }
            Err(_) => true,
        })
        .collect();
    if healthy.is_empty() {
        let least_recent = candidates
            .iter()
            .copied()
            .min_by_key(|u| registry_id(u).map_or(0, |id| health.backend(id).last_failure()))?;
        if let Some(id) = registry_id(least_recent) {
            health.backend(id).count_forced();
        }
        return Some((least_recent, true));
    }
    // A registry whose config is broken answers only with an error: prefer the others.
    let working: Vec<&WeightedUpstream> = healthy
        .iter()
        .copied()
        .filter(|u| u.target.is_ok())
        .collect();
    let pool = if working.is_empty() {
        &healthy
    } else {
        &working
    };
    let chosen = match lb.algorithm {
        LbAlgorithm::RoundRobin => pool
            .get(turn.fetch_add(1, Ordering::Relaxed) % pool.len())
            .copied(),
        LbAlgorithm::WeightedRoundRobin => {
            weighted_turn(pool, turn.fetch_add(1, Ordering::Relaxed))
        }
        LbAlgorithm::Random => weighted_random(pool),
        LbAlgorithm::LeastConnections => {
            // Fewest in flight; ties go round robin so idle members share the load.
            let start = turn.fetch_add(1, Ordering::Relaxed);
            (0..pool.len())
                .map(|i| pool[(start + i) % pool.len()])
                .min_by_key(|u| registry_id(u).map_or(0, |id| health.backend(id).in_flight()))
        }
        LbAlgorithm::Latency => {
            // Power of two (distinct) choices on peak-EWMA latency times queue length.
            let mut rng = rand::rng();
            let i = rng.random_range(0..pool.len());
            let mut j = rng.random_range(0..pool.len().max(2) - 1);
            if j >= i {
                j += 1;
            }
            let a = pool[i];
            let b = pool.get(j).copied().unwrap_or(a);
            let score = |u: &WeightedUpstream| {
                registry_id(u).map_or(0, |id| health.backend(id).load_score())
            };
            Some(if score(b) < score(a) { b } else { a })
        }
        LbAlgorithm::ConsistentHash => match hash_key {
            Some(key) => rendezvous(pool, key),
            None => weighted_random(pool),
        },
        // The semantic choice is made before (it needs an embeddings call); this is
        // its fallback when that call fails.
        LbAlgorithm::Semantic => pool
            .get(turn.fetch_add(1, Ordering::Relaxed) % pool.len())
            .copied(),
    };
    chosen.map(|u| (u, false))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn upstream(weight: u8) -> WeightedUpstream {
        let doc: sluice_shared::model::Registry = serde_json::from_value(serde_json::json!({
            "id": Uuid::now_v7(), "gateway_id": Uuid::now_v7(), "name": "r",
            "provider": "openai_compatible", "provider_options": {"base_url": "http://127.0.0.1:1/v1"},
            "created_at": "t", "updated_at": "t"}))
        .expect("registry");
        WeightedUpstream {
            target: Ok(Arc::new(
                sluice_shared::snapshot::UpstreamTarget::compile(&doc, None).expect("target"),
            )),
            weight,
            registry_name: Arc::from("r"),
            allowed: Vec::new(),
            default_model: None,
        }
    }

    #[test]
    fn weighted_round_robin_interleaves_by_weight() {
        let ups = [upstream(3), upstream(1)];
        let refs: Vec<&WeightedUpstream> = ups.iter().collect();
        let picks: Vec<usize> = (0..8)
            .map(|t| {
                let u = weighted_turn(&refs, t).expect("pick");
                if std::ptr::eq(u, &ups[0]) { 0 } else { 1 }
            })
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 0).count(), 6);
        assert_eq!(picks[..4].iter().filter(|&&i| i == 1).count(), 1);
    }

    #[test]
    fn consistent_hash_keeps_a_key_and_ejection_is_respected() {
        let ups = [upstream(1), upstream(1), upstream(1)];
        let refs: Vec<&WeightedUpstream> = ups.iter().collect();
        let lb = CompiledLb {
            algorithm: LbAlgorithm::ConsistentHash,
            hash_header: http::HeaderName::from_static("x-session-id"),
            embedding: None,
            descriptions: Default::default(),
        };
        let health = Health::default();
        let turn = AtomicUsize::new(0);
        let first = pick(&lb, &turn, &refs, &health, Some(b"conv-1"))
            .expect("pick")
            .0;
        for _ in 0..20 {
            let again = pick(&lb, &turn, &refs, &health, Some(b"conv-1"))
                .expect("pick")
                .0;
            assert!(std::ptr::eq(first, again));
        }
        let id = registry_id(first).expect("id");
        health.eject(&health.backend(id), std::time::Duration::from_secs(60));
        let moved = pick(&lb, &turn, &refs, &health, Some(b"conv-1")).expect("pick");
        assert!(!std::ptr::eq(first, moved.0) && !moved.1);
        for u in &ups {
            health.eject(
                &health.backend(registry_id(u).expect("id")),
                std::time::Duration::from_secs(60),
            );
        }
        assert!(
            pick(&lb, &turn, &refs, &health, Some(b"conv-1"))
                .expect("forced")
                .1
        );
    }
}
