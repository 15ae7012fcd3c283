//! Translation between the dialects clients speak and the wire formats providers speak.
//!
//! Every dialect converts to and from one [canonical](canonical) model: requests,
//! complete responses, and stream events. A route whose client and provider speak the
//! same dialect does not come here at all beyond [`json_edit`]: its bytes pass through.
//!
//! Nothing in this crate does I/O, so every converter is tested with golden files, fuzzed
//! and benchmarked on its own.

pub mod anthropic;
pub mod canonical;
mod demands;
pub mod errors;
pub mod fuzzing;
pub mod json_edit;
pub mod json_scan;
pub mod json_write;
pub mod openai_chat;
pub mod peek;
pub mod responses;
pub mod sse;
mod stream;
mod tools;
pub mod usage;
mod usage_scan;
mod util;

pub use demands::answer_demands;
pub use stream::{Decoder, Encoder, EncoderOptions};
pub use tools::tool_names;

/// The API shape of a request or a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions, spoken by most providers.
    OpenAiChat,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    Responses,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAiChat => "openai_chat",
            Self::Anthropic => "anthropic_messages",
            Self::Responses => "openai_responses",
        }
    }
}

/// Why a body could not be translated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's request is malformed for its dialect.
    #[error("{0}")]
    InvalidRequest(String),
    /// The request uses something the target dialect cannot express.
    #[error("{0}")]
    Unsupported(String),
    /// The provider's answer does not follow its own format.
    #[error("the provider's response could not be read: {0}")]
    BadUpstream(String),
}

/// What rendering a request for a provider needs beyond the request itself.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// `max_tokens` to send when the client gave none and the provider requires one.
    pub default_max_tokens: Option<u64>,
    /// Send Chat Completions' output limit as `max_completion_tokens` (OpenAI's own API,
    /// whose reasoning models refuse `max_tokens`) rather than `max_tokens` (what other
    /// OpenAI-compatible servers understand).
    pub max_completion_tokens: bool,
}

/// Parse a client's request in its dialect.
pub fn parse_request(dialect: Dialect, body: &[u8]) -> Result<canonical::Request, TranslateError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::parse_request(body),
        Dialect::Anthropic => anthropic::parse_request(body),
        Dialect::Responses => responses::parse_request(body),
    }
}

/// Render a request in a provider's dialect.
pub fn render_request(
    dialect: Dialect,
    req: &canonical::Request,
    opts: &RenderOptions,
) -> Result<Vec<u8>, TranslateError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::render_request(req, opts),
        Dialect::Anthropic => anthropic::render_request(req, opts),
        Dialect::Responses => responses::render_request(req),
    }
}

/// Parse a provider's complete answer.
pub fn parse_response(
    dialect: Dialect,
    body: &[u8],
) -> Result<canonical::Response, TranslateError> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::parse_response(body),
        Dialect::Anthropic => anthropic::parse_response(body),
        Dialect::Responses => responses::parse_response(body),
    }
}

/// Render a complete answer in the client's dialect.
pub fn render_response(dialect: Dialect, resp: &canonical::Response) -> Vec<u8> {
    match dialect {
        Dialect::OpenAiChat => openai_chat::render_response(resp),
        Dialect::Anthropic => anthropic::render_response(resp),
        Dialect::Responses => responses::render_response(resp),
    }
}

/// Render a complete answer as the stream a client of `dialect` expects, for a client
/// that asked for a stream of an answer that exists whole (a provider that did not
/// stream, a cached answer).
pub fn render_stream(
    dialect: Dialect,
    resp: canonical::Response,
    options: EncoderOptions,
) -> bytes::Bytes {
    let mut enc = Encoder::new(dialect, options);
    let mut buf = bytes::BytesMut::new();
    for e in resp.into_events() {
        enc.encode(&e, &mut buf);
    }
    enc.finish(&mut buf);
    buf.freeze()
}
