//! The canonical model every dialect converts to and from: one request, one response and
//! one stream-event vocabulary. Converters never talk to each other directly, so adding
//! a dialect is one converter in and one out, not one per pair.
//!
//! Token counts follow OpenAI's convention: `input_tokens` is every prompt token,
//! cached or not, and `cached_input_tokens` / `cache_creation_tokens` say how many of
//! them were cache reads / writes. Anthropic counts them apart; its converter adds and
//! subtracts at the edge.

use serde_json::Value;

/// Who said a message. System prompts are not messages: they are hoisted into
/// [`Request::system`], because Anthropic and Responses carry them apart.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// Results of tool calls, answering the assistant's previous turn.
    Tool,
}

/// An image, by URL or inline.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub enum Image {
    Url(String),
    Base64 { media_type: String, data: String },
}

impl Image {
    /// Parse an OpenAI-style image URL, which may be a `data:` URL.
    pub fn from_url(url: &str) -> Self {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((meta, data)) = rest.split_once(',')
            && let Some(media_type) = meta.strip_suffix(";base64")
        {
            return Self::Base64 {
                media_type: media_type.to_string(),
                data: data.to_string(),
            };
        }
        Self::Url(url.to_string())
    }

    /// The image as an OpenAI-style URL (`data:` for inline images).
    pub fn to_url(&self) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

/// One piece of a message.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    /// The assistant asks for a tool call; `arguments` is the JSON text of the input.
    ToolCall(ToolCall),
    /// The result of a tool call, in a [`Role::Tool`] message.
    ToolResult {
        call_id: String,
        content: Vec<Part>,
        is_error: bool,
    },
    /// Model reasoning the provider returned in the clear.
    Reasoning(String),
}

impl Part {
    /// About how many bytes the part takes written out: its text and 64 bytes of
    /// markup (see [`Request::size_hint`]).
    pub fn size_hint(&self) -> usize {
        64 + match self {
            Part::Text(t) | Part::Reasoning(t) => t.len(),
            Part::Image(Image::Url(u)) => u.len(),
            Part::Image(Image::Base64 { media_type, data }) => media_type.len() + data.len(),
            Part::ToolCall(c) => c.id.len() + c.name.len() + c.arguments.len(),
            Part::ToolResult {
                call_id, content, ..
            } => call_id.len() + content.iter().map(Part::size_hint).sum::<usize>(),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

impl Message {
    /// The message's text parts, one per line.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A function the model may call.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    pub strict: Option<bool>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called.
    Required,
    /// This tool must be called.
    Tool(String),
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

/// A chat request in no dialect.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub model: String,
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub stop: Vec<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u64>,
    pub stream: bool,
    /// The end user, for the provider's abuse monitoring.
    pub user: Option<String>,
    /// What the request asks of its answer that a [`Response`] cannot hold (several
    /// choices, log-probabilities, …: see `demands.rs`); a route that answers through
    /// this model refuses the request rather than answer less.
    #[serde(skip)]
    pub demands: Option<&'static str>,
}

impl Request {
    /// The last user turn and its position: what a prompt-keyed decision (semantic
    /// routing, the semantic cache) looks at.
    pub fn last_user(&self) -> Option<(usize, &Message)> {
        self.messages
            .iter()
            .enumerate()
            .rev()
            .find(|(_, m)| m.role == Role::User)
    }

    /// About how many bytes the request takes in any dialect: its text, plus room for
    /// each part's and tool's markup. A renderer reserves this once, so a long
    /// conversation is not copied again each time its buffer doubles; escapes and
    /// large schemas may still grow it.
    pub fn size_hint(&self) -> usize {
        let text = |v: &[String]| v.iter().map(|s| s.len() + 8).sum::<usize>();
        256 + self.model.len()
            + text(&self.system)
            + text(&self.stop)
            + self.tools.len() * 512
            + self
                .messages
                .iter()
                .map(|m| 32 + m.content.iter().map(Part::size_hint).sum::<usize>())
                .sum::<usize>()
    }
}

/// Why generation stopped.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// A stop sequence matched; which one, when the provider says.
    StopSequence(Option<String>),
}

/// Token usage; see the module doc for the convention.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_creation_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// A complete (non-streamed) answer.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct Response {
    pub id: String,
    pub model: String,
    pub created: u64,
    /// Text, reasoning and tool calls, in the order the model produced them.
    pub content: Vec<Part>,
    pub finish: Option<FinishReason>,
    pub usage: Option<Usage>,
}

/// One event of a streamed answer. Tool calls are numbered from 0 in the order they
/// start; their arguments arrive as JSON text fragments.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub enum Event {
    Start {
        id: String,
        model: String,
        created: u64,
    },
    Text(String),
    Reasoning(String),
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    ToolCallArguments {
        index: usize,
        fragment: String,
    },
    Finish(FinishReason),
    Usage(Usage),
    /// The upstream failed mid-stream.
    Error(ErrorInfo),
}

/// What kind of failure an error is; each dialect has its own names for these.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    Overloaded,
    Timeout,
    Api,
}

impl ErrorKind {
    /// The kind an HTTP status means.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => Self::Authentication,
            403 => Self::Permission,
            404 => Self::NotFound,
            413 => Self::RequestTooLarge,
            429 => Self::RateLimit,
            408 | 504 => Self::Timeout,
            503 | 529 => Self::Overloaded,
            400..=499 => Self::InvalidRequest,
            _ => Self::Api,
        }
    }
}

/// An error, in no dialect.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorInfo {
    pub kind: ErrorKind,
    pub message: String,
    /// A stable machine-readable code, when there is one.
    pub code: Option<String>,
}

impl ErrorInfo {
    /// The error that ends a stream the provider closed before saying it was done.
    pub fn incomplete() -> Self {
        Self {
            kind: ErrorKind::Api,
            message: "the provider ended the stream before the answer was complete".into(),
            code: Some("upstream_incomplete".into()),
        }
    }
}

impl Response {
    /// About how many bytes the answer takes written out, for a renderer to reserve
    /// once: its parts and 512 bytes for the envelope and the usage.
    pub fn size_hint(&self) -> usize {
        512 + self.id.len()
            + self.model.len()
            + self.content.iter().map(Part::size_hint).sum::<usize>()
    }

    /// The answer as the events a stream of it would carry, for a provider that
    /// answered a streaming request with one complete body.
    pub fn into_events(self) -> Vec<Event> {
        let mut events = vec![Event::Start {
            id: self.id,
            model: self.model,
            created: self.created,
        }];
        let mut tools = 0;
        for part in self.content {
            match part {
                Part::Text(t) => events.push(Event::Text(t)),
                Part::Reasoning(r) => events.push(Event::Reasoning(r)),
                Part::ToolCall(c) => {
                    events.push(Event::ToolCallStart {
                        index: tools,
                        id: c.id,
                        name: c.name,
                    });
                    events.push(Event::ToolCallArguments {
                        index: tools,
                        fragment: c.arguments,
                    });
                    tools += 1;
                }
                Part::Image(_) | Part::ToolResult { .. } => {}
            }
        }
        events.push(Event::Finish(self.finish.unwrap_or(FinishReason::Stop)));
        if let Some(u) = self.usage {
            events.push(Event::Usage(u));
        }
        events
    }
}
