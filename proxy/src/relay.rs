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

/// The most upstream bytes gathered for one write to the client. Pieces already read
/// when one arrives (a burst of events in one read of the socket) leave with it, in one
/// write rather than one each; a long burst leaves in writes of about this size.
const GATHER: usize = 64 * 1024;

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
    let mut out = Gather::default();
    loop {
        let mut read = up.read().await;
        // The pieces already read leave together; `Some` once the body has ended.
        let ending = loop {
            let chunk = match read {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break Some(Ok(())),
                Err(e) => break Some(Err(e)),
            };
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
            if strip_usage {
                let mut kept = BytesMut::with_capacity(chunk.len());
                let split = splitter.push(&chunk, MAX_EVENT, |event| {
                    if !is_usage_only_chunk(&event) {
                        kept.extend_from_slice(&event);
                    }
                });
                out.push(kept.freeze());
                if split.is_err() {
                    relayed.broken = true;
                    out.push(ProxyError::UpstreamFailed.sse_event(dialect));
                    let _ = session.write_response_body(out.take(), true).await;
                    return Done::Abandoned;
                }
            } else {
                out.push(chunk);
            }
            match up.read_now() {
                Some(next) if out.len() < GATHER => read = next,
                _ => break None,
            }
        };
        match ending {
            None => {
                if let Some(piece) = out.take()
                    && session
                        .write_response_body(Some(piece), false)
                        .await
                        .is_err()
                {
                    debug!("client went away mid-response");
                    return Done::Abandoned;
                }
            }
            Some(Ok(())) => {
                let mut rest = BytesMut::from(&splitter.rest()[..]);
                if is_sse && relayed.status == 200 && !end.seen {
                    // The provider closed a stream it never finished: say so rather
                    // than hand the client a truncation that looks complete.
                    warn!(bytes = relayed.bytes, "provider ended a stream unfinished");
                    relayed.broken = true;
                    errors::stream_event(dialect, &ErrorInfo::incomplete(), &mut rest);
                }
                out.push(rest.freeze());
                let _ = session.write_response_body(out.take(), true).await;
                // The usage is read once the client has its answer: accounting needs
                // it, the client does not wait for it.
                let body = whole.take().map(Whole::into_bytes);
                relayed.usage = match (&tap, &body) {
                    (Some(tap), _) => tap.usage(),
                    (_, Some(body)) => usage::of_body(dialect, body),
                    _ => None,
                };
                relayed.body = body;
                return Done::Complete;
            }
            Some(Err(e)) => {
                let error = ProxyError::from(&e);
                warn!(error = %e, status = relayed.status, bytes = relayed.bytes, "upstream failed mid-response");
                relayed.broken = true;
                if is_sse {
                    out.push(error.sse_event(dialect));
                    let _ = session.write_response_body(out.take(), true).await;
                } else {
                    // What came before the failure still goes; the client learns of
                    // the failure from the connection closing short of the end.
                    if let Some(piece) = out.take() {
                        let _ = session.write_response_body(Some(piece), false).await;
                    }
                    session.close_after();
                }
                return Done::Abandoned;
            }
        }
    }
}

/// Pieces of the answer for one write: the first kept as it is (an answer that came
/// in one piece is not copied), later ones copied after it.
#[derive(Default)]
struct Gather {
    first: Option<Bytes>,
    more: BytesMut,
}

impl Gather {
    fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        match &self.first {
            None => self.first = Some(piece),
            Some(first) => {
                if self.more.is_empty() {
                    self.more.reserve(first.len() + piece.len());
                    self.more.extend_from_slice(first);
                }
                self.more.extend_from_slice(&piece);
            }
        }
    }

    fn len(&self) -> usize {
        if self.more.is_empty() {
            self.first.as_ref().map_or(0, Bytes::len)
        } else {
            self.more.len()
        }
    }

    /// What is gathered, if anything, leaving the gather empty.
    fn take(&mut self) -> Option<Bytes> {
        let first = self.first.take()?;
        Some(if self.more.is_empty() {
            first
        } else {
            self.more.split().freeze()
        })
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
    // Whether any of the body (and with it the head) has gone to the client.
    let mut wrote = false;
    loop {
        let mut read = up.read().await;
        // The events already read are translated together, for one write.
        let mut gathered = 0;
        let (ended, mut failure) = loop {
            let ended = matches!(read, Ok(None));
            let failure: Option<ErrorInfo> = match read {
                Ok(Some(chunk)) => {
                    relayed.ttfb.get_or_insert_with(|| started.elapsed());
                    relayed.bytes += chunk.len();
                    gathered += chunk.len();
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
            if ended || failure.is_some() || gathered >= GATHER {
                break (ended, failure);
            }
            match up.read_now() {
                Some(next) => read = next,
                None => break (false, None),
            }
        };
        // Until the stream's first bytes have left, events are translated one at a
        // time and the first output goes at once: the first token does not wait for
        // the rest of a burst to be translated. After that, the burst leaves whole.
        let mut failed = false;
        let mut next = 0;
        loop {
            let upto = if wrote {
                sse.len()
            } else {
                sse.len().min(next + 1)
            };
            for e in &sse[next..upto] {
                if let Err(err) = decoder.decode(e, &mut events) {
                    events.push(Event::Error(bad_stream(&err.to_string())));
                    failed = true;
                    break;
                }
            }
            next = upto;
            let last = failed || next == sse.len();
            if last && let Some(info) = failure.take() {
                events.push(Event::Error(info));
            }
            failed |= events.iter().any(|e| matches!(e, Event::Error(_)));
            if let Some(f) = filter.as_mut() {
                f.events(&mut events);
            }
            for e in events.drain(..) {
                if let Event::Usage(u) = &e {
                    relayed.usage = Some(*u);
                }
                encoder.encode(&e, &mut buf);
            }
            if last || failed {
                break;
            }
            if !wrote && !send_part(session, &mut buf, &mut wrote).await {
                return Done::Abandoned;
            }
        }
        sse.clear();
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
        if !send_part(session, &mut buf, &mut wrote).await {
            return Done::Abandoned;
        }
    }
}

/// Send what is translated so far, if anything, and note that the body has begun;
/// `false` when the client has gone.
async fn send_part(session: &mut Session, buf: &mut BytesMut, wrote: &mut bool) -> bool {
    if buf.is_empty() {
        return true;
    }
    if session
        .write_response_body(Some(buf.split().freeze()), false)
        .await
        .is_err()
    {
        debug!("client went away mid-stream");
        return false;
    }
    *wrote = true;
    true
}

fn bad_stream(reason: &str) -> ErrorInfo {
    ProxyError::BadUpstreamResponse(reason.to_string()).info()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gather_of_one_piece_is_that_piece_and_more_are_joined_in_order() {
        let mut g = Gather::default();
        assert_eq!(g.take(), None);
        g.push(Bytes::new());
        assert_eq!((g.len(), g.take()), (0, None), "empty pieces are skipped");

        let one = Bytes::from_static(b"whole answer");
        g.push(one.clone());
        assert_eq!(g.len(), one.len());
        let taken = g.take().unwrap();
        assert_eq!(taken.as_ptr(), one.as_ptr(), "a lone piece is not copied");

        for piece in ["data: 1\n\n", "", "data: 2\n\n", "data: 3\n\n"] {
            g.push(Bytes::from(piece));
        }
        assert_eq!(g.len(), 27);
        assert_eq!(g.take().unwrap(), &b"data: 1\n\ndata: 2\n\ndata: 3\n\n"[..]);
        assert_eq!(g.take(), None, "taking empties it");
        g.push(Bytes::from_static(b"next"));
        assert_eq!(g.take().unwrap(), &b"next"[..]);
    }
}
