//! The response stage: what the answer goes through on its way to the client. Masking
//! policies rewrite its text, streams included (chunk by chunk, holding back only what
//! could still become a match), and a cache policy records the answer to store it.
//! Both work on canonical events, so a route with a response stage takes the
//! translating path even when client and provider speak one dialect.

use std::sync::Arc;

use sluice_shared::snapshot::mask::{MaskStream, Masker};
use sluice_translate::canonical::{Event, Part, Response, ToolCall};

use crate::cache::Ticket;

/// The most answer text recorded for the cache; a longer answer is not cached.
const MAX_RECORDED: usize = 4 * 1024 * 1024;

/// The response-stage policies of one request.
#[derive(Debug, Default, Clone)]
pub struct ResponseStage {
    pub masks: Vec<Arc<Masker>>,
    /// Where to cache the answer.
    pub store: Option<Ticket>,
}

impl ResponseStage {
    pub fn is_active(&self) -> bool {
        !self.masks.is_empty() || self.store.is_some()
    }

    /// The per-answer state.
    pub fn filter(&self) -> Filter {
        Filter {
            text: self.masks.iter().map(Masker::stream).collect(),
            reasoning: self.masks.iter().map(Masker::stream).collect(),
            record: self.store.as_ref().map(|_| Recorder::default()),
        }
    }
}

/// One answer going through the response stage.
pub struct Filter {
    text: Vec<MaskStream>,
    reasoning: Vec<MaskStream>,
    record: Option<Recorder>,
}

/// Push a piece through a chain of mask streams; `finish` flushes them in order.
fn through(chain: &mut [MaskStream], piece: &str, finish: bool) -> String {
    let mut text = piece.to_string();
    for s in chain.iter_mut() {
        text = s.push(&text);
        if finish {
            text.push_str(&s.finish());
        }
    }
    text
}

impl Filter {
    /// Rewrite a batch of stream events in place.
    pub fn events(&mut self, events: &mut Vec<Event>) {
        if !self.text.is_empty() {
            let input = std::mem::take(events);
            for e in input {
                match e {
                    Event::Text(t) => {
                        let out = through(&mut self.text, &t, false);
                        if !out.is_empty() {
                            events.push(Event::Text(out));
                        }
                    }
                    Event::Reasoning(r) => {
                        let out = through(&mut self.reasoning, &r, false);
                        if !out.is_empty() {
                            events.push(Event::Reasoning(out));
                        }
                    }
                    other => {
                        // Anything else ends the text before it: flush what is held.
                        let rest = through(&mut self.text, "", true);
                        if !rest.is_empty() {
                            events.push(Event::Text(rest));
                        }
                        let rest = through(&mut self.reasoning, "", true);
                        if !rest.is_empty() {
                            events.push(Event::Reasoning(rest));
                        }
                        events.push(other);
                    }
                }
            }
        }
        if let Some(r) = self.record.as_mut() {
            for e in events.iter() {
                r.saw(e);
            }
        }
    }

    /// Rewrite a complete answer.
    pub fn response(&mut self, resp: &mut Response) {
        for part in &mut resp.content {
            match part {
                Part::Text(t) => *t = through(&mut self.text, t, true),
                Part::Reasoning(r) => *r = through(&mut self.reasoning, r, true),
                _ => {}
            }
        }
        if let Some(r) = self.record.as_mut() {
            r.whole = Some(resp.clone());
        }
    }

    /// The answer as recorded, when it is complete and cacheable.
    pub fn recorded(self) -> Option<Response> {
        self.record?.finish()
    }
}

/// Builds the complete answer from a stream's events.
#[derive(Default)]
struct Recorder {
    resp: Option<Response>,
    whole: Option<Response>,
    size: usize,
    spoiled: bool,
}

impl Recorder {
    fn saw(&mut self, e: &Event) {
        if self.spoiled {
            return;
        }
        let resp = self.resp.get_or_insert_with(|| Response {
            id: String::new(),
            model: String::new(),
            created: 0,
            content: Vec::new(),
            finish: None,
            usage: None,
        });
        match e {
            Event::Start { id, model, created } => {
                resp.id.clone_from(id);
                resp.model.clone_from(model);
                resp.created = *created;
            }
            Event::Text(t) => {
                self.size += t.len();
                match resp.content.last_mut() {
                    Some(Part::Text(last)) => last.push_str(t),
                    _ => resp.content.push(Part::Text(t.clone())),
                }
            }
            Event::Reasoning(r) => {
                self.size += r.len();
                match resp.content.last_mut() {
                    Some(Part::Reasoning(last)) => last.push_str(r),
                    _ => resp.content.push(Part::Reasoning(r.clone())),
                }
            }
            Event::ToolCallStart { id, name, .. } => resp.content.push(Part::ToolCall(ToolCall {
                id: id.clone(),
                name: name.clone(),
                arguments: String::new(),
            })),
            Event::ToolCallArguments { index, fragment } => {
                self.size += fragment.len();
                if let Some(Part::ToolCall(c)) = resp
                    .content
                    .iter_mut()
                    .filter(|p| matches!(p, Part::ToolCall(_)))
                    .nth(*index)
                {
                    c.arguments.push_str(fragment);
                }
            }
            Event::Finish(f) => resp.finish = Some(f.clone()),
            Event::Usage(u) => resp.usage = Some(*u),
            Event::Error(_) => self.spoiled = true,
        }
        if self.size > MAX_RECORDED {
            self.spoiled = true;
        }
    }

    fn finish(self) -> Option<Response> {
        if self.spoiled {
            return None;
        }
        self.whole.or(self.resp).filter(|r| r.finish.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_translate::canonical::FinishReason;

    #[test]
    fn a_masked_stream_is_recorded_as_the_client_saw_it() {
        let masker = Masker::compile(&[], &["email".to_string()], 256).unwrap();
        let stage = ResponseStage {
            masks: vec![masker],
            store: None,
        };
        let mut f = stage.filter();
        f.record = Some(Recorder::default());
        let mut out = Vec::new();
        for piece in ["write to a", "na@exa", "mple.com", " today"] {
            let mut events = vec![Event::Text(piece.to_string())];
            f.events(&mut events);
            out.extend(events);
        }
        let mut end = vec![Event::Finish(FinishReason::Stop)];
        f.events(&mut end);
        out.extend(end);
        let text: String = out
            .iter()
            .filter_map(|e| match e {
                Event::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, "write to [EMAIL] today");
        assert!(matches!(out.last(), Some(Event::Finish(_))));
        let recorded = f.recorded().unwrap();
        assert_eq!(
            recorded.content,
            vec![Part::Text("write to [EMAIL] today".into())]
        );
    }

    #[test]
    fn a_failed_stream_is_not_recorded() {
        let stage = ResponseStage::default();
        let mut f = stage.filter();
        f.record = Some(Recorder::default());
        let mut events = vec![
            Event::Text("partial".into()),
            Event::Error(sluice_translate::canonical::ErrorInfo::incomplete()),
        ];
        f.events(&mut events);
        assert!(f.recorded().is_none());
    }
}
