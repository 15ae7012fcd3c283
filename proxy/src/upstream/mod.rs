//! sluice's HTTP/1.1 client for provider connections: one request out, one response
//! in, the connection back to Pingora's pool when both sides allow it.
//!
//! Pingora's client session keeps, for as long as a response is read (a stream's whole
//! life), a 4 KiB header read buffer, a 64 KiB body buffer, the parsed request and
//! response heads (each with a second map for header-name case) and a boxed digest; its
//! body reads copy every chunk out of the body buffer. With 1,000 open streams that was
//! about 12 KiB a stream, a third of sluice's memory per stream (README, "Measured").
//!
//! This client keeps one read buffer and hands the body out as slices of it (chunked
//! framing is decoded in place, `chunked`). The buffer is dropped whenever the caller has
//! taken all of it, so a stream waiting for its next event holds none; the next read
//! allocates afresh, sized by how much the last read found (4 KiB, doubling while reads
//! fill it, to 64 KiB). The request is written as one buffer (head and a body of up to
//! 64 KiB), so the provider sees it in one segment. The response head is returned to the
//! caller, who drops it once the client's head is built.

pub(crate) mod pool;
mod response;

use std::io;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::Method;
use pingora_core::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bound::{Bound, Due};
use crate::error::ProxyError;
use crate::fields::Fields;
use crate::h1::chunked::{ChunkError, Decoded};
use crate::h1::{self, Body};
use response::Head;
pub(crate) use response::HeadError;

/// The first read's size, and the smallest spare room a read is given.
const READ_SIZE: usize = 4096;
/// Reads that fill the buffer double the next one's size up to this.
const MAX_READ_SIZE: usize = 64 * 1024;
/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// A body up to this size is copied behind the request head and sent with it.
const INLINE_BODY: usize = 64 * 1024;

/// Why an exchange with a provider failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("the provider closed the connection {0}")]
    Closed(&'static str),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error("the response head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("the provider switched protocols unasked")]
    Upgrade,
}

impl UpstreamError {
    /// Whether the connection failed as a pooled one does when the provider closed it
    /// while it was idle: safe to try again on a fresh connection.
    pub(crate) fn stale(&self) -> bool {
        matches!(self, Self::Closed(_) | Self::Io { .. })
    }
}

impl From<&UpstreamError> for ProxyError {
    fn from(e: &UpstreamError) -> Self {
        match e {
            UpstreamError::Timeout(_) => ProxyError::UpstreamTimeout,
            UpstreamError::Closed(_) | UpstreamError::Io { .. } => ProxyError::UpstreamFailed,
            other => ProxyError::BadUpstreamResponse(other.to_string()),
        }
    }
}

/// A response head as the caller sees it.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub fields: Fields,
    /// The body's length, when the head gave it (not for a chunked body, nor one that
    /// ends with the connection).
    pub length: Option<u64>,
}

/// One provider connection and the exchange on it.
pub(crate) struct Conn {
    stream: Stream,
    /// Bytes read and not yet handed out; empty and unallocated between reads.
    buf: BytesMut,
    read_size: usize,
    read_timeout: Option<Duration>,
    /// The timer of the exchange's reads (`bound`).
    reads: Bound,
    /// The response body; `None` before the head is read.
    body: Option<Body>,
    keep_alive: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("buffered", &self.buf.len())
            .field("body", &self.body)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

/// A request written straight into the buffer that is sent: request line, headers,
/// blank line and, when it is small enough to copy, the body.
pub(crate) struct RequestWriter {
    out: BytesMut,
}

impl RequestWriter {
    /// Start a request; `head_size` is a guess at the head's length (the buffer grows
    /// past it if need be), `body_len` the body's.
    pub(crate) fn new(method: &Method, path: &str, head_size: usize, body_len: usize) -> Self {
        let inline = if body_len <= INLINE_BODY { body_len } else { 0 };
        let mut out = BytesMut::with_capacity(head_size + path.len() + 24 + inline);
        out.put_slice(method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(path.as_bytes());
        out.put_slice(b" HTTP/1.1\r\n");
        Self { out }
    }

    pub(crate) fn header(&mut self, name: &[u8], value: &[u8]) {
        self.out.put_slice(name);
        self.out.put_slice(b": ");
        self.out.put_slice(value);
        self.out.put_slice(b"\r\n");
    }

    /// End the head; returns the bytes to send first and what is left of the body to
    /// write after them.
    pub(crate) fn finish(mut self, body: &[u8]) -> (BytesMut, &[u8]) {
        self.out.put_slice(b"\r\n");
        if body.len() <= INLINE_BODY {
            self.out.put_slice(body);
            (self.out, &[])
        } else {
            (self.out, body)
        }
    }
}

/// The request's bytes from a header map (see [`RequestWriter`]), for tests.
#[cfg(test)]
pub(crate) fn encode_request<'b>(
    method: &Method,
    path: &str,
    headers: &http::HeaderMap,
    body: &'b [u8],
) -> (BytesMut, &'b [u8]) {
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    let mut w = RequestWriter::new(method, path, size + 2, body.len());
    for (name, value) in headers {
        w.header(name.as_str().as_bytes(), value.as_bytes());
    }
    w.finish(body)
}

impl Conn {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            read_size: READ_SIZE,
            read_timeout: None,
            reads: Bound::default(),
            body: None,
            keep_alive: false,
        }
    }

    /// The longest wait for any one read (and for sending the request).
    pub(crate) fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Send a request (from [`encode_request`]).
    pub(crate) async fn send(&mut self, first: &[u8], rest: &[u8]) -> Result<(), UpstreamError> {
        let stream = &mut self.stream;
        let write = async {
            stream.write_all(first).await?;
            if !rest.is_empty() {
                stream.write_all(rest).await?;
            }
            stream.flush().await
        };
        let written = match self.read_timeout {
            Some(t) => self
                .reads
                .run(Due::After(t), write)
                .await
                .ok_or(UpstreamError::Timeout("sending the request"))?,
            None => write.await,
        };
        written.map_err(|source| UpstreamError::Io {
            context: "sending the request",
            source,
        })
    }

    /// Read the response head, past any interim (1xx) ones.
    pub(crate) async fn read_head(&mut self) -> Result<Response, UpstreamError> {
        loop {
            if let Some(head) = response::parse(&mut self.buf)? {
                let Head {
                    status,
                    fields,
                    framing,
                    keep_alive,
                } = head;
                match status {
                    101 => return Err(UpstreamError::Upgrade),
                    100..=199 => continue,
                    _ => {}
                }
                self.keep_alive = keep_alive;
                self.body = Some(Body::new(framing));
                h1::let_go(&mut self.buf);
                let length = match framing {
                    h1::Framing::Length(n) => Some(n),
                    _ => None,
                };
                return Ok(Response {
                    status,
                    fields,
                    length,
                });
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(UpstreamError::HeadTooLarge);
            }
            if self.fill("while reading the response head").await? == 0 {
                return Err(UpstreamError::Closed("before its response head"));
            }
        }
    }

    /// The next piece of the body; `None` once it is complete.
    pub(crate) async fn read_body(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        loop {
            if let Some(next) = self.read_body_now() {
                return next;
            }
            if self.fill("while reading the body").await? == 0 {
                return if self.body.as_mut().is_some_and(Body::closed) {
                    Ok(None)
                } else {
                    Err(UpstreamError::Closed("before the end of the body"))
                };
            }
        }
    }

    /// What [`Self::read_body`] would return, when that needs no read from the
    /// socket: the next piece already in the buffer, or the end already reached.
    /// `None` when more bytes must come first. A relay gathers what a burst brought in
    /// one read this way, for one write to its client.
    pub(crate) fn read_body_now(&mut self) -> Option<Result<Option<Bytes>, UpstreamError>> {
        let Some(body) = self.body.as_mut() else {
            return Some(Ok(None));
        };
        match body.next(&mut self.buf) {
            Ok(Decoded::Data(piece)) => Some(Ok(Some(piece))),
            Ok(Decoded::End) => Some(Ok(None)),
            Ok(Decoded::NeedMore) => None,
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Whether the whole response is read.
    pub(crate) fn is_done(&self) -> bool {
        self.body.as_ref().is_some_and(Body::is_done)
    }

    /// The connection, when it may carry another request: the response is complete,
    /// both sides keep the connection, and nothing unasked-for followed the response.
    pub(crate) fn into_reusable(self) -> Option<Stream> {
        (self.is_done() && self.keep_alive && self.buf.is_empty()).then_some(self.stream)
    }

    /// Read once into the buffer; the bytes read, 0 at the end of the stream.
    ///
    /// Each read is bounded by the read timeout, through the exchange's one timer.
    async fn fill(&mut self, context: &'static str) -> Result<usize, UpstreamError> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(self.read_size);
        }
        let spare = self.buf.capacity() - self.buf.len();
        let read = self.stream.read_buf(&mut self.buf);
        let n = match self.read_timeout {
            Some(t) => self
                .reads
                .run(Due::After(t), read)
                .await
                .ok_or(UpstreamError::Timeout(context))?,
            None => read.await,
        }
        .map_err(|source| UpstreamError::Io { context, source })?;
        if n == spare && self.read_size < MAX_READ_SIZE {
            self.read_size *= 2;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
