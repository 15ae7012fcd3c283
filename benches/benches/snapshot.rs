//! The per-request lookups of the proxy (key digest, gateway, consumer, key table) and
//! compiling a gateway's document.
//!
//! `cargo bench -p sluice-benches`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_benches::{document, document_with};
use sluice_shared::apikey;
use sluice_shared::snapshot::{CompiledGateway, Snapshot};

fn lookups(c: &mut Criterion) {
    let Some(doc) = document(1_000) else { return };
    let Ok(gw) = CompiledGateway::compile(&doc, None) else {
        return;
    };
    let gw = Arc::new(gw);
    let snapshot = Snapshot::new(1, [(gw.id, gw)].into(), Some("gw.example.com".into()));
    c.bench_function("apikey_digest", |b| {
        b.iter(|| apikey::digest(black_box("ag_bench_500")))
    });
    c.bench_function("request_identity_lookup", |b| {
        b.iter(|| {
            let gw = snapshot.gateway_by_slug(black_box("bench"))?;
            let consumer = gw.consumer(black_box("c500"))?;
            let auth = gw.auth_for_key(&apikey::digest(black_box("ag_bench_500")))?;
            Some(consumer.accepts(auth))
        })
    });
    c.bench_function("gateway_by_host", |b| {
        b.iter(|| {
            snapshot
                .gateway_by_host(black_box("bench.gw.example.com"))
                .is_some()
        })
    });
}

fn compile(c: &mut Criterion) {
    let Some(doc) = document(1_000) else { return };
    c.bench_function("compile_gateway_1000_consumers", |b| {
        b.iter(|| CompiledGateway::compile(black_box(&doc), None).is_ok())
    });
}

/// Config scale: 100,000 consumers over 10,000 registries compile in one go, and a
/// request's lookups cost what they cost with 1,000 (hash maps all the way).
fn scale(c: &mut Criterion) {
    let Some(doc) = document_with(100_000, 10_000) else {
        return;
    };
    let mut group = c.benchmark_group("scale");
    group.sample_size(10);
    group.bench_function("compile_gateway_100k_consumers_10k_registries", |b| {
        b.iter(|| CompiledGateway::compile(black_box(&doc), None).is_ok())
    });
    group.finish();
    let Ok(gw) = CompiledGateway::compile(&doc, None) else {
        return;
    };
    c.bench_function("request_identity_lookup_100k_consumers", |b| {
        b.iter(|| {
            let consumer = gw.consumer(black_box("c50000"))?;
            let auth = gw.auth_for_key(&apikey::digest(black_box("ag_bench_50000")))?;
            Some(consumer.accepts(auth))
        })
    });
}

criterion_group!(benches, lookups, compile, scale);
criterion_main!(benches);
