//! Small helpers the converters share.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::TranslateError;

/// Deserialize a client request, turning serde's error into a 400-worthy message.
pub fn from_request<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, TranslateError> {
    from_text(body).map_err(TranslateError::InvalidRequest)
}

/// Deserialize a provider answer.
pub fn from_upstream<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, TranslateError> {
    from_text(body).map_err(TranslateError::BadUpstream)
}

/// Check `body` as UTF-8 once, with SIMD, then read it as text. `serde_json` reading
/// bytes checks each string it meets on its own, without SIMD: on a 128 KiB
/// conversation that was a tenth of parsing and rendering it (callgrind).
fn from_text<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    let text = simdutf8::compat::from_utf8(body)
        .map_err(|e| format!("the body is not UTF-8 text: {e}"))?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// A member that is a string or a list: `stop`, a message's `content`, Anthropic's
/// `system` and a tool result's `content`.
///
/// Read by one visitor rather than serde's untagged enum, which first copies the member
/// into a buffer of its own and then reads a variant from that copy: every string of a
/// conversation was allocated and copied twice. (On a 128 KiB Chat Completions
/// conversation, callgrind counts 2.3% fewer instructions to read it; most of the
/// reading is serde_json's own string scan and UTF-8 check.) A member of neither shape
/// is refused as "expected a string or a list".
#[derive(Debug)]
pub enum TextOr<T> {
    Text(String),
    List(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TextOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Either<T> {
            type Value = TextOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(TextOr::Text(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(TextOr::Text(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(TextOr::List)
            }
        }
        d.deserialize_any(Either(PhantomData))
    }
}

impl TextOr<String> {
    /// `stop` as a list, one string or many.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::Text(s) => vec![s],
            Self::List(v) => v,
        }
    }
}

/// Tool-call arguments as a JSON value (Anthropic wants an object, not text). Empty
/// text is an empty object: models stream `""` for a call without arguments.
pub fn arguments_value(arguments: &str) -> Result<Value, TranslateError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(arguments).map_err(|_| {
        TranslateError::InvalidRequest("a tool call's arguments are not valid JSON".into())
    })
}

/// Tool-call input as JSON text (Anthropic sends an object; no input is `{}`).
pub fn arguments_text(input: &Value) -> String {
    if input.is_null() {
        "{}".into()
    } else {
        input.to_string()
    }
}

/// Seconds since the epoch, for `created` fields a provider did not supply.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_is_not_utf8_is_refused_as_such() {
        let body = b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}";
        let err = crate::parse_request(crate::Dialect::OpenAiChat, body).err();
        assert!(
            matches!(&err, Some(TranslateError::InvalidRequest(m)) if m.contains("not UTF-8") && m.contains("index 54")),
            "{err:?}"
        );
        let err = from_upstream::<Value>(b"{\"a\":\"\xff\"}").err();
        assert!(
            matches!(err, Some(TranslateError::BadUpstream(_))),
            "{err:?}"
        );
        let read: Option<Value> = from_request("{\"caf\u{e9}\":\"\u{65e5}\"}".as_bytes()).ok();
        assert_eq!(read, Some(serde_json::json!({"caf\u{e9}": "\u{65e5}"})));
    }

    #[test]
    fn a_string_or_a_list_and_nothing_else() {
        let text: TextOr<String> =
            serde_json::from_str(r#""a \"quoted\" line\n""#).unwrap_or(TextOr::List(Vec::new()));
        assert!(matches!(text, TextOr::Text(t) if t == "a \"quoted\" line\n"));
        let list: TextOr<String> =
            serde_json::from_str(r#"["a","b"]"#).unwrap_or(TextOr::Text(String::new()));
        assert_eq!(list.into_vec(), ["a", "b"]);
        for bad in ["5", "null", "{}", "true", r#"["a",1]"#] {
            let err = serde_json::from_str::<TextOr<String>>(bad)
                .err()
                .map(|e| e.to_string());
            assert!(err.is_some(), "{bad} was read");
        }
        let err = serde_json::from_str::<TextOr<String>>("{}")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("expected a string or a list")));
    }
}
