//! Errors in each dialect's shape: reading a provider's error body, and writing an error
//! (the provider's or the gateway's own) the way the client's SDK expects to parse it.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Dialect;
use crate::canonical::{ErrorInfo, ErrorKind};
use crate::sse;

/// The longest provider error message passed on; the rest is cut.
const MAX_MESSAGE: usize = 2000;

#[derive(Deserialize)]
struct Envelope {
    error: Option<Value>,
    message: Option<String>,
}

/// Read a provider's error body, whatever its dialect: OpenAI's
/// `{"error":{"message","type","code"}}`, Anthropic's `{"type":"error","error":{…}}`,
/// or anything else, which becomes a message naming only the status.
pub fn parse_upstream(status: u16, body: &[u8]) -> ErrorInfo {
    let kind = ErrorKind::from_status(status);
    let fallback = || ErrorInfo {
        kind,
        message: format!("the provider answered with status {status}"),
        code: None,
    };
    let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
        return fallback();
    };
    let (message, code) = match env.error {
        Some(Value::Object(e)) => (
            e.get("message").and_then(Value::as_str).map(str::to_string),
            e.get("code")
                .and_then(|c| match c {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .or_else(|| e.get("type").and_then(Value::as_str).map(str::to_string)),
        ),
        Some(Value::String(s)) => (Some(s), None),
        _ => (env.message, None),
    };
    match message {
        Some(mut message) => {
            if message.len() > MAX_MESSAGE {
                let mut cut = MAX_MESSAGE;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
            }
            ErrorInfo {
                kind,
                message,
                code,
            }
        }
        None => fallback(),
    }
}

fn openai_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Overloaded | ErrorKind::Api => "server_error",
        ErrorKind::Timeout => "timeout_error",
    }
}

fn anthropic_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Api => "api_error",
    }
}

/// The error as a JSON value in the dialect's shape.
pub fn value(dialect: Dialect, e: &ErrorInfo) -> Value {
    match dialect {
        Dialect::OpenAiChat | Dialect::Responses => json!({"error": {
            "message": e.message,
            "type": openai_type(e.kind),
            "param": null,
            "code": e.code,
        }}),
        Dialect::Anthropic => {
            let mut inner = json!({"type": anthropic_type(e.kind), "message": e.message});
            if let Some(code) = &e.code {
                inner["code"] = json!(code);
            }
            json!({"type": "error", "error": inner})
        }
    }
}

/// The error as a response body.
pub fn body(dialect: Dialect, e: &ErrorInfo) -> Bytes {
    Bytes::from(value(dialect, e).to_string())
}

/// The error as the event that ends a stream that already started: OpenAI's SDK raises
/// on a `data:` object with an `error` key, Anthropic's on an `error` event, and
/// Responses' on an `error` event.
pub fn stream_event(dialect: Dialect, e: &ErrorInfo, out: &mut BytesMut) {
    match dialect {
        Dialect::OpenAiChat => sse::write_event(out, None, value(dialect, e).to_string()),
        Dialect::Anthropic => sse::write_event(out, Some("error"), value(dialect, e).to_string()),
        Dialect::Responses => {
            let event = json!({"type": "error", "code": e.code.as_deref().unwrap_or(openai_type(e.kind)),
                "message": e.message, "param": null, "sequence_number": 0});
            sse::write_event(out, Some("error"), event.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_provider_shapes_and_garbage() {
        let oa = parse_upstream(
            429,
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(oa.kind, ErrorKind::RateLimit);
        assert_eq!(oa.message, "slow down");
        assert_eq!(oa.code.as_deref(), Some("rate_limit_exceeded"));
        let an = parse_upstream(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(
            (an.kind, an.message.as_str()),
            (ErrorKind::Overloaded, "Overloaded")
        );
        let junk = parse_upstream(502, b"<html>bad gateway</html>");
        assert_eq!(junk.message, "the provider answered with status 502");
    }

    #[test]
    fn writes_each_dialect_shape() {
        let e = ErrorInfo {
            kind: ErrorKind::Authentication,
            message: "bad key".into(),
            code: Some("invalid_api_key".into()),
        };
        assert_eq!(
            value(Dialect::OpenAiChat, &e),
            json!({"error": {"message": "bad key", "type": "authentication_error", "param": null, "code": "invalid_api_key"}})
        );
        assert_eq!(
            value(Dialect::Anthropic, &e),
            json!({"type": "error", "error": {"type": "authentication_error", "message": "bad key", "code": "invalid_api_key"}})
        );
    }
}
