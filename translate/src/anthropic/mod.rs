//! Anthropic Messages.

mod request;
mod response;
mod stream;

pub use request::{parse_request, render_request};
pub use response::{parse_response, render_response};
pub use stream::{StreamDecoder, StreamEncoder};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::canonical::{FinishReason, Usage};

fn finish_from(reason: &str, sequence: Option<String>) -> FinishReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "stop_sequence" => FinishReason::StopSequence(sequence),
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// `(stop_reason, stop_sequence)`.
fn finish_values(reason: &FinishReason) -> (&'static str, Value) {
    match reason {
        FinishReason::Stop => ("end_turn", Value::Null),
        FinishReason::Length => ("max_tokens", Value::Null),
        FinishReason::ToolCalls => ("tool_use", Value::Null),
        FinishReason::ContentFilter => ("refusal", Value::Null),
        FinishReason::StopSequence(s) => ("stop_sequence", json!(s)),
    }
}

/// Anthropic's usage: input counted apart from cache reads and writes.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct UsageIn {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl UsageIn {
    /// Fold a later report over an earlier one (a stream's `message_delta` over its
    /// `message_start`): fields it carries win.
    fn merge(self, later: UsageIn) -> UsageIn {
        UsageIn {
            input_tokens: later.input_tokens.or(self.input_tokens),
            output_tokens: later.output_tokens.or(self.output_tokens),
            cache_creation_input_tokens: later
                .cache_creation_input_tokens
                .or(self.cache_creation_input_tokens),
            cache_read_input_tokens: later
                .cache_read_input_tokens
                .or(self.cache_read_input_tokens),
        }
    }

    fn canonical(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(write),
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: read,
            cache_creation_tokens: write,
            reasoning_tokens: 0,
        }
    }
}

fn usage_value(u: &Usage) -> Value {
    json!({
        "input_tokens": u
            .input_tokens
            .saturating_sub(u.cached_input_tokens + u.cache_creation_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_tokens,
        "cache_read_input_tokens": u.cached_input_tokens,
    })
}

/// The usage object at the start of `value`, and its length (see
/// `crate::usage::of_body`); `scan` as `crate::usage::read_usage` takes it.
pub(crate) fn usage_at(value: &[u8], scan: bool) -> Option<(crate::canonical::Usage, usize)> {
    use crate::usage_scan::{Count, Shape};
    const SHAPE: Shape = Shape {
        counts: &[
            Count::optional(b"input_tokens"),
            Count::optional(b"output_tokens"),
            Count::optional(b"cache_creation_input_tokens"),
            Count::optional(b"cache_read_input_tokens"),
        ],
        objects: &[],
    };
    let (u, len) = crate::usage::read_usage(value, scan, &SHAPE, |c| UsageIn {
        input_tokens: c[0],
        output_tokens: c[1],
        cache_creation_input_tokens: c[2],
        cache_read_input_tokens: c[3],
    })?;
    Some((u.canonical(), len))
}
