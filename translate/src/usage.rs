//! Usage from a provider's answer that passes through untranslated: the proxy still
//! accounts every token, so it reads the usage without parsing (or re-serializing)
//! the rest. A complete body's top-level `usage` is located by scanning and parsed
//! alone; a stream's events are looked at only when they mention usage.

use crate::canonical::{Event, Usage};
use crate::sse::{SseEvent, SseParser};
use std::sync::LazyLock;

use crate::json_edit::NearEnd;
use crate::{Decoder, Dialect};

/// The usage of a complete answer in `dialect`, if it reports one. The top-level
/// `usage` is found from the end of the body, where providers put it, and parsed by
/// itself with the dialect's own usage type; the rest of the body (the answer's
/// content) is neither parsed nor copied.
pub fn of_body(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    static USAGE: LazyLock<NearEnd> = LazyLock::new(|| NearEnd::new("usage"));
    USAGE.read(body, |value| at(dialect, value))
}

/// The usage object of `dialect` at the start of `value`, and its length.
pub(crate) fn at(dialect: Dialect, value: &[u8]) -> Option<(Usage, usize)> {
    at_with(dialect, value, true)
}

/// [`at`], with the plain reader (`scan`) or by serde alone (what the plain reader
/// must agree with).
pub(crate) fn at_with(dialect: Dialect, value: &[u8], scan: bool) -> Option<(Usage, usize)> {
    match dialect {
        Dialect::OpenAiChat => crate::openai_chat::usage_at(value, scan),
        Dialect::Anthropic => crate::anthropic::usage_at(value, scan),
        Dialect::Responses => crate::responses::usage_at(value, scan),
    }
}

/// Read a usage object of type `T` from the start of `bytes`, and its length: by
/// [`usage_scan`](crate::usage_scan) when `scan` is set and it is sure of the answer
/// (`from` builds `T` from the counts it read), by serde otherwise.
pub(crate) fn read_usage<'de, T: serde::Deserialize<'de>>(
    bytes: &'de [u8],
    scan: bool,
    shape: &crate::usage_scan::Shape,
    from: impl FnOnce(&crate::usage_scan::Counts) -> T,
) -> Option<(T, usize)> {
    match scan
        .then(|| crate::usage_scan::read(shape, bytes))
        .flatten()
    {
        Some((counts, len)) => Some((from(&counts), len)),
        None => read_prefix(bytes),
    }
}

/// Read one value of type `T` from the start of `bytes`; returns it and its length.
pub(crate) fn read_prefix<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Option<(T, usize)> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    let value = values.next()?.ok()?;
    Some((value, values.byte_offset()))
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

    /// Reading the usage by itself agrees with each dialect's full response parser on
    /// the golden responses and on usage objects of every odd shape.
    #[test]
    fn usage_read_alone_agrees_with_the_full_parse() {
        let usages: &[&str] = &[
            r#"{"prompt_tokens":10,"completion_tokens":3}"#,
            r#"{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"accepted_prediction_tokens":0}}"#,
            r#"{"prompt_tokens_details":null,"completion_tokens_details":{}}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":null}}"#,
            r#"{"input_tokens":6,"output_tokens":3,"cache_creation_input_tokens":2,"cache_read_input_tokens":4,"service_tier":"standard","server_tool_use":{"web_search_requests":1}}"#,
            r#"{"input_tokens":null,"output_tokens":7}"#,
            r#"{"input_tokens":5,"input_tokens_details":{"cached_tokens":1},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":4},"total_tokens":14}"#,
            r#" { "input_tokens" : 5 , "output_tokens":	9 } "#,
            r#"{"input\u005ftokens":5}"#,
            r#"{}"#,
            r#"null"#,
            r#"{"input_tokens":"5"}"#,
            r#"{"prompt_tokens":1.5}"#,
            r#"{"prompt_tokens":-1}"#,
            r#"{"output_tokens":1e3}"#,
            r#"{"prompt_tokens":99999999999999999999999}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":"x"}}"#,
            r#"{"input_tokens_details":[1],"prompt_tokens_details":[1]}"#,
            r#"[1,2]"#,
        ];
        for dialect in [Dialect::OpenAiChat, Dialect::Anthropic, Dialect::Responses] {
            let golden = std::fs::read(format!(
                "{}/tests/fixtures/response_{}.json",
                env!("CARGO_MANIFEST_DIR"),
                match dialect {
                    Dialect::OpenAiChat => "openai_chat",
                    Dialect::Anthropic => "anthropic",
                    Dialect::Responses => "responses",
                }
            ))
            .expect("fixture");
            let full = crate::parse_response(dialect, &golden)
                .expect("golden")
                .usage;
            assert!(full.is_some(), "{dialect:?} golden has usage");
            assert_eq!(of_body(dialect, &golden), full, "{dialect:?} golden");
            for u in usages {
                // The full parse needs what each dialect's response requires around it.
                let body = match dialect {
                    Dialect::OpenAiChat => format!(r#"{{"choices":[{{}}],"usage":{u}}}"#),
                    _ => format!(r#"{{"usage":{u}}}"#),
                };
                let full = crate::parse_response(dialect, body.as_bytes())
                    .ok()
                    .and_then(|r| r.usage);
                assert_eq!(of_body(dialect, body.as_bytes()), full, "{dialect:?} {u}");
            }
        }
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
