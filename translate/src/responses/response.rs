//! Complete Responses answers, in and out.

use serde::Deserialize;

use super::{OutputItem, UsageIn, finish_of, parts_of, response_id, status_of, write_usage};
use crate::TranslateError;
use crate::canonical::{Part, Response, ToolCall, Usage};
use crate::json_write::{self, Array, Object};
use crate::util::{from_upstream, now};

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
        content.iter().any(|p| matches!(p, Part::ToolCall(_))),
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

/// A response object's members but its output: the whole answer, and the payload of
/// the stream's opening and closing events.
pub(super) struct Envelope<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub created: u64,
    pub status: &'a str,
    /// `incomplete_details.reason`.
    pub incomplete: Option<&'a str>,
    /// `error`'s code and message.
    pub error: Option<(&'a str, &'a str)>,
    pub usage: Option<&'a Usage>,
}

impl Envelope<'_> {
    /// Write the response object, its `output` items written by `output`.
    pub fn write(&self, mut o: Object, output: impl FnOnce(&mut Array)) {
        o.u64("created_at", self.created);
        match self.error {
            Some((code, message)) => {
                o.object("error").str("code", code).str("message", message);
            }
            None => {
                o.null("error");
            }
        }
        o.str("id", self.id);
        match self.incomplete {
            Some(reason) => {
                o.object("incomplete_details").str("reason", reason);
            }
            None => {
                o.null("incomplete_details");
            }
        }
        o.str("model", self.model).str("object", "response");
        output(&mut o.array("output"));
        o.bool("parallel_tool_calls", true)
            .str("status", self.status)
            .str("tool_choice", "auto");
        o.array("tools");
        match self.usage {
            Some(u) => write_usage(o.object("usage"), u),
            None => {
                o.null("usage");
            }
        }
    }
}

/// An `output_text` content part.
pub(super) fn write_text_part(mut o: Object, text: &str) {
    o.array("annotations");
    o.str("text", text).str("type", "output_text");
}

/// A message output item; an open one (`in_progress`) has no content yet.
pub(super) fn write_message(mut o: Object, id: &str, text: Option<&str>) {
    let mut content = o.array("content");
    if let Some(text) = text {
        write_text_part(content.object(), text);
    }
    drop(content);
    o.str("id", id)
        .str("role", "assistant")
        .str(
            "status",
            if text.is_some() {
                "completed"
            } else {
                "in_progress"
            },
        )
        .str("type", "message");
}

/// A function call output item, its arguments so far.
pub(super) fn write_call(mut o: Object, call: &ToolCall, status: &str) {
    o.str("arguments", &call.arguments).str("call_id", &call.id);
    write_call_id(o.key("id"), &call.id);
    o.str("name", &call.name)
        .str("status", status)
        .str("type", "function_call");
}

/// A function call item's own id: `fc_` and the call's.
pub(super) fn write_call_id(out: &mut Vec<u8>, call_id: &str) {
    out.extend_from_slice(b"\"fc_");
    json_write::escaped(out, call_id);
    out.push(b'"');
}

/// The output items of an answer, as Responses lists them: consecutive text in one
/// message, each tool call an item of its own.
fn write_output(items: &mut Array, id: &str, content: &[Part]) {
    let mut written = 0;
    let mut text = String::new();
    let flush = |text: &mut String, items: &mut Array, written: &mut usize| {
        if !text.is_empty() {
            let message_id = format!("msg_{written}_{id}");
            write_message(items.object(), &message_id, Some(text));
            text.clear();
            *written += 1;
        }
    };
    for p in content {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::ToolCall(c) => {
                flush(&mut text, items, &mut written);
                write_call(items.object(), c, "completed");
                written += 1;
            }
            _ => {}
        }
    }
    flush(&mut text, items, &mut written);
}

pub fn render_response(resp: &Response) -> Vec<u8> {
    let id = response_id(&resp.id);
    let (status, incomplete) = status_of(resp.finish.as_ref());
    let mut out = Vec::with_capacity(resp.size_hint());
    Envelope {
        id: &id,
        model: &resp.model,
        created: resp.created,
        status,
        incomplete,
        error: None,
        usage: resp.usage.as_ref(),
    }
    .write(Object::open(&mut out), |items| {
        write_output(items, &id, &resp.content)
    });
    out
}
