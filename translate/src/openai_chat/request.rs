//! Chat Completions requests, in and out.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::canonical::{
    Image, Message, Part, Request, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};
use crate::util::{TextOr, from_request, to_vec};
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
    let mut req = Request {
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

fn content_value(parts: &[Part]) -> Value {
    if let [Part::Text(t)] = parts {
        return json!(t);
    }
    Value::Array(
        parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(json!({"type": "text", "text": t})),
                Part::Image(img) => {
                    Some(json!({"type": "image_url", "image_url": {"url": img.to_url()}}))
                }
                _ => None,
            })
            .collect(),
    )
}

fn text_only(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn render_request(req: &Request, opts: &RenderOptions) -> Result<Vec<u8>, TranslateError> {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system.join("\n\n")}));
    }
    for m in &req.messages {
        match m.role {
            Role::User => {
                messages.push(json!({"role": "user", "content": content_value(&m.content)}))
            }
            Role::Assistant => {
                let text = text_only(&m.content);
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall(c) => Some(json!({"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments}})),
                        _ => None,
                    })
                    .collect();
                let mut msg = json!({"role": "assistant",
                    "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
            Role::Tool => {
                for p in &m.content {
                    match p {
                        Part::ToolResult { call_id, content, .. } => messages.push(json!({
                            "role": "tool", "tool_call_id": call_id, "content": text_only(content)})),
                        Part::Text(_) | Part::Image(_) => messages
                            .push(json!({"role": "user", "content": content_value(std::slice::from_ref(p))})),
                        _ => {}
                    }
                }
            }
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    out.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                if let Some(s) = t.strict {
                    f["strict"] = json!(s);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &req.tool_choice {
        out.insert(
            "tool_choice".into(),
            match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(n) => json!({"type": "function", "function": {"name": n}}),
            },
        );
    }
    if let Some(p) = req.parallel_tool_calls
        && !req.tools.is_empty()
    {
        out.insert("parallel_tool_calls".into(), json!(p));
    }
    match &req.response_format {
        None => {}
        Some(ResponseFormat::Text) => {
            out.insert("response_format".into(), json!({"type": "text"}));
        }
        Some(ResponseFormat::JsonObject) => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut spec = json!({"name": name, "schema": schema});
            if let Some(s) = strict {
                spec["strict"] = json!(s);
            }
            out.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": spec}),
            );
        }
    }
    if !req.stop.is_empty() {
        out.insert("stop".into(), json!(req.stop));
    }
    for (key, v) in [("temperature", req.temperature), ("top_p", req.top_p)] {
        if let Some(v) = v {
            out.insert(key.into(), json!(v));
        }
    }
    if let Some(m) = req.max_tokens {
        let key = if opts.max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        out.insert(key.into(), json!(m));
    }
    if let Some(u) = &req.user {
        out.insert("user".into(), json!(u));
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
        // Usage is always asked for, so every stream can be accounted.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(to_vec(&Value::Object(out)))
}
