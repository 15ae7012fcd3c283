//! What a request asks of its answer that an answer in the canonical model cannot
//! hold: several choices, log-probabilities, audio, a response run in the background.
//!
//! A route whose answer goes through the canonical model (translated, or in one
//! dialect with a response-stage policy) would give less than was asked and say
//! nothing; it refuses such a request instead, and the answer cache does not keep its
//! answer. The members are read with the rest of the request where it is parsed
//! anyway, and on their own ([`answer_demands`]) where it is not.

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::util::from_request;
use crate::{Dialect, TranslateError};

/// The members of an OpenAI request (Chat or Responses) that shape its answer.
#[derive(Default)]
pub(crate) struct Shape {
    pub n: Option<u64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u64>,
    pub modalities: Option<Vec<String>>,
    pub audio: Option<IgnoredAny>,
    pub background: Option<bool>,
}

/// Chat Completions' members of [`Shape`], read alone. The Chat parse reads the same
/// members as fields of its own: flattening this struct into it would make serde
/// buffer every request as a map first.
#[derive(Deserialize)]
struct ChatShape {
    #[serde(default)]
    n: Option<u64>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<u64>,
    #[serde(default)]
    modalities: Option<Vec<String>>,
    #[serde(default)]
    audio: Option<IgnoredAny>,
}

/// The Responses API's members of [`Shape`], read alone.
#[derive(Deserialize)]
struct ResponsesShape {
    #[serde(default)]
    top_logprobs: Option<u64>,
    #[serde(default)]
    background: Option<bool>,
}

impl Shape {
    /// What of the answer the canonical model cannot hold, if anything.
    pub(crate) fn demands(&self) -> Option<&'static str> {
        if self.n.is_some_and(|n| n != 1) {
            Some("more than one choice (n)")
        } else if self.logprobs == Some(true) || self.top_logprobs.is_some_and(|n| n > 0) {
            Some("log-probabilities")
        } else if self.audio.is_some()
            || self
                .modalities
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| m != "text"))
        {
            Some("audio output")
        } else if self.background == Some(true) {
            Some("a background response")
        } else {
            None
        }
    }
}

/// What `body` asks of its answer that the canonical model cannot hold, read on its
/// own. Anthropic's Messages has no such member.
pub fn answer_demands(
    dialect: Dialect,
    body: &[u8],
) -> Result<Option<&'static str>, TranslateError> {
    let shape = match dialect {
        Dialect::Anthropic => return Ok(None),
        Dialect::OpenAiChat => {
            let c: ChatShape = from_request(body)?;
            Shape {
                n: c.n,
                logprobs: c.logprobs,
                top_logprobs: c.top_logprobs,
                modalities: c.modalities,
                audio: c.audio,
                background: None,
            }
        }
        Dialect::Responses => {
            let r: ResponsesShape = from_request(body)?;
            Shape {
                top_logprobs: r.top_logprobs,
                background: r.background,
                ..Shape::default()
            }
        }
    };
    Ok(shape.demands())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demands(body: &str) -> Option<&'static str> {
        answer_demands(Dialect::OpenAiChat, body.as_bytes()).expect("readable")
    }

    #[test]
    fn only_answers_beyond_the_canonical_one_are_demands() {
        for plain in [
            r#"{"messages":[]}"#,
            r#"{"n":1,"logprobs":false,"top_logprobs":0,"modalities":["text"],"audio":null}"#,
            r#"{"n":null,"logprobs":null,"background":false,"seed":7}"#,
        ] {
            assert_eq!(demands(plain), None, "{plain}");
        }
        for (body, why) in [
            (r#"{"n":2}"#, "more than one choice (n)"),
            (r#"{"logprobs":true}"#, "log-probabilities"),
            (r#"{"top_logprobs":3}"#, "log-probabilities"),
            (r#"{"modalities":["text","audio"]}"#, "audio output"),
            (
                r#"{"audio":{"voice":"alloy","format":"wav"}}"#,
                "audio output",
            ),
        ] {
            assert_eq!(demands(body), Some(why), "{body}");
        }
        // Each dialect's own members only.
        let responses = |body: &str| answer_demands(Dialect::Responses, body.as_bytes());
        assert_eq!(
            responses(r#"{"background":true}"#),
            Ok(Some("a background response"))
        );
        assert_eq!(responses(r#"{"n":2,"modalities":["audio"]}"#), Ok(None));
        assert_eq!(demands(r#"{"background":true}"#), None);
        assert_eq!(
            answer_demands(Dialect::Anthropic, b"not even JSON"),
            Ok(None)
        );
        assert!(responses(r#"{"top_logprobs":"two"}"#).is_err());
    }
}
