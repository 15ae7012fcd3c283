//! The rate-limit check of the embedded default, per request: a sliding-window log
//! (small limits), sliced counting (large limits) and GCRA, on a warm key.
//!
//! `cargo bench -p sluice-benches --bench limits`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_shared::bus::LocalLimits;

fn checks(c: &mut Criterion) {
    let limits = LocalLimits::default();
    let window = Duration::from_secs(60);
    let mut g = c.benchmark_group("rate_limit_check");
    for (name, limit, gcra) in [
        ("sliding_log_limit_1000", 1_000, false),
        ("sliced_limit_1e9", 1_000_000_000, false),
        ("gcra_limit_1e9", 1_000_000_000, true),
    ] {
        let key = format!("sluice:rl:bench:{name}");
        g.bench_function(name, |b| {
            b.iter(|| limits.check(black_box(&key), limit, window, gcra).allowed)
        });
    }
    g.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
