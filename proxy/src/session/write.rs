//! A response as bytes on the wire: the head with the headers every HTTP/1.1 server
//! adds, and each piece of the body in the framing the head announced.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BufMut;
use http::{HeaderName, StatusCode};

use crate::fields::Fields;
use crate::h1::Framing;
use crate::head::Response;
use crate::headers;

/// How a response to this request is framed, given its status and body length.
///
/// Framing is the writer's alone: the head says `transfer-encoding: chunked` exactly
/// when that is the framing chosen (a provider's `Transfer-Encoding` is never passed
/// on), so an HTTP/1.0 client is never told "chunked" about a body sent unframed.
pub(crate) fn framing(
    head_request: bool,
    http11: bool,
    status: StatusCode,
    length: Option<u64>,
) -> Framing {
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Framing::Empty;
    }
    match length {
        Some(n) => Framing::Length(n),
        None if http11 => Framing::Chunked,
        None => Framing::Close,
    }
}

/// Headers only the writer writes, whatever a head was given.
fn owned(name: &[u8]) -> bool {
    matches!(
        name,
        b"date" | b"connection" | b"content-length" | b"transfer-encoding"
    )
}

/// The response head: status line; a passed-through provider's fields, less those that
/// do not cross the proxy and those set over them; the map's headers; the gateway's
/// (`extra`, each replacing the map's of its name; of a name given twice the last is
/// written); then `content-length` or `transfer-encoding` as `framing` says, `date` and
/// `connection`. The headers the writer owns are never taken from what it was given.
pub(crate) fn encode_head(resp: &Response<'_>, framing: Framing, keep_alive: bool) -> Vec<u8> {
    let extra = resp.extra;
    // A bit for each length of a name set over the provider's fields: most of its names
    // have a length none of those has, and are written without a comparison. Likewise
    // the gateway's own names, which are compared with the later ones only when two of
    // them share a length.
    let mut set_lengths = 0u64;
    let mut extra_lengths = 0u64;
    let mut extra_repeats = false;
    // Status line (17) + length or coding (38) + date (37) + connection (24), and each
    // header's ": " and CRLF; the provider's head is at most its own size.
    let mut size = 120 + resp.passed.as_ref().map_or(0, Fields::head_len);
    for (name, value) in &resp.headers {
        set_lengths |= length_bit(name);
        size += name.as_str().len() + value.len() + 4;
    }
    for (name, value) in extra {
        let bit = length_bit(name);
        extra_repeats |= extra_lengths & bit != 0;
        extra_lengths |= bit;
        size += name.as_str().len() + value.len() + 4;
    }
    set_lengths |= extra_lengths;
    let set_over = |name: &[u8]| {
        set_lengths & (1 << (name.len() % 64)) != 0
            && (resp.headers.keys().any(|n| n.as_str().as_bytes() == name)
                || extra.iter().any(|(n, _)| n.as_str().as_bytes() == name))
    };

    let mut out = Vec::with_capacity(size);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(resp.status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(resp.status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in resp.passed.iter().flat_map(Fields::iter) {
        if !headers::drop_downstream(name) && !owned(name) && !set_over(name) {
            line(&mut out, name, value);
        }
    }
    for (name, value) in &resp.headers {
        let over = extra_lengths & length_bit(name) != 0 && extra.iter().any(|(n, _)| n == name);
        if !over && !owned(name.as_str().as_bytes()) {
            line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    for (i, (name, value)) in extra.iter().enumerate() {
        let later = extra_repeats && extra[i + 1..].iter().any(|(n, _)| n == name);
        if !later && !owned(name.as_str().as_bytes()) {
            line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if let Some(n) = resp.length {
        out.put_slice(b"content-length: ");
        out.put_slice(itoa::Buffer::new().format(n).as_bytes());
        out.put_slice(b"\r\n");
    }
    if framing == Framing::Chunked {
        out.put_slice(b"transfer-encoding: chunked\r\n");
    }
    out.put_slice(b"date: ");
    with_date(|date| out.put_slice(date));
    out.put_slice(if keep_alive {
        b"\r\nconnection: keep-alive\r\n\r\n"
    } else {
        b"\r\nconnection: close\r\n\r\n"
    });
    out
}

/// The bit of `name`'s length in a set of lengths (modulo 64).
fn length_bit(name: &HeaderName) -> u64 {
    1 << (name.as_str().len() % 64)
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// A chunk's size line, in hex.
pub(crate) fn chunk_line(len: usize, out: &mut [u8; 20]) -> &[u8] {
    let mut n = len;
    let mut i = out.len() - 2;
    out[i..].copy_from_slice(b"\r\n");
    loop {
        i -= 1;
        out[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &out[i..]
}

/// The last chunk, with no trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

thread_local! {
    /// The `date` value of the current second, formatted once per second per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Call `f` with the current time as an HTTP date (IMF-fixdate, RFC 9110 §5.6.7).
fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *at = second;
            }
        }
        f(text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, header};

    fn text(resp: &Response<'_>, framing: Framing, keep_alive: bool) -> String {
        String::from_utf8(encode_head(resp, framing, keep_alive)).unwrap()
    }

    #[test]
    fn heads_carry_date_and_connection_once() {
        let mut resp = Response::new(201, 1).unwrap();
        resp.set(header::CONNECTION, HeaderValue::from_static("upgrade"));
        resp.set_length(2);
        let head = text(&resp, Framing::Length(2), false);
        assert!(head.starts_with("HTTP/1.1 201 Created\r\ncontent-length: 2\r\n"));
        assert!(head.ends_with("\r\nconnection: close\r\n\r\n"), "{head}");
        assert_eq!(head.matches("connection:").count(), 1, "{head}");
        let date = head
            .split("date: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        let unknown = Response::new(599, 0).unwrap();
        let head = text(&unknown, Framing::Chunked, true);
        assert!(head.starts_with("HTTP/1.1 599 \r\ntransfer-encoding: chunked\r\n"));
    }

    #[test]
    fn the_gateways_headers_replace_the_maps_and_the_last_of_a_name_wins() {
        let mut resp = Response::new(200, 2).unwrap();
        resp.set(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp.set(
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderValue::from_static("provider"),
        );
        let extra = [
            (
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from_static("1"),
            ),
            (
                HeaderName::from_static("x-ag-trace-id"),
                HeaderValue::from_static("t"),
            ),
            // As long as the trace id's name, and not the same.
            (
                HeaderName::from_static("x-ag-attempts"),
                HeaderValue::from_static("1"),
            ),
            (
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from_static("2"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from_static("99")),
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
        ];
        resp.set_all(&extra);
        let head = text(&resp, Framing::Chunked, true);
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(
            lines[..6],
            [
                "HTTP/1.1 200 OK",
                "content-type: application/json",
                "x-ag-trace-id: t",
                "x-ag-attempts: 1",
                "x-ratelimit-remaining: 2",
                "transfer-encoding: chunked",
            ]
        );
        assert!(lines[6].starts_with("date: "), "{head}");
        assert_eq!(lines[7], "connection: keep-alive");
        assert!(!head.contains("99") && !head.contains("provider"), "{head}");
    }

    #[test]
    fn a_providers_head_crosses_less_its_hop_by_hop_fields_and_what_is_set_over_it() {
        let fields = Fields::from_pairs(&[
            ("Content-Type", "application/json"),
            ("Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "7"),
            ("Set-Cookie", "a=1"),
            ("X-Request-Id", "r1"),
            ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("Cache-Control", "max-age=60"),
            ("X-Trace", "provider"),
            // As long as a name set over the provider's, and not the same.
            ("X-Other", "kept"),
            ("Vary", "a"),
            ("Vary", "b"),
        ]);
        let mut resp = Response::passthrough(200, fields, Some(7)).unwrap();
        resp.set(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let extra = [(
            HeaderName::from_static("x-trace"),
            HeaderValue::from_static("gateway"),
        )];
        resp.set_all(&extra);
        let head = text(&resp, Framing::Length(7), true);
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(
            lines[..9],
            [
                "HTTP/1.1 200 OK",
                "content-type: application/json",
                "x-request-id: r1",
                "x-other: kept",
                "vary: a",
                "vary: b",
                "cache-control: no-cache",
                "x-trace: gateway",
                "content-length: 7",
            ],
            "{head}"
        );
        for gone in ["chunked", "a=1", "2024", "max-age", "provider"] {
            assert!(!head.contains(gone), "{gone} in {head}");
        }
        assert_eq!(head.matches("connection:").count(), 1, "{head}");
        assert!(
            head.ends_with("\r\nconnection: keep-alive\r\n\r\n"),
            "{head}"
        );
    }

    #[test]
    fn framing_follows_the_request_and_status() {
        let ok = StatusCode::OK;
        assert_eq!(framing(false, true, ok, Some(5)), Framing::Length(5));
        assert_eq!(framing(true, true, ok, Some(5)), Framing::Empty);
        assert_eq!(framing(false, false, ok, None), Framing::Close);
        assert_eq!(framing(false, true, ok, None), Framing::Chunked);
        assert_eq!(
            framing(false, true, StatusCode::NO_CONTENT, None),
            Framing::Empty
        );
        assert!(Framing::Length(0).complete() && !Framing::Chunked.complete());
    }

    #[test]
    fn chunk_lines_are_hex() {
        let mut b = [0; 20];
        assert_eq!(chunk_line(0, &mut b), b"0\r\n");
        assert_eq!(chunk_line(255, &mut b), b"ff\r\n");
        assert_eq!(chunk_line(0x1234a, &mut b), b"1234a\r\n");
        assert_eq!(chunk_line(usize::MAX, &mut b), b"ffffffffffffffff\r\n");
    }
}
