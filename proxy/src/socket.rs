//! A plain TCP connection to an upstream, as the stream Pingora's connector and
//! sluice's provider client (`upstream`) use.
//!
//! Pingora's own `l4::Stream` carries what sluice never reads: a rewind buffer, the
//! time each read and write waited (two clock reads per poll), receive timestamps, a
//! tracer, and on drop a `nodelay` system call to detect a double close. This stream is
//! the socket and the peer's address.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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

/// A TCP connection, unbuffered both ways: the provider client writes a request's head
/// and body as one buffer and reads into its own.
#[derive(Debug)]
pub(crate) struct Socket {
    tcp: TcpStream,
    digest: Arc<SocketDigest>,
}

impl Socket {
    pub(crate) fn connected(tcp: TcpStream, peer: SocketAddr) -> Self {
        // Writes are whole requests; Nagle's delay would only hold the last segment of
        // each one back.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(error = %e, "TCP_NODELAY failed");
        }
        let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
        let _ = digest.peer_addr.set(Some(PeerAddr::Inet(peer)));
        Self {
            tcp,
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
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn writes_go_straight_through_and_the_peer_is_known() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut upstream, _) = listener.accept().await.unwrap();
        let mut socket = Socket::connected(tcp, addr);
        match socket
            .get_socket_digest()
            .and_then(|d| d.peer_addr().cloned())
        {
            Some(PeerAddr::Inet(peer)) => assert_eq!(peer, addr),
            other => panic!("peer address {other:?}"),
        }
        socket.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut got = vec![0; 64];
        let n = upstream.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"GET / HTTP/1.1\r\n");
    }
}
