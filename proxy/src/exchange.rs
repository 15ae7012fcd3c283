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
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use sluice_shared::snapshot::{CompiledConsumer, UpstreamCredential, UpstreamTarget, WireApi};
use sluice_translate::canonical::{ErrorInfo, Event, Usage};
use sluice_translate::sse::{EventSplitter, SseParser};
use sluice_translate::usage::{self, StreamTap};
use sluice_translate::{Decoder, Dialect, Encoder, EncoderOptions, errors};
use tracing::{debug, warn};

use crate::error::ProxyError;
use crate::headers;
use crate::peer::idle_timeout;
use crate::policy::respond::Filter;

/// The most of a provider's answer buffered when it must be read whole (a complete
/// answer to translate, an error body).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// The most of a passed-through complete answer kept to read its usage.
const MAX_ACCOUNTED_BODY: usize = 4 * 1024 * 1024;
/// The most of one stream event held while waiting for its end.
const MAX_EVENT: usize = 8 * 1024 * 1024;

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
    pub consumer: &'a CompiledConsumer,
    pub client_headers: &'a HeaderMap,
    pub body: Bytes,
    pub api_path: &'a str,
}

/// Whether a client header is for another provider than the one called: an Anthropic
/// SDK's `anthropic-*` headers mean nothing to OpenAI, and the reverse.
fn foreign(name: &HeaderName, wire: WireApi) -> bool {
    let n = name.as_str();
    match wire {
        WireApi::AnthropicMessages => n.starts_with("openai-"),
        _ => n.starts_with("anthropic-"),
    }
}

/// Build the upstream request header: provider path, provider host, the client's
/// headers minus credentials, hop-by-hop and other providers' ones, the consumer's
/// extra headers, the provider's required headers, the credential, and the exact
/// content length.
pub fn request_header(out: &Outbound<'_>) -> Result<RequestHeader, ProxyError> {
    let target = out.target;
    let mut path = format!("{}{}", target.base_path, out.api_path);
    if let Some(UpstreamCredential::Query { name, value }) = &target.credential {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        path.push_str(&format!("?{}={}", encode(name), encode(value)));
    }
    let internal =
        |_| ProxyError::UpstreamMisconfigured("cannot build the upstream request".into());
    let mut req =
        RequestHeader::build_no_case("POST", path.as_bytes(), Some(out.client_headers.len() + 6))
            .map_err(internal)?;
    for (name, value) in out.client_headers {
        if !headers::drop_upstream(name) && !foreign(name, target.wire) {
            req.append_header(name.clone(), value.clone())
                .map_err(internal)?;
        }
    }
    for (name, value) in &target.headers {
        // A client's own choice (a newer anthropic-version, say) wins over the default.
        if !out.client_headers.contains_key(name) {
            req.insert_header(name.clone(), value.clone())
                .map_err(internal)?;
        }
    }
    for (name, value) in &out.consumer.headers {
        req.insert_header(name.clone(), value.clone())
            .map_err(internal)?;
    }
    req.insert_header(http::header::HOST, target.authority.as_str())
        .map_err(internal)?;
    req.insert_header(http::header::CONTENT_TYPE, "application/json")
        .map_err(internal)?;
    if let Some(UpstreamCredential::Header { name, value }) = &target.credential {
        req.insert_header(name.clone(), value.clone())
            .map_err(internal)?;
    }
    req.insert_header(http::header::CONTENT_LENGTH, out.body.len().to_string())
        .map_err(internal)?;
    Ok(req)
}

fn classify(err: &Error) -> ProxyError {
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

/// Send the request and read the response header. A pooled connection the upstream
/// closed meanwhile fails on first use; that is retried once on a fresh connection.
async fn send(
    connector: &Connector,
    peer: &HttpPeer,
    out: &Outbound<'_>,
    read_timeout: Duration,
) -> Result<HttpSession, ProxyError> {
    let body = &out.body;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Built per attempt rather than cloned for a retry that rarely happens.
        let req = request_header(out)?;
        let (mut up, reused) = connector.get_http_session(peer).await.map_err(|e| {
            debug!(error = %e, "upstream connect failed");
            classify(&e)
        })?;
        up.set_read_timeout(Some(read_timeout));
        let sent = async {
            up.write_request_header(Box::new(req)).await?;
            up.write_request_body(body.clone(), true).await?;
            up.finish_request_body().await?;
            up.read_response_header().await
        }
        .await;
        match sent {
            Ok(()) => return Ok(up),
            Err(e) if reused && attempt == 1 => {
                debug!(error = %e, "pooled upstream connection failed; retrying on a fresh one");
            }
            Err(e) => {
                debug!(error = %e, "upstream exchange failed");
                return Err(classify(&e));
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
            Err(e) => return Err(classify(&e)),
        }
    }
}

/// The client's response header: status, the given content type, no-buffering headers
/// for streams, and the gateway's own headers.
fn client_header(
    status: u16,
    content_type: &str,
    stream: bool,
    extra: &[(HeaderName, HeaderValue)],
) -> Result<ResponseHeader, ProxyError> {
    let mut resp = ResponseHeader::build_no_case(status, Some(extra.len() + 4))
        .map_err(|_| ProxyError::UpstreamFailed)?;
    let _ = resp.insert_header(http::header::CONTENT_TYPE, content_type);
    if stream {
        let _ = resp.insert_header(http::header::CACHE_CONTROL, "no-cache");
        let _ = resp.insert_header("x-accel-buffering", "no");
        // Without a length, a body must be chunked to keep the connection: else it
        // is delimited by closing it, and every stream costs the client a new one.
        let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    }
    for (name, value) in extra {
        let _ = resp.insert_header(name.clone(), value.clone());
    }
    Ok(resp)
}

/// Write a complete body; `false` when the client went away.
async fn write_whole(session: &mut Session, mut resp: ResponseHeader, body: Bytes) -> bool {
    resp.remove_header(&http::header::TRANSFER_ENCODING);
    let _ = resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    session
        .write_response_header(Box::new(resp), false)
        .await
        .is_ok()
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
struct BodyReader {
    up: HttpSession,
    first: Option<Option<Bytes>>,
    deadline: Option<Instant>,
}

impl BodyReader {
    async fn read(&mut self) -> pingora_error::Result<Option<Bytes>> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        match self.deadline {
            Some(at) => tokio::time::timeout_at(at.into(), self.up.read_response_body())
                .await
                .unwrap_or_else(|_| Err(Error::explain(ErrorType::ReadTimedout, "total timeout"))),
            None => self.up.read_response_body().await,
        }
    }

    /// Read the first chunk ahead; a failure here is still retryable.
    async fn prime(&mut self) -> Result<(), AnswerError> {
        let first = self.read().await.map_err(|e| {
            debug!(error = %e, "provider failed before its first byte");
            AnswerError::BeforeFirstByte(classify(&e))
        })?;
        self.first = Some(first);
        Ok(())
    }
}

/// An upstream that answered with a response header; nothing has reached the client
/// yet, so the caller may still try elsewhere.
pub struct Sent {
    up: HttpSession,
    pub status: u16,
    is_sse: bool,
    /// The provider's `Retry-After`, in seconds form.
    pub retry_after: Option<Duration>,
    /// From sending the request to its response header.
    pub header_latency: Duration,
    started: Instant,
}

/// Send the request and read the response header.
pub async fn send_request(
    connector: &Connector,
    peer: &HttpPeer,
    out: &Outbound<'_>,
    read_timeout: Duration,
) -> Result<Sent, ProxyError> {
    let started = Instant::now();
    let up = send(connector, peer, out, read_timeout).await?;
    let upstream = up.response_header().ok_or(ProxyError::UpstreamFailed)?;
    let status = upstream.status.as_u16();
    let is_sse = upstream
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let retry_after = upstream
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok(Sent {
        up,
        status,
        is_sse,
        retry_after,
        header_latency: started.elapsed(),
        started,
    })
}

/// The client's header for a passed-through answer: the upstream's, less hop-by-hop
/// ones, plus the gateway's; chunked when it has no length.
fn passthrough_header(
    upstream: &ResponseHeader,
    response_headers: &[(HeaderName, HeaderValue)],
    is_sse: bool,
) -> Result<ResponseHeader, ProxyError> {
    let mut resp = ResponseHeader::build_no_case(upstream.status, Some(upstream.headers.len() + 6))
        .map_err(|_| ProxyError::UpstreamFailed)?;
    for (name, value) in &upstream.headers {
        if !headers::drop_downstream(name) {
            resp.append_header(name.clone(), value.clone())
                .map_err(|_| ProxyError::UpstreamFailed)?;
        }
    }
    for (name, value) in response_headers {
        let _ = resp.insert_header(name.clone(), value.clone());
    }
    if is_sse {
        // Streams go out as they come: no intermediary may buffer them.
        let _ = resp.insert_header(http::header::CACHE_CONTROL, "no-cache");
        let _ = resp.insert_header("x-accel-buffering", "no");
        resp.remove_header(&http::header::CONTENT_LENGTH);
    }
    if resp.headers.get(http::header::CONTENT_LENGTH).is_none() {
        // See `client_header`: chunked keeps the connection alive.
        let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
    }
    Ok(resp)
}

/// Answer the client from an upstream's response; `filter` is the response stage of
/// a translated answer.
#[allow(clippy::too_many_arguments)]
pub async fn answer(
    connector: &Connector,
    peer: &HttpPeer,
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
        is_sse,
        started,
        ..
    } = sent;
    up.set_read_timeout(Some(timing.idle));
    // A passed-through answer's header is built from the upstream's in place, before
    // the session moves into the reader.
    let passthrough_head = match answer {
        Answer::Passthrough { .. } => {
            let upstream = up.response_header().ok_or(ProxyError::UpstreamFailed)?;
            Some(passthrough_header(upstream, response_headers, is_sse)?)
        }
        Answer::Translate { .. } => None,
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
            if session
                .write_response_header(Box::new(resp), false)
                .await
                .is_err()
            {
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
                if session
                    .write_response_header(Box::new(resp), false)
                    .await
                    .is_err()
                {
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
                    let mut enc = Encoder::new(client, EncoderOptions { include_usage });
                    let mut buf = BytesMut::new();
                    for e in answer.into_events() {
                        enc.encode(&e, &mut buf);
                    }
                    enc.finish(&mut buf);
                    (
                        client_header(200, "text/event-stream", true, response_headers)?,
                        buf.freeze(),
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
    if matches!(result, Done::Complete) && up.up.response_done() {
        connector
            .release_http_session(up.up, peer, Some(idle_timeout()))
            .await;
    }
    Ok(relayed)
}

/// How a relay ended.
enum Done {
    /// The upstream body was read to its end.
    Complete,
    /// The client left, or the upstream failed; the connection is not reused.
    Abandoned,
}

/// Relay the provider's bytes as they come.
async fn pass_through(
    up: &mut BodyReader,
    session: &mut Session,
    relayed: &mut Relayed,
    started: Instant,
    dialect: Dialect,
    is_sse: bool,
    strip_usage: bool,
) -> Done {
    let strip_usage = is_sse && strip_usage;
    let mut splitter = EventSplitter::default();
    let mut end = EndWatch::new(dialect);
    // Usage, for accounting: a stream's usage events are read as they pass; a complete
    // answer is kept (bounded) to read its usage at the end.
    let ok = (200..300).contains(&relayed.status);
    let mut tap = (ok && is_sse).then(|| StreamTap::new(dialect));
    // The chunks themselves are kept (reference-counted, not copied); an answer that
    // came in one chunk, the usual case, is read in place.
    let mut whole: Option<(Vec<Bytes>, usize)> = (ok && !is_sse).then(|| (Vec::new(), 0));
    loop {
        match up.read().await {
            Ok(Some(chunk)) => {
                relayed.ttfb.get_or_insert_with(|| started.elapsed());
                relayed.bytes += chunk.len();
                if is_sse {
                    end.saw(&chunk);
                }
                if let Some(tap) = tap.as_mut() {
                    tap.push(&chunk);
                }
                if let Some((chunks, size)) = whole.as_mut() {
                    if *size + chunk.len() <= MAX_ACCOUNTED_BODY {
                        *size += chunk.len();
                        chunks.push(chunk.clone());
                    } else {
                        whole = None;
                    }
                }
                let out = if strip_usage {
                    let mut kept = BytesMut::with_capacity(chunk.len());
                    let split = splitter.push(&chunk, MAX_EVENT, |event| {
                        if !is_usage_only_chunk(&event) {
                            kept.extend_from_slice(&event);
                        }
                    });
                    if split.is_err() {
                        relayed.broken = true;
                        let _ = session
                            .write_response_body(
                                Some(ProxyError::UpstreamFailed.sse_event(dialect)),
                                true,
                            )
                            .await;
                        return Done::Abandoned;
                    }
                    kept.freeze()
                } else {
                    chunk
                };
                if !out.is_empty() && session.write_response_body(Some(out), false).await.is_err() {
                    debug!("client went away mid-response");
                    return Done::Abandoned;
                }
            }
            Ok(None) => {
                let body =
                    whole
                        .take()
                        .map(|(chunks, size)| match <[Bytes; 1]>::try_from(chunks) {
                            Ok([one]) => one,
                            Err(chunks) => {
                                let mut buf = BytesMut::with_capacity(size);
                                chunks.iter().for_each(|c| buf.extend_from_slice(c));
                                buf.freeze()
                            }
                        });
                relayed.usage = match (&tap, &body) {
                    (Some(tap), _) => tap.usage(),
                    (_, Some(body)) => usage::of_body(dialect, body),
                    _ => None,
                };
                relayed.body = body;
                let mut rest = BytesMut::from(&splitter.rest()[..]);
                if is_sse && relayed.status == 200 && !end.seen {
                    // The provider closed a stream it never finished: say so rather
                    // than hand the client a truncation that looks complete.
                    warn!(bytes = relayed.bytes, "provider ended a stream unfinished");
                    relayed.broken = true;
                    errors::stream_event(dialect, &ErrorInfo::incomplete(), &mut rest);
                }
                let rest = rest.freeze();
                let _ = session
                    .write_response_body((!rest.is_empty()).then_some(rest), true)
                    .await;
                return Done::Complete;
            }
            Err(e) => {
                let error = classify(&e);
                warn!(error = %e, status = relayed.status, bytes = relayed.bytes, "upstream failed mid-response");
                relayed.broken = true;
                if is_sse {
                    let _ = session
                        .write_response_body(Some(error.sse_event(dialect)), true)
                        .await;
                } else {
                    session.set_keepalive(None);
                }
                return Done::Abandoned;
            }
        }
    }
}

/// Watches a pass-through stream for its dialect's closing event, across chunk
/// boundaries, without buffering more than the marker's length.
struct EndWatch {
    markers: &'static [&'static [u8]],
    tail: Vec<u8>,
    seen: bool,
}

impl EndWatch {
    fn new(dialect: Dialect) -> Self {
        let markers: &'static [&'static [u8]] = match dialect {
            Dialect::OpenAiChat => &[b"data: [DONE]", b"data:[DONE]", b"data: {\"error\""],
            Dialect::Anthropic => &[b"message_stop", b"\"type\":\"error\""],
            Dialect::Responses => &[
                b"response.completed",
                b"response.incomplete",
                b"response.failed",
            ],
        };
        Self {
            markers,
            tail: Vec::new(),
            seen: false,
        }
    }

    fn saw(&mut self, chunk: &[u8]) {
        if self.seen {
            return;
        }
        let longest = self.markers.iter().map(|m| m.len()).max().unwrap_or(0);
        let head = &chunk[..chunk.len().min(longest)];
        self.tail.extend_from_slice(head);
        let found = |hay: &[u8]| {
            self.markers
                .iter()
                .any(|m| memchr::memmem::find(hay, m).is_some())
        };
        self.seen = found(&self.tail) || found(chunk);
        let keep = chunk.len().min(longest);
        self.tail.clear();
        self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
    }
}

/// An OpenAI stream chunk that carries only usage (`"choices":[]`), which the gateway
/// requested for its own accounting.
fn is_usage_only_chunk(event: &[u8]) -> bool {
    memchr::memmem::find(event, b"\"choices\":[]").is_some()
        && memchr::memmem::find(event, b"\"usage\"").is_some()
}

/// Translate a provider's stream into the client's, event by event.
async fn translate_stream(
    up: &mut BodyReader,
    session: &mut Session,
    relayed: &mut Relayed,
    started: Instant,
    (from, client, include_usage): (Dialect, Dialect, bool),
    mut filter: Option<&mut Filter>,
) -> Done {
    let mut parser = SseParser::new(MAX_EVENT);
    let mut decoder = Decoder::new(from);
    let mut encoder = Encoder::new(client, EncoderOptions { include_usage });
    let mut sse = Vec::new();
    let mut events = Vec::new();
    let mut buf = BytesMut::new();
    loop {
        let read = up.read().await;
        let ended = matches!(read, Ok(None));
        let failure: Option<ErrorInfo> = match read {
            Ok(Some(chunk)) => {
                relayed.ttfb.get_or_insert_with(|| started.elapsed());
                relayed.bytes += chunk.len();
                parser
                    .push(&chunk, &mut sse)
                    .err()
                    .map(|e| bad_stream(&e.to_string()))
            }
            Ok(None) => parser
                .finish(&mut sse)
                .err()
                .map(|e| bad_stream(&e.to_string())),
            Err(e) => {
                warn!(error = %e, bytes = relayed.bytes, "upstream failed mid-stream");
                Some(classify(&e).info())
            }
        };
        for e in sse.drain(..) {
            if let Err(err) = decoder.decode(&e, &mut events) {
                events.push(Event::Error(bad_stream(&err.to_string())));
                break;
            }
        }
        if let Some(info) = failure {
            events.push(Event::Error(info));
        }
        let failed = events.iter().any(|e| matches!(e, Event::Error(_)));
        if let Some(f) = filter.as_mut() {
            f.events(&mut events);
        }
        for e in events.drain(..) {
            if let Event::Usage(u) = &e {
                relayed.usage = Some(*u);
            }
            encoder.encode(&e, &mut buf);
        }
        if ended || failed {
            encoder.finish(&mut buf);
            relayed.broken = failed || !decoder.complete();
            let _ = session
                .write_response_body(Some(buf.split().freeze()), true)
                .await;
            return if ended && !failed {
                Done::Complete
            } else {
                Done::Abandoned
            };
        }
        if !buf.is_empty()
            && session
                .write_response_body(Some(buf.split().freeze()), false)
                .await
                .is_err()
        {
            debug!("client went away mid-stream");
            return Done::Abandoned;
        }
    }
}

fn bad_stream(reason: &str) -> ErrorInfo {
    ProxyError::BadUpstreamResponse(reason.to_string()).info()
}
