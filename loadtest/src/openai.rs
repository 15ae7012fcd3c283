//! OpenAI Chat Completions bodies, as the mock writes them.

use bytes::Bytes;
use serde_json::{Value, json};

/// What the mock needs to know of a chat completion request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub prompt_tokens: u64,
}

impl ChatRequest {
    /// Read the fields the mock uses; `None` when the body is not a chat request.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let messages = v.get("messages")?.as_array()?;
        let text_len: usize = messages
            .iter()
            .map(|m| match m.get("content") {
                Some(Value::String(s)) => s.len(),
                Some(other) => other.to_string().len(),
                None => 0,
            })
            .sum();
        Some(Self {
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("mock-model")
                .to_string(),
            stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: v
                .pointer("/stream_options/include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            // A rough, deterministic count: about four bytes a token, at least one a message.
            prompt_tokens: (text_len as u64).div_ceil(4) + messages.len() as u64,
        })
    }
}

const CREATED: u64 = 1_700_000_000;

/// The text of content chunk `i`: one token each.
pub fn piece(i: u32) -> String {
    format!("tok{i} ")
}

/// A complete, non-streamed answer of `completion_tokens` tokens.
pub fn completion(req: &ChatRequest, id: &str, completion_tokens: u32) -> Bytes {
    let content: String = (0..completion_tokens).map(piece).collect();
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": CREATED,
        "model": req.model,
        "system_fingerprint": "fp_mock",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": usage(req.prompt_tokens, u64::from(completion_tokens)),
    });
    Bytes::from(body.to_string())
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

/// One SSE event carrying a `chat.completion.chunk`.
fn chunk(req: &ChatRequest, id: &str, choices: Value, usage_field: Option<Value>) -> Bytes {
    let mut body = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": req.model,
        "system_fingerprint": "fp_mock",
        "choices": choices,
    });
    if req.include_usage {
        body["usage"] = usage_field.unwrap_or(Value::Null);
    }
    Bytes::from(format!("data: {body}\n\n"))
}

/// The first chunk: the assistant role, empty content.
pub fn role_chunk(req: &ChatRequest, id: &str) -> Bytes {
    chunk(
        req,
        id,
        json!([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null},
                "logprobs": null, "finish_reason": null}]),
        None,
    )
}

pub fn content_chunk(req: &ChatRequest, id: &str, i: u32) -> Bytes {
    chunk(
        req,
        id,
        json!([{"index": 0, "delta": {"content": piece(i)}, "logprobs": null, "finish_reason": null}]),
        None,
    )
}

pub fn finish_chunk(req: &ChatRequest, id: &str) -> Bytes {
    chunk(
        req,
        id,
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]),
        None,
    )
}

/// The usage chunk OpenAI sends last when `stream_options.include_usage` is set.
pub fn usage_chunk(req: &ChatRequest, id: &str, completion_tokens: u32) -> Bytes {
    chunk(
        req,
        id,
        json!([]),
        Some(usage(req.prompt_tokens, u64::from(completion_tokens))),
    )
}

/// `GET /v1/models`: the models the mock answers for.
pub fn model_list() -> Bytes {
    let data: Vec<Value> = ["gpt-4o-mini", "gpt-4o", "mock-model"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "mock"}))
        .collect();
    Bytes::from(json!({"object": "list", "data": data}).to_string())
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// OpenAI's error body.
pub fn error(status: u16, message: &str) -> Bytes {
    let (kind, code) = match status {
        401 => ("invalid_request_error", "invalid_api_key"),
        429 => ("requests", "rate_limit_exceeded"),
        400..=499 => ("invalid_request_error", "bad_request"),
        _ => ("server_error", "server_error"),
    };
    Bytes::from(
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            .to_string(),
    )
}
