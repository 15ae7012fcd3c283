//! Complete Responses answers, in and out.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{OutputItem, UsageIn, finish_of, parts_of, response_id, status_of, usage_value};
use crate::TranslateError;
use crate::canonical::{Part, Response};
use crate::util::{from_upstream, now, to_vec};

#[derive(Deserialize)]
struct ResponseIn {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    created_at: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    incomplete_details: Option<Incomplete>,
    #[serde(default)]
    output: Vec<OutputItem>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
pub(super) struct Incomplete {
    #[serde(default)]
    pub reason: Option<String>,
}

pub fn parse_response(body: &[u8]) -> Result<Response, TranslateError> {
    let r: ResponseIn = from_upstream(body)?;
    let content = parts_of(r.output);
    let finish = finish_of(
        r.status.as_deref(),
        r.incomplete_details
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        &content,
    );
    Ok(Response {
        id: r.id,
        model: r.model,
        created: r.created_at.unwrap_or_else(now),
        content,
        finish: Some(finish),
        usage: r.usage.map(UsageIn::canonical),
    })
}

/// The output items of an answer, as Responses lists them.
pub(super) fn output_items(id: &str, content: &[Part]) -> Vec<Value> {
    let mut items = Vec::new();
    let mut text = String::new();
    let flush = |text: &mut String, items: &mut Vec<Value>| {
        if !text.is_empty() {
            items.push(json!({"type": "message", "id": format!("msg_{}_{}", items.len(), id),
                "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": std::mem::take(text), "annotations": []}]}));
        }
    };
    for p in content {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::ToolCall(c) => {
                flush(&mut text, &mut items);
                items.push(json!({"type": "function_call", "id": format!("fc_{}", c.id),
                    "call_id": c.id, "name": c.name, "arguments": c.arguments, "status": "completed"}));
            }
            _ => {}
        }
    }
    flush(&mut text, &mut items);
    items
}

/// A whole response object; also the payload of the stream's closing event.
pub(super) fn response_value(resp: &Response) -> Value {
    let id = response_id(&resp.id);
    let (status, incomplete) = status_of(resp.finish.as_ref());
    json!({
        "id": id,
        "object": "response",
        "created_at": resp.created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "model": resp.model,
        "output": output_items(&id, &resp.content),
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": resp.usage.as_ref().map(usage_value),
    })
}

pub fn render_response(resp: &Response) -> Vec<u8> {
    to_vec(&response_value(resp))
}
