//! Messages streams: named events from `message_start` to `message_stop`.

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{UsageIn, finish_from, write_finish, write_usage};
use crate::canonical::{ErrorInfo, Event, FinishReason, Usage};
use crate::json_write::Object;
use crate::sse::{self, SseEvent};
use crate::util::now;
use crate::{Dialect, TranslateError, errors};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {},
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<UsageIn>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    Thinking {},
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    #[serde(other)]
    Other,
}

/// A `content_block_delta`, nearly every event of a stream, read flat: serde's
/// internally tagged enums copy each event into a tree of its own first, and the
/// delta inside again, before reading the variant.
#[derive(Deserialize)]
struct FlatDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    index: usize,
    #[serde(borrow)]
    delta: FlatInner<'a>,
}

#[derive(Deserialize)]
struct FlatInner<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
}

/// A delta event read the quick way; `None` for anything it is not sure of (another
/// event, an unknown or incomplete delta, malformed JSON), which the general parse then
/// decides, errors included: the two accept and refuse the same events.
fn quick_delta(data: &str) -> Option<StreamEvent> {
    let flat: FlatDelta = serde_json::from_str(data).ok()?;
    if flat.kind != "content_block_delta" {
        return None;
    }
    let d = flat.delta;
    let delta = match (&*d.kind, d.text, d.partial_json, d.thinking) {
        ("text_delta", Some(text), _, _) => BlockDelta::TextDelta { text },
        ("input_json_delta", _, Some(partial_json), _) => {
            BlockDelta::InputJsonDelta { partial_json }
        }
        ("thinking_delta", _, _, Some(thinking)) => BlockDelta::ThinkingDelta { thinking },
        _ => return None,
    };
    Some(StreamEvent::ContentBlockDelta {
        index: flat.index,
        delta,
    })
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

/// Reads an Anthropic stream.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    usage: UsageIn,
    /// Content block index → canonical tool-call index.
    tools: HashMap<usize, usize>,
    stopped: bool,
    finished: bool,
}

impl StreamDecoder {
    pub fn complete(&self) -> bool {
        self.finished || self.stopped
    }

    pub fn decode(&mut self, ev: &SseEvent, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        if ev.data.trim().is_empty() {
            return Ok(());
        }
        let quick = match ev.event.as_deref() {
            Some("content_block_delta") => quick_delta(&ev.data),
            _ => None,
        };
        let event: StreamEvent = match quick {
            Some(event) => event,
            None => serde_json::from_str(&ev.data)
                .map_err(|e| TranslateError::BadUpstream(e.to_string()))?,
        };
        match event {
            StreamEvent::MessageStart { message } => {
                if let Some(u) = message.usage {
                    self.usage = self.usage.merge(u);
                }
                out.push(Event::Start {
                    id: message.id,
                    model: message.model,
                    created: now(),
                });
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StartBlock::Text { text } if !text.is_empty() => out.push(Event::Text(text)),
                StartBlock::ToolUse { id, name } => {
                    let tool = self.tools.len();
                    self.tools.insert(index, tool);
                    out.push(Event::ToolCallStart {
                        index: tool,
                        id,
                        name,
                    });
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => out.push(Event::Text(text)),
                BlockDelta::ThinkingDelta { thinking } => out.push(Event::Reasoning(thinking)),
                BlockDelta::InputJsonDelta { partial_json } => {
                    let Some(&tool) = self.tools.get(&index) else {
                        return Err(TranslateError::BadUpstream(
                            "input_json_delta for a block that is not a tool_use".into(),
                        ));
                    };
                    if !partial_json.is_empty() {
                        out.push(Event::ToolCallArguments {
                            index: tool,
                            fragment: partial_json,
                        });
                    }
                }
                BlockDelta::Other => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage = self.usage.merge(u);
                }
                if let Some(reason) = delta.stop_reason {
                    self.finished = true;
                    out.push(Event::Finish(finish_from(&reason, delta.stop_sequence)));
                }
                out.push(Event::Usage(self.usage.canonical()));
            }
            StreamEvent::MessageStop {} => self.stopped = true,
            StreamEvent::Error { error } => {
                let body = json!({ "error": error }).to_string();
                let status = match error.get("type").and_then(Value::as_str) {
                    Some("overloaded_error") => 529,
                    Some("rate_limit_error") => 429,
                    _ => 500,
                };
                out.push(Event::Error(errors::parse_upstream(
                    status,
                    body.as_bytes(),
                )));
            }
            StreamEvent::ContentBlockStop {} | StreamEvent::Ping {} | StreamEvent::Other => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    Tool,
}

/// Writes an Anthropic stream.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    started: bool,
    id: String,
    model: String,
    /// Content blocks opened so far, by index, and whether each is still open.
    blocks: Vec<(Block, bool)>,
    /// The text or thinking block being written, if any.
    current: Option<usize>,
    /// Canonical tool index → block index.
    tools: HashMap<usize, usize>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    closed: bool,
    /// Where an event's data is written before it is copied out.
    scratch: Vec<u8>,
}

/// Write event `name`, its data an object whose members `members` writes (into
/// `scratch`, then copied: the writer fills a `Vec`). Members go in alphabetical order,
/// the order these events have always had.
fn emit(out: &mut BytesMut, scratch: &mut Vec<u8>, name: &str, members: impl FnOnce(&mut Object)) {
    scratch.clear();
    members(&mut Object::open(scratch));
    sse::write_event(out, Some(name), &scratch[..]);
}

/// The block a `content_block_start` opens, as it is before its deltas.
enum Opening<'a> {
    Text,
    Thinking,
    Tool { id: &'a str, name: &'a str },
}

impl StreamEncoder {
    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        emit(out, &mut self.scratch, "message_start", |o| {
            let mut message = o.object("message");
            message.array("content");
            message
                .str("id", &self.id)
                .str("model", &self.model)
                .str("role", "assistant")
                .null("stop_reason")
                .null("stop_sequence")
                .str("type", "message");
            // Providers other than Anthropic report input tokens at the end; the final
            // message_delta carries them.
            message
                .object("usage")
                .u64("input_tokens", 0)
                .u64("output_tokens", 0);
            drop(message);
            o.str("type", "message_start");
        });
    }

    fn close(&mut self, index: usize, out: &mut BytesMut) {
        if let Some((_, open)) = self.blocks.get_mut(index)
            && *open
        {
            *open = false;
            emit(out, &mut self.scratch, "content_block_stop", |o| {
                o.u64("index", index as u64)
                    .str("type", "content_block_stop");
            });
        }
    }

    /// Open a block after closing the text or thinking block being written.
    fn open(&mut self, opening: Opening, out: &mut BytesMut) -> usize {
        if let Some(current) = self.current.take() {
            self.close(current, out);
        }
        let kind = match opening {
            Opening::Text => Block::Text,
            Opening::Thinking => Block::Thinking,
            Opening::Tool { .. } => Block::Tool,
        };
        let index = self.blocks.len();
        self.blocks.push((kind, true));
        emit(out, &mut self.scratch, "content_block_start", |o| {
            let mut block = o.object("content_block");
            match opening {
                Opening::Text => block.str("text", "").str("type", "text"),
                Opening::Thinking => block
                    .str("signature", "")
                    .str("thinking", "")
                    .str("type", "thinking"),
                Opening::Tool { id, name } => {
                    block.str("id", id);
                    block.object("input");
                    block.str("name", name).str("type", "tool_use")
                }
            };
            drop(block);
            o.u64("index", index as u64)
                .str("type", "content_block_start");
        });
        if kind != Block::Tool {
            self.current = Some(index);
        }
        index
    }

    /// A `content_block_delta` event, serialized straight into `out` from borrowed
    /// parts rather than through a `Value` tree: deltas are most of a stream.
    /// Members are written in the alphabetical order `json!` gave them.
    fn delta(
        out: &mut BytesMut,
        index: usize,
        kind: &'static str,
        field: &'static str,
        text: &str,
    ) {
        #[derive(Serialize)]
        struct Delta<'a> {
            delta: Inner<'a>,
            index: usize,
            #[serde(rename = "type")]
            kind: &'static str,
        }
        struct Inner<'a> {
            field: &'static str,
            text: &'a str,
            kind: &'static str,
        }
        impl Serialize for Inner<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                // `partial_json`, `text` and `thinking` all sort before `type`.
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry(self.field, self.text)?;
                m.serialize_entry("type", self.kind)?;
                m.end()
            }
        }
        let event = Delta {
            delta: Inner { field, text, kind },
            index,
            kind: "content_block_delta",
        };
        sse::write_json_event(out, Some("content_block_delta"), &event);
    }

    pub fn encode(&mut self, ev: &Event, out: &mut BytesMut) {
        if self.closed {
            return;
        }
        match ev {
            Event::Start { id, model, .. } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.ensure_started(out);
            }
            Event::Text(t) => {
                self.ensure_started(out);
                let index = match self.current {
                    Some(i) if self.blocks[i].0 == Block::Text => i,
                    _ => self.open(Opening::Text, out),
                };
                Self::delta(out, index, "text_delta", "text", t);
            }
            Event::Reasoning(r) => {
                self.ensure_started(out);
                let index = match self.current {
                    Some(i) if self.blocks[i].0 == Block::Thinking => i,
                    _ => self.open(Opening::Thinking, out),
                };
                Self::delta(out, index, "thinking_delta", "thinking", r);
            }
            Event::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                let block = self.open(Opening::Tool { id, name }, out);
                self.tools.insert(*index, block);
            }
            Event::ToolCallArguments { index, fragment } => {
                // Tool blocks stay open until the end, so fragments of parallel calls
                // that arrive interleaved still land on their own block.
                if let Some(&block) = self.tools.get(index) {
                    Self::delta(out, block, "input_json_delta", "partial_json", fragment);
                }
            }
            Event::Finish(reason) => self.finish = Some(reason.clone()),
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => {
                self.ensure_started(out);
                errors::stream_event(Dialect::Anthropic, e, out);
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
        for index in 0..self.blocks.len() {
            self.close(index, out);
        }
        let usage = self.usage.unwrap_or_default();
        emit(out, &mut self.scratch, "message_delta", |o| {
            write_finish(&mut o.object("delta"), Some(&reason));
            o.str("type", "message_delta");
            write_usage(o.object("usage"), &usage);
        });
        emit(out, &mut self.scratch, "message_stop", |o| {
            o.str("type", "message_stop");
        });
        self.closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder that has seen a tool call's start at index 1.
    fn decode(ev: &SseEvent, out: &mut Vec<Event>) -> Result<(), TranslateError> {
        let mut d = StreamDecoder::default();
        d.tools.insert(1, 0);
        d.decode(ev, out)
    }

    #[test]
    fn the_quick_delta_read_agrees_with_the_general_one() {
        let cases = [
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi \"there\" \u00e9"}}"#,
            r#"{"index":0,"delta":{"text":"order","type":"text_delta"},"type":"content_block_delta","extra":[1]}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"content_block_delta","index":7,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":5}}"#,
            r#"{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"x"}}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","text":"b"}}"#,
            r#"{"type":"content_block_d\u0065lta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":"#,
        ];
        crate::stream::assert_quick_read_agrees(decode, "content_block_delta", &cases);
        assert_eq!(
            crate::stream::decoded(decode, Some("content_block_delta"), cases[0]),
            Ok(vec![Event::Text("hi \"there\" é".into())])
        );
    }
}
