//! A small HNSW index (hierarchical navigable small world graphs, Malkov & Yashunin)
//! over unit vectors, by cosine similarity: the semantic cache's nearest-neighbour
//! search in O(log n) instead of a scan of every entry.
//!
//! Entries are never removed one by one; the cache drops expired entries from its
//! results and rebuilds the index from the live ones when it has grown past its bound.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

/// Links per node on the upper layers (twice this on layer 0).
const M: usize = 12;
/// Candidates kept while inserting.
const EF_CONSTRUCTION: usize = 64;

#[derive(Clone, Copy, PartialEq)]
struct Scored {
    sim: f32,
    id: usize,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sim
            .total_cmp(&other.sim)
            .then_with(|| self.id.cmp(&other.id))
    }
}

struct Node {
    vector: Vec<f32>,
    /// Neighbours on each layer this node lives on.
    links: Vec<Vec<usize>>,
}

/// The index; ids are insertion positions.
#[derive(Default)]
pub struct Hnsw {
    nodes: Vec<Node>,
    entry: Option<usize>,
    /// A xorshift state for the level draw: deterministic, no shared RNG.
    seed: u64,
}

/// The vector scaled to unit length (zero stays zero).
pub fn normalize(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| x / norm).collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Hnsw {
    fn level(&mut self) -> usize {
        // Geometric with p = 1/M: the expected layer sizes shrink by M each level.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let u = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        (-(u.max(1e-12)).ln() / (M as f64).ln()).floor() as usize
    }

    fn sim(&self, q: &[f32], id: usize) -> f32 {
        dot(q, &self.nodes[id].vector)
    }

    /// The `ef` nodes most similar to `q` reachable on `layer` from `start`.
    fn search_layer(&self, q: &[f32], start: usize, ef: usize, layer: usize) -> Vec<Scored> {
        let first = Scored {
            sim: self.sim(q, start),
            id: start,
        };
        let mut seen = HashSet::from([start]);
        // Candidates best first; results worst first, to drop the worst.
        let mut candidates = BinaryHeap::from([first]);
        let mut results = BinaryHeap::from([std::cmp::Reverse(first)]);
        while let Some(c) = candidates.pop() {
            let worst = results.peek().map_or(f32::MIN, |r| r.0.sim);
            if c.sim < worst && results.len() >= ef {
                break;
            }
            for &n in self.nodes[c.id].links.get(layer).into_iter().flatten() {
                if !seen.insert(n) {
                    continue;
                }
                let s = Scored {
                    sim: self.sim(q, n),
                    id: n,
                };
                let worst = results.peek().map_or(f32::MIN, |r| r.0.sim);
                if results.len() < ef || s.sim > worst {
                    candidates.push(s);
                    results.push(std::cmp::Reverse(s));
                    if results.len() > ef {
                        results.pop();
                    }
                }
            }
        }
        let mut out: Vec<Scored> = results.into_iter().map(|r| r.0).collect();
        out.sort_by(|a, b| b.cmp(a));
        out
    }

    /// Add a unit vector; returns its id.
    pub fn insert(&mut self, vector: Vec<f32>) -> usize {
        if self.seed == 0 {
            self.seed = 0x9E37_79B9_7F4A_7C15;
        }
        let id = self.nodes.len();
        let level = self.level();
        self.nodes.push(Node {
            vector,
            links: vec![Vec::new(); level + 1],
        });
        let Some(entry) = self.entry else {
            self.entry = Some(id);
            return id;
        };
        let q = self.nodes[id].vector.clone();
        let top = self.nodes[entry].links.len() - 1;
        let mut at = entry;
        for layer in (level + 1..=top).rev() {
            at = self.search_layer(&q, at, 1, layer)[0].id;
        }
        for layer in (0..=level.min(top)).rev() {
            let found = self.search_layer(&q, at, EF_CONSTRUCTION, layer);
            let cap = if layer == 0 { 2 * M } else { M };
            let neighbours: Vec<usize> = found.iter().take(cap).map(|s| s.id).collect();
            for &n in &neighbours {
                let links = &mut self.nodes[n].links[layer];
                links.push(id);
                if links.len() > cap {
                    // Keep the neighbour's closest links.
                    let v = self.nodes[n].vector.clone();
                    let mut scored: Vec<Scored> = self.nodes[n].links[layer]
                        .iter()
                        .map(|&l| Scored {
                            sim: dot(&v, &self.nodes[l].vector),
                            id: l,
                        })
                        .collect();
                    scored.sort_by(|a, b| b.cmp(a));
                    self.nodes[n].links[layer] = scored.iter().take(cap).map(|s| s.id).collect();
                }
            }
            self.nodes[id].links[layer] = neighbours;
            at = found[0].id;
        }
        if level > top {
            self.entry = Some(id);
        }
        id
    }

    /// Up to `k` ids most similar to the unit vector `q`, with their similarity.
    pub fn search(&self, q: &[f32], k: usize) -> Vec<(usize, f32)> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let top = self.nodes[entry].links.len() - 1;
        let mut at = entry;
        for layer in (1..=top).rev() {
            at = self.search_layer(q, at, 1, layer)[0].id;
        }
        self.search_layer(q, at, k.max(32), 0)
            .into_iter()
            .take(k)
            .map(|s| (s.id, s.sim))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors(n: usize, dim: usize, mut seed: u64) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dim)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                normalize(&v)
            })
            .collect()
    }

    /// The index finds the true nearest neighbour nearly always.
    #[test]
    fn recall_against_a_scan() {
        let data = vectors(3000, 32, 7);
        let mut index = Hnsw::default();
        for v in &data {
            index.insert(v.clone());
        }
        let queries = vectors(200, 32, 99);
        let mut hits = 0;
        for q in &queries {
            let best = (0..data.len())
                .max_by(|&a, &b| dot(q, &data[a]).total_cmp(&dot(q, &data[b])))
                .unwrap();
            if index.search(q, 1).first().map(|r| r.0) == Some(best) {
                hits += 1;
            }
        }
        assert!(hits >= 190, "recall@1 {hits}/200");
    }

    #[test]
    fn small_and_empty() {
        let mut index = Hnsw::default();
        assert!(index.search(&[1.0, 0.0], 3).is_empty());
        let a = index.insert(normalize(&[1.0, 0.0]));
        let b = index.insert(normalize(&[0.0, 1.0]));
        let found = index.search(&normalize(&[0.9, 0.1]), 2);
        assert_eq!(found[0].0, a);
        assert_eq!(found[1].0, b);
        assert_eq!(index.nodes.len(), 2);
    }
}
