//! The client's side of a connection: sluice's own HTTP/1.1 server.
//!
//! sluice answers every request itself (see `service`) and never needs what a general
//! server keeps per request. Pingora's server session built each request head twice
//! over (a header map and a second map of each name's original case, every name copied
//! into it), validated and re-serialised through the same case map on the way out, and
//! its read, body and write state machines sat behind a 680-byte session boxed per
//! request. Here a connection is one `Session` for its whole life: the head is parsed
//! once from the bytes read (values are slices of them), the answer's head is written
//! from its header map in one pass, and a short answer leaves with its body in one
//! system call. A write goes straight to the socket; only a write the socket cannot take
//! at once waits, under a timeout (README, "Measured").
//!
//! What a request may be is strict (see `request`): one framing or none, one `Host`,
//! bounded heads, and time limits on a client that starts a request and stalls.

mod closing;
mod request;
#[cfg(test)]
mod tests;
mod write;

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Version};
use sluice_telemetry::metrics::METRICS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tracing::{debug, warn};

use crate::bound::{Bound, Due};
use crate::error::ProxyError;
pub use crate::fields::Fields;
use crate::h1::chunked::{ChunkError, Decoded};
use crate::h1::{self, Body, Framing};
use crate::head;
pub(crate) use closing::Closing;
use request::MAX_HEAD;
pub use request::RequestHead;

/// How long a kept-alive connection may wait for its next request (Pingora's default).
const IDLE: Duration = Duration::from_secs(60);
/// How long a request head may take to arrive once its first byte has: a client that
/// trickles a head (slowloris) is cut off, with 408.
const HEAD_TIME: Duration = Duration::from_secs(30);
/// The longest wait for any one read of a request body.
const BODY_READ_TIME: Duration = Duration::from_secs(60);
/// The longest a write waits for a client that does not read.
const WRITE_TIME: Duration = Duration::from_secs(60);
/// Room a read is given in the buffer at least.
const READ_SIZE: usize = 4096;
/// The most a body read asks for at once.
const MAX_BODY_READ: usize = 64 * 1024;
/// After refusing a request whose body was not read, how much of it is read and
/// dropped (and for how long) before the connection closes, so that closing with unread
/// bytes does not reset the connection and destroy the answer before the client reads
/// it (RFC 9112 §9.6).
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// What a connection brought next.
#[derive(Debug)]
pub(crate) enum Next {
    /// A request head, now in [`Session::req_header`].
    Request,
    /// The client closed, went idle, or broke off mid-head: nothing to answer.
    Closed,
    /// A head that cannot be served: answered with this and the connection closed.
    Refused(ProxyError),
}

/// The state of the answer.
#[derive(Debug)]
enum Out {
    /// Nothing written yet.
    Unwritten,
    /// The head, held to leave with the first piece of the body.
    Held(Vec<u8>, Framing),
    /// The head is sent; the body follows in this framing.
    Sending(Framing),
    Done,
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the client closed the connection before the end of the body")]
    Closed,
    #[error("no part of the body arrived for {0:?}")]
    Timeout(Duration),
    #[error("malformed chunked body: {0}")]
    Chunked(#[from] ChunkError),
    #[error("reading the body failed: {0}")]
    Io(#[from] io::Error),
}

/// A client connection and the request it is on.
pub struct Session {
    tcp: TcpStream,
    peer: SocketAddr,
    /// Read and not yet handed out: the rest of a head, body bytes, or a pipelined
    /// request. Dropped whenever it is empty, so an idle connection or an open stream
    /// holds none.
    buf: BytesMut,
    head: RequestHead,
    body: Body,
    /// The client waits for `100 Continue` before sending its body.
    expect_continue: bool,
    /// Whether the connection carries another request after this one.
    keep_alive: bool,
    out: Out,
    status: Option<http::StatusCode>,
    /// The timer of the connection's reads, kept between them (`bound`).
    reads: Bound,
}

impl Session {
    /// A connection just accepted.
    pub(crate) fn new(tcp: TcpStream, peer: SocketAddr) -> Self {
        // Every write is a whole answer or a piece of a stream meant to leave now;
        // Nagle's delay would only hold the last segment of each back.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "TCP_NODELAY failed");
        }
        Self {
            tcp,
            peer,
            buf: BytesMut::new(),
            head: RequestHead::default(),
            body: Body::Done,
            expect_continue: false,
            keep_alive: true,
            out: Out::Done,
            status: None,
            reads: Bound::default(),
        }
    }

    /// Read the next request's head, waiting up to a minute for it to begin.
    pub(crate) async fn read_request(&mut self) -> Next {
        // The last request's field list is kept for this one's (emptied).
        let storage = std::mem::take(&mut self.head).headers.into_storage();
        let mut storage = Some(storage);
        self.body = Body::Done;
        self.out = Out::Unwritten;
        self.status = None;
        self.expect_continue = false;
        let mut deadline = None;
        loop {
            request::skip_empty_lines(&mut self.buf);
            if let Some(end) = request::head_end(&self.buf) {
                if end > MAX_HEAD {
                    return Next::Refused(ProxyError::HeadTooLarge);
                }
                let bytes = self.buf.split_to(end);
                h1::let_go(&mut self.buf);
                return match request::parse(bytes, storage.take().unwrap_or_default()) {
                    Ok(parsed) => {
                        self.head = parsed.head;
                        self.body = Body::new(parsed.framing);
                        self.keep_alive &= parsed.keep_alive;
                        self.expect_continue = parsed.expect_continue;
                        Next::Request
                    }
                    Err(e) => {
                        debug!(client = %self.peer, error = %e, "request head refused");
                        Next::Refused(e.answer())
                    }
                };
            }
            if self.buf.len() >= MAX_HEAD {
                return Next::Refused(ProxyError::HeadTooLarge);
            }
            if !self.buf.is_empty()
                && let Err(e) = request::check_partial(&self.buf)
            {
                debug!(client = %self.peer, error = %e, "request head refused");
                return Next::Refused(e.answer());
            }
            if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
                self.buf.reserve(READ_SIZE);
            }
            let idle = self.buf.is_empty();
            let read = self.tcp.read_buf(&mut self.buf);
            let due = if idle {
                Due::After(IDLE)
            } else {
                // Once a head has begun, it has HEAD_TIME to arrive whole.
                Due::At(*deadline.get_or_insert_with(|| Instant::now() + HEAD_TIME))
            };
            match self.reads.run(due, read).await {
                Some(Ok(0) | Err(_)) => return Next::Closed,
                Some(Ok(_)) => {}
                None if idle => return Next::Closed,
                None => return Next::Refused(ProxyError::HeadTimeout),
            }
        }
    }

    /// The request's line and headers.
    pub fn req_header(&self) -> &RequestHead {
        &self.head
    }

    /// Lend the request's headers out while the session is written to (the exchange
    /// with the provider reads them); [`Session::return_headers`] puts them back for
    /// the access log and telemetry. A clone instead would cost an allocation every
    /// request.
    pub fn lend_headers(&mut self) -> Fields {
        std::mem::take(&mut self.head.headers)
    }

    /// Put back what [`Session::lend_headers`] lent.
    pub fn return_headers(&mut self, headers: Fields) {
        self.head.headers = headers;
    }

    /// The request body's declared length, if it has one.
    pub fn body_length(&self) -> Option<u64> {
        match self.body {
            Body::Length(n) => Some(n),
            Body::Done => Some(0),
            Body::Chunked(_) | Body::Close => None,
        }
    }

    /// Read the next piece of the request body; `None` at its end.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            match self.body.next(&mut self.buf)? {
                Decoded::Data(piece) => return Ok(Some(piece)),
                Decoded::End => return Ok(None),
                Decoded::NeedMore => {}
            }
            if std::mem::take(&mut self.expect_continue) && matches!(self.out, Out::Unwritten) {
                send(&self.tcp, &[b"HTTP/1.1 100 Continue\r\n\r\n"]).await?;
            }
            let want = match self.body {
                Body::Length(left) => usize::try_from(left).unwrap_or(usize::MAX),
                _ => READ_SIZE,
            };
            if self.buf.capacity() - self.buf.len() < want.min(READ_SIZE) {
                self.buf.reserve(want.clamp(READ_SIZE, MAX_BODY_READ));
            }
            let read = self.tcp.read_buf(&mut self.buf);
            match self.reads.run(Due::After(BODY_READ_TIME), read).await {
                None => return Err(BodyError::Timeout(BODY_READ_TIME)),
                Some(Ok(0)) => return Err(BodyError::Closed),
                Some(read) => {
                    read?;
                }
            }
        }
    }

    /// Start the answer with its head. The head leaves with the first piece of the
    /// body, or now when there is no body.
    pub async fn write_response_header(&mut self, resp: head::Response<'_>) -> io::Result<()> {
        if !matches!(self.out, Out::Unwritten) {
            warn!("a second response head for one request was dropped");
            return Ok(());
        }
        let status = resp.status;
        let framing = write::framing(
            self.head.method == Method::HEAD,
            self.head.version == Version::HTTP_11,
            status,
            resp.length,
        );
        // An answer delimited by closing ends the connection, and so does one to a
        // request whose body is not all read: unless the rest of it is already here, the
        // next request's first byte could not be found.
        if framing == Framing::Close || !self.skip_buffered_body() {
            self.keep_alive = false;
        }
        let head = write::encode_head(&resp, framing, self.keep_alive);
        // Gone before the write below waits, so this future does not keep it.
        drop(resp);
        self.status = Some(status);
        if framing.complete() {
            // Sending, not done: a body written to a `HEAD` answer is dropped quietly.
            self.out = Out::Sending(framing);
            return self.send(&[&head]).await;
        }
        self.out = Out::Held(head, framing);
        Ok(())
    }

    /// Write a piece of the answer's body; `end` finishes it (with the last chunk of a
    /// chunked answer).
    pub async fn write_response_body(&mut self, body: Option<Bytes>, end: bool) -> io::Result<()> {
        let data = body.unwrap_or_default();
        let (held, framing) = match std::mem::replace(&mut self.out, Out::Done) {
            Out::Held(head, framing) => (head, framing),
            Out::Sending(framing) => (Vec::new(), framing),
            Out::Done if data.is_empty() => return Ok(()),
            Out::Done | Out::Unwritten => {
                self.keep_alive = false;
                return Err(io::Error::other("a response body without its head"));
            }
        };
        let mut line = [0; 20];
        let (line, data, tail, next): (&[u8], &[u8], &[u8], Framing) = match framing {
            Framing::Empty => (&[], &[], &[], Framing::Empty),
            Framing::Length(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                if n < data.len() {
                    warn!(
                        declared = left,
                        written = data.len(),
                        "a response body longer than its length"
                    );
                    self.keep_alive = false;
                }
                (&[], &data[..n], &[], Framing::Length(left - n as u64))
            }
            Framing::Chunked => {
                let line: &[u8] = if data.is_empty() {
                    &[]
                } else {
                    write::chunk_line(data.len(), &mut line)
                };
                let tail: &[u8] = match (data.is_empty(), end) {
                    (false, true) => b"\r\n0\r\n\r\n",
                    (false, false) => b"\r\n",
                    (true, true) => write::LAST_CHUNK,
                    (true, false) => b"",
                };
                (line, &data[..], tail, Framing::Chunked)
            }
            Framing::Close => (&[], &data[..], &[], Framing::Close),
        };
        if end {
            if !next.complete() && next != Framing::Chunked {
                // Shorter than announced, or delimited by closing: the client learns
                // where it ends only from the connection closing.
                self.keep_alive = false;
            }
        } else {
            self.out = Out::Sending(next);
        }
        self.send(&[&held, line, data, tail]).await
    }

    /// Whether the answer's head was written.
    pub fn responded(&self) -> bool {
        self.status.is_some()
    }

    /// Close the connection after this request.
    pub fn close_after(&mut self) {
        self.keep_alive = false;
    }

    pub fn client_addr(&self) -> SocketAddr {
        self.peer
    }

    /// End the request: send what is still held, and say whether the connection can
    /// carry another request.
    pub(crate) async fn finish(&mut self) -> bool {
        match std::mem::replace(&mut self.out, Out::Done) {
            Out::Held(head, framing) => {
                // A head whose body never came: it goes, and the connection closes
                // unless there was no body to come.
                if !framing.complete() {
                    self.keep_alive = false;
                }
                if self.send(&[&head]).await.is_err() {
                    return false;
                }
            }
            Out::Sending(framing) if !framing.complete() => self.keep_alive = false,
            Out::Unwritten => self.keep_alive = false,
            Out::Sending(_) | Out::Done => {}
        }
        if !self.body.is_done() {
            self.keep_alive = false;
        }
        self.keep_alive
    }

    /// Close the connection: the answer was sent whole, and a request body left unread
    /// is drained for a moment first so the client gets to read the answer.
    pub(crate) async fn close(self) {
        let linger = !self.body.is_done();
        self.shut(linger).await;
    }

    async fn shut(mut self, linger: bool) {
        if let Err(e) = self.tcp.shutdown().await {
            debug!(error = %e, "closing a connection failed");
            return;
        }
        if !linger {
            return;
        }
        let drain = async {
            let mut scratch = vec![0; 16 * 1024];
            let mut read = 0;
            while read < LINGER_BYTES {
                match self.tcp.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
        };
        let _ = timeout(LINGER_TIME, drain).await;
    }

    /// Answer a request that cannot be served, and close.
    pub(crate) async fn refuse(mut self, error: &ProxyError) {
        self.keep_alive = false;
        let (status, code) = error.status_and_code();
        METRICS.http_refused.with_label_values(&[code]).inc();
        if let Some(mut resp) = head::Response::new(status.as_u16(), 2) {
            let body = error.body(sluice_translate::Dialect::OpenAiChat);
            resp.set(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            resp.set_length(body.len());
            let mut head = write::encode_head(&resp, Framing::Length(body.len() as u64), false);
            head.extend_from_slice(&body);
            let _ = self.send(&[&head]).await;
        }
        // Whatever else the client sent is not read, and may still be arriving.
        self.shut(true).await;
    }

    /// Skip what is left of the request body if all of it is already read (the usual
    /// case for a request refused before its body was looked at: a small body arrives
    /// with its head), so an answer such as a 401 or 429 keeps the connection; whether
    /// the body is now complete. Nothing is waited for.
    fn skip_buffered_body(&mut self) -> bool {
        loop {
            match self.body.next(&mut self.buf) {
                Ok(Decoded::Data(_)) => {}
                Ok(Decoded::End) => return true,
                Ok(Decoded::NeedMore) | Err(_) => return false,
            }
        }
    }

    /// Write to the client; after a failed write the answer is over and the
    /// connection is not reused.
    async fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let sent = send(&self.tcp, parts).await;
        if sent.is_err() {
            self.out = Out::Done;
            self.keep_alive = false;
        }
        sent
    }
}

/// Write all of `parts` in order, in as few system calls as the socket allows; only a
/// socket that cannot take them at once is waited for, up to [`WRITE_TIME`] each time.
async fn send(tcp: &TcpStream, parts: &[&[u8]]) -> io::Result<()> {
    let mut storage = [IoSlice::new(&[]); 4];
    let mut count = 0;
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if count == storage.len() {
            return Err(io::Error::other("too many pieces for one write"));
        }
        storage[count] = IoSlice::new(part);
        count += 1;
    }
    let mut bufs = &mut storage[..count];
    while !bufs.is_empty() {
        match tcp.try_write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                timeout(WRITE_TIME, tcp.writable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
