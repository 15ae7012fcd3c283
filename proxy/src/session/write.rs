//! A response as bytes on the wire: the head with the headers every HTTP/1.1 server
//! adds, and each piece of the body in the framing the head announced.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BufMut;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::h1::{self, Framing};

/// How a response to this request is framed, given its status and headers; the head
/// says `transfer-encoding: chunked` exactly when that is the framing chosen.
///
/// Framing is the writer's alone: a `Transfer-Encoding` the head came with (from a
/// provider, or set by a caller) is replaced, so an HTTP/1.0 client is never told
/// "chunked" about a body sent unframed.
pub(crate) fn framing(
    head_request: bool,
    http11: bool,
    status: StatusCode,
    headers: &mut HeaderMap,
) -> Framing {
    headers.remove(header::TRANSFER_ENCODING);
    let length = h1::content_length(h1::values(headers, header::CONTENT_LENGTH))
        .ok()
        .flatten();
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Framing::Empty;
    }
    match length {
        Some(n) => Framing::Length(n),
        None if http11 => {
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            Framing::Chunked
        }
        None => Framing::Close,
    }
}

/// The response head: status line, the caller's headers, then `extra` over them
/// (each replaces the map's of its name; of a name given twice the last is written),
/// then `date` and `connection`. The headers the writer owns are never taken from
/// `extra`.
pub(crate) fn encode_head(
    status: StatusCode,
    headers: &HeaderMap,
    extra: &[(HeaderName, HeaderValue)],
    keep_alive: bool,
) -> Vec<u8> {
    // Status line (17) + date (37) + connection (24) + each header's ": " and CRLF.
    let size = 80
        + headers
            .iter()
            .chain(extra.iter().map(|(n, v)| (n, v)))
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    let mut line = |name: &HeaderName, value: &HeaderValue| {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    };
    for (name, value) in headers {
        if name == header::DATE
            || name == header::CONNECTION
            || extra.iter().any(|(n, _)| n == name)
        {
            continue;
        }
        line(name, value);
    }
    for (i, (name, value)) in extra.iter().enumerate() {
        let owned = name == header::DATE
            || name == header::CONNECTION
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING;
        if !owned && !extra[i + 1..].iter().any(|(n, _)| n == name) {
            line(name, value);
        }
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

    #[test]
    fn heads_carry_date_and_connection_once() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(2));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        let head =
            String::from_utf8(encode_head(StatusCode::CREATED, &headers, &[], false)).unwrap();
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
        let unknown = StatusCode::from_u16(599).unwrap();
        let head = encode_head(unknown, &HeaderMap::new(), &[], true);
        assert!(head.starts_with(b"HTTP/1.1 599 \r\n"));
    }

    #[test]
    fn the_gateways_headers_replace_the_maps_and_the_last_of_a_name_wins() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            "x-ratelimit-remaining",
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
            (
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from_static("2"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from_static("99")),
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
        ];
        let head = String::from_utf8(encode_head(StatusCode::OK, &headers, &extra, true)).unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(
            lines[..4],
            [
                "HTTP/1.1 200 OK",
                "content-type: application/json",
                "x-ag-trace-id: t",
                "x-ratelimit-remaining: 2"
            ]
        );
        assert!(lines[4].starts_with("date: "), "{head}");
        assert_eq!(lines[5], "connection: keep-alive");
        assert!(!head.contains("99") && !head.contains("provider"), "{head}");
    }

    #[test]
    fn framing_follows_the_request_and_status() {
        let ok = StatusCode::OK;
        let mut with_length = HeaderMap::new();
        with_length.insert(header::CONTENT_LENGTH, HeaderValue::from(5));
        assert_eq!(
            framing(false, true, ok, &mut with_length),
            Framing::Length(5)
        );
        assert_eq!(framing(true, true, ok, &mut with_length), Framing::Empty);
        let mut none = HeaderMap::new();
        none.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert_eq!(framing(false, false, ok, &mut none), Framing::Close);
        assert!(none.is_empty(), "an HTTP/1.0 client is told chunked");
        assert_eq!(framing(false, true, ok, &mut none), Framing::Chunked);
        assert_eq!(none[header::TRANSFER_ENCODING], "chunked");
        assert_eq!(
            framing(false, true, StatusCode::NO_CONTENT, &mut HeaderMap::new()),
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
