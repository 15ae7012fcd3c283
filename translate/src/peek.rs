//! The few fields of a request the proxy decides on, read once from the client's body
//! in any of the three dialects: the model, whether it streams, whether it asked for a
//! final usage chunk, whether it set an output limit.
//!
//! Every request pays this parse, translated or not, so it lives beside the other
//! readers of this crate and is benchmarked with them (`benches/`).

use std::ops::Range;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::json_edit::{self, Edit};
use crate::json_scan::{Member, Scan};

/// Why a body was refused: it is not one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedJson(pub String);

/// The fields of a request the proxy decides on, in any of the three dialects. The
/// parse validates the whole document (so malformed JSON is refused here, not by the
/// provider) without building it: every other field is skipped.
#[derive(Debug, Deserialize)]
pub struct Peek {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<IgnoredAny>,
    /// Where the members a pass-through route may rewrite lie; none when serde read the
    /// body.
    #[serde(skip)]
    pub layout: Option<Layout>,
}

/// Where a body's rewritable members lie, found by the plain reader on its way through
/// the whole document: enough to splice every change into one copy
/// ([`crate::json_edit::splice`]) rather than scan the body again for each (a change
/// to a 128 KiB conversation cost a full scan of it, about 80 µs, per member).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The length of the body read, so a layout is not applied to another body (one a
    /// policy rewrote).
    pub len: usize,
    /// Just past the object's `{`.
    pub open: usize,
    /// Whether the object has no members.
    pub empty: bool,
    /// The byte range of each member's value, `null` included, when present.
    pub model: Option<Range<usize>>,
    pub stream_options: Option<Range<usize>>,
    pub max_tokens: Option<Range<usize>>,
}

impl Layout {
    /// The value range of the top-level member `key`: `Some(None)` when it is absent,
    /// `None` for a key this layout does not record.
    pub fn member(&self, key: &str) -> Option<Option<Range<usize>>> {
        match key {
            "model" => Some(self.model.clone()),
            "stream_options" => Some(self.stream_options.clone()),
            "max_tokens" => Some(self.max_tokens.clone()),
            _ => None,
        }
    }

    /// `body` with each top-level member of `changes` set to its raw JSON value, in one
    /// copy: replaced where present, inserted first where absent, the bytes
    /// [`json_edit::set`] gives member by member. `None` for a key this layout does not
    /// record or a body of another length than the one read (one a policy rewrote):
    /// the caller edits by scanning then.
    pub fn apply(&self, body: &[u8], changes: &[(&'static str, &[u8])]) -> Option<Vec<u8>> {
        if body.len() != self.len {
            return None;
        }
        let edits = changes
            .iter()
            .map(|&(key, value)| {
                Some(match self.member(key)? {
                    Some(range) => Edit::Replace {
                        value: range,
                        with: value,
                    },
                    None => Edit::Insert { key, value },
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(json_edit::splice(body, self.open, self.empty, &edits))
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

impl Peek {
    pub fn parse(body: &[u8]) -> Result<Self, MalformedJson> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(MalformedJson("the body is empty".into()));
        }
        if let Some(peek) = Self::scan(body) {
            return Ok(peek);
        }
        serde_json::from_slice(body).map_err(|e| MalformedJson(e.to_string()))
    }

    /// The fields read by `json_scan`, when it is sure serde would read the same; the
    /// rest of the document is checked as serde checks what it ignores. (serde's
    /// derive took about 2,100 instructions for a small chat request, most of them in
    /// skipping `messages`.)
    fn scan(body: &[u8]) -> Option<Self> {
        let mut peek = Self {
            model: None,
            stream: false,
            stream_options: None,
            max_tokens: None,
            layout: None,
        };
        let mut layout = Layout {
            empty: true,
            ..Layout::default()
        };
        let mut s = Scan::new(body);
        s.object(|s, key| {
            layout.empty = false;
            let start = s.position();
            let span = |s: &Scan| Some(start..s.position());
            Some(match key {
                b"model" => {
                    if !s.null() {
                        let model = std::str::from_utf8(s.plain()?).ok()?;
                        peek.model = Some(model.to_owned());
                    }
                    layout.model = span(s);
                    Member::Known(0)
                }
                b"stream" => {
                    peek.stream = s.boolean()?;
                    Member::Known(1)
                }
                b"stream_options" => {
                    if !s.null() {
                        let mut include_usage = false;
                        s.object(|s, key| match key {
                            b"include_usage" => {
                                include_usage = s.boolean()?;
                                Some(Member::Known(0))
                            }
                            _ => s.skip().map(|()| Member::Other),
                        })?;
                        peek.stream_options = Some(StreamOptions { include_usage });
                    }
                    layout.stream_options = span(s);
                    Member::Known(2)
                }
                b"max_tokens" => {
                    if !s.null() {
                        s.skip()?;
                        peek.max_tokens = Some(IgnoredAny);
                    }
                    layout.max_tokens = span(s);
                    Member::Known(3)
                }
                _ => {
                    s.skip()?;
                    Member::Other
                }
            })
        })?;
        if !s.at_end() {
            return None;
        }
        // The document is an object, so its first byte after whitespace is the `{`.
        layout.open = body.iter().position(|&c| c == b'{')? + 1;
        layout.len = body.len();
        peek.layout = Some(layout);
        Some(peek)
    }

    /// Whether the client asked for OpenAI's final usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_stream_and_rejects_bad_json() {
        assert!(
            Peek::parse(br#"{"model":"m","stream":true,"messages":[]}"#)
                .expect("ok")
                .stream
        );
        assert!(
            !Peek::parse(br#"{"messages":[{"role":"user","content":"hi"}]}"#)
                .expect("ok")
                .stream
        );
        for bad in [
            &b""[..],
            b"  ",
            b"{",
            b"[1,2]",
            b"\"x\"",
            b"{\"stream\":\"yes\"}",
            b"{\"model\":1}",
            b"{\"model\":\"a\",\"model\":\"b\"}",
            b"{} trailing",
        ] {
            assert!(
                Peek::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn fields(p: &Peek) -> (Option<&str>, bool, bool, bool) {
        (
            p.model.as_deref(),
            p.stream,
            p.include_usage(),
            p.max_tokens.is_some(),
        )
    }

    /// The plain reader answers only as serde would, on every shape of the fields it
    /// reads and of what it skips.
    #[test]
    fn the_plain_reader_agrees_with_serde() {
        let bodies = [
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say \"hi\"\n\u00e9"}]}"#,
            r#" {"stream":true,"stream_options":{"include_usage":true,"x":[1]},"max_tokens":5} "#,
            r#"{"model":null,"stream":false,"stream_options":null,"max_tokens":null}"#,
            r#"{"stream_options":{},"max_tokens":{"a":[]},"temperature":-0.5e-3}"#,
            "{\"messages\":[{\"content\":\"caf\u{e9} \u{1F600}\"}],\"model\":\"m\"}",
            r#"{"model":"caf\u00e9"}"#,
            "{\"model\":\"caf\u{e9}\"}",
            r#"{"stream":null}"#,
            r#"{"stream":1}"#,
            r#"{"stream_options":{"include_usage":null}}"#,
            r#"{"stream_options":[true]}"#,
            r#"{"stream_options":{"include_usage":true,"include_usage":false}}"#,
            r#"{"max_tokens":5,"max_tokens":6}"#,
            r#"{"model":"a","model":"b"}"#,
            r#"{"messages":"a\tb"}"#,
            r#"{"messages":[1,]}"#,
            r#"{"n":01}"#,
            r#"{"x":"\q"}"#,
            r#"{} {}"#,
            r#"[]"#,
            r#"{"a":1"#,
        ];
        for body in bodies {
            let plain = Peek::scan(body.as_bytes());
            let serde = serde_json::from_str::<Peek>(body);
            match (&plain, &serde) {
                (Some(p), Ok(s)) => assert_eq!(fields(p), fields(s), "{body}"),
                (Some(_), Err(e)) => panic!("{body}: serde refused it ({e})"),
                (None, _) => {}
            }
        }
        // The common shapes are read plainly, not left to serde.
        for body in &bodies[..5] {
            assert!(Peek::scan(body.as_bytes()).is_some(), "{body}");
        }
        // And thousands of mutations of them (bytes flipped, cut, repeated).
        let mut seed = 0x5eed_0006_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let mut read_plainly = 0;
        for round in 0..6000 {
            let mut body = bodies[round % bodies.len()].as_bytes().to_vec();
            for _ in 0..=next(3) {
                let at = next(body.len());
                match next(4) {
                    0 if !body.is_empty() => body[at] = b"{}[]\":,\\ \t0a-e.nu\x01\xc3"[next(19)],
                    1 => body.truncate(at),
                    2 => {
                        let span = body[at..(at + next(12)).min(body.len())].to_vec();
                        let to = next(body.len());
                        body.splice(to..to, span);
                    }
                    _ => {
                        let end = (at + next(6)).min(body.len());
                        body.drain(at..end);
                    }
                }
            }
            let serde = serde_json::from_slice::<Peek>(&body);
            if let Some(p) = Peek::scan(&body) {
                read_plainly += 1;
                let s = serde.unwrap_or_else(|e| {
                    panic!("{}: serde refused it ({e})", String::from_utf8_lossy(&body))
                });
                assert_eq!(fields(&p), fields(&s), "{}", String::from_utf8_lossy(&body));
                // And its layout splices as a rescan would.
                let layout = p.layout.expect("laid out");
                let changes: [(&'static str, &[u8]); 2] =
                    [("model", b"\"x\""), ("max_tokens", b"7")];
                let mut rescanned = body.clone();
                for (key, value) in changes {
                    rescanned = crate::json_edit::set(&rescanned, key, value).expect("object");
                }
                let spliced = layout.apply(&body, &changes).expect("applied");
                assert_eq!(spliced, rescanned, "{}", String::from_utf8_lossy(&body));
            }
        }
        assert!(read_plainly > 300, "{read_plainly} read plainly");
    }

    /// Every subset of the changes a pass-through route makes, spliced by the layout,
    /// gives the bytes that scanning and splicing each member in turn gives, on every
    /// body the plain reader lays out: present, absent, `null`, spaced, empty.
    #[test]
    fn a_layout_splices_as_rescanning_does() {
        let bodies = [
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{}"#,
            " { } ",
            "\n{\n  \"stream\" : true ,\n  \"max_tokens\":null, \"model\": null\n}\n",
            r#"{"messages":[],"stream_options":{"include_usage":false},"stream":true}"#,
            r#"{"stream_options":null,"model":"m","max_tokens":12,"x":{"model":"inner"}}"#,
            r#"{"x":"{\"model\":1}","max_tokens":1e3}"#,
        ];
        let changes: [(&'static str, &[u8]); 3] = [
            ("model", b"\"gpt-4.1-mini\""),
            ("stream_options", br#"{"include_usage":true}"#),
            ("max_tokens", b"8192"),
        ];
        for body in bodies {
            let body = body.as_bytes();
            let layout = Peek::scan(body)
                .and_then(|p| p.layout)
                .unwrap_or_else(|| panic!("{}: not laid out", String::from_utf8_lossy(body)));
            for mask in 0..8u32 {
                let chosen: Vec<_> = (0..3)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| changes[i])
                    .collect();
                let mut rescanned = body.to_vec();
                for (key, value) in &chosen {
                    rescanned = json_edit::set(&rescanned, key, value).expect("an object");
                }
                let spliced = layout.apply(body, &chosen).expect("applied");
                let text = String::from_utf8_lossy(body);
                let (a, b) = (
                    serde_json::from_slice::<serde_json::Value>(&spliced),
                    serde_json::from_slice::<serde_json::Value>(&rescanned),
                );
                assert!(
                    a.is_ok(),
                    "{text} {mask}: {}",
                    String::from_utf8_lossy(&spliced)
                );
                assert_eq!(a.ok(), b.ok(), "{text} {mask}");
                assert_eq!(spliced, rescanned, "{text} {mask}");
            }
        }
    }
}
