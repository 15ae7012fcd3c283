//! Translation costs on the request path: a whole request and a whole answer between
//! dialects, one stream event through decoder and encoder, the in-place edit of a
//! pass-through body and the usage read from a passed-through answer.
//!
//! `cargo bench -p sluice-benches --bench translate`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_translate::canonical::Event;
use sluice_translate::sse::{SseEvent, SseParser};
use sluice_translate::{
    Decoder, Dialect, Encoder, EncoderOptions, RenderOptions, json_edit, parse_request,
    parse_response, render_request, render_response,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../translate/tests/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_default()
}

fn requests(c: &mut Criterion) {
    let body = fixture("request_openai_chat.json");
    let opts = RenderOptions {
        default_max_tokens: Some(8192),
        max_completion_tokens: false,
    };
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("openai_chat_to_anthropic", |b| {
        b.iter(|| {
            let req = parse_request(Dialect::OpenAiChat, black_box(&body)).ok()?;
            render_request(Dialect::Anthropic, &req, &opts).ok()
        })
    });
    g.bench_function("passthrough_model_rewrite", |b| {
        b.iter(|| json_edit::set(black_box(&body), "model", b"\"gpt-4.1-mini\"").ok())
    });
    g.finish();

    // The usage of an answer that passes through untranslated: every same-dialect
    // request pays this.
    let passed = fixture("response_openai_chat.json");
    c.bench_function("response/usage_of_passed_through_answer", |b| {
        b.iter(|| sluice_translate::usage::of_body(Dialect::OpenAiChat, black_box(&passed)))
    });

    let answer = fixture("response_anthropic.json");
    c.bench_function("response/anthropic_to_openai_chat", |b| {
        b.iter(|| {
            let resp = parse_response(Dialect::Anthropic, black_box(&answer)).ok()?;
            Some(render_response(Dialect::OpenAiChat, &resp))
        })
    });
}

/// One text-delta event of each provider dialect, as it arrives on the wire.
fn one_event(dialect: Dialect) -> (Vec<SseEvent>, Vec<u8>) {
    let name = match dialect {
        Dialect::OpenAiChat => "stream_openai_chat.sse",
        Dialect::Anthropic => "stream_anthropic.sse",
        Dialect::Responses => "stream_responses.sse",
    };
    let body = fixture(name);
    let mut events = Vec::new();
    let mut parser = SseParser::default();
    let _ = parser.push(&body, &mut events);
    let delta = events
        .iter()
        .find(|e| e.data.contains("Checking "))
        .cloned()
        .unwrap_or_default();
    let raw = match &delta.event {
        Some(name) => format!("event: {name}\ndata: {}\n\n", delta.data),
        None => format!("data: {}\n\n", delta.data),
    };
    (events, raw.into_bytes())
}

fn stream_chunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_event");
    for (from, to, label) in [
        (
            Dialect::OpenAiChat,
            Dialect::Anthropic,
            "openai_chat_to_anthropic",
        ),
        (
            Dialect::Anthropic,
            Dialect::OpenAiChat,
            "anthropic_to_openai_chat",
        ),
        (
            Dialect::OpenAiChat,
            Dialect::Responses,
            "openai_chat_to_responses",
        ),
    ] {
        let (events, raw) = one_event(from);
        // Prime decoder and encoder with the stream's start, as in a live stream.
        let mut decoder = Decoder::new(from);
        let mut encoder = Encoder::new(to, EncoderOptions::default());
        let mut scratch = Vec::new();
        let mut out = BytesMut::new();
        if let Some(first) = events.first() {
            let _ = decoder.decode(first, &mut scratch);
        }
        for e in scratch.drain(..) {
            encoder.encode(&e, &mut out);
        }
        let mut parser = SseParser::default();
        let mut parsed = Vec::new();
        let mut canonical: Vec<Event> = Vec::new();
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(label, |b| {
            b.iter(|| {
                out.clear();
                let _ = parser.push(black_box(&raw), &mut parsed);
                for e in parsed.drain(..) {
                    let _ = decoder.decode(&e, &mut canonical);
                }
                for e in canonical.drain(..) {
                    encoder.encode(&e, &mut out);
                }
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, requests, stream_chunks);
criterion_main!(benches);
