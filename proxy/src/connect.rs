//! New plain-TCP connections to upstreams, made by sluice rather than Pingora's
//! connector.
//!
//! Pingora's connect path is one future for TCP, TLS, HTTP CONNECT proxies and custom
//! transports: 8.8 KiB, boxed by sluice because it is rare on a warm pool. When many
//! requests open connections at once (1,000 streams starting together), that is 8.8 KiB
//! each at the peak, memory the allocator keeps afterwards. A plain-HTTP upstream
//! (self-hosted models, OpenAI-compatible servers in the same network) needs only the
//! TCP connect, a few hundred bytes. The connection still goes back to Pingora's pool
//! like any other. TLS upstreams, and any peer that asks for what this path does not
//! do (a proxy, socket options), keep Pingora's connector.

use std::net::SocketAddr as InetAddr;
use std::time::Duration;

use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::upstreams::peer::HttpPeer;
use tokio::net::TcpStream;
use tracing::debug;

use crate::error::ProxyError;
use crate::socket::Socket;

/// The address to connect to when this path can serve `peer`.
pub(crate) fn plain_address(peer: &HttpPeer) -> Option<InetAddr> {
    let o = &peer.options;
    let plain = !peer.is_tls()
        && peer.proxy.is_none()
        && o.bind_to.is_none()
        && o.custom_l4.is_none()
        && o.upstream_tcp_sock_tweak_hook.is_none()
        && o.tcp_keepalive.is_none()
        && o.tcp_recv_buf.is_none()
        && o.dscp.is_none()
        && !o.tcp_fast_open
        && o.tracer.is_none();
    match &peer._address {
        SocketAddr::Inet(addr) if plain => Some(*addr),
        _ => None,
    }
}

/// Open a new connection to a plain peer at `addr` (see `plain_address`).
pub(crate) async fn plain(peer: &HttpPeer, addr: InetAddr) -> Result<Stream, ProxyError> {
    let limit = [
        peer.options.connection_timeout,
        peer.options.total_connection_timeout,
    ]
    .into_iter()
    .flatten()
    .min()
    // Pingora's connector has no limit either when none is set; sluice always sets one.
    .unwrap_or(Duration::MAX);
    let tcp = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            debug!(%addr, error = %e, "upstream connect failed");
            return Err(ProxyError::UpstreamUnreachable);
        }
        Err(_) => {
            debug!(%addr, ?limit, "upstream connect timed out");
            return Err(ProxyError::UpstreamTimeout);
        }
    };
    Ok(Box::new(Socket::connected(tcp, addr)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Conn, encode_request};
    use pingora_core::protocols::TcpKeepalive;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn peer(addr: &str, tls: bool) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, tls, "upstream.test".into());
        peer.options.connection_timeout = Some(Duration::from_secs(2));
        peer
    }

    #[test]
    fn only_a_plain_peer_with_nothing_else_asked_takes_this_path() {
        assert_eq!(
            plain_address(&peer("127.0.0.1:8080", false)),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(plain_address(&peer("127.0.0.1:443", true)), None);
        let mut keepalive = peer("127.0.0.1:8080", false);
        keepalive.options.tcp_keepalive = Some(TcpKeepalive {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(5),
            count: 3,
            #[cfg(target_os = "linux")]
            user_timeout: Duration::ZERO,
        });
        assert_eq!(plain_address(&keepalive), None);
        let mut fast_open = peer("127.0.0.1:8080", false);
        fast_open.options.tcp_fast_open = true;
        assert_eq!(plain_address(&fast_open), None);
    }

    #[tokio::test]
    async fn a_request_goes_over_it_and_the_answer_comes_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut got = vec![0; 1024];
            let n = tcp.read(&mut got).await.unwrap();
            tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8_lossy(&got[..n]).into_owned()
        });
        let peer = peer(&addr.to_string(), false);
        let stream = plain(&peer, addr).await.unwrap();
        let digest = stream.get_socket_digest().expect("digest");
        match digest.peer_addr() {
            Some(SocketAddr::Inet(a)) => assert_eq!(*a, addr),
            other => panic!("server address {other:?}"),
        }
        let mut up = Conn::new(stream);
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "upstream.test".parse().unwrap());
        let (first, rest) = encode_request(&http::Method::GET, "/v1/models", &headers, b"");
        up.send(&first, rest).await.unwrap();
        assert_eq!(up.read_head().await.unwrap().status, 200);
        assert_eq!(up.read_body().await.unwrap().as_deref(), Some(&b"ok"[..]));
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /v1/models HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let result = plain(&peer(&addr.to_string(), false), addr).await;
        assert!(matches!(result, Err(ProxyError::UpstreamUnreachable)));
    }
}
