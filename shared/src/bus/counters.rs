//! Rate-limit counters of one process, for the embedded default (no Redis): the same
//! algorithms as the Redis scripts in `limits`, exact within this process.

use std::collections::{HashMap, VecDeque};

/// The admission counters' map: hashbrown's, looked up by `&str` and given an owned key
/// only when a key is new (the standard map's `entry` copies the key on every check),
/// with its default hasher (foldhash, seeded per process: keys may hold a client's
/// header value).
type Counters = hashbrown::HashMap<String, State>;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::limits::Decision;

// Limits up to `EXACT_LOG_MAX` are kept as an exact log of admissions; above, memory
// would grow with the limit, so the window is counted in `SLICES` slices (as in Redis).
use super::limits::EXACT_LOG_MAX;
/// Slices of a window for large limits: a window may then admit up to one slice's
/// worth of requests more than the limit, never a replica's worth.
pub const SLICES: u32 = 64;

enum State {
    Sliding(VecDeque<Instant>),
    /// Admissions per slice of the window (slice number, count), oldest first.
    Sliced(VecDeque<(u64, u64)>),
    /// Theoretical arrival time.
    Gcra(Instant),
}

pub struct LocalLimits {
    keys: Mutex<Counters>,
    /// Slices are numbered from here.
    epoch: Instant,
    /// Token budgets: used so far and when the window ends.
    budgets: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Default for LocalLimits {
    fn default() -> Self {
        Self {
            keys: Mutex::default(),
            epoch: Instant::now(),
            budgets: Mutex::default(),
        }
    }
}

/// Keys kept at most; past that, idle ones are forgotten (they would admit anyway).
const MAX_KEYS: usize = 100_000;

impl LocalLimits {
    /// Add `delta` (which may be negative: a reservation settled lower) to `key`; a
    /// new window starts with the first addition after the last ended.
    pub fn add(&self, key: &str, delta: i64, window: Duration) {
        let now = Instant::now();
        if let Ok(mut b) = self.budgets.lock() {
            if b.len() > MAX_KEYS {
                b.retain(|_, (end, _)| *end > now);
            }
            let entry = b.entry(key.to_string()).or_insert((now + window, 0));
            if entry.0 <= now {
                *entry = (now + window, 0);
            }
            entry.1 = entry.1.saturating_add_signed(delta);
        }
    }

    /// Admit a request of `estimate` against `budget` and reserve it, in one step:
    /// admitted, what was used before, and what is left of the window.
    pub fn reserve(
        &self,
        key: &str,
        estimate: u64,
        budget: u64,
        window: Duration,
    ) -> (bool, u64, Duration) {
        let now = Instant::now();
        let Ok(mut b) = self.budgets.lock() else {
            return (true, 0, Duration::ZERO);
        };
        let entry = b.entry(key.to_string()).or_insert((now + window, 0));
        if entry.0 <= now {
            *entry = (now + window, 0);
        }
        let used = entry.1;
        let admitted = used < budget && used.saturating_add(estimate) <= budget;
        if admitted {
            entry.1 += estimate;
        }
        (admitted, used, entry.0 - now)
    }

    pub fn check(&self, key: &str, limit: u64, window: Duration, gcra: bool) -> Decision {
        let now = Instant::now();
        let Ok(mut keys) = self.keys.lock() else {
            return Decision {
                allowed: true,
                remaining: 0,
                retry_after: Duration::ZERO,
                reset: Duration::ZERO,
            };
        };
        if keys.len() > MAX_KEYS {
            keys.retain(|_, s| match s {
                State::Sliding(q) => q.back().is_some_and(|t| now.duration_since(*t) < window),
                State::Sliced(q) => !q.is_empty(),
                State::Gcra(tat) => *tat > now,
            });
        }
        let state = keys.entry_ref(key).or_insert_with(|| {
            if gcra {
                State::Gcra(now)
            } else if limit > EXACT_LOG_MAX {
                State::Sliced(VecDeque::new())
            } else {
                State::Sliding(VecDeque::new())
            }
        });
        match state {
            State::Sliced(q) => {
                let slice = window / SLICES;
                let n =
                    (now.duration_since(self.epoch).as_nanos() / slice.as_nanos().max(1)) as u64;
                while q.front().is_some_and(|(i, _)| *i + u64::from(SLICES) <= n) {
                    q.pop_front();
                }
                let count: u64 = q.iter().map(|(_, c)| c).sum();
                // The window frees up as its oldest slice leaves it.
                let until_oldest_leaves = q.front().map_or(window, |(i, _)| {
                    slice * u32::try_from(i + u64::from(SLICES) - n).unwrap_or(SLICES)
                });
                if count < limit {
                    match q.back_mut() {
                        Some((i, c)) if *i == n => *c += 1,
                        _ => q.push_back((n, 1)),
                    }
                    Decision {
                        allowed: true,
                        remaining: limit - count - 1,
                        retry_after: Duration::ZERO,
                        reset: until_oldest_leaves,
                    }
                } else {
                    Decision {
                        allowed: false,
                        remaining: 0,
                        retry_after: until_oldest_leaves,
                        reset: until_oldest_leaves,
                    }
                }
            }
            State::Sliding(q) => {
                while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                    q.pop_front();
                }
                let count = q.len() as u64;
                if count < limit {
                    q.push_back(now);
                    let oldest = q.front().copied().unwrap_or(now);
                    Decision {
                        allowed: true,
                        remaining: limit - count - 1,
                        retry_after: Duration::ZERO,
                        reset: window.saturating_sub(now.duration_since(oldest)),
                    }
                } else {
                    let oldest = q.front().copied().unwrap_or(now);
                    let wait = window.saturating_sub(now.duration_since(oldest));
                    Decision {
                        allowed: false,
                        remaining: 0,
                        retry_after: wait,
                        reset: wait,
                    }
                }
            }
            State::Gcra(tat) => {
                let interval = window / u32::try_from(limit).unwrap_or(u32::MAX).max(1);
                let base = (*tat).max(now);
                let allow_at = (base + interval).checked_sub(window).unwrap_or(now);
                if now < allow_at {
                    return Decision {
                        allowed: false,
                        remaining: 0,
                        retry_after: allow_at - now,
                        reset: base - now,
                    };
                }
                *tat = base + interval;
                let used = *tat - now;
                let remaining =
                    (window.saturating_sub(used).as_nanos() / interval.as_nanos().max(1)) as u64;
                Decision {
                    allowed: true,
                    remaining,
                    retry_after: Duration::ZERO,
                    reset: used,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large limits are counted in slices: memory stays bounded, the count exact
    /// within a window.
    #[test]
    fn large_limits_are_sliced() {
        let l = LocalLimits::default();
        let limit = EXACT_LOG_MAX + 10;
        let admitted = (0..limit + 50)
            .filter(|_| {
                l.check("big", limit, Duration::from_secs(60), false)
                    .allowed
            })
            .count() as u64;
        assert_eq!(admitted, limit);
        let keys = l.keys.lock().unwrap();
        assert!(matches!(keys.get("big"), Some(State::Sliced(q)) if q.len() == 1));
    }

    #[test]
    fn sliding_window_admits_exactly_the_limit() {
        let l = LocalLimits::default();
        let admitted = (0..10)
            .filter(|_| l.check("k", 4, Duration::from_secs(60), false).allowed)
            .count();
        assert_eq!(admitted, 4);
        let d = l.check("k", 4, Duration::from_secs(60), false);
        assert!(!d.allowed && d.retry_after > Duration::from_secs(58));
        assert!(l.check("other", 4, Duration::from_secs(60), false).allowed);
    }

    #[test]
    fn gcra_admits_a_burst_then_spaces() {
        let l = LocalLimits::default();
        let admitted = (0..10)
            .filter(|_| l.check("g", 5, Duration::from_secs(50), true).allowed)
            .count();
        assert_eq!(admitted, 5);
        let d = l.check("g", 5, Duration::from_secs(50), true);
        assert!(!d.allowed && d.retry_after <= Duration::from_secs(10));
    }
}
