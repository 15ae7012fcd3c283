//! A mock LLM provider for sluice's tests and load tests.
//!
//! It speaks the OpenAI Chat Completions wire format as the API documents it: a
//! `chat.completion` object, or with `"stream": true` a `text/event-stream` of
//! `chat.completion.chunk` objects closed by `data: [DONE]`, with the usage chunk
//! (`choices: []`) when `stream_options.include_usage` asks for it. It is cheap enough
//! not to be the bottleneck of a load test, and controllable per request through
//! headers so one instance serves many scenarios:
//!
//! | header | effect |
//! |---|---|
//! | `x-mock-chunks: N` | content chunks in a stream (default from [`MockConfig`]) |
//! | `x-mock-delay-ms: N` | delay before each stream chunk |
//! | `x-mock-latency-ms: N` | delay before the response header |
//! | `x-mock-status: N` | answer with this error status in OpenAI's error shape |
//!
//! Every response carries `x-mock-name`, so a test can tell which upstream served it.

mod openai;
mod server;

pub use server::{MockConfig, MockProvider, RecordedRequest};
