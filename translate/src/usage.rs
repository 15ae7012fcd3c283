//! Usage from a provider's answer that passes through untranslated: the proxy still
//! accounts every token, so it reads the usage without parsing (or re-serializing)
//! the rest. A complete body's top-level `usage` is located by scanning and parsed
//! alone; a stream's events are looked at only when they mention usage.

use crate::canonical::{Event, Usage};
use crate::sse::{SseEvent, SseParser};
use crate::{Decoder, Dialect, json_edit};

/// The usage of a complete answer in `dialect`, if it reports one.
pub fn of_body(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    let raw = json_edit::get(body, "usage").ok()??;
    // Each dialect's response parser reads its own usage shape; give it just that.
    let mut wrapped = Vec::with_capacity(raw.len() + 64);
    wrapped.extend_from_slice(match dialect {
        Dialect::OpenAiChat => b"{\"choices\":[{}],\"usage\":",
        Dialect::Anthropic | Dialect::Responses => b"{\"usage\":",
    });
    wrapped.extend_from_slice(raw);
    wrapped.push(b'}');
    crate::parse_response(dialect, &wrapped).ok()?.usage
}

/// Watches a stream that passes through for the usage it reports.
#[derive(Debug)]
pub struct StreamTap {
    parser: SseParser,
    decoder: Decoder,
    events: Vec<SseEvent>,
    decoded: Vec<Event>,
    usage: Option<Usage>,
}

impl StreamTap {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            parser: SseParser::default(),
            decoder: Decoder::new(dialect),
            events: Vec::new(),
            decoded: Vec::new(),
            usage: None,
        }
    }

    /// Look at the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.parser.push(chunk, &mut self.events).is_err() {
            // An oversized or broken event: usage may be lost, the stream is not.
            self.parser = SseParser::default();
        }
        for e in self.events.drain(..) {
            if e.data.contains("usage") {
                let _ = self.decoder.decode(&e, &mut self.decoded);
            }
        }
        for e in self.decoded.drain(..) {
            if let Event::Usage(u) = e {
                self.usage = Some(u);
            }
        }
    }

    /// The last usage the stream reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_of_bodies_in_each_dialect() {
        let oa = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let u = of_body(Dialect::OpenAiChat, oa).expect("usage");
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cached_input_tokens),
            (10, 3, 4)
        );
        let an = br#"{"type":"message","content":[],"usage":{"input_tokens":6,"cache_read_input_tokens":4,"output_tokens":3}}"#;
        let u = of_body(Dialect::Anthropic, an).expect("usage");
        assert_eq!((u.input_tokens, u.cached_input_tokens), (10, 4));
        assert!(of_body(Dialect::OpenAiChat, br#"{"choices":[]}"#).is_none());
    }

    #[test]
    fn usage_of_streams_whatever_the_split() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/stream_anthropic.sse"
        ))
        .expect("fixture");
        for piece in [1, 13, body.len()] {
            let mut tap = StreamTap::new(Dialect::Anthropic);
            for c in body.chunks(piece) {
                tap.push(c);
            }
            let u = tap.usage().expect("usage");
            assert_eq!(
                (u.input_tokens, u.output_tokens, u.cached_input_tokens),
                (120, 40, 64)
            );
        }
    }
}
