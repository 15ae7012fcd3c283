//! Small helpers the converters share.

use serde::Deserialize;
use serde_json::Value;

use crate::TranslateError;

/// Deserialize a client request, turning serde's error into a 400-worthy message.
pub fn from_request<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, TranslateError> {
    serde_json::from_slice(body).map_err(|e| TranslateError::InvalidRequest(e.to_string()))
}

/// Deserialize a provider answer.
pub fn from_upstream<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, TranslateError> {
    serde_json::from_slice(body).map_err(|e| TranslateError::BadUpstream(e.to_string()))
}

/// Serialize a value built by a converter. `Value` always serializes.
pub fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A string or a list of strings (`stop`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
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
