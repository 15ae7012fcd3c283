//! Anthropic Messages, as the mock writes them: a `message` object, or named SSE events
//! from `message_start` to `message_stop`, with `ping`s as Anthropic sends them.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::ask::{Ask, Finish, OfferedTool, Plan, fragments, tokens_of};

/// Read a Messages request (or a token count's, `counting`); `Err` with Anthropic's
/// message when it is not valid (the API requires `max_tokens` to generate).
pub fn parse(body: &[u8], counting: bool) -> Result<Ask, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON".to_string())?;
    let messages = v
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages: Field required")?;
    let max_tokens = v.get("max_tokens").and_then(Value::as_u64);
    if max_tokens.is_none() && !counting {
        return Err("max_tokens: Field required".into());
    }
    for m in messages {
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => return Err("messages: roles must be user or assistant".into()),
        }
    }
    // The conversation ends with a tool result when the last user turn carries one.
    let tool_result = messages.last().and_then(|m| {
        m.get("content")?.as_array()?.iter().find_map(|b| {
            if b.get("type")?.as_str()? != "tool_result" {
                return None;
            }
            Some(match b.get("content") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(blocks)) => blocks
                    .iter()
                    .filter_map(|x| x.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
                _ => String::new(),
            })
        })
    });
    let tools = v
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    Some(OfferedTool {
                        name: t.get("name")?.as_str()?.to_string(),
                        schema: t.get("input_schema").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let system = v.get("system").map_or(0, tokens_of);
    Ok(Ask {
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock-model")
            .to_string(),
        stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: true,
        tools,
        tools_forbidden: v.pointer("/tool_choice/type").and_then(Value::as_str) == Some("none"),
        tool_result,
        prompt_tokens: system + messages.iter().map(tokens_of).sum::<u64>() + messages.len() as u64,
        max_tokens,
    })
}

fn stop_reason(plan: &Plan) -> &'static str {
    match plan.finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
    }
}

/// Anthropic counts input apart from cache reads.
fn usage(plan: &Plan) -> Value {
    json!({
        "input_tokens": plan.prompt_tokens - plan.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": plan.cached_tokens,
        "output_tokens": plan.completion_tokens,
    })
}

fn content(plan: &Plan) -> Vec<Value> {
    let mut blocks = Vec::new();
    if !plan.pieces.is_empty() {
        blocks.push(json!({"type": "text", "text": plan.text()}));
    }
    for c in &plan.calls {
        let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
        blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
    }
    blocks
}

pub fn message(plan: &Plan, id: &str) -> Bytes {
    Bytes::from(
        json!({
            "id": id, "type": "message", "role": "assistant", "model": plan.model,
            "content": content(plan), "stop_reason": stop_reason(plan), "stop_sequence": null,
            "usage": usage(plan),
        })
        .to_string(),
    )
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

pub fn stream(plan: &Plan, id: &str) -> Vec<Bytes> {
    let mut start_usage = usage(plan);
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {"id": id, "type": "message",
                "role": "assistant", "model": plan.model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": start_usage}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    let mut index = 0;
    if !plan.pieces.is_empty() {
        events.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        for p in &plan.pieces {
            events.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}),
            ));
        }
        events.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for c in &plan.calls {
        events.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": c.id, "name": c.name, "input": {}}}),
        ));
        for f in std::iter::once(String::new()).chain(fragments(&c.arguments)) {
            events.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": f}}),
            ));
        }
        events.push(event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    events.push(event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(plan), "stop_sequence": null},
            "usage": {"output_tokens": plan.completion_tokens}}),
    ));
    events.push(event("message_stop", &json!({"type": "message_stop"})));
    events
}

/// `POST /v1/messages/count_tokens`.
pub fn count_tokens(ask: &Ask) -> Bytes {
    Bytes::from(json!({"input_tokens": ask.prompt_tokens}).to_string())
}

/// Anthropic's error body.
pub fn error(status: u16, message: &str) -> Bytes {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    Bytes::from(json!({"type": "error", "error": {"type": kind, "message": message}}).to_string())
}
