//! Messages requests, in and out.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::canonical::{Image, Message, Part, Request, Role, Tool, ToolCall, ToolChoice};
use crate::util::{TextOr, arguments_text, arguments_value, from_request, to_vec};
use crate::{RenderOptions, TranslateError};

#[derive(Deserialize)]
struct MessagesRequest {
    #[serde(default)]
    model: String,
    messages: Vec<MessageIn>,
    #[serde(default)]
    system: Option<SystemIn>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    tools: Vec<ToolIn>,
    #[serde(default)]
    tool_choice: Option<ToolChoiceIn>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    metadata: Option<Metadata>,
}

type SystemIn = TextOr<TextBlock>;

#[derive(Deserialize)]
struct TextBlock {
    text: String,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct MessageIn {
    role: String,
    content: ContentIn,
}

type ContentIn = TextOr<BlockIn>;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockIn {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ResultContent>,
        #[serde(default)]
        is_error: bool,
    },
    Thinking {
        thinking: String,
    },
    RedactedThinking {},
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

type ResultContent = TextOr<BlockIn>;

#[derive(Deserialize)]
struct ToolIn {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<Value>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct ToolChoiceIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

fn unsupported_block() -> TranslateError {
    TranslateError::Unsupported(
        "only text, image, tool_use, tool_result and thinking blocks can be sent to this provider"
            .into(),
    )
}

fn simple_part(block: BlockIn) -> Result<Option<Part>, TranslateError> {
    Ok(match block {
        BlockIn::Text { text } => Some(Part::Text(text)),
        BlockIn::Image { source } => Some(Part::Image(match source {
            ImageSource::Base64 { media_type, data } => Image::Base64 { media_type, data },
            ImageSource::Url { url } => Image::Url(url),
        })),
        BlockIn::Thinking { thinking } => Some(Part::Reasoning(thinking)),
        BlockIn::RedactedThinking {} => None,
        BlockIn::ToolUse { .. } | BlockIn::ToolResult { .. } | BlockIn::Other => {
            return Err(unsupported_block());
        }
    })
}

pub fn parse_request(body: &[u8]) -> Result<Request, TranslateError> {
    let r: MessagesRequest = from_request(body)?;
    let mut req = Request {
        model: r.model,
        max_tokens: r.max_tokens,
        stop: r.stop_sequences,
        temperature: r.temperature,
        top_p: r.top_p,
        stream: r.stream,
        user: r.metadata.and_then(|m| m.user_id),
        ..Request::default()
    };
    match r.system {
        Some(TextOr::Text(t)) => req.system.push(t),
        Some(TextOr::List(bs)) => req.system.extend(bs.into_iter().map(|b| b.text)),
        None => {}
    }
    for m in r.messages {
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "message role {other:?} is not user or assistant"
                )));
            }
        };
        let blocks = match m.content {
            TextOr::Text(t) => {
                req.messages.push(Message {
                    role,
                    content: vec![Part::Text(t)],
                });
                continue;
            }
            TextOr::List(bs) => bs,
        };
        // A user turn may carry tool results and more input: the results become a tool
        // message, the rest a user message after it.
        let mut results = Vec::new();
        let mut content = Vec::new();
        for block in blocks {
            match block {
                BlockIn::ToolUse { id, name, input } if role == Role::Assistant => {
                    content.push(Part::ToolCall(ToolCall {
                        id,
                        name,
                        arguments: arguments_text(&input),
                    }));
                }
                BlockIn::ToolResult {
                    tool_use_id,
                    content: result,
                    is_error,
                } if role == Role::User => {
                    let parts = match result {
                        None => Vec::new(),
                        Some(TextOr::Text(t)) => vec![Part::Text(t)],
                        Some(TextOr::List(bs)) => bs
                            .into_iter()
                            .map(simple_part)
                            .filter_map(Result::transpose)
                            .collect::<Result<_, _>>()?,
                    };
                    results.push(Part::ToolResult {
                        call_id: tool_use_id,
                        content: parts,
                        is_error,
                    });
                }
                other => content.extend(simple_part(other)?),
            }
        }
        if !results.is_empty() {
            req.messages.push(Message {
                role: Role::Tool,
                content: results,
            });
        }
        if !content.is_empty() {
            req.messages.push(Message { role, content });
        }
    }
    for t in r.tools {
        if t.kind.as_deref().is_some_and(|k| k != "custom") {
            return Err(TranslateError::Unsupported(format!(
                "Anthropic server tool {:?} cannot be sent to this provider",
                t.kind.unwrap_or_default()
            )));
        }
        req.tools.push(Tool {
            name: t.name,
            description: t.description,
            parameters: t
                .input_schema
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: None,
        });
    }
    if let Some(choice) = r.tool_choice {
        req.tool_choice = Some(match choice.kind.as_str() {
            "auto" => ToolChoice::Auto,
            "any" => ToolChoice::Required,
            "none" => ToolChoice::None,
            "tool" => ToolChoice::Tool(choice.name.ok_or_else(|| {
                TranslateError::InvalidRequest("tool_choice of type tool needs a name".into())
            })?),
            other => {
                return Err(TranslateError::InvalidRequest(format!(
                    "tool_choice type {other:?} is not auto, any, tool or none"
                )));
            }
        });
        if choice.disable_parallel_tool_use == Some(true) {
            req.parallel_tool_calls = Some(false);
        }
    }
    Ok(req)
}

fn image_block(img: &Image) -> Value {
    match img {
        Image::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
        Image::Base64 { media_type, data } => json!({"type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data}}),
    }
}

fn blocks(parts: &[Part]) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Part::Text(t) if t.is_empty() => {}
            Part::Text(t) => out.push(json!({"type": "text", "text": t})),
            Part::Image(img) => out.push(image_block(img)),
            Part::ToolCall(c) => out.push(json!({"type": "tool_use", "id": c.id, "name": c.name,
                "input": arguments_value(&c.arguments)?})),
            Part::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let inner = match content.as_slice() {
                    [Part::Text(t)] => json!(t),
                    parts => Value::Array(blocks(parts)?),
                };
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": inner});
                if *is_error {
                    block["is_error"] = json!(true);
                }
                out.push(block);
            }
            // Reasoning from another provider cannot be signed; it is not sent back.
            Part::Reasoning(_) => {}
        }
    }
    Ok(out)
}

pub fn render_request(req: &Request, opts: &RenderOptions) -> Result<Vec<u8>, TranslateError> {
    let mut messages: Vec<Value> = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let role = match m.role {
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
        };
        let content = blocks(&m.content)?;
        if content.is_empty() {
            continue;
        }
        // Anthropic wants turns to alternate: consecutive same-role turns are merged.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(list) = last["content"].as_array_mut() {
                    list.extend(content);
                }
            }
            _ => messages.push(json!({"role": role, "content": content})),
        }
    }
    let max_tokens = req.max_tokens.or(opts.default_max_tokens).unwrap_or(4096);
    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    out.insert("max_tokens".into(), json!(max_tokens));
    out.insert("messages".into(), Value::Array(messages));
    if !req.system.is_empty() {
        out.insert("system".into(), json!(req.system.join("\n\n")));
    }
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                if let Some(d) = &t.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Tool(n) => json!({"type": "tool", "name": n}),
    });
    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if let Some(c) = choice
        && !req.tools.is_empty()
    {
        out.insert("tool_choice".into(), c);
    }
    // Anthropic has no JSON mode: `response_format` is not sent (see the README).
    if !req.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(req.stop));
    }
    if let Some(t) = req.temperature {
        // OpenAI's range is 0..2, Anthropic's 0..1.
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = req.top_p {
        out.insert("top_p".into(), json!(p));
    }
    if let Some(u) = &req.user {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
    }
    Ok(to_vec(&Value::Object(out)))
}
