//! Complete Chat Completions answers, in and out.

use serde::Deserialize;
use serde_json::{Value, json};

use super::usage::{self, UsageIn};
use super::{finish_from, finish_str};
use crate::TranslateError;
use crate::canonical::{Part, Response, ToolCall};
use crate::util::{from_upstream, now, to_vec};

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    created: Option<u64>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<MessageOut>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageOut {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    /// DeepSeek and several open-model servers return reasoning here.
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallOut>,
}

#[derive(Deserialize)]
struct ToolCallOut {
    #[serde(default)]
    id: String,
    function: FunctionOut,
}

#[derive(Deserialize)]
struct FunctionOut {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

pub fn parse_response(body: &[u8]) -> Result<Response, TranslateError> {
    let r: ChatResponse = from_upstream(body)?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TranslateError::BadUpstream("the answer has no choices".into()))?;
    let mut content = Vec::new();
    if let Some(m) = choice.message {
        if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
            content.push(Part::Reasoning(r));
        }
        if let Some(t) = m.content.filter(|t| !t.is_empty()).or(m.refusal) {
            content.push(Part::Text(t));
        }
        content.extend(m.tool_calls.into_iter().map(|c| {
            Part::ToolCall(ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
        }));
    }
    Ok(Response {
        id: r.id,
        model: r.model,
        created: r.created.unwrap_or_else(now),
        content,
        finish: choice.finish_reason.as_deref().map(finish_from),
        usage: r.usage.map(|u| u.canonical()),
    })
}

pub fn render_response(resp: &Response) -> Vec<u8> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in &resp.content {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::Reasoning(r) => reasoning.push_str(r),
            Part::ToolCall(c) => calls.push(json!({"id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": c.arguments}})),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let mut out = json!({
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created,
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": resp.finish.as_ref().map(finish_str).unwrap_or("stop"),
        }],
    });
    if let Some(u) = &resp.usage {
        out["usage"] = usage::value(u);
    }
    to_vec(&out)
}
