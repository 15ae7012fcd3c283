//! A provider's response head: parsed from the read buffer, and how its body is framed
//! (RFC 9112 §6.3).

use bytes::BytesMut;

use crate::fields::{self, Fields};
use crate::h1::{self, Coding, Framing};

/// The most header lines in a response head; more is refused.
const MAX_HEADERS: usize = 128;

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: u16,
    /// The fields, names in lowercase (`fields`: a map cost about 4,900 instructions a
    /// response to build and drop).
    pub fields: Fields,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the provider lets the connection carry another request afterwards.
    pub keep_alive: bool,
}

/// Why a response head is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("malformed response head: {0}")]
    Malformed(String),
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("conflicting or invalid Content-Length")]
    BadLength,
}

/// Parse a head from the front of `buf`, consuming it; `None` until it is whole.
///
/// The head is split off the buffer before it is parsed, so header values are slices
/// of it rather than copies.
pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    let Some(len) = h1::head_end(buf) else {
        // Not whole yet; a start that is already invalid is refused now.
        return check_partial(buf).map(|()| None);
    };
    let mut bytes = buf.split_to(len);
    // Uninitialised: zeroing 128 slots cost more than parsing a small head.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, &bytes, &mut slots)
    {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HeadError::Malformed("incomplete head".into()));
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    }
    let status = resp
        .code
        .ok_or_else(|| HeadError::Malformed("no status".into()))?;
    let http11 = resp.version == Some(1);
    let mut spans = Vec::new();
    fields::locate(&bytes, resp.headers, &mut spans)
        .ok_or_else(|| HeadError::Malformed("header".into()))?;
    fields::lowercase_names(&mut bytes, &spans);
    let fields = Fields::new(bytes.freeze(), spans);
    let framing = framing(status, &fields)?;
    let keep_alive = h1::keep_alive(http11, fields.all("connection")) && framing != Framing::Close;
    // A message with both lengths may be an attempt at smuggling: read it by its
    // Transfer-Encoding and do not reuse the connection (RFC 9112 §6.3, item 3).
    let both = fields.contains("transfer-encoding") && fields.contains("content-length");
    Ok(Some(Head {
        status,
        fields,
        framing,
        keep_alive: keep_alive && !both,
    }))
}

/// Whether the start of a head, not yet whole, is already invalid.
fn check_partial(buf: &[u8]) -> Result<(), HeadError> {
    if buf.is_empty() {
        return Ok(());
    }
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(_) => Ok(()),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(e) => Err(HeadError::Malformed(e.to_string())),
    }
}

fn framing(status: u16, fields: &Fields) -> Result<Framing, HeadError> {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    match h1::coding(fields.all("transfer-encoding")) {
        // Chunked only when it is the last coding; any other ends with the connection.
        Coding::Chunked | Coding::ChunkedEncoded => return Ok(Framing::Chunked),
        Coding::Unframed => return Ok(Framing::Close),
        Coding::None => {}
    }
    let length =
        h1::content_length(fields.all("content-length")).map_err(|_| HeadError::BadLength)?;
    Ok(length.map_or(Framing::Close, Framing::Length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(wire: &str) -> Result<Option<Head>, HeadError> {
        parse(&mut BytesMut::from(wire))
    }

    fn framing_of(wire: &str) -> (Framing, bool) {
        let h = head(wire).expect("valid").expect("whole");
        (h.framing, h.keep_alive)
    }

    #[test]
    fn heads_parse_and_leave_the_body() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: abc\r\n\
             Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n{}",
        );
        let h = parse(&mut buf).expect("valid").expect("whole");
        assert_eq!(h.status, 200);
        assert_eq!(h.fields.get("content-type"), Some(&b"application/json"[..]));
        assert_eq!(h.fields.get("x-request-id"), Some(&b"abc"[..]));
        assert_eq!(h.fields.all("set-cookie").count(), 2);
        assert_eq!(h.framing, Framing::Length(2));
        assert!(h.keep_alive);
        assert_eq!(&buf[..], b"{}");
        assert!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        use Framing::*;
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                (Chunked, true),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
                (Chunked, true),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                (Close, false),
            ),
            // Both lengths: Transfer-Encoding wins, and the connection is not reused.
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                (Chunked, false),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
                (Length(7), true),
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", (Close, false)),
            ("HTTP/1.1 204 No Content\r\n\r\n", (Empty, true)),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                (Empty, true),
            ),
            ("HTTP/1.1 100 Continue\r\n\r\n", (Empty, true)),
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                (Length(0), false),
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                (Length(0), false),
            ),
            (
                "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
                (Length(0), true),
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(framing_of(wire), want, "{wire:?}");
        }
    }

    #[test]
    fn hostile_heads_are_refused() {
        for wire in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            assert_eq!(head(wire).unwrap_err(), HeadError::BadLength, "{wire:?}");
        }
        assert!(matches!(
            head("NOT HTTP\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(
            head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooManyHeaders
        );
    }
}
