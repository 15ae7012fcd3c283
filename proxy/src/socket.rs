//! A plain TCP connection as the stream Pingora's HTTP/1 server and client read and
//! write: a client's connection (see `accept`) or a new one to a plain-HTTP upstream
//! (see `connect`).
//!
//! Pingora's own `l4::Stream` carries what sluice never reads: a rewind buffer, the
//! time each read and write waited (two clock reads per poll), receive timestamps, a
//! tracer, and on drop a `nodelay` system call to detect a double close. Its buffers
//! can only be sized by Pingora's listener, whose per-connection task sluice leaves out.
//! This stream is the socket, an optional write buffer and the peer's address.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use pingora_core::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tracing::debug;

/// Bytes a client connection gathers before it writes: one segment's worth, so a short
/// answer's header and body leave together in one system call.
const WRITE_BUFFER: usize = 1460;

/// A TCP connection.
///
/// Reads are not buffered here: they go straight into the HTTP parser's own buffers.
/// (Pingora's default read buffer is 64 KiB per connection, held by every open stream
/// and idle keep-alive, with every byte read copied through it.)
///
/// Writes may be gathered up to `gather` bytes until a flush. The buffer exists only
/// while it holds bytes: it is allocated by the first write it keeps and freed once a
/// flush has sent it, so an open stream between two events, or a connection idle
/// between requests, holds none (a `BufWriter` holds its 1,460 bytes for the
/// connection's life: 1.4 KiB of each open stream, README "Measured").
#[derive(Debug)]
pub(crate) struct Socket {
    tcp: TcpStream,
    /// Written, not yet sent.
    out: Vec<u8>,
    /// The most `out` gathers; 0 writes straight through.
    gather: usize,
    digest: Arc<SocketDigest>,
}

impl Socket {
    /// A client's connection: small writes are gathered until a flush.
    pub(crate) fn accepted(tcp: TcpStream, peer: SocketAddr) -> Self {
        Self::new(tcp, peer, WRITE_BUFFER)
    }

    /// A connection to an upstream: unbuffered, as Pingora's own, since the provider
    /// client (`upstream`) already writes a request's head and body as one buffer.
    pub(crate) fn connected(tcp: TcpStream, peer: SocketAddr) -> Self {
        Self::new(tcp, peer, 0)
    }

    fn new(tcp: TcpStream, peer: SocketAddr, gather: usize) -> Self {
        // Writes are whole messages or flushed on purpose; Nagle's delay would only hold
        // the last segment of each one back.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "TCP_NODELAY failed");
        }
        let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
        let _ = digest.peer_addr.set(Some(PeerAddr::Inet(peer)));
        Self {
            tcp,
            out: Vec::new(),
            gather,
            digest: Arc::new(digest),
        }
    }

    /// Send everything gathered, then free the buffer.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(poll_write_out(&mut self.tcp, cx, &mut self.out))?;
        self.out = Vec::new();
        Poll::Ready(Ok(()))
    }

    /// Keep `buf` for a later flush, allocating the buffer at its full size.
    fn gather(&mut self, buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        if self.out.capacity() == 0 {
            self.out.reserve_exact(self.gather);
        }
        self.out.extend_from_slice(buf);
    }
}

/// Write all of `out` to `w`. What was sent is removed from `out`, so a call that
/// returns `Pending` leaves only the rest for the next one; the allocation is kept for
/// the caller to free or reuse.
pub(crate) fn poll_write_out<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    cx: &mut Context<'_>,
    out: &mut Vec<u8>,
) -> Poll<io::Result<()>> {
    let mut sent = 0;
    let result = loop {
        if sent == out.len() {
            break Poll::Ready(Ok(()));
        }
        match Pin::new(&mut *w).poll_write(cx, &out[sent..]) {
            Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => sent += n,
            Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
            Poll::Pending => break Poll::Pending,
        }
    };
    out.drain(..sent);
    result
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() + buf.len() > this.gather {
            // What is gathered goes first, then `buf` is kept or written through.
            ready!(this.poll_send(cx))?;
            if buf.len() >= this.gather {
                return Pin::new(&mut this.tcp).poll_write(cx, buf);
            }
        }
        this.gather(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if this.out.len() + len > this.gather {
            ready!(this.poll_send(cx))?;
            if len >= this.gather {
                return Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            this.gather(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Socket {
    async fn shutdown(&mut self) {
        if let Err(e) = AsyncWriteExt::shutdown(self).await {
            debug!(error = %e, "closing a connection failed");
        }
    }
}

impl UniqueID for Socket {
    fn id(&self) -> UniqueIDType {
        self.tcp.as_raw_fd()
    }
}

impl Ssl for Socket {}

impl GetTimingDigest for Socket {
    /// Nothing in sluice reads connection timings, and Pingora asks for them on every
    /// request (an allocation each time), so there are none.
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for Socket {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Socket {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(self.digest.clone())
    }
}

#[async_trait]
impl Peek for Socket {}

impl Drop for Socket {
    /// Whatever is still buffered goes out if the socket takes it now: the HTTP session
    /// flushes every answer itself, so this only matters on an abandoned connection.
    fn drop(&mut self) {
        if !self.out.is_empty() {
            let _ = self.tcp.try_write(&self.out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::protocols::http::ServerSession;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A connection's accepted end made into a `Socket` by `make`, and its other end.
    async fn pair_with(make: fn(TcpStream, SocketAddr) -> Socket) -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        (make(server, peer), client)
    }

    async fn pair() -> (Socket, TcpStream) {
        pair_with(Socket::accepted).await
    }

    #[tokio::test]
    async fn pingora_serves_a_request_over_it_and_sees_the_client_address() {
        let (server, mut client) = pair().await;
        let client_addr = client.local_addr().unwrap();
        client
            .write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut session = ServerSession::new_http1(Box::new(server));
        assert!(session.read_request().await.unwrap());
        assert_eq!(session.req_header().uri.path(), "/v1/models");
        match session.client_addr() {
            Some(PeerAddr::Inet(addr)) => assert_eq!(*addr, client_addr),
            other => panic!("client address {other:?}"),
        }
        let mut resp = pingora_http::ResponseHeader::build(200, None).unwrap();
        resp.insert_header("content-length", "2").unwrap();
        session.write_response_header(Box::new(resp)).await.unwrap();
        session
            .write_response_body(bytes::Bytes::from_static(b"ok"), true)
            .await
            .unwrap();
        session.finish().await.unwrap();
        let mut answer = vec![0; 256];
        let n = client.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    }

    #[tokio::test]
    async fn a_short_answer_leaves_in_one_write() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        server.write_all(b"body").await.unwrap();
        // Nothing reached the socket before the flush.
        let mut probe = [0; 64];
        assert!(client.try_read(&mut probe).is_err());
        server.flush().await.unwrap();
        let mut got = vec![0; 64];
        let n = client.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"HTTP/1.1 200 OK\r\n\r\nbody");
    }

    #[tokio::test]
    async fn the_write_buffer_exists_only_while_it_holds_bytes() {
        let (mut server, mut client) = pair().await;
        assert_eq!(server.out.capacity(), 0, "allocated before any write");
        for event in [&b"data: one\n\n"[..], b"data: two\n\n"] {
            server.write_all(event).await.unwrap();
            assert!(server.out.capacity() >= event.len());
            server.flush().await.unwrap();
            assert_eq!(server.out.capacity(), 0, "kept after a flush");
            let mut got = vec![0; 64];
            let n = client.read(&mut got).await.unwrap();
            assert_eq!(&got[..n], event);
        }
    }

    #[tokio::test]
    async fn a_large_write_follows_what_was_gathered_in_order() {
        let (mut server, mut client) = pair().await;
        let large = vec![b'x'; 3 * WRITE_BUFFER];
        server.write_all(b"head;").await.unwrap();
        server.write_all(&large).await.unwrap();
        let written = server
            .write_vectored(&[io::IoSlice::new(b";a"), io::IoSlice::new(b";b")])
            .await
            .unwrap();
        assert_eq!(written, 4, "a small vectored write is gathered whole");
        server.flush().await.unwrap();
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        let mut want = b"head;".to_vec();
        want.extend_from_slice(&large);
        want.extend_from_slice(b";a;b");
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn an_upstream_connection_writes_straight_through() {
        let (mut socket, mut upstream) = pair_with(Socket::connected).await;
        socket.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(socket.out.capacity(), 0);
        let mut got = vec![0; 64];
        let n = upstream.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn bytes_left_buffered_are_sent_when_the_stream_is_dropped() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"last words").await.unwrap();
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
    }
}
