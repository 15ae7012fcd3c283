//! The event as one JSON line, written out by hand.
//!
//! serde's derived serializer went through a generic map writer for every field and
//! checked every byte of every string for escapes, the gateway's own fixed names,
//! ids and timestamps included: it was the largest single cost of a proxied request
//! after Pingora's own HTTP work. This writer knows the schema: names, ids and
//! timestamps sluice made itself go out as they are, the rest is escaped exactly as
//! `serde_json` escapes it (`sluice_translate::json_write`, a word at a time), and numbers are formatted by the same code. The output is
//! byte for byte serde's (the tests compare the two), so the derive stays the schema's
//! definition.

use sluice_translate::json_write::{array, string};
use uuid::Uuid;

use crate::event::{Attempt, McpCall, PolicyOutcome, TelemetryEvent};

/// Append `event` to `out` as JSON, without a newline.
pub fn write(out: &mut Vec<u8>, e: &TelemetryEvent) {
    out.extend_from_slice(b"{\"schema_version\":");
    int(out, e.schema_version);
    out.extend_from_slice(b",\"trace_id\":");
    string(out, &e.trace_id);
    out.extend_from_slice(b",\"timestamp\":");
    string(out, &e.timestamp);
    out.extend_from_slice(b",\"gateway\":{\"id\":");
    uuid(out, e.gateway.id);
    out.extend_from_slice(b",\"slug\":");
    opt_string(out, e.gateway.slug.as_deref());
    out.extend_from_slice(b"},\"consumer\":{\"id\":");
    uuid(out, e.consumer.id);
    out.extend_from_slice(b",\"name\":");
    opt_string(out, e.consumer.name.as_deref());
    out.extend_from_slice(b"},\"kind\":");
    string(out, &e.kind);
    out.extend_from_slice(b",\"dialect\":");
    string(out, &e.dialect);
    out.extend_from_slice(b",\"endpoint\":");
    opt_string(out, e.endpoint.as_deref());
    out.extend_from_slice(b",\"stream\":");
    boolean(out, e.stream);
    out.extend_from_slice(b",\"model\":{\"requested\":");
    opt_string(out, e.model.requested.as_deref());
    out.extend_from_slice(b",\"selected\":");
    opt_string(out, e.model.selected.as_deref());
    out.extend_from_slice(b"},\"provider\":");
    opt_string(out, e.provider.as_deref());
    out.extend_from_slice(b",\"registry_id\":");
    uuid(out, e.registry_id);
    out.extend_from_slice(b",\"attempts\":");
    array(out, &e.attempts, attempt);
    out.extend_from_slice(b",\"status\":");
    int(out, e.status);
    out.extend_from_slice(b",\"outcome\":");
    string(out, &e.outcome);
    out.extend_from_slice(b",\"error\":");
    opt_string(out, e.error.as_deref());
    out.extend_from_slice(b",\"latency\":{\"total_ms\":");
    float(out, e.latency.total_ms);
    out.extend_from_slice(b",\"upstream_ms\":");
    float(out, e.latency.upstream_ms);
    out.extend_from_slice(b",\"ttfb_ms\":");
    opt_float(out, e.latency.ttfb_ms);
    out.extend_from_slice(b",\"gateway_ms\":");
    float(out, e.latency.gateway_ms);
    out.extend_from_slice(b"},\"usage\":");
    match &e.usage {
        Some(u) => {
            out.extend_from_slice(b"{\"input_tokens\":");
            int(out, u.input_tokens);
            out.extend_from_slice(b",\"output_tokens\":");
            int(out, u.output_tokens);
            out.extend_from_slice(b",\"cached_tokens\":");
            int(out, u.cached_tokens);
            out.extend_from_slice(b",\"cache_creation_tokens\":");
            int(out, u.cache_creation_tokens);
            out.extend_from_slice(b",\"reasoning_tokens\":");
            int(out, u.reasoning_tokens);
            out.push(b'}');
        }
        None => null(out),
    }
    out.extend_from_slice(b",\"cost_usd\":");
    opt_float(out, e.cost_usd);
    out.extend_from_slice(b",\"policies\":");
    array(out, &e.policies, policy);
    if let Some(m) = &e.mcp {
        out.extend_from_slice(b",\"mcp\":");
        mcp(out, m);
    }
    out.extend_from_slice(b",\"client_ip\":");
    opt_string(out, e.client_ip.as_deref());
    out.extend_from_slice(b",\"user_agent\":");
    opt_string(out, e.user_agent.as_deref());
    if let Some(body) = &e.request_body {
        out.extend_from_slice(b",\"request_body\":");
        string(out, body);
    }
    if let Some(body) = &e.response_body {
        out.extend_from_slice(b",\"response_body\":");
        string(out, body);
    }
    out.push(b'}');
}

fn attempt(out: &mut Vec<u8>, a: &Attempt) {
    out.extend_from_slice(b"{\"registry_id\":");
    uuid(out, a.registry_id);
    out.extend_from_slice(b",\"provider\":");
    opt_string(out, a.provider.as_deref());
    out.extend_from_slice(b",\"status\":");
    match a.status {
        Some(s) => int(out, s),
        None => null(out),
    }
    out.extend_from_slice(b",\"latency_ms\":");
    float(out, a.latency_ms);
    out.extend_from_slice(b",\"error_class\":");
    opt_string(out, a.error_class.as_deref());
    out.push(b'}');
}

fn policy(out: &mut Vec<u8>, p: &PolicyOutcome) {
    out.extend_from_slice(b"{\"policy_id\":");
    uuid(out, Some(p.policy_id));
    out.extend_from_slice(b",\"kind\":");
    string(out, &p.kind);
    out.extend_from_slice(b",\"outcome\":");
    string(out, &p.outcome);
    out.push(b'}');
}

fn mcp(out: &mut Vec<u8>, m: &McpCall) {
    out.extend_from_slice(b"{\"method\":");
    string(out, &m.method);
    out.extend_from_slice(b",\"name\":");
    string(out, &m.name);
    out.extend_from_slice(b",\"upstream_name\":");
    opt_string(out, m.upstream_name.as_deref());
    out.extend_from_slice(b",\"registry_name\":");
    opt_string(out, m.registry_name.as_deref());
    out.extend_from_slice(b",\"tool_error\":");
    boolean(out, m.tool_error);
    out.push(b'}');
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// As `serde_json` writes an `f64`: its shortest round-trip form, `null` if not finite.
fn float(out: &mut Vec<u8>, x: f64) {
    if serde_json::to_writer(&mut *out, &x).is_err() {
        null(out);
    }
}

fn opt_float(out: &mut Vec<u8>, x: Option<f64>) {
    match x {
        Some(x) => float(out, x),
        None => null(out),
    }
}

/// An id in its hyphenated lowercase form, quoted: each byte's two digits from a table,
/// written into a fixed buffer (the `uuid` crate's encoder took about 160 instructions
/// an id, five ids an event).
fn uuid(out: &mut Vec<u8>, id: Option<Uuid>) {
    static PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0; 2]; 256];
        let mut i = 0;
        while i < 256 {
            pairs[i] = [HEX[i >> 4], HEX[i & 0xf]];
            i += 1;
        }
        pairs
    };
    let Some(id) = id else {
        return null(out);
    };
    let mut text = *b"\"00000000-0000-0000-0000-000000000000\"";
    let mut at = 1;
    for (i, &byte) in id.as_bytes().iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at..at + 2].copy_from_slice(&PAIRS[usize::from(byte)]);
        at += 2;
    }
    out.extend_from_slice(&text);
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => null(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ConsumerRef, EventModel, GatewayRef, Label, Latency, TokenUsage};

    fn ours(e: &TelemetryEvent) -> String {
        let mut out = Vec::new();
        write(&mut out, e);
        String::from_utf8(out).expect("utf-8")
    }

    /// Every string a client or an operator can influence, at its most awkward.
    const AWKWARD: &[&str] = &[
        "",
        "plain",
        "quote \" and backslash \\ and slash /",
        "controls \u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}",
        "unicode é 漢字 🦀 \u{2028}\u{2029}",
        "</script>",
    ];

    #[test]
    fn ids_are_written_as_serde_writes_them() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u128;
        let mut ids = vec![Uuid::nil(), Uuid::max(), Uuid::now_v7()];
        for _ in 0..64 {
            seed = seed
                .wrapping_mul(0x2545_f491_4f6c_dd1d)
                .wrapping_add(0x1234_5678);
            ids.push(Uuid::from_u128(seed));
        }
        for id in ids {
            let mut out = Vec::new();
            uuid(&mut out, Some(id));
            assert_eq!(out, serde_json::to_vec(&id).unwrap(), "{id}");
        }
        let mut out = Vec::new();
        uuid(&mut out, None);
        assert_eq!(out, b"null");
    }

    fn full(text: &str) -> TelemetryEvent {
        // Labels from text made at run time: owned, escaped like any string.
        let id = Some(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef));
        TelemetryEvent {
            schema_version: 1,
            trace_id: text.into(),
            timestamp: "2026-11-30T19:24:39.071Z".into(),
            gateway: GatewayRef {
                id,
                slug: Some(text.into()),
            },
            consumer: ConsumerRef {
                id,
                name: Some(text.into()),
            },
            kind: "mcp".into(),
            dialect: Label::from(text.to_string()),
            endpoint: Some(Label::from(text.to_string())),
            stream: true,
            model: EventModel {
                requested: Some(text.into()),
                selected: Some(text.into()),
            },
            provider: Some(Label::from(text.to_string())),
            registry_id: id,
            attempts: vec![
                Attempt {
                    registry_id: id,
                    provider: Some(Label::from(text.to_string())),
                    status: Some(503),
                    latency_ms: 0.1 + 0.2,
                    error_class: Some(Label::from(text.to_string())),
                },
                Attempt {
                    registry_id: None,
                    provider: None,
                    status: None,
                    latency_ms: 52.860257000000004,
                    error_class: None,
                },
            ],
            status: 200,
            outcome: Label::from(text.to_string()),
            error: Some(Label::from(text.to_string())),
            latency: Latency {
                total_ms: 1e21,
                upstream_ms: 1e-7,
                ttfb_ms: Some(f64::NAN),
                gateway_ms: -0.0,
            },
            usage: Some(TokenUsage {
                input_tokens: u64::MAX,
                output_tokens: 0,
                cached_tokens: 3,
                cache_creation_tokens: 10,
                reasoning_tokens: 12345,
            }),
            cost_usd: Some(f64::INFINITY),
            policies: vec![
                PolicyOutcome {
                    policy_id: Uuid::nil(),
                    kind: Label::from(text.to_string()),
                    outcome: Label::from(text.to_string()),
                };
                2
            ],
            mcp: Some(McpCall {
                method: text.into(),
                name: text.into(),
                upstream_name: Some(text.into()),
                registry_name: None,
                tool_error: true,
            }),
            client_ip: Some(text.into()),
            user_agent: Some(text.into()),
            request_body: Some(text.into()),
            response_body: Some(text.into()),
            exporters: vec!["file".into()],
            kafka_topic: Some("t".into()),
        }
    }

    #[test]
    fn every_field_is_written_as_serde_writes_it() {
        for text in AWKWARD {
            let e = full(text);
            assert_eq!(
                ours(&e),
                serde_json::to_string(&e).expect("serde"),
                "{text:?}"
            );
        }
        for x in [
            0.0,
            1.0,
            1.5,
            75.35541900000001,
            1e300,
            f64::MIN_POSITIVE,
            -2.5,
        ] {
            let mut e = full("x");
            e.latency.total_ms = x;
            e.cost_usd = Some(x);
            assert_eq!(ours(&e), serde_json::to_string(&e).expect("serde"), "{x}");
        }
    }

    #[test]
    fn empty_and_default_events_too() {
        let e = TelemetryEvent::new("trace".into());
        assert_eq!(ours(&e), serde_json::to_string(&e).expect("serde"));
        let e = TelemetryEvent::default();
        assert_eq!(ours(&e), serde_json::to_string(&e).expect("serde"));
        // Each escape by itself, every byte below 0x80.
        for b in 0u8..0x80 {
            let text = char::from(b).to_string();
            let e = TelemetryEvent {
                user_agent: Some(text),
                ..TelemetryEvent::default()
            };
            assert_eq!(
                ours(&e),
                serde_json::to_string(&e).expect("serde"),
                "{b:#x}"
            );
        }
    }
}
