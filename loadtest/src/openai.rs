//! OpenAI Chat Completions (and embeddings), as the mock writes them.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::ask::{Ask, Finish, OfferedTool, Plan, fragments, tokens_of};

const CREATED: u64 = 1_700_000_000;

/// Read a chat completion request; `None` when the body is not one.
pub fn parse(body: &[u8]) -> Option<Ask> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let messages = v.get("messages")?.as_array()?;
    let tool_result = messages
        .last()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        });
    let tools = v
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    let f = t.get("function")?;
                    Some(OfferedTool {
                        name: f.get("name")?.as_str()?.to_string(),
                        schema: f.get("parameters").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Ask {
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
        tools,
        tools_forbidden: v.get("tool_choice").and_then(Value::as_str) == Some("none"),
        tool_result,
        prompt_tokens: messages.iter().map(tokens_of).sum::<u64>() + messages.len() as u64,
        max_tokens: v
            .get("max_completion_tokens")
            .or_else(|| v.get("max_tokens"))
            .and_then(Value::as_u64),
    })
}

fn finish(plan: &Plan) -> &'static str {
    match plan.finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
    }
}

fn usage(plan: &Plan) -> Value {
    json!({
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    })
}

/// A complete, non-streamed answer.
pub fn completion(plan: &Plan, id: &str) -> Bytes {
    let mut message = json!({"role": "assistant", "content": plan.text(), "refusal": null});
    if !plan.calls.is_empty() {
        message["content"] = Value::Null;
        message["tool_calls"] = plan
            .calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": CREATED,
        "model": plan.model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish(plan)}],
        "usage": usage(plan),
    });
    Bytes::from(body.to_string())
}

/// One SSE event carrying a `chat.completion.chunk`.
fn chunk(
    plan: &Plan,
    id: &str,
    include_usage: bool,
    choices: Value,
    usage: Option<Value>,
) -> Bytes {
    let mut body = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": plan.model,
        "system_fingerprint": "fp_mock",
        "choices": choices,
    });
    if include_usage {
        body["usage"] = usage.unwrap_or(Value::Null);
    }
    Bytes::from(format!("data: {body}\n\n"))
}

fn delta(plan: &Plan, id: &str, include_usage: bool, delta: Value) -> Bytes {
    chunk(
        plan,
        id,
        include_usage,
        json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": null}]),
        None,
    )
}

/// The events of a streamed answer: the role, content pieces or tool-call deltas, the
/// finish reason, the usage chunk when asked for, and `[DONE]`.
pub fn stream(plan: &Plan, id: &str, include_usage: bool) -> Vec<Bytes> {
    let mut events = vec![delta(
        plan,
        id,
        include_usage,
        json!({"role": "assistant", "content": "", "refusal": null}),
    )];
    for p in &plan.pieces {
        events.push(delta(plan, id, include_usage, json!({"content": p})));
    }
    for (i, c) in plan.calls.iter().enumerate() {
        events.push(delta(
            plan,
            id,
            include_usage,
            json!({"tool_calls": [{"index": i, "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": ""}}]}),
        ));
        for f in fragments(&c.arguments) {
            events.push(delta(
                plan,
                id,
                include_usage,
                json!({"tool_calls": [{"index": i, "function": {"arguments": f}}]}),
            ));
        }
    }
    events.push(chunk(
        plan,
        id,
        include_usage,
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish(plan)}]),
        None,
    ));
    if include_usage {
        events.push(chunk(plan, id, include_usage, json!([]), Some(usage(plan))));
    }
    events.push(Bytes::from_static(DONE));
    events
}

/// A 32-dimension embedding that carries some meaning: each lower-cased word adds to
/// the bucket its hash picks, so texts sharing words are close in cosine similarity.
fn bag_of_words(text: &str) -> Vec<f64> {
    let mut v = vec![0.0; 32];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let h = word.to_lowercase().bytes().fold(2_166_136_261u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(16_777_619)
        });
        v[(h % 32) as usize] += 1.0;
    }
    v
}

/// The `input` of an embeddings or moderation request: one text or a list.
fn inputs(v: &Value) -> Option<Vec<String>> {
    match v.get("input")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// `POST /v1/embeddings`: one deterministic vector per input (see [`bag_of_words`]).
pub fn embeddings(body: &[u8]) -> Option<Bytes> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let inputs = inputs(&v)?;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(
            |(i, text)| json!({"object": "embedding", "index": i, "embedding": bag_of_words(text)}),
        )
        .collect();
    let tokens: u64 = inputs.iter().map(|s| (s.len() as u64).div_ceil(4)).sum();
    Some(Bytes::from(
        json!({"object": "list", "data": data, "model": v.get("model").cloned().unwrap_or(Value::Null),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        .to_string(),
    ))
}

/// Words the mock's moderation flags, by category.
const FLAGGED: &[(&str, &str)] = &[("kill", "violence"), ("bomb", "violence"), ("hate", "hate")];

/// `POST /v1/moderations`, in OpenAI's shape: an input is flagged when it contains one
/// of a few fixed words, so tests can tell the verdicts apart.
pub fn moderation(body: &[u8]) -> Option<Bytes> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let inputs = inputs(&v)?;
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let lower = text.to_lowercase();
            let mut categories = serde_json::Map::new();
            let mut scores = serde_json::Map::new();
            for (_, category) in FLAGGED {
                categories.insert((*category).to_string(), json!(false));
                scores.insert((*category).to_string(), json!(0.0001));
            }
            for (word, category) in FLAGGED {
                if lower.contains(word) {
                    categories.insert((*category).to_string(), json!(true));
                    scores.insert((*category).to_string(), json!(0.97));
                }
            }
            let flagged = categories.values().any(|c| c == &json!(true));
            json!({"flagged": flagged, "categories": categories, "category_scores": scores})
        })
        .collect();
    Some(Bytes::from(
        json!({"id": "modr-mock", "model": "omni-moderation-latest", "results": results})
            .to_string(),
    ))
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
