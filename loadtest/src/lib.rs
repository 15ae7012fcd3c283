//! A mock LLM provider for sluice's tests and load tests.
//!
//! It speaks three wire formats as their providers document them, each plain and
//! streamed, with tool calls and usage (cache reads included):
//! - OpenAI Chat Completions (`/v1/chat/completions`): a `chat.completion` object, or a
//!   `text/event-stream` of `chat.completion.chunk` objects closed by `data: [DONE]`,
//!   with the usage chunk (`choices: []`) when `stream_options.include_usage` asks;
//!   also `/v1/embeddings` and `/v1/models`;
//! - Anthropic Messages (`/v1/messages`, `/v1/messages/count_tokens`): requires
//!   `anthropic-version` and `max_tokens` as the API does; named events from
//!   `message_start` to `message_stop`;
//! - OpenAI Responses (`/v1/responses`): typed events from `response.created` to
//!   `response.completed`.
//!
//! How it answers is in [`ask`]. It is cheap enough not to be the bottleneck of a load
//! test, and controllable per request through headers so one instance serves many
//! scenarios:
//!
//! | header | effect |
//! |---|---|
//! | `x-mock-chunks: N` | content chunks in a stream (default from [`MockConfig`]) |
//! | `x-mock-delay-ms: N` | delay before each stream chunk |
//! | `x-mock-latency-ms: N` | delay before the response header |
//! | `x-mock-status: N` | answer with this error status in the API's error shape |
//! | `x-mock-truncate-after: N` | end a stream cleanly after N events, unfinished |
//!
//! Every response carries `x-mock-name`, so a test can tell which upstream served it.

mod anthropic;
pub mod ask;
mod openai;
mod responses;
mod server;

pub use server::{MockConfig, MockProvider, RecordedRequest, ReportedUsage};
