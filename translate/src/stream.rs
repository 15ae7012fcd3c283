//! Stream translation: a [`Decoder`] turns a provider's SSE events into canonical
//! [`Event`]s, an [`Encoder`] turns those into the client's SSE bytes. Both hold only
//! what the next event needs (open blocks, tool-call indices, pending usage), never the
//! whole answer, except where the client's protocol itself repeats it at the end
//! (Responses' `response.completed`).

use bytes::BytesMut;

use crate::canonical::Event;
use crate::sse::SseEvent;
use crate::{Dialect, TranslateError, anthropic, openai_chat, responses};

/// Reads one provider dialect's stream.
#[derive(Debug)]
pub enum Decoder {
    OpenAiChat(openai_chat::StreamDecoder),
    Anthropic(anthropic::StreamDecoder),
    Responses(responses::StreamDecoder),
}

impl Decoder {
    pub fn new(dialect: Dialect) -> Self {
        match dialect {
            Dialect::OpenAiChat => Self::OpenAiChat(Default::default()),
            Dialect::Anthropic => Self::Anthropic(Default::default()),
            Dialect::Responses => Self::Responses(Default::default()),
        }
    }

    /// Decode one SSE event into zero or more canonical events.
    pub fn decode(&mut self, event: &SseEvent, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        match self {
            Self::OpenAiChat(d) => d.decode(event, out),
            Self::Anthropic(d) => d.decode(event, out),
            Self::Responses(d) => d.decode(event, out),
        }
    }

    /// Whether the provider said the answer is complete (finish reason seen, or the
    /// dialect's terminal event). A stream that ends before this was cut short.
    pub fn complete(&self) -> bool {
        match self {
            Self::OpenAiChat(d) => d.complete(),
            Self::Anthropic(d) => d.complete(),
            Self::Responses(d) => d.complete(),
        }
    }
}

/// What the client asked of the stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncoderOptions {
    /// OpenAI's `stream_options.include_usage`: send the final usage chunk.
    pub include_usage: bool,
}

/// Writes one client dialect's stream.
#[derive(Debug)]
pub enum Encoder {
    OpenAiChat(openai_chat::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
    Responses(responses::StreamEncoder),
}

impl Encoder {
    pub fn new(dialect: Dialect, opts: EncoderOptions) -> Self {
        match dialect {
            Dialect::OpenAiChat => Self::OpenAiChat(openai_chat::StreamEncoder::new(opts)),
            Dialect::Anthropic => Self::Anthropic(Default::default()),
            Dialect::Responses => Self::Responses(Default::default()),
        }
    }

    /// Append the client's bytes for one event.
    pub fn encode(&mut self, event: &Event, out: &mut BytesMut) {
        match self {
            Self::OpenAiChat(e) => e.encode(event, out),
            Self::Anthropic(e) => e.encode(event, out),
            Self::Responses(e) => e.encode(event, out),
        }
    }

    /// Close the stream: pending usage, closing events, the terminator. Idempotent;
    /// after an error event it writes nothing.
    pub fn finish(&mut self, out: &mut BytesMut) {
        match self {
            Self::OpenAiChat(e) => e.finish(out),
            Self::Anthropic(e) => e.finish(out),
            Self::Responses(e) => e.finish(out),
        }
    }
}

/// `answer` streamed in `dialect` and read back: the SSE events written, and what a
/// decoder of the same dialect made of them (any error fails the test).
#[cfg(test)]
pub(crate) fn round_trip(
    dialect: Dialect,
    answer: crate::canonical::Response,
) -> (Vec<SseEvent>, Vec<Event>) {
    let mut encoder = Encoder::new(
        dialect,
        EncoderOptions {
            include_usage: true,
        },
    );
    let mut out = BytesMut::new();
    for event in answer.into_events() {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(&mut out);
    let mut sse = Vec::new();
    let mut parser = crate::sse::SseParser::default();
    assert!(parser.push(&out, &mut sse).is_ok());
    let mut decoder = Decoder::new(dialect);
    let mut events = Vec::new();
    for e in &sse {
        assert!(decoder.decode(e, &mut events).is_ok(), "{e:?}");
    }
    (sse, events)
}

/// What `decode` makes of one event named `name`: its events, or its error's text.
#[cfg(test)]
pub(crate) fn decoded(
    decode: fn(&SseEvent, &mut Vec<Event>) -> Result<(), TranslateError>,
    name: Option<&str>,
    data: &str,
) -> Result<Vec<Event>, String> {
    let mut out = Vec::new();
    let ev = SseEvent {
        event: name.map(str::to_string),
        data: data.to_string(),
    };
    decode(&ev, &mut out)
        .map(|()| out)
        .map_err(|e| e.to_string())
}

/// Each of `cases`, named `name` (the way to a decoder's quick read), decodes as it
/// does unnamed (the general parse): the same events, or the same error.
#[cfg(test)]
pub(crate) fn assert_quick_read_agrees(
    decode: fn(&SseEvent, &mut Vec<Event>) -> Result<(), TranslateError>,
    name: &str,
    cases: &[&str],
) {
    for data in cases {
        assert_eq!(
            decoded(decode, Some(name), data),
            decoded(decode, None, data),
            "{data}"
        );
    }
}
