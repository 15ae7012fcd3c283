//! OpenAI Chat Completions: the dialect of OpenAI and of every OpenAI-compatible
//! provider (Groq, Mistral, DeepSeek, xAI, Cerebras, OpenRouter, self-hosted servers).

pub(crate) mod request;
mod response;
mod stream;

pub use request::{parse_request, render_request};
pub use response::{parse_response, render_response};
pub use stream::{StreamDecoder, StreamEncoder};

use crate::canonical::FinishReason;

fn finish_from(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

fn finish_str(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence(_) => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// OpenAI's usage object, as sent and as received.
mod usage {
    use serde::{Deserialize, Serialize};

    use crate::canonical::Usage;
    use crate::usage_scan::{Count, Counts, Shape};

    #[derive(Debug, Default, Deserialize)]
    pub struct UsageIn {
        #[serde(default)]
        prompt_tokens: u64,
        #[serde(default)]
        completion_tokens: u64,
        #[serde(default)]
        prompt_tokens_details: Option<PromptDetails>,
        #[serde(default)]
        completion_tokens_details: Option<CompletionDetails>,
    }

    #[derive(Debug, Default, Deserialize)]
    struct PromptDetails {
        #[serde(default)]
        cached_tokens: Option<u64>,
    }

    #[derive(Debug, Default, Deserialize)]
    struct CompletionDetails {
        #[serde(default)]
        reasoning_tokens: Option<u64>,
    }

    /// The members `UsageIn` reads, for `crate::usage_scan`.
    pub const SHAPE: Shape = Shape {
        counts: &[
            Count::required(b"prompt_tokens"),
            Count::required(b"completion_tokens"),
        ],
        objects: &[
            (
                b"prompt_tokens_details",
                &[Count::optional(b"cached_tokens")],
            ),
            (
                b"completion_tokens_details",
                &[Count::optional(b"reasoning_tokens")],
            ),
        ],
    };

    impl UsageIn {
        /// The usage `crate::usage_scan` read with [`SHAPE`].
        pub fn from_counts(c: &Counts) -> Self {
            Self {
                prompt_tokens: c[0].unwrap_or(0),
                completion_tokens: c[1].unwrap_or(0),
                prompt_tokens_details: Some(PromptDetails {
                    cached_tokens: c[2],
                }),
                completion_tokens_details: Some(CompletionDetails {
                    reasoning_tokens: c[3],
                }),
            }
        }

        pub fn canonical(&self) -> Usage {
            Usage {
                input_tokens: self.prompt_tokens,
                output_tokens: self.completion_tokens,
                cached_input_tokens: self
                    .prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
                cache_creation_tokens: 0,
                reasoning_tokens: self
                    .completion_tokens_details
                    .as_ref()
                    .and_then(|d| d.reasoning_tokens)
                    .unwrap_or(0),
            }
        }
    }

    /// OpenAI's usage object as sluice writes it.
    #[derive(Serialize)]
    pub struct Out {
        prompt_tokens: u64,
        completion_tokens: u64,
        total_tokens: u64,
        prompt_tokens_details: Cached,
        completion_tokens_details: Reasoning,
    }

    #[derive(Serialize)]
    struct Cached {
        cached_tokens: u64,
    }

    #[derive(Serialize)]
    struct Reasoning {
        reasoning_tokens: u64,
    }

    impl From<&Usage> for Out {
        fn from(u: &Usage) -> Self {
            Self {
                prompt_tokens: u.input_tokens,
                completion_tokens: u.output_tokens,
                total_tokens: u.total(),
                prompt_tokens_details: Cached {
                    cached_tokens: u.cached_input_tokens,
                },
                completion_tokens_details: Reasoning {
                    reasoning_tokens: u.reasoning_tokens,
                },
            }
        }
    }
}

/// The usage object at the start of `value`, and its length (see
/// `crate::usage::of_body`); `scan` as `crate::usage::read_usage` takes it.
pub(crate) fn usage_at(value: &[u8], scan: bool) -> Option<(crate::canonical::Usage, usize)> {
    let (u, len) =
        crate::usage::read_usage(value, scan, &usage::SHAPE, usage::UsageIn::from_counts)?;
    Some((u.canonical(), len))
}
