//! The client against a real loopback socket whose other end plays the provider, byte
//! for byte.

use std::future::Future;
use std::time::Duration;

use http::{HeaderMap, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::*;
use crate::socket::Socket;

/// A connection to a provider played by `script`, which gets the accepted socket.
async fn provider<F, Fut, T>(script: F) -> (Conn, JoinHandle<T>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        script(tcp).await
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut conn = Conn::new(Box::new(Socket::connected(tcp, addr)));
    conn.set_read_timeout(Some(Duration::from_secs(5)));
    (conn, task)
}

/// Read one request (head and a `Content-Length` body) off the provider's socket.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(tcp: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.expect("read");
        assert_ne!(n, 0, "the client closed before a whole request");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().expect("length"));
            if got.len() >= end + 4 + length {
                return got;
            }
        }
    }
}

fn post(body: &[u8]) -> (BytesMut, &[u8]) {
    let mut headers = HeaderMap::new();
    headers.insert("host", "provider.test".parse().unwrap());
    headers.insert("content-length", body.len().into());
    encode_request(&Method::POST, "/v1/chat/completions", &headers, body)
}

async fn body_of(conn: &mut Conn) -> Result<Vec<u8>, UpstreamError> {
    let mut body = Vec::new();
    while let Some(piece) = conn.read_body().await? {
        body.extend_from_slice(&piece);
    }
    Ok(body)
}

/// A connection that has sent a request, whose provider answers with `wire` and then
/// keeps the connection open (`keep`) or closes it.
async fn answered(wire: &'static [u8], keep: bool) -> Conn {
    let (mut conn, _provider) = provider(move |mut tcp| async move {
        read_request(&mut tcp).await;
        let _ = tcp.write_all(wire).await;
        if keep {
            std::future::pending::<()>().await;
        }
    })
    .await;
    let (first, rest) = post(b"{}");
    conn.send(&first, rest).await.unwrap();
    conn
}

#[tokio::test]
async fn a_request_leaves_in_one_write_and_the_connection_is_reused() {
    let (mut conn, provider) = provider(|mut tcp| async move {
        let mut requests = Vec::new();
        for answer in ["first", "second"] {
            let mut buf = vec![0; 64 * 1024];
            // The whole request arrives in the first read: head and body in one write.
            let n = tcp.read(&mut buf).await.unwrap();
            requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let wire = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            tcp.write_all(wire.as_bytes()).await.unwrap();
        }
        requests
    })
    .await;
    let (first, rest) = post(br#"{"model":"m"}"#);
    assert!(rest.is_empty());
    conn.send(&first, rest).await.unwrap();
    let head = conn.read_head().await.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(body_of(&mut conn).await.unwrap(), b"first");
    assert!(conn.is_done());
    let stream = conn.into_reusable().expect("reusable");

    let mut conn = Conn::new(stream);
    conn.send(&first, rest).await.unwrap();
    conn.read_head().await.unwrap();
    assert_eq!(body_of(&mut conn).await.unwrap(), b"second");
    let requests = provider.await.unwrap();
    for r in &requests {
        assert!(
            r.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\n{\"model\":\"m\"}"), "{r}");
    }
}

#[tokio::test]
async fn a_chunked_stream_comes_event_by_event_and_holds_no_buffer_between() {
    let (go_on, mut wait) = tokio::sync::mpsc::channel::<()>(1);
    let (mut conn, provider) = provider(move |mut tcp| async move {
        read_request(&mut tcp).await;
        tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        for i in 0..3 {
            let event = format!("data: {{\"n\":{i}}}\n\n");
            let frame = format!("{:x}\r\n{event}\r\n", event.len());
            tcp.write_all(frame.as_bytes()).await.unwrap();
            wait.recv().await;
        }
        tcp.write_all(b"0\r\n\r\n").await.unwrap();
        tcp
    })
    .await;
    let (first, rest) = post(b"{}");
    conn.send(&first, rest).await.unwrap();
    let head = conn.read_head().await.unwrap();
    assert_eq!(head.fields.text("content-type"), Some("text/event-stream"));
    for i in 0..3 {
        // Each event arrives while the provider still holds the next one back.
        let piece = conn.read_body().await.unwrap().expect("event");
        assert_eq!(piece, format!("data: {{\"n\":{i}}}\n\n").as_bytes());
        assert_eq!(conn.buf.capacity(), 0, "no read buffer kept between events");
        go_on.send(()).await.unwrap();
    }
    assert_eq!(conn.read_body().await.unwrap(), None);
    assert!(conn.into_reusable().is_some());
    drop(provider.await.unwrap());
}

#[tokio::test]
async fn what_one_read_brought_is_handed_out_without_another() {
    let (go_on, mut wait) = tokio::sync::mpsc::channel::<()>(1);
    let (mut conn, provider) = provider(move |mut tcp| async move {
        read_request(&mut tcp).await;
        // The head and three events in one write, as a burst from a provider comes.
        let mut burst = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for i in 0..3 {
            let event = format!("data: {i}\n\n");
            burst.extend_from_slice(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
        }
        tcp.write_all(&burst).await.unwrap();
        wait.recv().await;
        tcp.write_all(b"7\r\ndata: 3\r\n0\r\n\r\n").await.unwrap();
        tcp
    })
    .await;
    let (first, rest) = post(b"{}");
    conn.send(&first, rest).await.unwrap();
    conn.read_head().await.unwrap();
    let piece = conn.read_body().await.unwrap().expect("event");
    assert_eq!(piece, &b"data: 0\n\n"[..]);
    for i in 1..3 {
        let piece = conn.read_body_now().expect("already read").unwrap();
        assert_eq!(piece.unwrap(), format!("data: {i}\n\n").as_bytes());
    }
    assert!(conn.read_body_now().is_none(), "the rest is still to come");
    go_on.send(()).await.unwrap();
    assert_eq!(conn.read_body().await.unwrap().unwrap(), &b"data: 3"[..]);
    // The last chunk came with the event: the end needs no read either.
    assert_eq!(conn.read_body_now().expect("already read").unwrap(), None);
    assert_eq!(conn.read_body().await.unwrap(), None);
    assert!(conn.into_reusable().is_some());
    drop(provider.await.unwrap());
}

#[tokio::test]
async fn a_close_delimited_body_ends_with_the_connection() {
    let mut conn = answered(b"HTTP/1.0 200 OK\r\n\r\nall of it", false).await;
    conn.read_head().await.unwrap();
    assert_eq!(body_of(&mut conn).await.unwrap(), b"all of it");
    assert!(conn.into_reusable().is_none());
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let mut conn = answered(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
          HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok",
        true,
    )
    .await;
    assert_eq!(conn.read_head().await.unwrap().status, 201);
    assert_eq!(body_of(&mut conn).await.unwrap(), b"ok");
}

#[tokio::test]
async fn large_bodies_go_out_whole_and_come_back_in_growing_reads() {
    let big = vec![b'x'; 3 * INLINE_BODY];
    let answer = vec![b'y'; 1024 * 1024];
    let sent = answer.clone();
    let (mut conn, provider) = provider(move |mut tcp| async move {
        let request = read_request(&mut tcp).await;
        tcp.write_all(
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", sent.len()).as_bytes(),
        )
        .await
        .unwrap();
        tcp.write_all(&sent).await.unwrap();
        (request, tcp)
    })
    .await;
    let (first, rest) = post(&big);
    assert_eq!(
        rest.len(),
        big.len(),
        "a large body is written after the head, not copied"
    );
    conn.send(&first, rest).await.unwrap();
    conn.read_head().await.unwrap();
    assert_eq!(body_of(&mut conn).await.unwrap(), answer);
    assert_eq!(conn.read_size, MAX_READ_SIZE);
    let (request, _tcp) = provider.await.unwrap();
    assert!(request.ends_with(&big));
}

#[tokio::test]
async fn failures_say_what_went_wrong() {
    // Closed before any answer: what a pooled connection the provider dropped does.
    let mut conn = answered(b"", false).await;
    let e = conn.read_head().await.unwrap_err();
    assert!(matches!(e, UpstreamError::Closed(_)), "{e}");
    assert!(e.stale());

    // Closed before the declared length.
    let mut conn = answered(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", false).await;
    conn.read_head().await.unwrap();
    let e = body_of(&mut conn).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Closed(_)), "{e}");

    // Silent past the read timeout.
    let mut conn = answered(b"", true).await;
    conn.set_read_timeout(Some(Duration::from_millis(100)));
    let e = conn.read_head().await.unwrap_err();
    assert!(matches!(e, UpstreamError::Timeout(_)), "{e}");
    assert!(!e.stale(), "a timeout is not retried on another connection");
    assert_eq!(ProxyError::from(&e), ProxyError::UpstreamTimeout);

    // A head past the limit, in few lines.
    let line = format!("x-filler: {}\r\n", "a".repeat(1000));
    let head = format!("HTTP/1.1 200 OK\r\n{}", line.repeat(MAX_HEAD / 1000 + 2));
    let mut conn = answered(Box::leak(head.into_bytes().into_boxed_slice()), true).await;
    let e = conn.read_head().await.unwrap_err();
    assert!(matches!(e, UpstreamError::HeadTooLarge), "{e}");
    assert!(matches!(
        ProxyError::from(&e),
        ProxyError::BadUpstreamResponse(_)
    ));

    // A broken chunked body.
    let mut conn = answered(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nnot hex\r\n",
        true,
    )
    .await;
    conn.read_head().await.unwrap();
    let e = body_of(&mut conn).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Chunk(_)), "{e}");
}

#[tokio::test]
async fn bytes_after_the_response_keep_the_connection_out_of_the_pool() {
    let mut conn = answered(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
        true,
    )
    .await;
    conn.read_head().await.unwrap();
    assert_eq!(body_of(&mut conn).await.unwrap(), b"ok");
    assert!(conn.into_reusable().is_none());
}

/// Providers are HTTPS: the same client over Pingora's TLS connector, and the
/// connection back through the pool for the next request.
#[tokio::test]
async fn over_tls_answers_come_back_and_the_connection_is_pooled() {
    use pingora_core::connectors::TransportConnector;
    use pingora_core::upstreams::peer::{HttpPeer, Peer};
    use std::sync::Arc;

    pingora_rustls::install_default_crypto_provider();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/upstream/testdata");
    let (certs, key) = pingora_rustls::load_certs_and_key_files(
        &format!("{dir}/localhost.crt"),
        &format!("{dir}/localhost.key"),
    )
    .expect("readable")
    .expect("a certificate and its key");
    let config = pingora_rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = pingora_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let provider = tokio::spawn(async move {
        // One TCP connection only: the second request must come over the pooled one.
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut tls = acceptor.accept(tcp).await.expect("handshake");
        for answer in ["hello", "again"] {
            read_request(&mut tls).await;
            let wire = format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{answer}\r\n0\r\n\r\n",
                answer.len()
            );
            tls.write_all(wire.as_bytes()).await.expect("write");
            tls.flush().await.expect("flush");
        }
        tls
    });

    let connector = TransportConnector::new(None);
    let mut peer = HttpPeer::new(addr, true, "localhost".into());
    // The test's certificate is its own, self-signed.
    peer.options.verify_cert = false;
    peer.options.verify_hostname = false;
    let (first, rest) = post(b"{}");
    let mut stream = connector.new_stream(&peer).await.expect("tls connect");
    for want in [&b"hello"[..], b"again"] {
        let mut conn = Conn::new(stream);
        conn.set_read_timeout(Some(Duration::from_secs(5)));
        conn.send(&first, rest).await.expect("send");
        assert_eq!(conn.read_head().await.expect("head").status, 200);
        assert_eq!(body_of(&mut conn).await.expect("body"), want);
        let done = conn.into_reusable().expect("reusable");
        let idle = Duration::from_secs(60);
        pool::put(peer.reuse_hash(), done, idle);
        // Time for a TLS 1.3 session ticket to arrive: it is no answer nobody asked for.
        tokio::time::sleep(Duration::from_millis(50)).await;
        stream = pool::take(peer.reuse_hash(), idle).expect("pooled");
    }
    drop(provider.await.expect("provider"));
}
