//! The telemetry event, schema version 1 (documented in the README). It never carries
//! prompt or completion text, nor any header that may hold a credential.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const SCHEMA_VERSION: u32 = 1;

/// One upstream attempt of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub registry_id: Option<Uuid>,
    /// One of the gateway's provider names: not copied.
    pub provider: Option<Label>,
    /// The provider's status, when it answered.
    pub status: Option<u16>,
    pub latency_ms: f64,
    /// Why the attempt failed: `connect`, `timeout`, `http_5xx`, `http_429`,
    /// `provider_error`; `None` for the attempt that answered.
    pub error_class: Option<Label>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// From the request's first byte to the end of the answer.
    pub total_ms: f64,
    /// Spent waiting on or reading from providers, all attempts together.
    pub upstream_ms: f64,
    /// To the provider's first body byte, for streams.
    pub ttfb_ms: Option<f64>,
    /// `total_ms - upstream_ms`: the time sluice itself took.
    pub gateway_ms: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Every prompt token, cached ones included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_creation_tokens: u64,
    pub reasoning_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventModel {
    /// As the client named it (a pin, a pool, or nothing).
    pub requested: Option<String>,
    /// As sent to the provider.
    pub selected: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayRef {
    pub id: Option<Uuid>,
    pub slug: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerRef {
    pub id: Option<Uuid>,
    pub name: Option<String>,
}

/// A value that is nearly always one of the gateway's own fixed names (a dialect, an
/// outcome, an error code) and is then not copied; one read back, or made at run time,
/// is owned.
pub type Label = Cow<'static, str>;

/// What a policy did to the request, once policies exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyOutcome {
    pub policy_id: Uuid,
    pub kind: Label,
    pub outcome: Label,
}

/// What an MCP request was: the method, and for a tool call the tool as the agent
/// named it and as the upstream server knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct McpCall {
    /// `tools/call`, `resources/read`, `prompts/get`.
    pub method: String,
    /// The tool, prompt or resource as the agent named it.
    pub name: String,
    /// As the upstream server knows it.
    pub upstream_name: Option<String>,
    pub registry_name: Option<String>,
    /// The upstream answered with a tool error (`isError`).
    pub tool_error: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetryEvent {
    pub schema_version: u32,
    pub trace_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub gateway: GatewayRef,
    pub consumer: ConsumerRef,
    /// `llm` or `mcp`.
    pub kind: Label,
    /// The client's dialect: `openai_chat`, `anthropic_messages`, `openai_responses`.
    pub dialect: Label,
    /// The API path called (`chat/completions`, `messages`, …), not the raw path.
    pub endpoint: Option<Label>,
    pub stream: bool,
    pub model: EventModel,
    pub provider: Option<Label>,
    pub registry_id: Option<Uuid>,
    pub attempts: Vec<Attempt>,
    pub status: u16,
    /// `success`, `client_error`, `upstream_error`, `gateway_error`, `incomplete`.
    pub outcome: Label,
    /// The gateway's own error code, when it answered itself.
    pub error: Option<Label>,
    pub latency: Latency,
    pub usage: Option<TokenUsage>,
    /// USD, from the models catalog's prices; `None` when the model is not in it.
    pub cost_usd: Option<f64>,
    pub policies: Vec<PolicyOutcome>,
    /// The MCP request, on events of kind `mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpCall>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The request body, only when the gateway turned body capture on; cut to its cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// A complete (non-streamed) answer's body, under the same rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Where this event goes: exporter names (`kafka`, `file`, `stdout`); empty for the
    /// process defaults. Not serialized.
    #[serde(skip)]
    pub exporters: Vec<String>,
    /// The Kafka topic the gateway asks for. Not serialized.
    #[serde(skip)]
    pub kafka_topic: Option<String>,
}

/// `at` as RFC 3339 in UTC with milliseconds (`2026-12-01T15:27:20.123Z`), as
/// `to_rfc3339_opts(SecondsFormat::Millis, true)` writes it: the date and time of day
/// are formatted once a second per thread, the milliseconds by hand (chrono's
/// formatter cost about 600 instructions an event).
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let second = at.timestamp();
    let millis = at.timestamp_subsec_millis().min(999);
    SECOND.with_borrow_mut(|(at_second, text)| {
        if *at_second != second {
            *text = at.format("%Y-%m-%dT%H:%M:%S").to_string();
            *at_second = second;
        }
        let mut out = String::with_capacity(text.len() + 5);
        out.push_str(text);
        out.push('.');
        let digits = [millis / 100, millis / 10 % 10, millis % 10];
        out.extend(digits.iter().map(|&d| char::from(b'0' + d as u8)));
        out.push('Z');
        out
    })
}

impl TelemetryEvent {
    /// A fresh event stamped now.
    pub fn new(trace_id: String) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            trace_id,
            timestamp: timestamp(chrono::Utc::now()),
            kind: "llm".into(),
            ..Self::default()
        }
    }

    /// Text of a captured body, cut at a character boundary within `max` bytes.
    pub fn capture(body: &[u8], max: usize) -> String {
        let text = String::from_utf8_lossy(&body[..body.len().min(max + 4)]);
        let mut cut = text.len().min(max);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text[..cut].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_chronos_rfc_3339() {
        use chrono::TimeZone;
        for (secs, nanos) in [
            (0, 0),
            (1_764_602_840, 123_456_789),
            (1_764_602_840, 999_999_999),
            (1_764_602_841, 5_000_000),
            (4_102_444_799, 1_000_000),
        ] {
            let at = chrono::Utc
                .timestamp_opt(secs, nanos)
                .single()
                .expect("time");
            assert_eq!(
                timestamp(at),
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
        }
    }
}
