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
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::FutureExt;
use pingora_core::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};
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
#[derive(Debug)]
pub(crate) struct Socket {
    io: BufWriter<TcpStream>,
    digest: Arc<SocketDigest>,
}

impl Socket {
    /// A client's connection: small writes are gathered until a flush.
    pub(crate) fn accepted(tcp: TcpStream, peer: SocketAddr) -> Self {
        Self::new(tcp, peer, WRITE_BUFFER)
    }

    /// A connection to an upstream: unbuffered, as Pingora's own, since `coalesce`
    /// already gathers a request's header and body into one write.
    pub(crate) fn connected(tcp: TcpStream, peer: SocketAddr) -> Self {
        Self::new(tcp, peer, 0)
    }

    fn new(tcp: TcpStream, peer: SocketAddr, write_buffer: usize) -> Self {
        // Writes are whole messages or flushed on purpose; Nagle's delay would only hold
        // the last segment of each one back.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "TCP_NODELAY failed");
        }
        let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
        let _ = digest.peer_addr.set(Some(PeerAddr::Inet(peer)));
        Self {
            io: BufWriter::with_capacity(write_buffer, tcp),
            digest: Arc::new(digest),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.io.get_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Socket {
    async fn shutdown(&mut self) {
        if let Err(e) = AsyncWriteExt::shutdown(&mut self.io).await {
            debug!(error = %e, "closing a connection failed");
        }
    }
}

impl UniqueID for Socket {
    fn id(&self) -> UniqueIDType {
        self.io.get_ref().as_raw_fd()
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
        if !self.io.buffer().is_empty() {
            let _ = self.io.flush().now_or_never();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::protocols::http::ServerSession;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        (Socket::accepted(server, peer), client)
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
    async fn bytes_left_buffered_are_sent_when_the_stream_is_dropped() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"last words").await.unwrap();
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
    }
}
