//! Relaying an answer's body to the client once its header is out: passed through as
//! the provider sent it (watching for usage and for the stream's end), or translated
//! event by event into the client's dialect, through the response stage.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sluice_translate::canonical::{ErrorInfo, Event};
use sluice_translate::sse::{EventSplitter, SseParser};
use sluice_translate::usage::{self, StreamTap};
use sluice_translate::{Decoder, Dialect, Encoder, EncoderOptions, errors};
use tracing::{debug, warn};

use crate::error::ProxyError;
use crate::exchange::{BodyReader, MAX_ACCOUNTED_BODY, MAX_EVENT, Relayed};
use crate::policy::respond::Filter;
use crate::session::Session;

/// How a relay ended.
pub(crate) enum Done {
    /// The upstream body was read to its end.
    Complete,
    /// The client left, or the upstream failed; the connection is not reused.
    Abandoned,
}

/// Relay the provider's bytes as they come.
pub(crate) async fn pass_through(
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
    // An answer that came in one chunk, the usual case, is read in place; a second
    // chunk starts a copy, so no more than one of the reader's buffers is held.
    let mut whole: Option<Whole> = (ok && !is_sse).then_some(Whole::Empty);
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
                if let Some(w) = whole.take() {
                    whole = w.add(&chunk);
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
                let body = whole.take().map(Whole::into_bytes);
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
                let error = ProxyError::from(&e);
                warn!(error = %e, status = relayed.status, bytes = relayed.bytes, "upstream failed mid-response");
                relayed.broken = true;
                if is_sse {
                    let _ = session
                        .write_response_body(Some(error.sse_event(dialect)), true)
                        .await;
                } else {
                    session.close_after();
                }
                return Done::Abandoned;
            }
        }
    }
}

/// A complete answer kept to read its usage, bounded by `MAX_ACCOUNTED_BODY`.
enum Whole {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Whole {
    /// Add a chunk; `None` once the answer is larger than is kept.
    fn add(self, chunk: &Bytes) -> Option<Self> {
        let size = match &self {
            Self::Empty => 0,
            Self::One(b) => b.len(),
            Self::Many(b) => b.len(),
        };
        if size + chunk.len() > MAX_ACCOUNTED_BODY {
            return None;
        }
        Some(match self {
            Self::Empty => Self::One(chunk.clone()),
            Self::One(first) => {
                let mut buf = BytesMut::with_capacity(first.len() + chunk.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(chunk);
                Self::Many(buf)
            }
            Self::Many(mut buf) => {
                buf.extend_from_slice(chunk);
                Self::Many(buf)
            }
        })
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::One(b) => b,
            Self::Many(b) => b.freeze(),
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
pub(crate) async fn translate_stream(
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
                Some(ProxyError::from(&e).info())
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
