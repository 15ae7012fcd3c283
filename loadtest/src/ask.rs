//! What a request asks of the mock, whatever its wire format, and the answer the mock
//! decides on. Each format module reads its own request into an [`Ask`] and writes the
//! [`Plan`] in its own format; the decision itself is made once, here.
//!
//! The mock behaves like a model that always uses its tools: when a request offers
//! tools (and `tool_choice` does not forbid them) and the conversation does not end with
//! a tool result, it calls up to two of the offered tools, with arguments made from
//! each tool's JSON schema. After a tool result it answers in text that quotes the
//! result, so a test can see the result arrived.

use serde_json::{Map, Value, json};

/// A tool offered by the client.
#[derive(Debug, Clone)]
pub struct OfferedTool {
    pub name: String,
    pub schema: Value,
}

#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub tools: Vec<OfferedTool>,
    pub tools_forbidden: bool,
    /// The text of the tool result the conversation ends with, if it does.
    pub tool_result: Option<String>,
    /// About four bytes a token, at least one a message.
    pub prompt_tokens: u64,
    pub max_tokens: Option<u64>,
}

/// One tool call the mock makes.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
}

/// The answer.
#[derive(Debug, Clone)]
pub struct Plan {
    pub model: String,
    /// Text, in the pieces a stream sends.
    pub pieces: Vec<String>,
    pub calls: Vec<Call>,
    pub finish: Finish,
    pub prompt_tokens: u64,
    /// A quarter of the prompt is reported as read from the provider's cache.
    pub cached_tokens: u64,
    pub completion_tokens: u64,
}

impl Plan {
    pub fn text(&self) -> String {
        self.pieces.concat()
    }
}

/// The text of content piece `i`: one token each.
pub fn piece(i: u32) -> String {
    format!("tok{i} ")
}

/// Arguments for a tool, from its schema: every property gets a value of its type.
fn arguments(schema: &Value) -> String {
    let mut args = Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let value = match prop.get("type").and_then(Value::as_str) {
                Some("integer" | "number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => json!(format!("value-{name}")),
            };
            args.insert(name.clone(), value);
        }
    }
    Value::Object(args).to_string()
}

impl Ask {
    /// Decide the answer; `chunks` is the number of text pieces (tokens).
    pub fn plan(&self, chunks: u32, call_prefix: &str) -> Plan {
        let use_tools =
            !self.tools.is_empty() && !self.tools_forbidden && self.tool_result.is_none();
        let (pieces, calls, finish) = if use_tools {
            let calls: Vec<Call> = self
                .tools
                .iter()
                .take(2)
                .enumerate()
                .map(|(i, t)| Call {
                    id: format!("{call_prefix}{i}"),
                    name: t.name.clone(),
                    arguments: arguments(&t.schema),
                })
                .collect();
            (Vec::new(), calls, Finish::ToolCalls)
        } else {
            let limit = self
                .max_tokens
                .map_or(chunks, |m| chunks.min(u32::try_from(m).unwrap_or(u32::MAX)));
            let mut pieces: Vec<String> = (0..limit).map(piece).collect();
            if let Some(result) = &self.tool_result {
                pieces.insert(0, format!("result: {result}. "));
            }
            let finish = if limit < chunks {
                Finish::Length
            } else {
                Finish::Stop
            };
            (pieces, Vec::new(), finish)
        };
        let completion_tokens = pieces.len() as u64
            + calls
                .iter()
                .map(|c| c.arguments.len() as u64 / 4 + 1)
                .sum::<u64>();
        Plan {
            model: self.model.clone(),
            pieces,
            calls,
            finish,
            prompt_tokens: self.prompt_tokens,
            cached_tokens: self.prompt_tokens / 4,
            completion_tokens,
        }
    }
}

/// Split a tool call's arguments into the fragments a stream sends.
pub fn fragments(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    chars.chunks(6).map(|c| c.iter().collect()).collect()
}

/// A rough, deterministic token count of some JSON.
pub fn tokens_of(v: &Value) -> u64 {
    (v.to_string().len() as u64).div_ceil(4)
}
