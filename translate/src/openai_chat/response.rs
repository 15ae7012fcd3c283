//! Complete Chat Completions answers, in and out.

use serde::{Deserialize, Serialize};

use super::usage::{self, UsageIn};
use super::{finish_from, finish_str};
use crate::TranslateError;
use crate::canonical::{Part, Response, ToolCall};
use crate::util::{from_upstream, now};

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    created: Option<u64>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<MessageOut>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageOut {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    /// DeepSeek and several open-model servers return reasoning here.
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallOut>,
}

#[derive(Deserialize)]
struct ToolCallOut {
    #[serde(default)]
    id: String,
    function: FunctionOut,
}

#[derive(Deserialize)]
struct FunctionOut {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

pub fn parse_response(body: &[u8]) -> Result<Response, TranslateError> {
    let r: ChatResponse = from_upstream(body)?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TranslateError::BadUpstream("the answer has no choices".into()))?;
    let mut content = Vec::new();
    if let Some(m) = choice.message {
        if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
            content.push(Part::Reasoning(r));
        }
        if let Some(t) = m.content.filter(|t| !t.is_empty()).or(m.refusal) {
            content.push(Part::Text(t));
        }
        content.extend(m.tool_calls.into_iter().map(|c| {
            Part::ToolCall(ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
        }));
    }
    Ok(Response {
        id: r.id,
        model: r.model,
        created: r.created.unwrap_or_else(now),
        content,
        finish: choice.finish_reason.as_deref().map(finish_from),
        usage: r.usage.map(|u| u.canonical()),
    })
}

pub fn render_response(resp: &Response) -> Vec<u8> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for p in &resp.content {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::Reasoning(r) => reasoning.push_str(r),
            Part::ToolCall(c) => tool_calls.push(AnswerCall {
                id: &c.id,
                kind: "function",
                function: AnswerFunction {
                    name: &c.name,
                    arguments: &c.arguments,
                },
            }),
            _ => {}
        }
    }
    let out = Answer {
        id: &resp.id,
        object: "chat.completion",
        created: resp.created,
        model: &resp.model,
        choices: [AnswerChoice {
            index: 0,
            message: AnswerMessage {
                role: "assistant",
                content: (!text.is_empty() || tool_calls.is_empty()).then_some(&text),
                refusal: None,
                tool_calls,
                reasoning_content: &reasoning,
            },
            logprobs: None,
            finish_reason: resp.finish.as_ref().map(finish_str).unwrap_or("stop"),
        }],
        usage: resp.usage.as_ref().map(usage::Out::from),
    };
    serde_json::to_vec(&out).unwrap_or_default()
}

// What a complete answer is written as: typed and borrowing, so rendering neither
// builds nor frees a tree of `Value`s.

#[derive(Serialize)]
struct Answer<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [AnswerChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<usage::Out>,
}

#[derive(Serialize)]
struct AnswerChoice<'a> {
    index: u32,
    message: AnswerMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AnswerMessage<'a> {
    role: &'static str,
    content: Option<&'a String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<AnswerCall<'a>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    reasoning_content: &'a str,
}

#[derive(Serialize)]
struct AnswerCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: AnswerFunction<'a>,
}

#[derive(Serialize)]
struct AnswerFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}
