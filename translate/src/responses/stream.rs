//! Responses streams: typed events from `response.created` to `response.completed`.

use std::collections::HashMap;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::response::{Incomplete, output_items};
use super::{OutputItem, UsageIn, finish_of, parts_of, response_id, status_of, usage_value};
use crate::canonical::{ErrorInfo, ErrorKind, Event, FinishReason, Part, ToolCall, Usage};
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
    seq: u64,
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

impl StreamEncoder {
    fn emit(&mut self, out: &mut BytesMut, kind: &str, mut body: Value) {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        sse::write_event(out, Some(kind), &body.to_string());
    }

    fn head(&self, status: &str) -> Value {
        json!({"id": self.id, "object": "response", "created_at": self.created, "status": status,
            "error": null, "incomplete_details": null, "model": self.model, "output": [],
            "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "usage": null})
    }

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
        let head = self.head("in_progress");
        self.emit(out, "response.created", json!({"response": head}));
        let head = self.head("in_progress");
        self.emit(out, "response.in_progress", json!({"response": head}));
    }

    fn close(&mut self, index: usize, out: &mut BytesMut) {
        let (events, item): (Vec<(&str, Value)>, Value) = match self.items.get_mut(index) {
            Some(Item::Message { id, text, open }) if *open => {
                *open = false;
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut done = at.clone();
                done["text"] = json!(text);
                done["logprobs"] = json!([]);
                let mut part_done = at;
                part_done["part"] = part.clone();
                (
                    vec![
                        ("response.output_text.done", done),
                        ("response.content_part.done", part_done),
                    ],
                    json!({"type": "message", "id": id, "status": "completed", "role": "assistant",
                        "content": [part]}),
                )
            }
            Some(Item::Call { call, open }) if *open => {
                *open = false;
                let id = format!("fc_{}", call.id);
                (
                    vec![(
                        "response.function_call_arguments.done",
                        json!({"item_id": id, "output_index": index, "arguments": call.arguments,
                            "name": call.name}),
                    )],
                    json!({"type": "function_call", "id": id, "call_id": call.id, "name": call.name,
                        "arguments": call.arguments, "status": "completed"}),
                )
            }
            _ => return,
        };
        for (kind, body) in events {
            self.emit(out, kind, body);
        }
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
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
                        self.emit(
                            out,
                            "response.output_item.added",
                            json!({"output_index": index, "item": {"type": "message", "id": id,
                                "status": "in_progress", "role": "assistant", "content": []}}),
                        );
                        self.emit(
                            out,
                            "response.content_part.added",
                            json!({"item_id": id, "output_index": index, "content_index": 0,
                                "part": {"type": "output_text", "text": "", "annotations": []}}),
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
                // The one event per token: written from borrowed parts, not through a
                // `Value` tree, members in the alphabetical order `emit` gives them.
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
                    sequence_number: self.seq,
                    kind: "response.output_text.delta",
                };
                self.seq += 1;
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
                self.emit(
                    out,
                    "response.output_item.added",
                    json!({"output_index": at, "item": {"type": "function_call", "id": format!("fc_{id}"),
                        "call_id": id, "name": name, "arguments": "", "status": "in_progress"}}),
                );
                self.items.push(Item::Call {
                    call: ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                    },
                    open: true,
                });
                self.tools.insert(*index, at);
            }
            Event::ToolCallArguments { index, fragment } => {
                let Some(&at) = self.tools.get(index) else {
                    return;
                };
                let id = match self.items.get_mut(at) {
                    Some(Item::Call { call, .. }) => {
                        call.arguments.push_str(fragment);
                        format!("fc_{}", call.id)
                    }
                    _ => return,
                };
                self.emit(
                    out,
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": at, "delta": fragment}),
                );
            }
            Event::Finish(reason) => self.finish = Some(reason.clone()),
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => {
                self.ensure_started(out);
                let mut failed = self.head("failed");
                failed["error"] = json!({"code": e.code.as_deref().unwrap_or("server_error"),
                    "message": e.message});
                let code = e.code.clone().unwrap_or_else(|| "server_error".into());
                self.emit(
                    out,
                    "error",
                    json!({"code": code, "message": e.message, "param": null}),
                );
                self.emit(out, "response.failed", json!({"response": failed}));
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
        let content: Vec<Part> = self
            .items
            .iter()
            .map(|i| match i {
                Item::Message { text, .. } => Part::Text(text.clone()),
                Item::Call { call, .. } => Part::ToolCall(call.clone()),
            })
            .collect();
        let (status, incomplete) = status_of(Some(&reason));
        let mut response = self.head(status);
        response["incomplete_details"] = incomplete;
        response["output"] = json!(output_items(&self.id, &content));
        // Item ids must match the ones streamed.
        if let Some(items) = response["output"].as_array_mut() {
            for (item, streamed) in items.iter_mut().zip(&self.items) {
                if let Item::Message { id, .. } = streamed {
                    item["id"] = json!(id);
                }
            }
        }
        response["usage"] = self.usage.as_ref().map(usage_value).unwrap_or(Value::Null);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(out, kind, json!({"response": response}));
        self.closed = true;
    }
}
