//! Messages requests, in and out.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::canonical::{Image, Message, Part, Request, Role, Tool, ToolCall, ToolChoice};
use crate::json_write::{Array, Object, joined};
use crate::util::{TextOr, arguments_text, arguments_value, from_request};
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
    /// Anthropic's MCP connector: servers Anthropic itself calls.
    #[serde(default)]
    mcp_servers: Option<Vec<IgnoredAny>>,
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
    if r.mcp_servers.is_some_and(|s| !s.is_empty()) {
        // Dropped, the model would answer without the tools the client gave it.
        return Err(TranslateError::Unsupported(
            "mcp_servers are called by Anthropic itself; they work only on routes to Anthropic"
                .into(),
        ));
    }
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

fn image_block(list: &mut Array, img: &Image) {
    let mut block = list.object();
    block.str("type", "image");
    let mut source = block.object("source");
    match img {
        Image::Url(url) => source.str("type", "url").str("url", url),
        Image::Base64 { media_type, data } => source
            .str("type", "base64")
            .str("media_type", media_type)
            .str("data", data),
    };
}

/// Whether `part` becomes a block: empty text and reasoning do not.
fn renders(part: &Part) -> bool {
    match part {
        Part::Text(t) => !t.is_empty(),
        Part::Reasoning(_) => false,
        Part::Image(_) | Part::ToolCall(_) | Part::ToolResult { .. } => true,
    }
}

fn blocks(list: &mut Array, parts: &[Part]) -> Result<(), TranslateError> {
    for p in parts {
        match p {
            Part::Text(t) if t.is_empty() => {}
            Part::Text(t) => {
                list.object().str("type", "text").str("text", t);
            }
            Part::Image(img) => image_block(list, img),
            Part::ToolCall(c) => {
                let input = arguments_value(&c.arguments)?;
                list.object()
                    .str("type", "tool_use")
                    .str("id", &c.id)
                    .str("name", &c.name)
                    .value("input", &input);
            }
            Part::ToolResult {
                call_id,
                content,
                is_error,
            } => {
                let mut block = list.object();
                block.str("type", "tool_result").str("tool_use_id", call_id);
                match content.as_slice() {
                    [Part::Text(t)] => {
                        block.str("content", t);
                    }
                    parts => blocks(&mut block.array("content"), parts)?,
                }
                if *is_error {
                    block.bool("is_error", true);
                }
            }
            // Reasoning from another provider cannot be signed; it is not sent back.
            Part::Reasoning(_) => {}
        }
    }
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Assistant => "assistant",
        Role::User | Role::Tool => "user",
    }
}

/// The request as Messages JSON, written straight from the canonical model.
pub fn render_request(req: &Request, opts: &RenderOptions) -> Result<Vec<u8>, TranslateError> {
    let mut body = Vec::with_capacity(req.size_hint());
    let mut out = Object::open(&mut body);
    out.str("model", &req.model);
    let max_tokens = req.max_tokens.or(opts.default_max_tokens).unwrap_or(4096);
    out.u64("max_tokens", max_tokens);
    {
        let mut messages = out.array("messages");
        // Anthropic wants turns to alternate: consecutive same-role turns are merged,
        // after those with nothing to send are dropped.
        let mut turns = req
            .messages
            .iter()
            .filter(|m| m.content.iter().any(renders))
            .peekable();
        while let Some(first) = turns.next() {
            let role = role_name(first.role);
            let mut message = messages.object();
            message.str("role", role);
            let mut content = message.array("content");
            blocks(&mut content, &first.content)?;
            while let Some(m) = turns.next_if(|m| role_name(m.role) == role) {
                blocks(&mut content, &m.content)?;
            }
        }
    }
    if !req.system.is_empty() {
        joined(
            out.key("system"),
            req.system.iter().map(String::as_str),
            "\n\n",
        );
    }
    if !req.tools.is_empty() {
        let mut tools = out.array("tools");
        for t in &req.tools {
            let mut tool = tools.object();
            tool.str("name", &t.name);
            if let Some(d) = &t.description {
                tool.str("description", d);
            }
            tool.value("input_schema", &t.parameters);
        }
    }
    // Parallel calls are refused by a flag on the choice, so refusing them names one.
    let no_parallel = req.parallel_tool_calls == Some(false);
    let choice = match &req.tool_choice {
        None if no_parallel => Some(&ToolChoice::Auto),
        choice => choice.as_ref(),
    };
    if let Some(choice) = choice
        && !req.tools.is_empty()
    {
        let mut c = out.object("tool_choice");
        match choice {
            ToolChoice::Auto => c.str("type", "auto"),
            ToolChoice::None => c.str("type", "none"),
            ToolChoice::Required => c.str("type", "any"),
            ToolChoice::Tool(n) => c.str("type", "tool").str("name", n),
        };
        if no_parallel && *choice != ToolChoice::None {
            c.bool("disable_parallel_tool_use", true);
        }
    }
    // Anthropic has no JSON mode: `response_format` is not sent (see the README).
    if !req.stop.is_empty() {
        let mut stop = out.array("stop_sequences");
        for s in &req.stop {
            stop.str(s);
        }
    }
    if let Some(t) = req.temperature {
        // OpenAI's range is 0..2, Anthropic's 0..1.
        out.f64("temperature", t.clamp(0.0, 1.0));
    }
    if let Some(p) = req.top_p {
        out.f64("top_p", p);
    }
    if let Some(u) = &req.user {
        out.object("metadata").str("user_id", u);
    }
    if req.stream {
        out.bool("stream", true);
    }
    drop(out);
    Ok(body)
}
