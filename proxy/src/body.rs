//! Reading the request body, bounded, and the one parse of it the proxy needs here.
//!
//! A body larger than the limit is refused from its `Content-Length` before a byte is
//! read, or as soon as the running total passes the limit for chunked uploads.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;

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
        serde_json::from_slice(body).map_err(|e| ProxyError::MalformedJson(e.to_string()))
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
}
