//! An incremental Server-Sent Events parser and writer.
//!
//! Upstream bytes arrive in arbitrary chunks: an event can be split anywhere, even inside
//! a UTF-8 sequence or between `\r` and `\n`. The parser keeps only the unfinished line
//! and the event being built, and refuses to grow either past a limit, so a hostile or
//! broken upstream cannot make the proxy buffer without bound.

use bytes::{BufMut, BytesMut};

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` for unnamed (`message`) events.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE event exceeds {0} bytes")]
    TooLarge(usize),
    #[error("an SSE event is not UTF-8")]
    NotUtf8,
}

/// The default cap on one event: generous for a tool call's arguments, small enough
/// that a runaway stream cannot exhaust memory.
pub const DEFAULT_MAX_EVENT: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    max: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT)
    }
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            event: None,
            data: Vec::new(),
            has_data: false,
            max: max_event_bytes,
        }
    }

    /// Feed a chunk; complete events are appended to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(at) => {
                    let (head, rest) = chunk.split_at(at);
                    chunk = &rest[1..];
                    if self.line.is_empty() {
                        self.line_done(head, out)?;
                    } else {
                        self.grow(head.len())?;
                        self.line.extend_from_slice(head);
                        let line = std::mem::take(&mut self.line);
                        self.line_done(&line, out)?;
                    }
                }
                None => {
                    self.grow(chunk.len())?;
                    self.line.extend_from_slice(chunk);
                    chunk = &[];
                }
            }
        }
        Ok(())
    }

    /// The end of the upstream body: an event not closed by a blank line is still
    /// delivered (some servers end the stream right after the last `data:` line).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
        }
        self.dispatch(out)
    }

    fn grow(&self, more: usize) -> Result<(), SseError> {
        if self.line.len() + self.data.len() + more > self.max {
            Err(SseError::TooLarge(self.max))
        } else {
            Ok(())
        }
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.grow(value.len() + 1)?;
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                let name = std::str::from_utf8(value).map_err(|_| SseError::NotUtf8)?;
                self.event = Some(name.to_string());
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.has_data && self.event.is_none() {
            return Ok(());
        }
        let data =
            String::from_utf8(std::mem::take(&mut self.data)).map_err(|_| SseError::NotUtf8)?;
        out.push(SseEvent {
            event: self.event.take(),
            data,
        });
        self.has_data = false;
        Ok(())
    }
}

/// Append one event in wire form: `event: name` (when named) and one `data:` line.
/// `data` must not contain a newline; JSON from `serde_json` never does.
pub fn write_event(out: &mut BytesMut, event: Option<&str>, data: impl AsRef<[u8]>) {
    if let Some(name) = event {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\n");
    }
    out.put_slice(b"data: ");
    out.put_slice(data.as_ref());
    out.put_slice(b"\n\n");
}

/// Write an event whose data is `value` as JSON, serialized straight into `out`: no
/// string in between, and no `serde_json::Value` tree when `value` borrows its parts.
pub fn write_json_event<T: serde::Serialize>(out: &mut BytesMut, event: Option<&str>, value: &T) {
    if let Some(name) = event {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\n");
    }
    out.put_slice(b"data: ");
    // Writing to memory cannot fail, and the callers' values are plain data.
    let _ = serde_json::to_writer((&mut *out).writer(), value);
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            p.push(chunk, &mut out).expect("parse");
        }
        p.finish(&mut out).expect("finish");
        out
    }

    #[test]
    fn events_survive_any_split() {
        let input = "event: message_start\r\ndata: {\"a\":\"é\"}\r\n\r\n: keep-alive\n\ndata: one\ndata: two\n\ndata:[DONE]";
        let want = vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":\"é\"}".into(),
            },
            SseEvent {
                event: None,
                data: "one\ntwo".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ];
        for piece in 1..input.len() {
            assert_eq!(
                parse_in_pieces(input.as_bytes(), piece),
                want,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert_eq!(
            p.push(b"data: 0123456789abcdefghij", &mut out),
            Err(SseError::TooLarge(16))
        );
        let mut p = SseParser::new(16);
        assert!(
            p.push(b"data: 0123456789\ndata: 0123456789\n", &mut out)
                .is_err()
        );
    }

    #[test]
    fn writes_named_and_unnamed_events() {
        let mut out = BytesMut::new();
        write_event(&mut out, Some("ping"), "{}");
        write_event(&mut out, None, "[DONE]");
        assert_eq!(&out[..], b"event: ping\ndata: {}\n\ndata: [DONE]\n\n");
    }
}

/// Splits a byte stream into whole raw events (terminator included) without parsing
/// them, for a pass-through stream that must forward the provider's exact bytes but
/// look at each event. Only the unfinished event is kept.
#[derive(Debug, Default)]
pub struct EventSplitter {
    pending: BytesMut,
}

impl EventSplitter {
    /// Feed a chunk; each complete raw event is passed to `each`.
    pub fn push(
        &mut self,
        chunk: &[u8],
        max: usize,
        mut each: impl FnMut(bytes::Bytes),
    ) -> Result<(), SseError> {
        self.pending.extend_from_slice(chunk);
        loop {
            let lf = memchr::memmem::find(&self.pending, b"\n\n").map(|at| at + 2);
            let crlf = memchr::memmem::find(&self.pending, b"\r\n\r\n").map(|at| at + 4);
            let end = match (lf, crlf) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(end) => end,
                    None => break,
                },
            };
            each(self.pending.split_to(end).freeze());
        }
        if self.pending.len() > max {
            return Err(SseError::TooLarge(max));
        }
        Ok(())
    }

    /// Whatever is left at the end of the stream.
    pub fn rest(&mut self) -> bytes::Bytes {
        self.pending.split().freeze()
    }
}
