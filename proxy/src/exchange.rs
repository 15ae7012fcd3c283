//! One exchange with an upstream: connect (from the pool), send the request, answer the
//! client, translating the answer when the client speaks another dialect.
//!
//! Until the response header reaches the client, a failure is returned as a
//! [`ProxyError`] and the caller answers with an error in the client's dialect. After
//! that the client already has a status line, so a failure is reported in-band: a
//! stream gets an explicit error event in the client's dialect; any other body is cut
//! and the connection closed, never padded into something that looks complete.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method};
use pingora_core::connectors::TransportConnector;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_error::{Error, ErrorType};
use sluice_shared::snapshot::{UpstreamCredential, UpstreamTarget, WireApi};
use sluice_translate::canonical::Usage;
use sluice_translate::{Dialect, EncoderOptions, errors};
use tracing::{debug, warn};

use crate::connect;
use crate::error::ProxyError;
use crate::head;
use crate::headers;
use crate::peer::idle_timeout;
use crate::policy::respond::Filter;
use crate::relay::{Done, pass_through, translate_stream};
use crate::session::{Fields, Session};
use crate::upstream::{Conn, RequestWriter, UpstreamError, pool};

mod refused;

/// The most of a provider's answer buffered when it must be read whole (a complete
/// answer to translate, an error body).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// The most of a passed-through complete answer kept to read its usage.
pub(crate) const MAX_ACCOUNTED_BODY: usize = 4 * 1024 * 1024;
/// The most of one stream event held while waiting for its end.
pub(crate) const MAX_EVENT: usize = 8 * 1024 * 1024;

/// What the caller learns of an exchange that reached the client.
#[derive(Debug, Default, Clone)]
pub struct Relayed {
    pub status: u16,
    pub bytes: usize,
    pub ttfb: Option<Duration>,
    /// The upstream failed after the response started.
    pub broken: bool,
    /// The tokens the provider reported, whatever the path.
    pub usage: Option<Usage>,
    /// A complete answer's body as the client got it, when one was kept whole.
    pub body: Option<Bytes>,
}

/// How the answer reaches the client.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// Client and provider speak one dialect: the provider's bytes pass through.
    /// `strip_usage` drops the usage-only chunk of an OpenAI stream that the gateway
    /// asked for and the client did not.
    Passthrough { dialect: Dialect, strip_usage: bool },
    /// The answer is translated from the provider's dialect into the client's.
    Translate {
        upstream: Dialect,
        client: Dialect,
        stream: bool,
        include_usage: bool,
    },
}

/// The timeouts of one exchange after the request is sent.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Longest wait between two chunks of the body.
    pub idle: Duration,
    /// When a non-streaming exchange must be complete.
    pub deadline: Option<Instant>,
}

/// The request to send upstream, already decided.
pub struct Outbound<'a> {
    pub target: &'a UpstreamTarget,
    /// The consumer's extra headers for every upstream request.
    pub consumer_headers: &'a [(HeaderName, HeaderValue)],
    pub client_headers: &'a Fields,
    pub body: Bytes,
    pub api_path: &'a str,
}

/// Whether a client header is for another provider than the one called: an Anthropic
/// SDK's `anthropic-*` headers mean nothing to OpenAI, and the reverse.
fn foreign(name: &[u8], wire: WireApi) -> bool {
    match wire {
        WireApi::AnthropicMessages => name.starts_with(b"openai-"),
        _ => name.starts_with(b"anthropic-"),
    }
}

/// The upstream request's path: the provider's base path and API path, and the
/// credential when it goes in the query.
fn request_path(target: &UpstreamTarget, api_path: &str) -> Result<String, ProxyError> {
    let mut path = format!("{}{}", target.base_path, api_path);
    if let Some(UpstreamCredential::Query { name, value }) = &target.credential {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        path.push_str(&format!("?{}={}", encode(name), encode(value)));
    }
    // Written into the request line as it is: no space or control byte may split it.
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(misconfigured());
    }
    Ok(path)
}

fn misconfigured() -> ProxyError {
    ProxyError::UpstreamMisconfigured("cannot build the upstream request".into())
}

/// The upstream request, serialised as its headers are decided: the client's headers
/// minus credentials, hop-by-hop and other providers' ones, the provider's required
/// headers the client did not send, the consumer's extra headers, the provider host,
/// the credential and the exact content length. Each header sluice sets replaces any
/// the client sent under that name (and the consumer's replace the provider's
/// defaults). No map is built in between: building one and then writing it cost
/// about 3,000 instructions a request.
pub fn encode_outbound<'b>(out: &'b Outbound<'_>) -> Result<(BytesMut, &'b [u8]), ProxyError> {
    let target = out.target;
    let path = request_path(target, out.api_path)?;
    let host = target.authority.as_bytes();
    // What `HeaderValue::from_str` accepts: visible ASCII, space and tab.
    if !host
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(misconfigured());
    }
    let credential = match &target.credential {
        Some(UpstreamCredential::Header { name, value }) => Some((name, value)),
        _ => None,
    };
    let consumer = out.consumer_headers;
    // Names whose value sluice sets (`host` and `content-length` the client's are
    // dropped anyway).
    let is = |name: &[u8], other: &HeaderName| name == other.as_str().as_bytes();
    let set_here = |name: &[u8]| {
        name == b"content-type"
            || credential.is_some_and(|(c, _)| is(name, c))
            || consumer.iter().any(|(n, _)| is(name, n))
    };
    let size: usize = out
        .client_headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .chain(
            target
                .headers
                .iter()
                .chain(consumer)
                .map(|(n, v)| n.as_str().len() + v.len() + 4),
        )
        .sum::<usize>()
        + host.len()
        + 256;
    let mut w = RequestWriter::new(&Method::POST, &path, size, out.body.len());
    for (name, value) in out.client_headers.iter() {
        if !headers::drop_upstream(name) && !foreign(name, target.wire) && !set_here(name) {
            w.header(name, value);
        }
    }
    for (name, value) in &target.headers {
        let lower = name.as_str().as_bytes();
        // A client's own choice (a newer anthropic-version, say) wins over the default.
        if !out.client_headers.contains(name.as_str())
            && !set_here(lower)
            && name != http::header::HOST
            && name != http::header::CONTENT_LENGTH
        {
            w.header(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    for (i, (name, value)) in consumer.iter().enumerate() {
        // The last of a name wins, and the credential wins over the consumer's.
        let later = consumer[i + 1..].iter().any(|(n, _)| n == name);
        let reserved = name == http::header::HOST
            || name == http::header::CONTENT_TYPE
            || name == http::header::CONTENT_LENGTH
            || credential.is_some_and(|(c, _)| c == name);
        if !later && !reserved {
            w.header(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    w.header(b"host", host);
    w.header(b"content-type", b"application/json");
    if let Some((name, value)) = credential {
        w.header(name.as_str().as_bytes(), value.as_bytes());
    }
    let mut len = itoa::Buffer::new();
    w.header(b"content-length", len.format(out.body.len()).as_bytes());
    Ok(w.finish(&out.body))
}

/// What a failed connect through Pingora's connector (TCP, TLS) means for the client.
pub(crate) fn classify(err: &Error) -> ProxyError {
    match err.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ProxyError::UpstreamTimeout
        }
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::ConnectProxyFailure
        | ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::BindError => ProxyError::UpstreamUnreachable,
        _ => ProxyError::UpstreamFailed,
    }
}

/// A connection to `peer` (whose pool key is `key`): an idle one first, else a new
/// one. Returns whether it was idle in the pool.
async fn connect(
    connector: &TransportConnector,
    peer: &HttpPeer,
    key: u64,
) -> Result<(Conn, bool), ProxyError> {
    // An idle connection of this thread's first (`upstream::pool`). Only a new
    // connection goes through a connect path, boxed: Pingora's (TCP, TLS) is an 8.8 KiB
    // future, and inline it made every request's future, held by every open stream,
    // that much larger. A plain-HTTP peer gets sluice's own TCP connect (`connect`).
    if let Some(stream) = pool::take(key, idle_timeout()) {
        return Ok((Conn::new(stream), true));
    }
    let stream = match connect::plain_address(peer) {
        Some(addr) => Box::pin(connect::plain(peer, addr)).await?,
        None => Box::pin(connector.new_stream(peer)).await.map_err(|e| {
            debug!(error = %e, "upstream connect failed");
            classify(&e)
        })?,
    };
    Ok((Conn::new(stream), false))
}

/// Send the request and read the response header. A pooled connection the upstream
/// closed meanwhile fails on first use; that is retried once on a fresh connection.
async fn send(
    connector: &TransportConnector,
    peer: &HttpPeer,
    out: &Outbound<'_>,
    read_timeout: Duration,
    key: u64,
) -> Result<(Box<Conn>, crate::upstream::Response), ProxyError> {
    let (first, rest) = encode_outbound(out)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (mut up, reused) = connect(connector, peer, key).await?;
        up.set_read_timeout(Some(read_timeout));
        let sent = async {
            up.send(&first, rest).await?;
            up.read_head().await
        }
        .await;
        match sent {
            Ok(head) => return Ok((Box::new(up), head)),
            Err(e) if reused && attempt == 1 && e.stale() => {
                debug!(error = %e, "pooled upstream connection failed; retrying on a fresh one");
            }
            Err(e) => {
                debug!(error = %e, "upstream exchange failed");
                return Err(ProxyError::from(&e));
            }
        }
    }
}

/// Read the rest of the upstream body, bounded.
async fn read_all(up: &mut BodyReader) -> Result<Bytes, ProxyError> {
    let mut buf = BytesMut::new();
    loop {
        match up.read().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_UPSTREAM_BODY {
                    return Err(ProxyError::BadUpstreamResponse(
                        "the answer is larger than the proxy buffers".into(),
                    ));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) => return Err(ProxyError::from(&e)),
        }
    }
}

/// The client's response header: status, the given content type, no-buffering headers
/// for streams, and the gateway's own headers.
fn client_header<'x>(
    status: u16,
    content_type: &'static str,
    stream: bool,
    extra: &'x [(HeaderName, HeaderValue)],
) -> Result<head::Response<'x>, ProxyError> {
    let mut resp = head::Response::new(status, 4).ok_or(ProxyError::UpstreamFailed)?;
    resp.set(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if stream {
        resp.set(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        // No length: the writer frames it (chunked to an HTTP/1.1 client).
        resp.set(head::X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    }
    resp.set_all(extra);
    Ok(resp)
}

/// Write a complete body; `false` when the client went away.
async fn write_whole(session: &mut Session, mut resp: head::Response<'_>, body: Bytes) -> bool {
    resp.set_length(body.len());
    session.write_response_header(resp).await.is_ok()
        && session.write_response_body(Some(body), true).await.is_ok()
}

/// The status a client of `dialect` gets for a provider's error status: Anthropic's
/// 529 (overloaded) means nothing to OpenAI's SDKs, which know 503.
fn client_status(status: u16, dialect: Dialect) -> u16 {
    match (status, dialect) {
        (529, Dialect::OpenAiChat | Dialect::Responses) => 503,
        (s, _) => s,
    }
}

/// Run the exchange and answer the client.
/// Why answering failed.
#[derive(Debug)]
pub enum AnswerError {
    /// The provider failed before the first byte of its body, so nothing reached the
    /// client and another registry may still be tried.
    BeforeFirstByte(ProxyError),
    Other(ProxyError),
}

impl From<ProxyError> for AnswerError {
    fn from(e: ProxyError) -> Self {
        Self::Other(e)
    }
}

/// Reads a provider's body: the first chunk read ahead (before the client gets a
/// status line), then chunk by chunk, each read bounded by the idle timeout, all of
/// it by the total deadline of a non-streaming request.
pub(crate) struct BodyReader {
    up: Box<Conn>,
    first: Option<Option<Bytes>>,
    deadline: Option<Instant>,
}

impl BodyReader {
    pub(crate) async fn read(&mut self) -> Result<Option<Bytes>, UpstreamError> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        match self.deadline {
            Some(at) => tokio::time::timeout_at(at.into(), self.up.read_body())
                .await
                .unwrap_or(Err(UpstreamError::Timeout("by the total deadline"))),
            None => self.up.read_body().await,
        }
    }

    /// What [`Self::read`] would return without waiting for the socket (see
    /// [`Conn::read_body_now`]); `None` when the next piece is still to come.
    pub(crate) fn read_now(&mut self) -> Option<Result<Option<Bytes>, UpstreamError>> {
        match self.first.take() {
            Some(first) => Some(Ok(first)),
            None => self.up.read_body_now(),
        }
    }

    /// Read the first chunk ahead; a failure here is still retryable.
    async fn prime(&mut self) -> Result<(), AnswerError> {
        let first = self.read().await.map_err(|e| {
            debug!(error = %e, "provider failed before its first byte");
            AnswerError::BeforeFirstByte(ProxyError::from(&e))
        })?;
        self.first = Some(first);
        Ok(())
    }
}

/// An upstream that answered with a response header; nothing has reached the client
/// yet, so the caller may still try elsewhere.
pub struct Sent {
    /// Boxed from here on: each `async` function it passes through would otherwise
    /// keep its own copy in the request's future.
    up: Box<Conn>,
    pub status: u16,
    /// The provider's header, dropped once the client's is built from it.
    fields: Fields,
    /// The provider's body length, when its head gave one.
    length: Option<u64>,
    is_sse: bool,
    /// The provider's `Retry-After`, in seconds form.
    pub retry_after: Option<Duration>,
    /// From sending the request to its response header.
    pub header_latency: Duration,
    started: Instant,
    /// The peer's key in the pool, hashed once per request.
    pool_key: u64,
}

/// Give a connection whose response was read to its end back to the pool.
fn keep(up: Conn, pool_key: u64) {
    if let Some(stream) = up.into_reusable() {
        pool::put(pool_key, stream, idle_timeout());
    }
}

/// Send the request and read the response header.
pub(crate) async fn send_request(
    connector: &TransportConnector,
    peer: &HttpPeer,
    out: &Outbound<'_>,
    read_timeout: Duration,
) -> Result<Sent, ProxyError> {
    let started = Instant::now();
    let pool_key = peer.reuse_hash();
    let (up, upstream) = send(connector, peer, out, read_timeout, pool_key).await?;
    let status = upstream.status;
    let is_sse = upstream
        .fields
        .get("content-type")
        .is_some_and(|v| v.starts_with(b"text/event-stream"));
    let retry_after = upstream
        .fields
        .text("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok(Sent {
        up,
        status,
        fields: upstream.fields,
        length: upstream.length,
        is_sse,
        retry_after,
        header_latency: started.elapsed(),
        started,
        pool_key,
    })
}

/// The client's header for a passed-through answer: the upstream's fields as they came,
/// less hop-by-hop headers (the writer leaves them out), plus the gateway's. (Rebuilding
/// them into a map cost about 4,000 instructions a request: a hash and a copy per
/// header.)
fn passthrough_header<'x>(
    status: u16,
    upstream: Fields,
    length: Option<u64>,
    response_headers: &'x [(HeaderName, HeaderValue)],
    is_sse: bool,
) -> Result<head::Response<'x>, ProxyError> {
    let mut resp =
        head::Response::passthrough(status, upstream, length).ok_or(ProxyError::UpstreamFailed)?;
    resp.set_all(response_headers);
    if is_sse {
        // Streams go out as they come: no intermediary may buffer them.
        resp.set(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        resp.set(head::X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
        resp.clear_length();
    }
    Ok(resp)
}

/// Answer the client from an upstream's response; `filter` is the response stage of
/// a translated answer.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn answer(
    sent: Sent,
    response_headers: &[(HeaderName, HeaderValue)],
    answer: Answer,
    timing: Timing,
    session: &mut Session,
    mut filter: Option<&mut Filter>,
) -> Result<Relayed, AnswerError> {
    let Sent {
        mut up,
        status,
        fields,
        length,
        is_sse,
        started,
        pool_key,
        ..
    } = sent;
    up.set_read_timeout(Some(timing.idle));
    // A passed-through answer's header is the upstream's; a translated answer drops
    // it: a stream does not hold it while it is relayed.
    let passthrough_head = match answer {
        Answer::Passthrough { .. } => Some(passthrough_header(
            status,
            fields,
            length,
            response_headers,
            is_sse,
        )?),
        Answer::Translate { .. } => {
            drop(fields);
            None
        }
    };
    let mut up = BodyReader {
        up,
        first: None,
        deadline: timing.deadline,
    };
    up.prime().await?;
    let mut relayed = Relayed {
        status,
        ..Relayed::default()
    };
    let result = match answer {
        Answer::Passthrough {
            dialect,
            strip_usage,
        } => {
            let resp = passthrough_head.ok_or(ProxyError::UpstreamFailed)?;
            if session.write_response_header(resp).await.is_err() {
                relayed.broken = true;
                return Ok(relayed);
            }
            pass_through(
                &mut up,
                session,
                &mut relayed,
                started,
                dialect,
                is_sse,
                strip_usage,
            )
            .await
        }
        Answer::Translate {
            upstream: from,
            client,
            stream,
            include_usage,
        } => {
            if !(200..300).contains(&status) {
                let body = read_all(&mut up).await.unwrap_or_default();
                let info = errors::parse_upstream(status, &body);
                warn!(status, code = ?info.code, "provider refused the request");
                let resp = client_header(
                    client_status(status, client),
                    "application/json",
                    false,
                    response_headers,
                )?;
                relayed.status = client_status(status, client);
                if !write_whole(session, resp, errors::body(client, &info)).await {
                    relayed.broken = true;
                }
                Done::Complete
            } else if is_sse {
                let resp = client_header(200, "text/event-stream", true, response_headers)?;
                if session.write_response_header(resp).await.is_err() {
                    relayed.broken = true;
                    return Ok(relayed);
                }
                let dialects = (from, client, include_usage);
                translate_stream(&mut up, session, &mut relayed, started, dialects, filter).await
            } else {
                let body = read_all(&mut up).await?;
                relayed.ttfb = Some(started.elapsed());
                relayed.bytes = body.len();
                let mut answer =
                    sluice_translate::parse_response(from, &body).map_err(ProxyError::from)?;
                if let Some(f) = filter.as_mut() {
                    f.response(&mut answer);
                }
                relayed.usage = answer.usage;
                let (resp, bytes) = if stream {
                    // The provider answered a stream request whole; the client still
                    // gets the stream it asked for.
                    let options = EncoderOptions { include_usage };
                    (
                        client_header(200, "text/event-stream", true, response_headers)?,
                        sluice_translate::render_stream(client, answer, options),
                    )
                } else {
                    let body = sluice_translate::render_response(client, &answer);
                    (
                        client_header(200, "application/json", false, response_headers)?,
                        Bytes::from(body),
                    )
                };
                if !stream {
                    relayed.body = Some(bytes.clone());
                }
                if !write_whole(session, resp, bytes).await {
                    relayed.broken = true;
                }
                Done::Complete
            }
        }
    };
    if matches!(result, Done::Complete) {
        keep(*up.up, pool_key);
    }
    Ok(relayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(auth: serde_json::Value, provider: &str) -> UpstreamTarget {
        let doc: sluice_shared::model::Registry = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "gateway_id": uuid::Uuid::now_v7(), "name": "r",
            "provider": provider,
            "provider_options": {"base_url": "https://api.example.test:8443/v1"},
            "auth": auth, "created_at": "t", "updated_at": "t"}))
        .expect("registry");
        UpstreamTarget::compile(&doc, None).expect("target")
    }

    fn head(out: &Outbound<'_>) -> (String, Vec<(String, String)>, Vec<u8>) {
        let (first, rest) = encode_outbound(out).expect("encoded");
        assert!(rest.is_empty());
        let text = String::from_utf8(first.to_vec()).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("blank line");
        let mut lines = head.split("\r\n");
        let line = lines.next().expect("request line").to_string();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("header");
                (n.to_string(), v.to_string())
            })
            .collect();
        (line, headers, body.as_bytes().to_vec())
    }

    fn values<'h>(headers: &'h [(String, String)], name: &str) -> Vec<&'h str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// What crosses to the provider: the client's headers less its credentials, hop-by-hop
    /// and other providers' headers; sluice's own host, type, credential and length,
    /// each once, whatever the client or the consumer sent under those names.
    #[test]
    fn the_upstream_request_carries_what_it_should_once() {
        let target = target(
            serde_json::json!({"type": "api_key", "api_key": "sk-provider"}),
            "anthropic",
        );
        let client = Fields::from_pairs(&[
            ("authorization", "Bearer sk-client"),
            ("x-ag-api-key", "client-key"),
            ("host", "sluice.test"),
            ("content-length", "999"),
            ("content-type", "text/plain"),
            ("connection", "keep-alive"),
            ("openai-beta", "assistants=v2"),
            ("anthropic-beta", "tools-2024"),
            ("anthropic-version", "2024-10-22"),
            ("x-request-id", "a"),
            ("x-request-id", "b"),
            ("X-Team", "client"),
        ]);
        let consumer = [
            (
                HeaderName::from_static("x-team"),
                HeaderValue::from_static("one"),
            ),
            (
                HeaderName::from_static("x-team"),
                HeaderValue::from_static("two"),
            ),
            (
                HeaderName::from_static("host"),
                HeaderValue::from_static("evil.test"),
            ),
        ];
        let body = Bytes::from_static(br#"{"model":"m"}"#);
        let out = Outbound {
            target: &target,
            consumer_headers: &consumer,
            client_headers: &client,
            body: body.clone(),
            api_path: "/messages",
        };
        let (line, headers, sent) = head(&out);
        assert_eq!(line, "POST /v1/messages HTTP/1.1");
        assert_eq!(sent, body.to_vec());
        for (name, want) in [
            ("host", vec!["api.example.test:8443"]),
            ("content-type", vec!["application/json"]),
            ("content-length", vec!["13"]),
            ("anthropic-version", vec!["2024-10-22"]),
            ("anthropic-beta", vec!["tools-2024"]),
            ("x-request-id", vec!["a", "b"]),
            ("x-team", vec!["two"]),
            ("x-ag-api-key", vec![]),
            ("connection", vec![]),
            ("openai-beta", vec![]),
        ] {
            assert_eq!(values(&headers, name), want, "{name}");
        }
        let credential: Vec<_> = headers.iter().filter(|(_, v)| v.contains("sk-")).collect();
        assert_eq!(credential.len(), 1, "{credential:?}");
        assert!(!credential[0].1.contains("sk-client"));

        // The provider's default version when the client names none.
        let bare = Fields::default();
        let out = Outbound {
            client_headers: &bare,
            consumer_headers: &[],
            ..out
        };
        let (_, headers, _) = head(&out);
        assert_eq!(
            values(&headers, "anthropic-version"),
            [sluice_shared::snapshot::DEFAULT_ANTHROPIC_VERSION]
        );
    }

    #[test]
    fn a_query_credential_goes_in_the_path_encoded() {
        let target = target(
            serde_json::json!({"type": "api_key", "api_key": "a b&c", "param_location": "query", "param_name": "key"}),
            "openai_compatible",
        );
        let out = Outbound {
            target: &target,
            consumer_headers: &[],
            client_headers: &Fields::default(),
            body: Bytes::new(),
            api_path: "/chat/completions",
        };
        let (line, headers, _) = head(&out);
        assert_eq!(line, "POST /v1/chat/completions?key=a+b%26c HTTP/1.1");
        assert_eq!(values(&headers, "content-length"), ["0"]);
    }
}
