//! Responses requests, in and out.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::TranslateError;
use crate::canonical::{
    Image, Message, Part, Request, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};
use crate::demands::Shape;
use crate::json_write::{Array, Object, joined};
use crate::openai_chat::request::{
    response_format_from, text_only, tool_choice_from, tool_choice_word,
};
use crate::util::from_request;

#[derive(Deserialize)]
struct ResponsesRequest {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    text: Option<TextConfig>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    conversation: Option<IgnoredAny>,
    // What shapes the answer beyond the canonical model (`demands.rs`).
    #[serde(default)]
    top_logprobs: Option<u64>,
    #[serde(default)]
    background: Option<bool>,
}

#[derive(Deserialize)]
struct TextConfig {
    #[serde(default)]
    format: Option<Value>,
}

fn invalid(msg: &str) -> TranslateError {
    TranslateError::InvalidRequest(msg.to_string())
}

fn content_parts(content: &Value) -> Result<Vec<Part>, TranslateError> {
    match content {
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Array(items) => items
            .iter()
            .map(|c| match c.get("type").and_then(Value::as_str) {
                Some("input_text" | "output_text" | "text") => c
                    .get("text")
                    .and_then(Value::as_str)
                    .map(|t| Part::Text(t.to_string()))
                    .ok_or_else(|| invalid("a text content part needs text")),
                Some("refusal") => Ok(Part::Text(
                    c.get("refusal")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                )),
                Some("input_image") => c
                    .get("image_url")
                    .and_then(Value::as_str)
                    .map(|u| Part::Image(Image::from_url(u)))
                    .ok_or_else(|| {
                        TranslateError::Unsupported(
                            "input_image needs an image_url to be sent to this provider".into(),
                        )
                    }),
                _ => Err(TranslateError::Unsupported(
                    "only text and image input parts can be sent to this provider".into(),
                )),
            })
            .collect(),
        _ => Err(invalid(
            "message content must be a string or a list of parts",
        )),
    }
}

fn push(req: &mut Request, role: Role, part: Part) {
    match req.messages.last_mut() {
        Some(last) if last.role == role && role != Role::User => last.content.push(part),
        _ => req.messages.push(Message {
            role,
            content: vec![part],
        }),
    }
}

pub fn parse_request(body: &[u8]) -> Result<Request, TranslateError> {
    let r: ResponsesRequest = from_request(body)?;
    for (given, member) in [
        (r.previous_response_id.is_some(), "previous_response_id"),
        (r.conversation.is_some(), "conversation"),
    ] {
        if given {
            return Err(TranslateError::Unsupported(format!(
                "{member} refers to state stored by OpenAI; it works only on routes to OpenAI's Responses API"
            )));
        }
    }
    let demands = Shape {
        top_logprobs: r.top_logprobs,
        background: r.background,
        ..Shape::default()
    }
    .demands();
    let mut req = Request {
        demands,
        model: r.model,
        parallel_tool_calls: r.parallel_tool_calls,
        max_tokens: r.max_output_tokens,
        temperature: r.temperature,
        top_p: r.top_p,
        stream: r.stream,
        user: r.user,
        ..Request::default()
    };
    if let Some(i) = r.instructions {
        req.system.push(i);
    }
    match r.input {
        None => return Err(invalid("input is required")),
        Some(Value::String(s)) => req.messages.push(Message {
            role: Role::User,
            content: vec![Part::Text(s)],
        }),
        Some(Value::Array(items)) => {
            for item in &items {
                let kind = item.get("type").and_then(Value::as_str);
                match kind {
                    None | Some("message") => {
                        let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
                        let content = content_parts(item.get("content").unwrap_or(&Value::Null))?;
                        match role {
                            "system" | "developer" => req.system.push(
                                content
                                    .into_iter()
                                    .filter_map(|p| match p {
                                        Part::Text(t) => Some(t),
                                        _ => None,
                                    })
                                    .collect::<Vec<_>>()
                                    .join("\n"),
                            ),
                            "user" => req.messages.push(Message {
                                role: Role::User,
                                content,
                            }),
                            "assistant" => {
                                for p in content {
                                    push(&mut req, Role::Assistant, p);
                                }
                            }
                            other => {
                                return Err(TranslateError::InvalidRequest(format!(
                                    "input role {other:?} is not user, assistant, system or developer"
                                )));
                            }
                        }
                    }
                    Some("function_call") => {
                        let field =
                            |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
                        push(
                            &mut req,
                            Role::Assistant,
                            Part::ToolCall(ToolCall {
                                id: field("call_id")
                                    .ok_or_else(|| invalid("function_call needs call_id"))?,
                                name: field("name")
                                    .ok_or_else(|| invalid("function_call needs name"))?,
                                arguments: field("arguments").unwrap_or_default(),
                            }),
                        );
                    }
                    Some("function_call_output") => {
                        let call_id = item
                            .get("call_id")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid("function_call_output needs call_id"))?;
                        let content = match item.get("output") {
                            Some(Value::String(s)) => vec![Part::Text(s.clone())],
                            Some(v @ Value::Array(_)) => content_parts(v)?,
                            _ => Vec::new(),
                        };
                        push(
                            &mut req,
                            Role::Tool,
                            Part::ToolResult {
                                call_id: call_id.to_string(),
                                content,
                                is_error: false,
                            },
                        );
                    }
                    // Reasoning items carry provider state another provider cannot use.
                    Some("reasoning") => {}
                    Some(other) => {
                        return Err(TranslateError::Unsupported(format!(
                            "input item type {other:?} cannot be sent to this provider"
                        )));
                    }
                }
            }
        }
        Some(_) => return Err(invalid("input must be a string or a list of items")),
    }
    for t in &r.tools {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(TranslateError::Unsupported(
                "only function tools can be sent to this provider".into(),
            ));
        }
        req.tools.push(Tool {
            name: t
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a function tool needs a name"))?
                .to_string(),
            description: t
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            parameters: t
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: t.get("strict").and_then(Value::as_bool),
        });
    }
    req.tool_choice = r.tool_choice.as_ref().map(tool_choice_from).transpose()?;
    req.response_format = r
        .text
        .and_then(|t| t.format)
        .as_ref()
        .map(response_format_from)
        .transpose()?;
    Ok(req)
}

/// A turn as input items: a user turn is one message, an assistant's text and calls
/// and a tool turn's results are an item each.
fn items(input: &mut Array, m: &Message) {
    match m.role {
        Role::User => {
            let mut msg = input.object();
            msg.str("role", "user");
            let mut content = msg.array("content");
            for p in &m.content {
                match p {
                    Part::Text(t) => {
                        content.object().str("type", "input_text").str("text", t);
                    }
                    Part::Image(img) => {
                        content
                            .object()
                            .str("type", "input_image")
                            .str("image_url", &img.to_url());
                    }
                    _ => {}
                }
            }
        }
        Role::Assistant => {
            for p in &m.content {
                match p {
                    Part::Text(t) if !t.is_empty() => {
                        let mut msg = input.object();
                        msg.str("role", "assistant");
                        msg.array("content")
                            .object()
                            .str("type", "output_text")
                            .str("text", t);
                    }
                    Part::ToolCall(c) => {
                        input
                            .object()
                            .str("type", "function_call")
                            .str("call_id", &c.id)
                            .str("name", &c.name)
                            .str("arguments", &c.arguments);
                    }
                    _ => {}
                }
            }
        }
        Role::Tool => {
            for p in &m.content {
                if let Part::ToolResult {
                    call_id, content, ..
                } = p
                {
                    let mut item = input.object();
                    item.str("type", "function_call_output")
                        .str("call_id", call_id);
                    text_only(item.key("output"), content);
                }
            }
        }
    }
}

/// The request as Responses JSON, written straight from the canonical model.
pub fn render_request(req: &Request) -> Result<Vec<u8>, TranslateError> {
    let mut body = Vec::with_capacity(req.size_hint());
    let mut out = Object::open(&mut body);
    out.str("model", &req.model);
    {
        let mut input = out.array("input");
        for m in &req.messages {
            items(&mut input, m);
        }
    }
    if !req.system.is_empty() {
        joined(
            out.key("instructions"),
            req.system.iter().map(String::as_str),
            "\n\n",
        );
    }
    if !req.tools.is_empty() {
        let mut tools = out.array("tools");
        for t in &req.tools {
            let mut tool = tools.object();
            tool.str("type", "function").str("name", &t.name);
            if let Some(d) = &t.description {
                tool.str("description", d);
            }
            tool.value("parameters", &t.parameters)
                // Responses makes strict the default; a schema written for Chat
                // Completions rarely satisfies it, so only an explicit request asks.
                .bool("strict", t.strict.unwrap_or(false));
        }
    }
    match &req.tool_choice {
        None => {}
        Some(ToolChoice::Tool(n)) => {
            out.object("tool_choice")
                .str("type", "function")
                .str("name", n);
        }
        Some(choice) => {
            out.str("tool_choice", tool_choice_word(choice));
        }
    }
    if let Some(p) = req.parallel_tool_calls {
        out.bool("parallel_tool_calls", p);
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            let mut text = out.object("text");
            text.object("format").str("type", "json_object");
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut text = out.object("text");
            let mut format = text.object("format");
            format
                .str("type", "json_schema")
                .str("name", name)
                .value("schema", schema);
            if let Some(s) = strict {
                format.bool("strict", *s);
            }
        }
    }
    for (key, v) in [("temperature", req.temperature), ("top_p", req.top_p)] {
        if let Some(v) = v {
            out.f64(key, v);
        }
    }
    if let Some(m) = req.max_tokens {
        out.u64("max_output_tokens", m);
    }
    if let Some(u) = &req.user {
        out.str("user", u);
    }
    if req.stream {
        out.bool("stream", true);
    }
    drop(out);
    Ok(body)
}
