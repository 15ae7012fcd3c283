//! Complete Messages answers, in and out.

use serde::Deserialize;
use serde_json::Value;

use super::{UsageIn, finish_from, write_finish, write_usage};
use crate::TranslateError;
use crate::canonical::{Part, Response, ToolCall};
use crate::json_write::Object;
use crate::util::{arguments_text, arguments_value, from_upstream, now};

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

/// A complete answer, written from the canonical one straight into its bytes, its
/// members in the order Anthropic's API gives them.
pub fn render_response(resp: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(resp.size_hint());
    let mut o = Object::open(&mut out);
    o.str("id", &resp.id)
        .str("type", "message")
        .str("role", "assistant")
        .str("model", &resp.model);
    let mut content = o.array("content");
    for p in &resp.content {
        match p {
            Part::Text(t) => {
                content.object().str("type", "text").str("text", t);
            }
            Part::Reasoning(r) => {
                content
                    .object()
                    .str("type", "thinking")
                    .str("thinking", r)
                    .str("signature", "");
            }
            Part::ToolCall(c) => {
                let mut block = content.object();
                block
                    .str("type", "tool_use")
                    .str("id", &c.id)
                    .str("name", &c.name)
                    // A provider that sent broken arguments still gets its call passed on.
                    .value(
                        "input",
                        &arguments_value(&c.arguments)
                            .unwrap_or_else(|_| Value::Object(Default::default())),
                    );
            }
            _ => {}
        }
    }
    drop(content);
    write_finish(&mut o, resp.finish.as_ref());
    write_usage(o.object("usage"), &resp.usage.unwrap_or_default());
    drop(o);
    out
}
