//! Chat Completions streams: `data:` chunks, `[DONE]` at the end.

use std::collections::HashMap;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::usage::{self, UsageIn};
use super::{finish_from, finish_str};
use crate::Dialect;
use crate::TranslateError;
use crate::canonical::{ErrorInfo, Event, FinishReason, Usage};
use crate::errors;
use crate::sse::{self, SseEvent};
use crate::stream::EncoderOptions;
use crate::util::now;

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    created: Option<u64>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Reads an OpenAI-compatible stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    /// Upstream tool-call index → canonical index.
    tools: HashMap<usize, usize>,
    finished: bool,
    done: bool,
}

impl StreamDecoder {
    pub fn complete(&self) -> bool {
        self.finished || self.done
    }

    pub fn decode(&mut self, ev: &SseEvent, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Chunk =
            serde_json::from_str(data).map_err(|e| TranslateError::BadUpstream(e.to_string()))?;
        if let Some(err) = chunk.error {
            let info = errors::parse_upstream(500, json!({ "error": err }).to_string().as_bytes());
            out.push(Event::Error(info));
            return Ok(());
        }
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: chunk.id,
                model: chunk.model,
                created: chunk.created.unwrap_or_else(now),
            });
        }
        for choice in chunk.choices.into_iter().take(1) {
            if let Some(d) = choice.delta {
                if let Some(r) = d.reasoning_content.filter(|r| !r.is_empty()) {
                    out.push(Event::Reasoning(r));
                }
                if let Some(t) = d.content.filter(|t| !t.is_empty()).or(d.refusal) {
                    out.push(Event::Text(t));
                }
                for (pos, call) in d.tool_calls.into_iter().enumerate() {
                    let upstream_index = call.index.unwrap_or(pos);
                    let (name, arguments) = match call.function {
                        Some(f) => (f.name, f.arguments),
                        None => (None, None),
                    };
                    let next = self.tools.len();
                    let index = match self.tools.get(&upstream_index) {
                        Some(&i) => i,
                        None => {
                            self.tools.insert(upstream_index, next);
                            out.push(Event::ToolCallStart {
                                index: next,
                                id: call.id.unwrap_or_default(),
                                name: name.unwrap_or_default(),
                            });
                            next
                        }
                    };
                    if let Some(fragment) = arguments.filter(|a| !a.is_empty()) {
                        out.push(Event::ToolCallArguments { index, fragment });
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finished = true;
                out.push(Event::Finish(finish_from(&reason)));
            }
        }
        if let Some(u) = chunk.usage {
            out.push(Event::Usage(u.canonical()));
        }
        Ok(())
    }
}

/// A chunk as written, members in alphabetical order as `json!` wrote them before.
#[derive(Serialize)]
struct ChunkOut<'a, D> {
    choices: [ChoiceOut<'a, D>; 1],
    created: u64,
    id: &'a str,
    model: &'a str,
    object: &'static str,
}

#[derive(Serialize)]
struct ChoiceOut<'a, D> {
    delta: D,
    finish_reason: Option<&'a str>,
    index: u32,
    logprobs: Option<()>,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct ReasoningDelta<'a> {
    reasoning_content: &'a str,
}

/// The first chunk's delta.
#[derive(Serialize)]
struct RoleDelta {
    content: &'static str,
    role: &'static str,
}

/// The last chunk's delta, beside its finish reason.
#[derive(Serialize)]
struct EmptyDelta {}

/// A tool call's first chunk (its name) or one of its arguments' fragments: one per
/// fragment, so written from borrowed parts like the text deltas.
#[derive(Serialize)]
struct CallsOut<'a> {
    tool_calls: [CallOut<'a>; 1],
}

#[derive(Serialize)]
struct CallOut<'a> {
    function: FunctionOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    index: usize,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    arguments: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// The usage chunk a client asked for with `stream_options.include_usage`.
#[derive(Serialize)]
struct UsageChunk<'a> {
    choices: [(); 0],
    created: u64,
    id: &'a str,
    model: &'a str,
    object: &'static str,
    usage: usage::Out,
}

/// Writes a Chat Completions stream.
#[derive(Debug)]
pub struct StreamEncoder {
    opts: EncoderOptions,
    id: String,
    model: String,
    created: u64,
    started: bool,
    usage: Option<Usage>,
    finished: bool,
    closed: bool,
}

impl StreamEncoder {
    pub fn new(opts: EncoderOptions) -> Self {
        Self {
            opts,
            id: String::new(),
            model: String::new(),
            created: 0,
            started: false,
            usage: None,
            finished: false,
            closed: false,
        }
    }

    /// One `chat.completion.chunk`, serialized straight into `out` from borrowed
    /// parts: text deltas are most of a stream, and each used to build a `Value` tree
    /// (a map, its keys, copies of the id and model) and a string to print it into.
    /// Members are written in the order `json!` gave them.
    fn chunk<D: Serialize>(&self, delta: D, finish: Option<&FinishReason>, out: &mut BytesMut) {
        let chunk = ChunkOut {
            choices: [ChoiceOut {
                delta,
                finish_reason: finish.map(finish_str),
                index: 0,
                logprobs: None,
            }],
            created: self.created,
            id: &self.id,
            model: &self.model,
            object: "chat.completion.chunk",
        };
        sse::write_json_event(out, None, &chunk);
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            if self.created == 0 {
                self.created = now();
            }
            let delta = RoleDelta {
                content: "",
                role: "assistant",
            };
            self.chunk(delta, None, out);
        }
    }

    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        match ev {
            Event::Start { id, model, created } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.created = *created;
                self.ensure_started(out);
            }
            Event::Text(t) => {
                self.ensure_started(out);
                self.chunk(TextDelta { content: t }, None, out);
            }
            Event::Reasoning(r) => {
                self.ensure_started(out);
                self.chunk(
                    ReasoningDelta {
                        reasoning_content: r,
                    },
                    None,
                    out,
                );
            }
            Event::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                let call = CallOut {
                    function: FunctionOut {
                        arguments: "",
                        name: Some(name),
                    },
                    id: Some(id),
                    index: *index,
                    kind: Some("function"),
                };
                self.chunk(CallsOut { tool_calls: [call] }, None, out);
            }
            Event::ToolCallArguments { index, fragment } => {
                self.ensure_started(out);
                let call = CallOut {
                    function: FunctionOut {
                        arguments: fragment,
                        name: None,
                    },
                    id: None,
                    index: *index,
                    kind: None,
                };
                self.chunk(CallsOut { tool_calls: [call] }, None, out);
            }
            Event::Finish(reason) => {
                self.ensure_started(out);
                if !self.finished {
                    self.finished = true;
                    self.chunk(EmptyDelta {}, Some(reason), out);
                }
            }
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => {
                errors::stream_event(Dialect::OpenAiChat, e, out);
                self.closed = true;
            }
        }
    }

    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        if !self.finished {
            // A stream without a finish reason was cut short: say so.
            self.encode(&Event::Error(ErrorInfo::incomplete()), out);
            return;
        }
        self.closed = true;
        if self.opts.include_usage
            && let Some(u) = &self.usage
        {
            let chunk = UsageChunk {
                choices: [],
                created: self.created,
                id: &self.id,
                model: &self.model,
                object: "chat.completion.chunk",
                usage: usage::Out::from(u),
            };
            sse::write_json_event(out, None, &chunk);
        }
        sse::write_event(out, None, "[DONE]");
    }
}
