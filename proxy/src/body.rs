//! Reading the request body, bounded, and the one parse of it the proxy needs here.
//!
//! A body larger than the limit is refused from its `Content-Length` before a byte is
//! read, or as soon as the running total passes the limit for chunked uploads.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sluice_translate::json_scan::{Member, Scan};

use crate::error::ProxyError;
use crate::session::Session;

/// Read the whole request body, refusing more than `limit` bytes.
pub async fn read(session: &mut Session, limit: usize) -> Result<Bytes, ProxyError> {
    let declared = session.body_length();
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ProxyError::BodyTooLarge(limit));
    }
    let first = match session.read_request_body().await {
        Ok(Some(piece)) => piece,
        Ok(None) => return Ok(Bytes::new()),
        Err(_) => return Err(ProxyError::BodyUnreadable),
    };
    if first.len() > limit {
        return Err(ProxyError::BodyTooLarge(limit));
    }
    // The usual case, a body that arrived with its head or in one read: it is handed
    // on as read, no copy.
    if declared == Some(first.len() as u64) {
        return Ok(first);
    }
    let expected = declared.map_or(4096, |n| n as usize);
    let mut buf = BytesMut::with_capacity(expected.clamp(first.len(), limit));
    buf.extend_from_slice(&first);
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    return Err(ProxyError::BodyTooLarge(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(_) => return Err(ProxyError::BodyUnreadable),
        }
    }
}

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
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

impl Peek {
    pub fn parse(body: &[u8]) -> Result<Self, ProxyError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ProxyError::MalformedJson("the body is empty".into()));
        }
        if let Some(peek) = Self::scan(body) {
            return Ok(peek);
        }
        serde_json::from_slice(body).map_err(|e| ProxyError::MalformedJson(e.to_string()))
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
        };
        let mut s = Scan::new(body);
        s.object(|s, key| {
            Some(match key {
                b"model" => {
                    if !s.null() {
                        let model = std::str::from_utf8(s.plain()?).ok()?;
                        peek.model = Some(model.to_owned());
                    }
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
                    Member::Known(2)
                }
                b"max_tokens" => {
                    if !s.null() {
                        s.skip()?;
                        peek.max_tokens = Some(IgnoredAny);
                    }
                    Member::Known(3)
                }
                _ => {
                    s.skip()?;
                    Member::Other
                }
            })
        })?;
        s.at_end().then_some(peek)
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
            }
        }
        assert!(read_plainly > 300, "{read_plainly} read plainly");
    }
}
