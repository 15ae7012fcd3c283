//! Translation costs on the request path: the parse every request's body gets (the
//! fields the proxy decides on), a whole request and a whole answer in every direction
//! between the three dialects, one stream event through decoder and encoder in every
//! direction, a whole stream in every direction, the in-place edit of a pass-through
//! body and the usage read from a passed-through answer.
//!
//! `cargo bench -p sluice-benches --bench translate`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_translate::canonical::Event;
use sluice_translate::peek::Peek;
use sluice_translate::sse::{SseEvent, SseParser};
use sluice_translate::{
    Decoder, Dialect, Encoder, EncoderOptions, RenderOptions, json_edit, parse_request,
    parse_response, render_request, render_response,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../translate/tests/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_default()
}

const DIALECTS: [(Dialect, &str); 3] = [
    (Dialect::OpenAiChat, "openai_chat"),
    (Dialect::Anthropic, "anthropic"),
    (Dialect::Responses, "responses"),
];

/// Every ordered pair of different dialects, with its benchmark name.
fn directions() -> impl Iterator<Item = (Dialect, Dialect, String)> {
    DIALECTS.into_iter().flat_map(|(from, a)| {
        DIALECTS
            .into_iter()
            .filter(move |(to, _)| *to != from)
            .map(move |(to, b)| (from, to, format!("{a}_to_{b}")))
    })
}

fn request_fixture(dialect: Dialect) -> Vec<u8> {
    fixture(match dialect {
        Dialect::OpenAiChat => "request_openai_chat.json",
        Dialect::Anthropic => "request_anthropic.json",
        Dialect::Responses => "request_responses.json",
    })
}

/// An agent's long conversation in Chat Completions, about `bytes` long: turns of prose
/// with newlines, quotes and non-ASCII text, tool calls and their results, as a coding
/// agent sends on every step (tens to hundreds of KiB are usual).
fn long_chat_request(bytes: usize) -> Vec<u8> {
    let prose = "The function reads the \"config\" file line by line;\nit returns an error \
                 when a key repeats. Café, naïve, 日本語 — and a tab\there. ";
    let mut messages = vec![serde_json::json!({"role": "system", "content": prose.repeat(4)})];
    let mut turn = 0;
    while serde_json::to_vec(&messages).map_or(0, |v| v.len()) < bytes {
        let id = format!("call_{turn}");
        messages.push(serde_json::json!({"role": "user", "content": prose.repeat(6)}));
        messages.push(
            serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "read_file",
             "arguments": "{\"path\":\"src/main.rs\",\"lines\":[1,200]}"}}]}),
        );
        messages.push(serde_json::json!({"role": "tool", "tool_call_id": id,
            "content": prose.repeat(12)}));
        turn += 1;
    }
    serde_json::to_vec(&serde_json::json!({
        "model": "gpt-4.1", "messages": messages, "stream": true, "max_tokens": 4096,
        "tools": [{"type": "function", "function": {"name": "read_file",
            "description": "Read lines of a file.", "parameters": {"type": "object",
            "properties": {"path": {"type": "string"}, "lines": {"type": "array"}}}}}]
    }))
    .unwrap_or_default()
}

/// What every request pays before anything else: the one parse of its body for the
/// fields the proxy decides on (model, stream, usage chunk, output limit).
fn peek(c: &mut Criterion) {
    let small = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":16}"#;
    let mut g = c.benchmark_group("peek");
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("small_chat_request", |b| {
        b.iter(|| Peek::parse(black_box(small)).ok())
    });
    for (dialect, name) in DIALECTS {
        let body = request_fixture(dialect);
        g.throughput(Throughput::Bytes(body.len() as u64));
        assert!(
            Peek::parse(&body).is_ok_and(|p| p.model.is_some()),
            "{name}: the fixture's model is not read"
        );
        g.bench_function(format!("{name}_request"), |b| {
            b.iter(|| Peek::parse(black_box(&body)).ok())
        });
    }
    let long = long_chat_request(128 * 1024);
    assert!(Peek::parse(&long).is_ok_and(|p| p.stream));
    g.throughput(Throughput::Bytes(long.len() as u64));
    g.bench_function("long_conversation_128k", |b| {
        b.iter(|| Peek::parse(black_box(&long)).ok())
    });
    g.finish();
}

fn requests(c: &mut Criterion) {
    let opts = RenderOptions {
        default_max_tokens: Some(8192),
        max_completion_tokens: false,
    };
    let mut g = c.benchmark_group("request");
    for (from, to, label) in directions() {
        let body = request_fixture(from);
        let once = |body: &[u8]| {
            let req = parse_request(from, body).ok()?;
            render_request(to, &req, &opts).ok()
        };
        // A failing direction would measure its error path instead.
        assert!(
            once(&body).is_some(),
            "{label}: the request did not translate"
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(label, |b| b.iter(|| once(black_box(&body))));
    }
    let body = request_fixture(Dialect::OpenAiChat);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("passthrough_model_rewrite", |b| {
        b.iter(|| json_edit::set(black_box(&body), "model", b"\"gpt-4.1-mini\"").ok())
    });
    // The long conversation, passed through and translated.
    let long = long_chat_request(128 * 1024);
    g.throughput(Throughput::Bytes(long.len() as u64));
    g.bench_function("passthrough_model_rewrite_128k", |b| {
        b.iter(|| json_edit::set(black_box(&long), "model", b"\"gpt-4.1-mini\"").ok())
    });
    // What a pass-through stream of it costs since the peek lays the body out: the
    // model and `stream_options` spliced into one copy, no scan.
    let layout = Peek::parse(&long).ok().and_then(|p| p.layout);
    let changes: [(&'static str, &[u8]); 2] = [
        ("model", b"\"gpt-4.1-mini\""),
        ("stream_options", br#"{"include_usage":true}"#),
    ];
    assert!(
        layout
            .as_ref()
            .and_then(|l| l.apply(&long, &changes))
            .is_some()
    );
    g.bench_function("passthrough_splice_two_members_128k", |b| {
        b.iter(|| layout.as_ref()?.apply(black_box(&long), &changes))
    });
    for (to, name) in [
        (Dialect::Anthropic, "anthropic"),
        (Dialect::Responses, "responses"),
    ] {
        let once = |body: &[u8]| {
            let req = parse_request(Dialect::OpenAiChat, body).ok()?;
            render_request(to, &req, &opts).ok()
        };
        assert!(
            once(&long).is_some(),
            "the long conversation did not translate"
        );
        g.bench_function(format!("openai_chat_to_{name}_128k"), |b| {
            b.iter(|| once(black_box(&long)))
        });
    }
    g.finish();

    // The usage of an answer that passes through untranslated: every same-dialect
    // request pays this.
    let passed = fixture("response_openai_chat.json");
    c.bench_function("response/usage_of_passed_through_answer", |b| {
        b.iter(|| sluice_translate::usage::of_body(Dialect::OpenAiChat, black_box(&passed)))
    });

    let mut g = c.benchmark_group("response");
    for (from, to, label) in directions() {
        let answer = fixture(match from {
            Dialect::OpenAiChat => "response_openai_chat.json",
            Dialect::Anthropic => "response_anthropic.json",
            Dialect::Responses => "response_responses.json",
        });
        let once = |answer: &[u8]| {
            let resp = parse_response(from, answer).ok()?;
            Some(render_response(to, &resp))
        };
        assert!(
            once(&answer).is_some(),
            "{label}: the answer did not translate"
        );
        g.throughput(Throughput::Bytes(answer.len() as u64));
        g.bench_function(label, |b| b.iter(|| once(black_box(&answer))));
    }
    g.finish();
}

/// The events of a provider's stream up to its first text delta, and that delta as it
/// arrives on the wire.
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
    let at = events
        .iter()
        .position(|e| e.data.contains("\"Checking \""))
        .unwrap_or(0);
    events.truncate(at + 1);
    let delta = events.pop().unwrap_or_default();
    let raw = match &delta.event {
        Some(name) => format!("event: {name}\ndata: {}\n\n", delta.data),
        None => format!("data: {}\n\n", delta.data),
    };
    (events, raw.into_bytes())
}

fn stream_chunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_event");
    for (from, to, label) in directions() {
        let (events, raw) = one_event(from);
        // Prime decoder and encoder with the stream up to the delta, as in a live
        // stream: the message and its text block are open.
        let mut decoder = Decoder::new(from);
        let mut encoder = Encoder::new(to, EncoderOptions::default());
        let mut scratch = Vec::new();
        let mut out = BytesMut::new();
        for e in &events {
            let _ = decoder.decode(e, &mut scratch);
        }
        for e in scratch.drain(..) {
            encoder.encode(&e, &mut out);
        }
        let mut parser = SseParser::default();
        let mut parsed = Vec::new();
        let mut canonical: Vec<Event> = Vec::new();
        let mut one = |raw: &[u8]| {
            out.clear();
            let _ = parser.push(raw, &mut parsed);
            for e in parsed.drain(..) {
                let _ = decoder.decode(&e, &mut canonical);
            }
            for e in canonical.drain(..) {
                encoder.encode(&e, &mut out);
            }
            out.len()
        };
        // The delta must come out as an event of the client's dialect.
        assert!(one(&raw) > 0, "{label}: the delta wrote nothing");
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(label, |b| b.iter(|| one(black_box(&raw))));
    }
    g.finish();
}

/// A whole stream (the golden fixture: text, two tool calls, usage) through a new
/// decoder and encoder, its SSE events already parsed: the events that open and close
/// the message, its blocks and its items, which a single delta does not show.
fn whole_streams(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream");
    for (from, to, label) in directions() {
        let body = fixture(match from {
            Dialect::OpenAiChat => "stream_openai_chat.sse",
            Dialect::Anthropic => "stream_anthropic.sse",
            Dialect::Responses => "stream_responses.sse",
        });
        let mut events = Vec::new();
        let _ = SseParser::default().push(&body, &mut events);
        let mut canonical: Vec<Event> = Vec::new();
        let mut out = BytesMut::new();
        let mut once = |events: &[SseEvent]| {
            let mut decoder = Decoder::new(from);
            let mut encoder = Encoder::new(
                to,
                EncoderOptions {
                    include_usage: true,
                },
            );
            out.clear();
            for e in events {
                let _ = decoder.decode(e, &mut canonical);
                for e in canonical.drain(..) {
                    encoder.encode(&e, &mut out);
                }
            }
            encoder.finish(&mut out);
            out.len()
        };
        assert!(once(&events) > 0, "{label}: the stream wrote nothing");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(label, |b| b.iter(|| once(black_box(&events))));
    }
    g.finish();
}

criterion_group!(benches, peek, requests, stream_chunks, whole_streams);
criterion_main!(benches);
