//! The server side over real sockets: framing both ways, keep-alive and pipelining,
//! and every kind of hostile or broken request a client can send.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// Serve one connection the way `service` does, with a handler that answers by path:
/// `/echo` reads the body and answers its length and first bytes, `/stream` answers in
/// three pieces with no length, `/early` answers without reading the body.
async fn serve_one(listener: TcpListener) {
    let (tcp, peer) = listener.accept().await.unwrap();
    let mut session = Session::new(tcp, peer);
    loop {
        match session.read_request().await {
            Next::Request => {}
            Next::Closed => break,
            Next::Refused(error) => {
                session.refuse(&error).await;
                return;
            }
        }
        let path = session.req_header().uri.path().to_owned();
        match path.as_str() {
            "/stream" => {
                while session.read_request_body().await.unwrap().is_some() {}
                let resp = head::Response::new(200, 1).unwrap();
                session.write_response_header(resp).await.unwrap();
                for piece in ["data: 1\n\n", "data: 2\n\n"] {
                    session
                        .write_response_body(Some(Bytes::from(piece)), false)
                        .await
                        .unwrap();
                }
                session
                    .write_response_body(Some(Bytes::from("data: [DONE]\n\n")), true)
                    .await
                    .unwrap();
            }
            "/early" => {
                let mut resp = head::Response::new(401, 1).unwrap();
                resp.set_length(4);
                session.write_response_header(resp).await.unwrap();
                session
                    .write_response_body(Some(Bytes::from("nope")), true)
                    .await
                    .unwrap();
            }
            _ => {
                let mut body = Vec::new();
                let mut failed = None;
                loop {
                    match session.read_request_body().await {
                        Ok(Some(piece)) => body.extend_from_slice(&piece),
                        Ok(None) => break,
                        Err(e) => {
                            failed = Some(e.to_string());
                            break;
                        }
                    }
                }
                let text = match failed {
                    Some(e) => format!("error {e}"),
                    None => format!(
                        "{} {} {}",
                        session.req_header().method,
                        body.len(),
                        String::from_utf8_lossy(&body[..body.len().min(16)])
                    ),
                };
                let mut resp = head::Response::new(200, 2).unwrap();
                resp.set(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain"),
                );
                resp.set_length(text.len());
                session.write_response_header(resp).await.unwrap();
                let _ = session
                    .write_response_body(Some(Bytes::from(text)), true)
                    .await;
            }
        }
        if !session.finish().await {
            break;
        }
    }
    session.close().await;
}

/// A client connected to a fresh one-connection server.
async fn connect() -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_one(listener));
    TcpStream::connect(addr).await.unwrap()
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(client: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut all))
        .await
        .expect("the server did not close")
        .unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

/// [`read_to_close`] without a timeout, for tests on paused time (where the timeout
/// would fire before the server's own).
async fn read_all(client: &mut TcpStream) -> String {
    let mut all = Vec::new();
    client.read_to_end(&mut all).await.unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

/// Send `wire` on a new connection and read every answer until the server closes.
async fn exchange(wire: &[u8]) -> String {
    let mut client = connect().await;
    client.write_all(wire).await.unwrap();
    client.shutdown().await.unwrap();
    read_to_close(&mut client).await
}

/// The bodies of the answers in `wire`, given each is framed by Content-Length.
fn statuses(answers: &str) -> Vec<&str> {
    answers
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &answers[i + 9..i + 12])
        .collect()
}

#[tokio::test]
async fn a_request_with_a_length_is_answered_with_one() {
    let answer = exchange(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\r\ncontent-length: 12\r\n"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.contains("\r\ndate: "), "{answer}");
    assert!(answer.ends_with("\r\n\r\nPOST 5 hello"), "{answer}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let wire = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                 GET /echo HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 2\r\nde\r\n1\r\nf\r\n0\r\n\r\n\
                 GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = exchange(wire).await;
    let bodies: Vec<&str> = answer
        .split("HTTP/1.1 200 OK")
        .skip(1)
        .map(|a| a.split("\r\n\r\n").nth(1).unwrap())
        .collect();
    assert_eq!(bodies, ["POST 3 abc", "GET 0 ", "POST 3 def", "GET 0 "]);
    assert_eq!(answer.matches("connection: keep-alive").count(), 3);
}

#[tokio::test]
async fn a_request_in_pieces_is_read_whole() {
    let mut client = connect().await;
    let wire: &[u8] = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789";
    for piece in wire.chunks(7) {
        client.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let answer = read_to_close(&mut client).await;
    assert!(answer.ends_with("POST 10 0123456789"), "{answer}");
}

#[tokio::test]
async fn an_answer_without_a_length_is_chunked_to_http11_and_closed_to_http10() {
    let answer = exchange(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(
        answer.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with(
            "\r\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
        ),
        "{answer:?}"
    );

    let answer = exchange(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
    assert!(!answer.contains("transfer-encoding"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\ndata: 1\n\ndata: 2\n\ndata: [DONE]\n\n"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn http10_keeps_the_connection_only_when_asked() {
    let twice = b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /echo HTTP/1.0\r\n\r\nGET /echo HTTP/1.0\r\n\r\n";
    let answer = exchange(twice).await;
    assert_eq!(statuses(&answer), ["200", "200"], "{answer}");
    assert!(answer.contains("connection: keep-alive"));
    assert!(
        answer.ends_with("connection: close\r\n\r\nGET 0 "),
        "{answer}"
    );
}

#[tokio::test]
async fn a_head_request_gets_the_head_only() {
    let answer = exchange(b"HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(answer.contains("content-length: 7\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "{answer:?}");
}

#[tokio::test]
async fn expect_continue_is_answered_when_the_body_is_read() {
    let mut client = connect().await;
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = vec![0; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), client.read(&mut got))
        .await
        .expect("no interim answer")
        .unwrap();
    assert_eq!(&got[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"ok").await.unwrap();
    let answer = read_to_close(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("POST 2 ok"), "{answer}");
}

#[tokio::test]
async fn an_answer_before_the_body_is_read_closes_and_still_arrives() {
    let mut client = connect().await;
    let big = vec![b'x'; 300_000];
    client
        .write_all(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        .await
        .unwrap();
    // The body is sent while the answer comes back, as a client that does not wait.
    let sender = tokio::spawn(async move {
        let _ = client.write_all(&big).await;
        client
    });
    let mut client = sender.await.unwrap();
    let answer = read_to_close(&mut client).await;
    assert!(
        answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nnope"), "{answer}");
}

#[tokio::test]
async fn an_early_answer_keeps_the_connection_when_the_body_is_already_here() {
    let answer = exchange(
        b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
          POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&answer), ["401", "401", "200"], "{answer}");
    assert_eq!(
        answer.matches("connection: keep-alive").count(),
        2,
        "{answer}"
    );
    assert!(answer.ends_with("GET 0 "), "{answer}");
}

/// Send `wire`; the one answer, which must close the connection, as (status, body).
async fn refused(wire: &[u8]) -> (u16, serde_json::Value) {
    let answer = exchange(wire).await;
    assert_eq!(statuses(&answer).len(), 1, "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    let status = answer[9..12].parse().unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let body: serde_json::Value = serde_json::from_str(body).expect(&answer);
    (status, body)
}

#[tokio::test]
async fn smuggling_shapes_are_refused_with_400() {
    for wire in [
        // Both lengths: which one a server after sluice believes is the attack.
        &b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1_0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /echo HTTP/1.1\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: x\r\n folded: value\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: x\r\nBad\x01Name: v\r\n\r\n",
        b"GET /echo HTTP/2.0\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 a TLS hello\r\n\r\n",
    ] {
        let (status, body) = refused(wire).await;
        assert_eq!(status, 400, "{}", wire.escape_ascii());
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
    }
    let (status, body) =
        refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .await;
    assert_eq!(status, 501);
    assert_eq!(body["error"]["code"], "transfer_coding_not_supported");
}

#[tokio::test]
async fn garbage_is_refused_before_the_head_would_end() {
    let mut client = connect().await;
    client
        .write_all(b"GET /echo HTTP/1.1\r\nHo st")
        .await
        .unwrap();
    let answer = read_to_close(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
}

#[tokio::test]
async fn oversized_heads_and_targets_are_refused() {
    let mut wire = b"GET /echo HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..101 {
        wire.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    let (status, body) = refused(&wire).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (431, Some("header_too_large"))
    );

    let mut wire = b"GET /echo HTTP/1.1\r\nHost: x\r\nx-big: ".to_vec();
    wire.extend(std::iter::repeat_n(b'a', MAX_HEAD));
    wire.extend_from_slice(b"\r\n\r\n");
    assert_eq!(refused(&wire).await.0, 431);

    let wire = format!(
        "GET /echo?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(request::MAX_URI)
    );
    let (status, body) = refused(wire.as_bytes()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (414, Some("uri_too_long"))
    );
}

#[tokio::test]
async fn broken_chunked_bodies_are_errors_not_hangs() {
    let answer = exchange(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    )
    .await;
    assert!(answer.contains("error malformed chunked body"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");

    let answer =
        exchange(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort").await;
    assert!(answer.contains("error the client closed"), "{answer}");
}

#[tokio::test]
async fn leading_empty_lines_are_skipped() {
    let answer =
        exchange(b"\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(answer.ends_with("GET 0 "), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn a_trickled_head_times_out_with_408() {
    let mut client = connect().await;
    client.write_all(b"GET /echo HTTP/1.1\r\n").await.unwrap();
    let answer = read_all(&mut client).await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer}"
    );
    assert!(answer.contains("request_timeout"), "{answer}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_without_an_answer() {
    let mut client = connect().await;
    client
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = vec![0; 1024];
    let n = client.read(&mut got).await.unwrap();
    assert!(got[..n].ends_with(b"GET 0 "));
    // Nothing more is sent: after a minute the server closes, saying nothing.
    let rest = read_all(&mut client).await;
    assert_eq!(rest, "");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_times_out() {
    let mut client = connect().await;
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let answer = read_all(&mut client).await;
    assert!(
        answer.contains("error no part of the body arrived"),
        "{answer}"
    );
}

/// Valid heads with bytes flipped, cut or repeated at random (a fixed seed): every one
/// parses or is refused with a reason, none panics, and nothing refused is half-taken.
#[test]
fn mangled_heads_parse_or_are_refused_never_panic() {
    let valid: &[u8] = b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: api.example\r\n\
        Content-Type: application/json\r\nContent-Length: 17\r\nX-Api-Key: k\r\n\
        Transfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: keep-alive\r\n\r\n";
    let mut mangler = crate::mangle::Mangler::new(0x9e37_79b9_7f4a_7c15, b"\r\n:; \t\0\x7f\xff", 8);
    let mut parsed = 0;
    for _ in 0..5_000 {
        let head = mangler.mangle(valid, 4);
        let _ = request::check_partial(&head);
        if let Some(end) = request::head_end(&head) {
            let bytes = BytesMut::from(&head[..end]);
            match request::parse(bytes, Vec::new()) {
                Ok(p) => {
                    parsed += 1;
                    // What parses is framed one way only.
                    assert!(
                        !(p.head.headers.contains("content-length")
                            && p.head.headers.contains("transfer-encoding"))
                    );
                }
                Err(e) => {
                    let answer = e.answer();
                    assert!(
                        answer.status_and_code().0.is_client_error()
                            || answer.status_and_code().0 == http::StatusCode::NOT_IMPLEMENTED
                    );
                }
            }
        }
    }
    assert!(
        parsed > 0,
        "no mangled head parsed at all: the mangling is too coarse"
    );
}

/// Field names are matched in lowercase whatever case the client wrote them in; values
/// and the order of the fields are kept as sent.
#[test]
fn field_names_are_lowercased_values_kept() {
    let head = BytesMut::from(
        &b"POST /c/v1/chat HTTP/1.1\r\nHost: a.test\r\nX-AG-API-Key: Ag_Key\r\n\
           X-Team: Blue\r\nx-team: red\r\nContent-Length: 2\r\n\r\n"[..],
    );
    let p = request::parse(head, Vec::new()).expect("parses");
    let fields = &p.head.headers;
    assert_eq!(fields.text("x-ag-api-key"), Some("Ag_Key"));
    assert_eq!(
        fields.all("x-team").collect::<Vec<_>>(),
        [&b"Blue"[..], b"red"]
    );
    let names: Vec<_> = fields.iter().map(|(n, _)| n.to_vec()).collect();
    let want: [&[u8]; 5] = [
        b"host",
        b"x-ag-api-key",
        b"x-team",
        b"x-team",
        b"content-length",
    ];
    assert_eq!(names, want);
    assert_eq!(p.head.uri.path(), "/c/v1/chat");
    assert_eq!(p.framing, Framing::Length(2));

    // A connection's next request reuses the list, emptied.
    let storage = p.head.headers.into_storage();
    assert!(storage.is_empty() && storage.capacity() >= 5);
    let next = BytesMut::from(&b"GET /healthz HTTP/1.1\r\nhost: b\r\n\r\n"[..]);
    let p = request::parse(next, storage).expect("parses");
    assert_eq!(p.head.headers.iter().count(), 1);
    assert_eq!(p.head.headers.text("host"), Some("b"));
}

#[tokio::test]
async fn control_bytes_in_a_value_are_refused() {
    let (status, _) = refused(b"POST / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n").await;
    assert_eq!(status, 400);
    let (status, _) = refused(b"POST / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n").await;
    assert_eq!(status, 400);
    // A bare CR is not a line's end, nor part of a value (RFC 9112 §2.2).
    let (status, _) = refused(b"POST / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n").await;
    assert_eq!(status, 400);
}
