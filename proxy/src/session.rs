//! The client's side of one request: Pingora's HTTP server session, without the layers
//! of its proxy framework.
//!
//! sluice answers every request itself (see `service`), so it takes requests from
//! Pingora's server directly. Pingora's `ProxyHttp` framework would build, per request,
//! a session with a cache context, compression contexts and module filters that sluice
//! never uses, and its request state machine (cache, retries, HTTP/2 upstreams) made the
//! per-connection task several times the size of sluice's own request. Going around it
//! took a fifth off the memory each open stream holds (README, "Measured").

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use pingora_core::apps::{HttpPersistentSettings, ReusedHttpStream};
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::sync::Notify;

/// One client request and the connection it came on.
///
/// Boxed: Pingora's session is 680 bytes, and every `async` function that takes it by
/// value keeps a copy both as its argument and as its local, all of them in the
/// request's future for as long as it lives, streams included (README, "Measured").
pub struct Session {
    inner: Box<ServerSession>,
}

impl Session {
    /// The first request of a connection just accepted; one that arrives while the
    /// server shuts down is not kept alive.
    pub(crate) fn accepted(stream: Stream, shutting_down: bool) -> Self {
        let mut session = Self {
            inner: Box::new(ServerSession::new_http1(stream)),
        };
        // Pingora's default: an idle kept-alive connection closes after 60 s.
        session.set_keepalive((!shutting_down).then_some(60));
        session
    }

    /// The next request on a connection kept alive, with the settings it carried over
    /// (keep-alive, pipelined bytes already read).
    pub(crate) fn reused(reused: ReusedHttpStream) -> Self {
        let (stream, settings) = reused.consume();
        let mut inner = Box::new(ServerSession::new_http1(stream));
        if let Some(settings) = settings {
            settings.apply_to_session(&mut inner);
        }
        Self { inner }
    }

    /// Read the request header; `false` when the client closed the connection first.
    pub(crate) async fn read_request(&mut self) -> Result<bool> {
        self.inner.read_request().await
    }

    /// Answer a request that cannot be served with a bare status and close.
    pub(crate) async fn refuse(mut self, status: Option<u16>) {
        if let Some(status) = status {
            // Boxed: rare, and a 1.3 KiB future.
            let _ = Box::pin(self.inner.respond_error(status)).await;
        }
        self.inner.shutdown().await;
    }

    pub fn req_header(&self) -> &RequestHeader {
        self.inner.req_header()
    }

    /// Read the next piece of the request body; `None` at its end.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        self.inner.read_request_body().await
    }

    pub async fn write_response_header(&mut self, resp: Box<ResponseHeader>) -> Result<()> {
        self.inner.write_response_header(resp).await
    }

    /// Write a piece of the answer's body; `end` finishes it (an empty last chunk for a
    /// chunked answer).
    pub async fn write_response_body(&mut self, body: Option<Bytes>, end: bool) -> Result<()> {
        match body {
            Some(data) => self.inner.write_response_body(data, end).await,
            None if end => self.inner.write_response_body(Bytes::new(), true).await,
            None => Ok(()),
        }
    }

    /// The response header already sent, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.inner.response_written()
    }

    /// `None` closes the connection after this request.
    pub fn set_keepalive(&mut self, seconds: Option<u64>) {
        self.inner.set_keepalive(seconds);
    }

    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.inner.client_addr()
    }

    /// End the request: flush the answer and hand back the connection when it can carry
    /// another request.
    pub(crate) async fn finish(self) -> Option<ReusedHttpStream> {
        // Taken first: the keep-alive settings and pipelining travel with the connection.
        let settings = HttpPersistentSettings::for_session(&self.inner);
        // Boxed: finishing is a 3.7 KiB future (Pingora's HTTP/2 and subrequest
        // sessions share the enum), and inline it would size every request's future.
        let stream = Box::pin((*self.inner).finish()).await.ok().flatten()?;
        Some(ReusedHttpStream::from_reusable_stream(stream, settings))
    }
}

/// Whether the server has stopped listening, for connections waiting for their next
/// request: they close instead of holding the shutdown up until their client sends again.
#[derive(Debug, Default)]
pub(crate) struct Closing {
    closed: AtomicBool,
    notify: Notify,
}

impl Closing {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Resolves once `close` was called, before or after this call.
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wait_ends_when_closed_before_or_after_it_began() {
        let closing = std::sync::Arc::new(Closing::default());
        let waiting = tokio::spawn({
            let closing = closing.clone();
            async move { closing.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        closing.close();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a waiter was not woken by close")
            .unwrap();
        // Closed already: returns at once.
        tokio::time::timeout(Duration::from_secs(5), closing.wait())
            .await
            .expect("a wait after close did not return");
    }
}
