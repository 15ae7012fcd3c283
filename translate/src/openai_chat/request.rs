//! Chat Completions requests, in and out.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::canonical::{
    Image, Message, Part, Request, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};
use crate::demands::Shape;
use crate::json_write::{Array, Object, joined, string};
use crate::util::{TextOr, from_request};
use crate::{RenderOptions, TranslateError};

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: String,
    messages: Vec<MessageIn>,
    #[serde(default)]
    tools: Vec<ToolIn>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    stop: Option<TextOr<String>>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    user: Option<String>,
    // What shapes the answer beyond the canonical model (`demands.rs`).
    #[serde(default)]
    n: Option<u64>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<u64>,
    #[serde(default)]
    modalities: Option<Vec<String>>,
    #[serde(default)]
    audio: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default)]
    content: Option<ContentIn>,
    #[serde(default)]
    tool_calls: Vec<ToolCallIn>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

type ContentIn = TextOr<PartIn>;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartIn {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    Refusal {
        refusal: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ImageUrl {
    url: String,
}

#[derive(Deserialize)]
struct ToolCallIn {
    id: String,
    function: FunctionIn,
}

#[derive(Deserialize)]
struct FunctionIn {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct ToolIn {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    function: ToolFunctionIn,
}

#[derive(Deserialize)]
struct ToolFunctionIn {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

fn parts(content: Option<ContentIn>) -> Result<Vec<Part>, TranslateError> {
    match content {
        None => Ok(Vec::new()),
        Some(TextOr::Text(t)) => Ok(vec![Part::Text(t)]),
        Some(TextOr::List(ps)) => ps
            .into_iter()
            .map(|p| match p {
                PartIn::Text { text } | PartIn::Refusal { refusal: text } => Ok(Part::Text(text)),
                PartIn::ImageUrl { image_url } => Ok(Part::Image(Image::from_url(&image_url.url))),
                PartIn::Other => Err(TranslateError::Unsupported(
                    "only text and image_url content parts can be sent to this provider".into(),
                )),
            })
            .collect(),
    }
}

fn text_of(content: Option<ContentIn>) -> Result<String, TranslateError> {
    Ok(parts(content)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Read a tool_choice value (`"auto"`, `"none"`, `"required"`, or a named function).
pub(crate) fn tool_choice_from(v: &Value) -> Result<ToolChoice, TranslateError> {
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(TranslateError::InvalidRequest(format!(
                "tool_choice {other:?} is not auto, none or required"
            ))),
        },
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .or_else(|| o.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Tool(n.to_string()))
            .ok_or_else(|| TranslateError::InvalidRequest("tool_choice names no function".into())),
        _ => Err(TranslateError::InvalidRequest(
            "tool_choice must be a string or an object".into(),
        )),
    }
}

/// A tool choice as the OpenAI dialects' one word. A named tool must be called, so
/// its word is `required`; the renderers send it as an object naming the tool instead.
pub(crate) fn tool_choice_word(choice: &ToolChoice) -> &'static str {
    match choice {
        ToolChoice::Auto => "auto",
        ToolChoice::None => "none",
        ToolChoice::Required | ToolChoice::Tool(_) => "required",
    }
}

/// Read a response_format value.
pub(crate) fn response_format_from(v: &Value) -> Result<ResponseFormat, TranslateError> {
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let spec = v.get("json_schema").unwrap_or(v);
            Ok(ResponseFormat::JsonSchema {
                name: spec
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("response")
                    .to_string(),
                schema: spec.get("schema").cloned().unwrap_or_else(|| json!({})),
                strict: spec.get("strict").and_then(Value::as_bool),
            })
        }
        _ => Err(TranslateError::InvalidRequest(
            "response_format.type must be text, json_object or json_schema".into(),
        )),
    }
}

pub fn parse_request(body: &[u8]) -> Result<Request, TranslateError> {
    let r: ChatRequest = from_request(body)?;
    let demands = Shape {
        n: r.n,
        logprobs: r.logprobs,
        top_logprobs: r.top_logprobs,
        modalities: r.modalities,
        audio: r.audio,
        background: None,
    }
    .demands();
    let mut req = Request {
        demands,
        model: r.model,
        temperature: r.temperature,
        top_p: r.top_p,
        max_tokens: r.max_completion_tokens.or(r.max_tokens),
        stream: r.stream,
        user: r.user,
        parallel_tool_calls: r.parallel_tool_calls,
        stop: r.stop.map(TextOr::into_vec).unwrap_or_default(),
        ..Request::default()
    };
    for m in r.messages {
        match m.role.as_str() {
            "system" | "developer" => req.system.push(text_of(m.content)?),
            "user" => req.messages.push(Message {
                role: Role::User,
                content: parts(m.content)?,
            }),
            "assistant" => {
                let mut content = parts(m.content)?;
                content.extend(m.tool_calls.into_iter().map(|c| {
                    Part::ToolCall(ToolCall {
                        id: c.id,
                        name: c.function.name,
                        arguments: c.function.arguments,
                    })
                }));
                req.messages.push(Message {
                    role: Role::Assistant,
                    content,
                });
            }
            "tool" | "function" => {
                let call_id = m.tool_call_id.ok_or_else(|| {
                    TranslateError::InvalidRequest("a tool message needs tool_call_id".into())
                })?;
                let result = Part::ToolResult {
                    call_id,
                    content: parts(m.content)?,
                    is_error: false,
                };
                // Consecutive tool messages answer one assistant turn together.
                match req.messages.last_mut() {
                    Some(last) if last.role == Role::Tool => last.content.push(result),
                    _ => req.messages.push(Message {
                        role: Role::Tool,
                        content: vec![result],
                    }),
                }
            }
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "message role {other:?} is not system, developer, user, assistant or tool"
                )));
            }
        }
    }
    for t in r.tools {
        if t.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(TranslateError::Unsupported(
                "only function tools can be sent to this provider".into(),
            ));
        }
        req.tools.push(Tool {
            name: t.function.name,
            description: t.function.description,
            parameters: t
                .function
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: t.function.strict,
        });
    }
    req.tool_choice = r.tool_choice.as_ref().map(tool_choice_from).transpose()?;
    req.response_format = r
        .response_format
        .as_ref()
        .map(response_format_from)
        .transpose()?;
    Ok(req)
}

/// A user turn's `content`: one text is a string, anything else a list of parts.
fn content(out: &mut Vec<u8>, parts: &[Part]) {
    if let [Part::Text(t)] = parts {
        return string(out, t);
    }
    let mut list = Array::open(out);
    for p in parts {
        match p {
            Part::Text(t) => {
                list.object().str("type", "text").str("text", t);
            }
            Part::Image(img) => {
                let mut part = list.object();
                part.str("type", "image_url");
                part.object("image_url").str("url", &img.to_url());
            }
            _ => {}
        }
    }
}

/// The texts among `parts`, one to a line, as one JSON string (a tool's result in
/// both OpenAI dialects).
pub(crate) fn text_only(out: &mut Vec<u8>, parts: &[Part]) {
    joined(out, texts(parts), "\n");
}

fn texts(parts: &[Part]) -> impl Iterator<Item = &str> {
    parts.iter().filter_map(|p| match p {
        Part::Text(t) => Some(t.as_str()),
        _ => None,
    })
}

fn calls(parts: &[Part]) -> impl Iterator<Item = &ToolCall> {
    parts.iter().filter_map(|p| match p {
        Part::ToolCall(c) => Some(c),
        _ => None,
    })
}

fn message(messages: &mut Array, m: &Message) {
    match m.role {
        Role::User => {
            let mut msg = messages.object();
            msg.str("role", "user");
            content(msg.key("content"), &m.content);
        }
        Role::Assistant => {
            let mut msg = messages.object();
            msg.str("role", "assistant");
            let has_calls = calls(&m.content).next().is_some();
            // The joined text is empty when there is at most one text and it is empty.
            let mut t = texts(&m.content);
            let no_text = t.next().is_none_or(str::is_empty) && t.next().is_none();
            if has_calls && no_text {
                msg.value("content", &Value::Null);
            } else {
                text_only(msg.key("content"), &m.content);
            }
            if has_calls {
                let mut list = msg.array("tool_calls");
                for c in calls(&m.content) {
                    let mut call = list.object();
                    call.str("id", &c.id).str("type", "function");
                    call.object("function")
                        .str("name", &c.name)
                        .str("arguments", &c.arguments);
                }
            }
        }
        Role::Tool => {
            for p in &m.content {
                match p {
                    Part::ToolResult {
                        call_id, content, ..
                    } => {
                        let mut msg = messages.object();
                        msg.str("role", "tool").str("tool_call_id", call_id);
                        text_only(msg.key("content"), content);
                    }
                    Part::Text(_) | Part::Image(_) => {
                        let mut msg = messages.object();
                        msg.str("role", "user");
                        self::content(msg.key("content"), std::slice::from_ref(p));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The request as Chat Completions JSON, written straight from the canonical model.
pub fn render_request(req: &Request, opts: &RenderOptions) -> Result<Vec<u8>, TranslateError> {
    let mut body = Vec::with_capacity(req.size_hint());
    let mut out = Object::open(&mut body);
    out.str("model", &req.model);
    {
        let mut messages = out.array("messages");
        if !req.system.is_empty() {
            let mut msg = messages.object();
            msg.str("role", "system");
            joined(
                msg.key("content"),
                req.system.iter().map(String::as_str),
                "\n\n",
            );
        }
        for m in &req.messages {
            message(&mut messages, m);
        }
    }
    if !req.tools.is_empty() {
        let mut tools = out.array("tools");
        for t in &req.tools {
            let mut tool = tools.object();
            tool.str("type", "function");
            let mut f = tool.object("function");
            f.str("name", &t.name);
            if let Some(d) = &t.description {
                f.str("description", d);
            }
            f.value("parameters", &t.parameters);
            if let Some(s) = t.strict {
                f.bool("strict", s);
            }
        }
    }
    match &req.tool_choice {
        None => {}
        Some(ToolChoice::Tool(n)) => {
            let mut c = out.object("tool_choice");
            c.str("type", "function");
            c.object("function").str("name", n);
        }
        Some(choice) => {
            out.str("tool_choice", tool_choice_word(choice));
        }
    }
    if let Some(p) = req.parallel_tool_calls
        && !req.tools.is_empty()
    {
        out.bool("parallel_tool_calls", p);
    }
    match &req.response_format {
        None => {}
        Some(ResponseFormat::Text) => {
            out.object("response_format").str("type", "text");
        }
        Some(ResponseFormat::JsonObject) => {
            out.object("response_format").str("type", "json_object");
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut format = out.object("response_format");
            format.str("type", "json_schema");
            let mut spec = format.object("json_schema");
            spec.str("name", name).value("schema", schema);
            if let Some(s) = strict {
                spec.bool("strict", *s);
            }
        }
    }
    if !req.stop.is_empty() {
        let mut stop = out.array("stop");
        for s in &req.stop {
            stop.str(s);
        }
    }
    for (key, v) in [("temperature", req.temperature), ("top_p", req.top_p)] {
        if let Some(v) = v {
            out.f64(key, v);
        }
    }
    if let Some(m) = req.max_tokens {
        let key = if opts.max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        out.u64(key, m);
    }
    if let Some(u) = &req.user {
        out.str("user", u);
    }
    if req.stream {
        out.bool("stream", true);
        // Usage is always asked for, so every stream can be accounted.
        out.object("stream_options").bool("include_usage", true);
    }
    drop(out);
    Ok(body)
}
