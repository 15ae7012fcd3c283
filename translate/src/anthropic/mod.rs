//! Anthropic Messages.

mod request;
mod response;
mod stream;

pub use request::{parse_request, render_request};
pub use response::{parse_response, render_response};
pub use stream::{StreamDecoder, StreamEncoder};

use serde::Deserialize;

use crate::canonical::{FinishReason, Usage};
use crate::json_write::Object;

fn finish_from(reason: &str, sequence: Option<String>) -> FinishReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "stop_sequence" => FinishReason::StopSequence(sequence),
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// `stop_reason` and `stop_sequence`, written into the answer or the stream's
/// `message_delta`.
fn write_finish(o: &mut Object, reason: Option<&FinishReason>) {
    let (word, sequence) = match reason {
        None | Some(FinishReason::Stop) => ("end_turn", None),
        Some(FinishReason::Length) => ("max_tokens", None),
        Some(FinishReason::ToolCalls) => ("tool_use", None),
        Some(FinishReason::ContentFilter) => ("refusal", None),
        Some(FinishReason::StopSequence(s)) => ("stop_sequence", s.as_deref()),
    };
    o.str("stop_reason", word);
    match sequence {
        Some(s) => o.str("stop_sequence", s),
        None => o.null("stop_sequence"),
    };
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

/// Anthropic's usage object, its members in alphabetical order (the order the
/// stream's events have always had them in). Input is counted apart from the
/// cache's reads and writes.
fn write_usage(mut o: Object, u: &Usage) {
    o.u64("cache_creation_input_tokens", u.cache_creation_tokens)
        .u64("cache_read_input_tokens", u.cached_input_tokens)
        .u64(
            "input_tokens",
            u.input_tokens
                .saturating_sub(u.cached_input_tokens + u.cache_creation_tokens),
        )
        .u64("output_tokens", u.output_tokens);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Event, Part, Response};

    /// A stop sequence is carried by name through a whole answer and through a stream,
    /// both read back by this dialect's own readers.
    #[test]
    fn a_stop_sequence_survives_both_ways_out() {
        let finish = FinishReason::StopSequence(Some("END\"".into()));
        let usage = Usage {
            input_tokens: 30,
            output_tokens: 5,
            cached_input_tokens: 10,
            cache_creation_tokens: 4,
            reasoning_tokens: 0,
        };
        let answer = Response {
            id: "msg_1".into(),
            model: "m".into(),
            created: 1,
            content: vec![Part::Text("hi".into())],
            finish: Some(finish.clone()),
            usage: Some(usage),
        };
        let body = render_response(&answer);
        let text = String::from_utf8_lossy(&body);
        // Members in the order Anthropic's API gives them.
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or(usize::MAX);
        let order = [
            "id",
            "type",
            "role",
            "model",
            "content",
            "stop_reason",
            "usage",
        ];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
        let back = parse_response(&body).ok();
        assert_eq!(
            back.as_ref().and_then(|b| b.finish.clone()),
            Some(finish.clone())
        );
        assert_eq!(back.and_then(|b| b.usage), Some(usage));

        let (_, events) = crate::stream::round_trip(crate::Dialect::Anthropic, answer);
        assert!(events.contains(&Event::Finish(finish)), "{events:?}");
        assert!(events.contains(&Event::Usage(usage)), "{events:?}");
    }
}
