//! The metric series a finished request counts in, found once per label set and kept
//! per thread.
//!
//! Each `with_label_values` of the `prometheus` crate hashes every label with SipHash,
//! takes the family's read lock and clones the series' `Arc`, and a request counted
//! in up to nine series that way. Here one fast hash of the request's labels finds all
//! of its series in this thread's map; a series is created in its family the first
//! time it is used, so the families expose exactly what they did before. The map
//! holds no more label sets than the families themselves.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash};

use prometheus::{Histogram, IntCounter};
use rustc_hash::FxHasher;
use sluice_telemetry::metrics::METRICS;

/// The labels of a request's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Labels<'a> {
    pub gateway: &'a str,
    pub consumer: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub status: &'static str,
    pub dialect: &'static str,
    pub stream: bool,
}

/// The token kinds, in the order of [`Series::tokens`].
pub(crate) const TOKEN_KINDS: [&str; 4] = ["input", "output", "cached", "reasoning"];

/// The series of one label set. Those a request may not touch (no provider, no
/// usage, no price) are made on first use.
pub(crate) struct Series {
    owned: Owned,
    pub requests: IntCounter,
    pub duration: Histogram,
    pub overhead: Histogram,
    upstream: OnceCell<Histogram>,
    ttfb: OnceCell<Histogram>,
    tokens: OnceCell<[IntCounter; 4]>,
    cost: OnceCell<IntCounter>,
}

/// The labels, kept to tell label sets with the same hash apart.
struct Owned {
    gateway: Box<str>,
    consumer: Box<str>,
    provider: Box<str>,
    model: Box<str>,
    status: &'static str,
    dialect: &'static str,
    stream: bool,
}

impl Owned {
    fn is(&self, l: &Labels<'_>) -> bool {
        *self.gateway == *l.gateway
            && *self.consumer == *l.consumer
            && *self.provider == *l.provider
            && *self.model == *l.model
            && self.status == l.status
            && self.dialect == l.dialect
            && self.stream == l.stream
    }

    fn labels(&self) -> Labels<'_> {
        Labels {
            gateway: &self.gateway,
            consumer: &self.consumer,
            provider: &self.provider,
            model: &self.model,
            status: self.status,
            dialect: self.dialect,
            stream: self.stream,
        }
    }
}

impl Series {
    fn new(l: &Labels<'_>) -> Self {
        let m = &*METRICS;
        let stream = if l.stream { "true" } else { "false" };
        Self {
            owned: Owned {
                gateway: l.gateway.into(),
                consumer: l.consumer.into(),
                provider: l.provider.into(),
                model: l.model.into(),
                status: l.status,
                dialect: l.dialect,
                stream: l.stream,
            },
            requests: m.requests.with_label_values(&[
                l.gateway, l.consumer, l.provider, l.model, l.status, l.dialect,
            ]),
            duration: m.duration.with_label_values(&[l.dialect, stream]),
            overhead: m.overhead.with_label_values(&[l.dialect]),
            upstream: OnceCell::new(),
            ttfb: OnceCell::new(),
            tokens: OnceCell::new(),
            cost: OnceCell::new(),
        }
    }

    /// Time spent upstream, by provider.
    pub(crate) fn upstream(&self) -> &Histogram {
        self.upstream.get_or_init(|| {
            METRICS
                .upstream_duration
                .with_label_values(&[&self.owned.provider])
        })
    }

    /// Time to the first byte, by provider.
    pub(crate) fn ttfb(&self) -> &Histogram {
        self.ttfb
            .get_or_init(|| METRICS.ttfb.with_label_values(&[&self.owned.provider]))
    }

    /// Tokens of each of [`TOKEN_KINDS`].
    pub(crate) fn tokens(&self) -> &[IntCounter; 4] {
        self.tokens.get_or_init(|| {
            let l = self.owned.labels();
            TOKEN_KINDS.map(|kind| {
                METRICS
                    .tokens
                    .with_label_values(&[l.gateway, l.consumer, l.provider, l.model, kind])
            })
        })
    }

    /// Cost in millionths of a dollar.
    pub(crate) fn cost(&self) -> &IntCounter {
        self.cost.get_or_init(|| {
            let l = self.owned.labels();
            METRICS
                .cost_micro_usd
                .with_label_values(&[l.gateway, l.consumer, l.provider, l.model])
        })
    }
}

type Map = HashMap<u64, Vec<Series>, BuildHasherDefault<rustc_hash::FxHasher>>;

thread_local! {
    static SERIES: RefCell<Map> = RefCell::default();
}

/// Run `f` on the series of `labels`.
pub(crate) fn with<R>(labels: Labels<'_>, f: impl FnOnce(&Series) -> R) -> R {
    let hash = {
        use std::hash::Hasher;
        let mut h = FxHasher::default();
        labels.hash(&mut h);
        h.finish()
    };
    SERIES.with_borrow_mut(|map| {
        let bucket = map.entry(hash).or_default();
        let at = match bucket.iter().position(|s| s.owned.is(&labels)) {
            Some(at) => at,
            None => {
                bucket.push(Series::new(&labels));
                bucket.len() - 1
            }
        };
        f(&bucket[at])
    })
}

/// An upstream-attempt series: its provider and result, and its counter.
type AttemptSeries = (Box<str>, Box<str>, IntCounter);

thread_local! {
    /// This thread's upstream-attempt counters: a handful of pairs, no more than the
    /// family itself holds.
    static ATTEMPTS: RefCell<Vec<AttemptSeries>> = const { RefCell::new(Vec::new()) };
}

/// Count an upstream attempt at `provider` that ended as `result`, its series found in
/// this thread's list (`with_label_values` hashed both labels with SipHash and took the
/// family's lock on every request).
pub(crate) fn attempt(provider: &str, result: &str) {
    ATTEMPTS.with_borrow_mut(|list| {
        if let Some((_, _, counter)) = list
            .iter()
            .find(|(p, r, _)| **p == *provider && **r == *result)
        {
            counter.inc();
            return;
        }
        let counter = METRICS.attempts.with_label_values(&[provider, result]);
        counter.inc();
        list.push((provider.into(), result.into(), counter));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(consumer: &str) -> Labels<'_> {
        Labels {
            gateway: "series-test",
            consumer,
            provider: "openai",
            model: "gpt-4o",
            status: "2xx",
            dialect: "openai",
            stream: false,
        }
    }

    #[test]
    fn the_cached_series_are_the_families_own() {
        let m = &*METRICS;
        let requests = |consumer: &str| {
            m.requests
                .with_label_values(&["series-test", consumer, "openai", "gpt-4o", "2xx", "openai"])
                .get()
        };
        let before = requests("a");
        with(labels("a"), |s| s.requests.inc());
        with(labels("a"), |s| s.requests.inc());
        with(labels("b"), |s| s.requests.inc());
        assert_eq!(requests("a"), before + 2);
        assert_eq!(requests("b"), 1);

        with(labels("a"), |s| {
            s.tokens()[1].inc_by(7);
            s.cost().inc_by(3);
        });
        let l = labels("a");
        let tokens = m
            .tokens
            .with_label_values(&[l.gateway, l.consumer, l.provider, l.model, "output"]);
        assert_eq!(tokens.get(), 7);
        let cost = m
            .cost_micro_usd
            .with_label_values(&[l.gateway, l.consumer, l.provider, l.model]);
        assert_eq!(cost.get(), 3);
    }

    #[test]
    fn series_a_request_does_not_touch_are_not_made() {
        with(labels("untouched"), |s| s.requests.inc());
        let exposed = prometheus::TextEncoder::new()
            .encode_to_string(&METRICS.registry.gather())
            .expect("encode");
        assert!(exposed.contains("consumer=\"untouched\""));
        assert!(
            !exposed
                .lines()
                .any(|l| l.starts_with("sluice_tokens") && l.contains("consumer=\"untouched\"")),
            "no token series for a request without usage"
        );
    }

    #[test]
    fn attempts_count_in_their_family_series() {
        let family = |p: &str, r: &str| METRICS.attempts.with_label_values(&[p, r]).get();
        let (p, r) = ("series-test-provider", "answered");
        let before = family(p, r);
        let other = family(p, "timeout");
        attempt(p, r);
        attempt(p, r);
        attempt(p, "timeout");
        assert_eq!(family(p, r), before + 2);
        assert_eq!(family(p, "timeout"), other + 1);
    }
}
