//! OpenAI Responses.

mod request;
mod response;
mod stream;

pub use request::{parse_request, render_request};
pub use response::{parse_response, render_response};
pub use stream::{StreamDecoder, StreamEncoder};

use serde::Deserialize;

use crate::canonical::{FinishReason, Part, ToolCall, Usage};
use crate::json_write::Object;

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct UsageIn {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: u64,
}

impl UsageIn {
    fn canonical(self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_input_tokens: self.input_tokens_details.map_or(0, |d| d.cached_tokens),
            cache_creation_tokens: 0,
            reasoning_tokens: self.output_tokens_details.map_or(0, |d| d.reasoning_tokens),
        }
    }
}

// What sluice writes in Responses (whole answers and stream events alike) has its
// members in alphabetical order: the order the stream's events have always had, and
// one writer per shape serves both.

/// The usage object.
fn write_usage(mut o: Object, u: &Usage) {
    o.u64("input_tokens", u.input_tokens);
    o.object("input_tokens_details")
        .u64("cached_tokens", u.cached_input_tokens);
    o.u64("output_tokens", u.output_tokens);
    o.object("output_tokens_details")
        .u64("reasoning_tokens", u.reasoning_tokens);
    o.u64("total_tokens", u.total());
}

/// A Responses id for an answer whose provider gave another kind of id.
fn response_id(id: &str) -> String {
    if id.starts_with("resp_") {
        id.to_string()
    } else {
        format!(
            "resp_{}",
            id.trim_start_matches("chatcmpl-")
                .trim_start_matches("msg_")
        )
    }
}

/// An output item of a response, as the provider or the client sees it.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputItem {
    Message {
        #[serde(default)]
        content: Vec<OutputContent>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
    },
    Reasoning {
        #[serde(default)]
        summary: Vec<OutputContent>,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputContent {
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    SummaryText {
        text: String,
    },
    #[serde(other)]
    Other,
}

fn parts_of(output: Vec<OutputItem>) -> Vec<Part> {
    let mut parts = Vec::new();
    for item in output {
        match item {
            OutputItem::Message { content } => {
                for c in content {
                    match c {
                        OutputContent::OutputText { text }
                        | OutputContent::Refusal { refusal: text } => {
                            parts.push(Part::Text(text));
                        }
                        _ => {}
                    }
                }
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
            } => parts.push(Part::ToolCall(ToolCall {
                id: call_id,
                name,
                arguments,
            })),
            OutputItem::Reasoning { summary } => {
                for c in summary {
                    if let OutputContent::SummaryText { text } = c {
                        parts.push(Part::Reasoning(text));
                    }
                }
            }
            OutputItem::Other => {}
        }
    }
    parts
}

/// The finish reason of a response: Responses says only completed or incomplete, so a
/// completed response with function calls (`calls`) finished to call tools.
fn finish_of(status: Option<&str>, incomplete_reason: Option<&str>, calls: bool) -> FinishReason {
    match (status, incomplete_reason) {
        (Some("incomplete"), Some("content_filter")) => FinishReason::ContentFilter,
        (Some("incomplete"), _) => FinishReason::Length,
        _ if calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// `(status, incomplete_details.reason)` of a response that finished this way.
fn status_of(finish: Option<&FinishReason>) -> (&'static str, Option<&'static str>) {
    match finish {
        Some(FinishReason::Length) => ("incomplete", Some("max_output_tokens")),
        Some(FinishReason::ContentFilter) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The usage object at the start of `value`, and its length (see
/// `crate::usage::of_body`); `scan` as `crate::usage::read_usage` takes it.
pub(crate) fn usage_at(value: &[u8], scan: bool) -> Option<(crate::canonical::Usage, usize)> {
    use crate::usage_scan::{Count, Shape};
    // Every count is a plain `u64`.
    const SHAPE: Shape = Shape {
        counts: &[
            Count::required(b"input_tokens"),
            Count::required(b"output_tokens"),
        ],
        objects: &[
            (
                b"input_tokens_details",
                &[Count::required(b"cached_tokens")],
            ),
            (
                b"output_tokens_details",
                &[Count::required(b"reasoning_tokens")],
            ),
        ],
    };
    let (u, len) = crate::usage::read_usage(value, scan, &SHAPE, |c| UsageIn {
        input_tokens: c[0].unwrap_or(0),
        output_tokens: c[1].unwrap_or(0),
        input_tokens_details: Some(InputDetails {
            cached_tokens: c[2].unwrap_or(0),
        }),
        output_tokens_details: Some(OutputDetails {
            reasoning_tokens: c[3].unwrap_or(0),
        }),
    })?;
    Some((u.canonical(), len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Event, Response};

    /// An answer cut short by its output limit reads back as such, whole and streamed,
    /// and the stream's closing event lists the items its events carried.
    #[test]
    fn an_incomplete_answer_survives_both_ways_out() {
        let usage = Usage {
            input_tokens: 30,
            output_tokens: 5,
            cached_input_tokens: 10,
            cache_creation_tokens: 0,
            reasoning_tokens: 2,
        };
        let answer = Response {
            id: "chatcmpl-1".into(),
            model: "m".into(),
            created: 1,
            content: vec![
                Part::Text("a \"quoted\" ".into()),
                Part::Text("word".into()),
                Part::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    arguments: "{\"x\":1}".into(),
                }),
            ],
            finish: Some(FinishReason::Length),
            usage: Some(usage),
        };
        let body = render_response(&answer);
        let back = parse_response(&body).ok();
        assert_eq!(
            back.as_ref().and_then(|b| b.finish.clone()),
            Some(FinishReason::Length)
        );
        assert_eq!(back.as_ref().and_then(|b| b.usage), Some(usage));
        assert_eq!(
            back.map(|b| b.content),
            Some(vec![
                Part::Text("a \"quoted\" word".into()),
                answer.content[2].clone(),
            ])
        );

        let (sse, events) = crate::stream::round_trip(crate::Dialect::Responses, answer);
        let last = sse.last().map(|e| e.data.clone()).unwrap_or_default();
        let last: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(last["response"]["output"][0]["id"], "msg_0_resp_1");
        assert_eq!(last["response"]["output"][1]["id"], "fc_call_1");
        assert!(
            events.contains(&Event::Finish(FinishReason::Length)),
            "{events:?}"
        );
        assert!(events.contains(&Event::Usage(usage)), "{events:?}");
    }
}
