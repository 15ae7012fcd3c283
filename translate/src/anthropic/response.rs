//! Complete Messages answers, in and out.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{UsageIn, finish_from, finish_values, usage_value};
use crate::TranslateError;
use crate::canonical::{Part, Response, ToolCall};
use crate::util::{arguments_text, arguments_value, from_upstream, now, to_vec};

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<BlockOut>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        thinking: String,
    },
    #[serde(other)]
    Other,
}

pub fn parse_response(body: &[u8]) -> Result<Response, TranslateError> {
    let r: MessagesResponse = from_upstream(body)?;
    let content = r
        .content
        .into_iter()
        .filter_map(|b| match b {
            BlockOut::Text { text } => Some(Part::Text(text)),
            BlockOut::ToolUse { id, name, input } => Some(Part::ToolCall(ToolCall {
                id,
                name,
                arguments: arguments_text(&input),
            })),
            BlockOut::Thinking { thinking } => Some(Part::Reasoning(thinking)),
            BlockOut::Other => None,
        })
        .collect();
    Ok(Response {
        id: r.id,
        model: r.model,
        created: now(),
        content,
        finish: r
            .stop_reason
            .as_deref()
            .map(|s| finish_from(s, r.stop_sequence.clone())),
        usage: r.usage.map(UsageIn::canonical),
    })
}

pub fn render_response(resp: &Response) -> Vec<u8> {
    let content: Vec<Value> = resp
        .content
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({"type": "text", "text": t})),
            Part::Reasoning(r) => Some(json!({"type": "thinking", "thinking": r, "signature": ""})),
            Part::ToolCall(c) => Some(json!({"type": "tool_use", "id": c.id, "name": c.name,
                // A provider that sent broken arguments still gets its call passed on.
                "input": arguments_value(&c.arguments).unwrap_or_else(|_| json!({}))})),
            _ => None,
        })
        .collect();
    let (stop_reason, stop_sequence) = resp
        .finish
        .as_ref()
        .map(finish_values)
        .unwrap_or(("end_turn", Value::Null));
    let out = json!({
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_value(&resp.usage.unwrap_or_default()),
    });
    to_vec(&out)
}
