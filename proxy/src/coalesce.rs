//! Upstream writes held back until the request is whole, so its header and body leave
//! in one write.
//!
//! Pingora's HTTP/1 client writes and flushes the request header, then writes the body:
//! two `sendto` calls per request on an unbuffered upstream connection, and the
//! provider is woken twice, once for a header it cannot act on yet. sluice always has
//! the whole body before it sends, so the connection is wrapped in [`Coalesced`]: while
//! it holds, writes are kept and flushes are ignored; [`release`] ends the hold and the
//! next flush sends everything at once. On loopback that removed one of the proxy's
//! three `sendto` calls per request (README, "Measured").
//!
//! The wrapper stays around the connection when it goes back to the pool, so a reused
//! connection is wrapped once, not once per request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::HttpSession as Http1Session;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora_core::upstreams::peer::HttpPeer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::socket;

/// The most held back; a larger request flushes what is held and writes the rest
/// through, as the bare stream would.
const MAX_HELD: usize = 64 * 1024;
/// A held buffer that grew past this is freed after it is sent, so an idle pooled
/// connection does not keep a large request's worth of memory.
const KEEP_CAPACITY: usize = 8 * 1024;

/// An upstream connection whose writes can be held back (see the module docs).
#[derive(Debug)]
pub(crate) struct Coalesced {
    inner: Stream,
    held: Vec<u8>,
    holding: AtomicBool,
}

impl Coalesced {
    fn new(inner: Stream) -> Self {
        Self {
            inner,
            held: Vec::new(),
            holding: AtomicBool::new(false),
        }
    }

    /// Write out what is held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(socket::poll_write_out(&mut self.inner, cx, &mut self.held))?;
        if self.held.capacity() > KEEP_CAPACITY {
            self.held = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

/// The session on a [`Coalesced`] connection, holding its writes until [`release`].
/// HTTP/2 sessions are left as they are: their frames have their own buffering.
pub(crate) fn hold(up: HttpSession, peer: &HttpPeer) -> HttpSession {
    let up = match up {
        HttpSession::H1(h1) if !h1.stream().as_any().is::<Coalesced>() => {
            let stream: Stream = Box::new(Coalesced::new(h1.into_inner()));
            HttpSession::H1(Http1Session::new_with_options(stream, peer))
        }
        other => other,
    };
    set_holding(&up, true);
    up
}

/// End the hold: the next flush sends everything held.
pub(crate) fn release(up: &HttpSession) {
    set_holding(up, false);
}

fn set_holding(up: &HttpSession, holding: bool) {
    if let Some(c) = up
        .stream()
        .and_then(|s| s.as_any().downcast_ref::<Coalesced>())
    {
        c.holding.store(holding, Ordering::Relaxed);
    }
}

impl AsyncWrite for Coalesced {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.holding.load(Ordering::Relaxed) && this.held.len() + buf.len() <= MAX_HELD {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.holding.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.holding.store(false, Ordering::Relaxed);
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for Coalesced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[async_trait]
impl Shutdown for Coalesced {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for Coalesced {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Coalesced {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Coalesced {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Coalesced {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for Coalesced {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for Coalesced {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::protocols::l4::stream::Stream as L4Stream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A wrapped client connection and the server's end of it.
    async fn pair() -> (Coalesced, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stream: Stream = Box::new(L4Stream::from(client));
        (Coalesced::new(stream), server)
    }

    /// Whether the server can read anything within a short wait.
    async fn arrived(server: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_millis(100), server.peek(&mut byte))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn held_writes_and_flushes_send_nothing_until_released_then_everything_in_order() {
        let (mut c, mut server) = pair().await;
        c.holding.store(true, Ordering::Relaxed);
        c.write_all(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
        c.flush().await.unwrap();
        c.write_all(b"{\"body\":1}").await.unwrap();
        assert!(!arrived(&mut server).await, "a held write reached the peer");

        c.holding.store(false, Ordering::Relaxed);
        c.flush().await.unwrap();
        let mut got = vec![0u8; 29];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"POST / HTTP/1.1\r\n\r\n{\"body\":1}");
    }

    #[tokio::test]
    async fn a_request_larger_than_the_hold_goes_out_whole_and_in_order() {
        let (mut c, mut server) = pair().await;
        c.holding.store(true, Ordering::Relaxed);
        let head = b"head:".to_vec();
        let body: Vec<u8> = (0..MAX_HELD + 10).map(|i| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 5 + MAX_HELD + 10];
            server.read_exact(&mut got).await.unwrap();
            got
        });
        c.write_all(&head).await.unwrap();
        c.write_all(&body).await.unwrap();
        c.holding.store(false, Ordering::Relaxed);
        c.flush().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(&got[..5], b"head:");
        assert_eq!(&got[5..], &body[..]);
    }

    #[tokio::test]
    async fn a_session_is_wrapped_once_however_often_it_is_held() {
        let (c, _server) = pair().await;
        let peer = HttpPeer::new("127.0.0.1:1", false, String::new());
        let up = HttpSession::H1(Http1Session::new(c.inner));
        let up = hold(up, &peer);
        let HttpSession::H1(h1) = hold(up, &peer) else {
            unreachable!()
        };
        let outer = h1.stream().as_any().downcast_ref::<Coalesced>().unwrap();
        assert!(outer.holding.load(Ordering::Relaxed));
        assert!(!outer.inner.as_any().is::<Coalesced>(), "wrapped twice");
        let up = HttpSession::H1(h1);
        release(&up);
        let HttpSession::H1(h1) = up else {
            unreachable!()
        };
        let outer = h1.stream().as_any().downcast_ref::<Coalesced>().unwrap();
        assert!(!outer.holding.load(Ordering::Relaxed));
    }
}
