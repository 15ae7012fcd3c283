//! Responses streams: typed events from `response.created` to `response.completed`.

use std::collections::HashMap;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::response::{
    Envelope, Incomplete, write_call, write_call_id, write_message, write_text_part,
};
use super::{OutputItem, UsageIn, finish_of, parts_of, response_id, status_of};
use crate::canonical::{ErrorInfo, ErrorKind, Event, FinishReason, ToolCall, Usage};
use crate::json_write::Object;
use crate::sse::{self, SseEvent};
use crate::util::now;
use crate::{TranslateError, errors};

#[derive(Deserialize)]
#[serde(tag = "type")]
enum StreamEvent {
    #[serde(rename = "response.created")]
    Created { response: ResponseHead },
    #[serde(rename = "response.output_item.added")]
    ItemAdded { output_index: usize, item: Value },
    #[serde(rename = "response.output_text.delta")]
    TextDelta { delta: String },
    #[serde(rename = "response.refusal.delta")]
    RefusalDelta { delta: String },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningDelta { delta: String },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta { output_index: usize, delta: String },
    #[serde(rename = "response.completed", alias = "response.incomplete")]
    Completed { response: ResponseTail },
    #[serde(rename = "response.failed")]
    Failed { response: Value },
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct ResponseHead {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    created_at: Option<u64>,
}

#[derive(Deserialize)]
struct ResponseTail {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    incomplete_details: Option<Incomplete>,
    #[serde(default)]
    output: Vec<OutputItem>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

/// Reads a Responses stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Output index of a function call item → canonical tool index.
    tools: HashMap<usize, usize>,
    completed: bool,
}

impl StreamDecoder {
    pub fn complete(&self) -> bool {
        self.completed
    }

    pub fn decode(&mut self, ev: &SseEvent, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        if ev.data.trim().is_empty() || ev.data.trim() == "[DONE]" {
            return Ok(());
        }
        let event: StreamEvent = serde_json::from_str(&ev.data)
            .map_err(|e| TranslateError::BadUpstream(e.to_string()))?;
        match event {
            StreamEvent::Created { response } => out.push(Event::Start {
                id: response.id,
                model: response.model,
                created: response.created_at.unwrap_or_else(now),
            }),
            StreamEvent::ItemAdded { output_index, item } => {
                if item.get("type").and_then(Value::as_str) == Some("function_call") {
                    let field = |k: &str| {
                        item.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    let index = self.tools.len();
                    self.tools.insert(output_index, index);
                    out.push(Event::ToolCallStart {
                        index,
                        id: field("call_id"),
                        name: field("name"),
                    });
                    let arguments = field("arguments");
                    if !arguments.is_empty() {
                        out.push(Event::ToolCallArguments {
                            index,
                            fragment: arguments,
                        });
                    }
                }
            }
            StreamEvent::TextDelta { delta } | StreamEvent::RefusalDelta { delta } => {
                out.push(Event::Text(delta));
            }
            StreamEvent::ReasoningDelta { delta } => out.push(Event::Reasoning(delta)),
            StreamEvent::ArgumentsDelta {
                output_index,
                delta,
            } => {
                let &index = self.tools.get(&output_index).ok_or_else(|| {
                    TranslateError::BadUpstream("arguments for an unknown function call".into())
                })?;
                out.push(Event::ToolCallArguments {
                    index,
                    fragment: delta,
                });
            }
            StreamEvent::Completed { response } => {
                self.completed = true;
                let parts = parts_of(response.output);
                out.push(Event::Finish(finish_of(
                    response.status.as_deref(),
                    response
                        .incomplete_details
                        .as_ref()
                        .and_then(|d| d.reason.as_deref()),
                    &parts,
                )));
                if let Some(u) = response.usage {
                    out.push(Event::Usage(u.canonical()));
                }
            }
            StreamEvent::Failed { response } => {
                let body = json!({"error": response.get("error").cloned().unwrap_or(Value::Null)});
                out.push(Event::Error(errors::parse_upstream(
                    500,
                    body.to_string().as_bytes(),
                )));
            }
            StreamEvent::Error { code, message } => out.push(Event::Error(ErrorInfo {
                kind: ErrorKind::Api,
                message: message.unwrap_or_else(|| "the provider reported an error".into()),
                code,
            })),
            StreamEvent::Other => {}
        }
        Ok(())
    }
}

/// One output item being written.
#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
        open: bool,
    },
    Call {
        call: ToolCall,
        open: bool,
    },
}

/// Writes a Responses stream.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    emitter: Emitter,
    id: String,
    model: String,
    created: u64,
    started: bool,
    items: Vec<Item>,
    /// The message item being written.
    current: Option<usize>,
    /// Canonical tool index → output index.
    tools: HashMap<usize, usize>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    closed: bool,
}

/// Where an event's sequence number goes, and where its data is written before it is
/// copied out (the writer fills a `Vec`).
#[derive(Debug, Default)]
struct Emitter {
    seq: u64,
    scratch: Vec<u8>,
}

impl Emitter {
    /// Write event `kind`: `members` writes the members that sort before
    /// `sequence_number`, `text` is the one that sorts between it and `type`.
    fn emit(
        &mut self,
        out: &mut BytesMut,
        kind: &str,
        members: impl FnOnce(&mut Object),
        text: Option<&str>,
    ) {
        self.scratch.clear();
        let mut o = Object::open(&mut self.scratch);
        members(&mut o);
        o.u64("sequence_number", self.seq);
        if let Some(text) = text {
            o.str("text", text);
        }
        o.str("type", kind);
        drop(o);
        self.seq += 1;
        sse::write_event(out, Some(kind), &self.scratch[..]);
    }

    /// The next sequence number, for an event written another way.
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq - 1
    }
}

/// The response object as the stream's events carry it: no error, no usage, no
/// output but what the caller adds.
fn envelope<'a>(id: &'a str, model: &'a str, created: u64, status: &'a str) -> Envelope<'a> {
    Envelope {
        id,
        model,
        created,
        status,
        incomplete: None,
        error: None,
        usage: None,
    }
}

impl StreamEncoder {
    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        if self.created == 0 {
            self.created = now();
        }
        if self.id.is_empty() {
            self.id = response_id("stream");
        }
        for kind in ["response.created", "response.in_progress"] {
            let head = envelope(&self.id, &self.model, self.created, "in_progress");
            self.emitter.emit(
                out,
                kind,
                |o| head.write(o.object("response"), |_| {}),
                None,
            );
        }
    }

    fn close(&mut self, index: usize, out: &mut BytesMut) {
        let emitter = &mut self.emitter;
        match self.items.get_mut(index) {
            Some(Item::Message { id, text, open }) if *open => {
                *open = false;
                let at = |o: &mut Object| {
                    o.u64("content_index", 0).str("item_id", id);
                };
                emitter.emit(
                    out,
                    "response.output_text.done",
                    |o| {
                        at(o);
                        o.array("logprobs");
                        o.u64("output_index", index as u64);
                    },
                    Some(text),
                );
                emitter.emit(
                    out,
                    "response.content_part.done",
                    |o| {
                        at(o);
                        o.u64("output_index", index as u64);
                        write_text_part(o.object("part"), text);
                    },
                    None,
                );
                emitter.emit(
                    out,
                    "response.output_item.done",
                    |o| {
                        write_message(o.object("item"), id, Some(text));
                        o.u64("output_index", index as u64);
                    },
                    None,
                );
            }
            Some(Item::Call { call, open }) if *open => {
                *open = false;
                emitter.emit(
                    out,
                    "response.function_call_arguments.done",
                    |o| {
                        o.str("arguments", &call.arguments);
                        write_call_id(o.key("item_id"), &call.id);
                        o.str("name", &call.name).u64("output_index", index as u64);
                    },
                    None,
                );
                emitter.emit(
                    out,
                    "response.output_item.done",
                    |o| {
                        write_call(o.object("item"), call, "completed");
                        o.u64("output_index", index as u64);
                    },
                    None,
                );
            }
            _ => {}
        }
    }

    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        match ev {
            Event::Start { id, model, created } => {
                self.id = response_id(id);
                self.model.clone_from(model);
                self.created = *created;
                self.ensure_started(out);
            }
            Event::Text(t) => {
                self.ensure_started(out);
                let index = match self.current {
                    Some(i) => i,
                    None => {
                        let index = self.items.len();
                        let id = format!("msg_{index}_{}", self.id);
                        self.emitter.emit(
                            out,
                            "response.output_item.added",
                            |o| {
                                write_message(o.object("item"), &id, None);
                                o.u64("output_index", index as u64);
                            },
                            None,
                        );
                        self.emitter.emit(
                            out,
                            "response.content_part.added",
                            |o| {
                                o.u64("content_index", 0)
                                    .str("item_id", &id)
                                    .u64("output_index", index as u64);
                                write_text_part(o.object("part"), "");
                            },
                            None,
                        );
                        self.items.push(Item::Message {
                            id,
                            text: String::new(),
                            open: true,
                        });
                        self.current = Some(index);
                        index
                    }
                };
                let Some(Item::Message { id, text, .. }) = self.items.get_mut(index) else {
                    return;
                };
                text.push_str(t);
                // The one event per token: serialized straight into `out` from borrowed
                // parts, members in the alphabetical order of every event here.
                #[derive(Serialize)]
                struct TextDelta<'a> {
                    content_index: u32,
                    delta: &'a str,
                    item_id: &'a str,
                    logprobs: [(); 0],
                    output_index: usize,
                    sequence_number: u64,
                    #[serde(rename = "type")]
                    kind: &'static str,
                }
                let event = TextDelta {
                    content_index: 0,
                    delta: t,
                    item_id: id,
                    logprobs: [],
                    output_index: index,
                    sequence_number: self.emitter.next(),
                    kind: "response.output_text.delta",
                };
                sse::write_json_event(out, Some(event.kind), &event);
            }
            // Responses carries reasoning as encrypted items or summaries the provider
            // writes; reasoning from another provider is not passed on.
            Event::Reasoning(_) => {}
            Event::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                if let Some(current) = self.current.take() {
                    self.close(current, out);
                }
                let at = self.items.len();
                let call = ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                };
                self.emitter.emit(
                    out,
                    "response.output_item.added",
                    |o| {
                        write_call(o.object("item"), &call, "in_progress");
                        o.u64("output_index", at as u64);
                    },
                    None,
                );
                self.items.push(Item::Call { call, open: true });
                self.tools.insert(*index, at);
            }
            Event::ToolCallArguments { index, fragment } => {
                let Some(&at) = self.tools.get(index) else {
                    return;
                };
                let Some(Item::Call { call, .. }) = self.items.get_mut(at) else {
                    return;
                };
                call.arguments.push_str(fragment);
                self.emitter.emit(
                    out,
                    "response.function_call_arguments.delta",
                    |o| {
                        o.str("delta", fragment);
                        write_call_id(o.key("item_id"), &call.id);
                        o.u64("output_index", at as u64);
                    },
                    None,
                );
            }
            Event::Finish(reason) => self.finish = Some(reason.clone()),
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => {
                self.ensure_started(out);
                let code = e.code.as_deref().unwrap_or("server_error");
                self.emitter.emit(
                    out,
                    "error",
                    |o| {
                        o.str("code", code).str("message", &e.message).null("param");
                    },
                    None,
                );
                let failed = Envelope {
                    error: Some((code, &e.message)),
                    ..envelope(&self.id, &self.model, self.created, "failed")
                };
                self.emitter.emit(
                    out,
                    "response.failed",
                    |o| failed.write(o.object("response"), |_| {}),
                    None,
                );
                self.closed = true;
            }
        }
    }

    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        let Some(reason) = self.finish.take() else {
            self.encode(&Event::Error(ErrorInfo::incomplete()), out);
            return;
        };
        self.ensure_started(out);
        for index in 0..self.items.len() {
            self.close(index, out);
        }
        let (status, incomplete) = status_of(Some(&reason));
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let response = Envelope {
            incomplete,
            usage: self.usage.as_ref(),
            ..envelope(&self.id, &self.model, self.created, status)
        };
        // The output as streamed: each item with the id its events carried.
        let items = &self.items;
        self.emitter.emit(
            out,
            kind,
            |o| {
                response.write(o.object("response"), |output| {
                    for item in items {
                        match item {
                            Item::Message { id, text, .. } => {
                                write_message(output.object(), id, Some(text));
                            }
                            Item::Call { call, .. } => {
                                write_call(output.object(), call, "completed");
                            }
                        }
                    }
                })
            },
            None,
        );
        self.closed = true;
    }
}
