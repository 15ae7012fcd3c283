//! A client's request head: found in the read buffer, parsed once, and checked for
//! what would let a request mean one thing to sluice and another to someone else
//! (RFC 9112 §6.3, §3.2).

use bytes::{Buf, BytesMut};
use http::{Method, Uri, Version};

use crate::error::ProxyError;
use crate::fields::{self, Fields};
use crate::h1::{self, Coding, Framing};
pub(crate) use h1::head_end;

/// The most header lines in a request head.
pub(crate) const MAX_HEADERS: usize = 100;
/// The largest request head, request line included.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The longest request target.
pub(crate) const MAX_URI: usize = 8 * 1024;

/// A request's line and headers.
///
/// The target and the fields are the bytes read (no copy, see `fields`).
#[derive(Debug, Default)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: Fields,
}

/// A parsed head and what it says about the rest of the message.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub head: RequestHead,
    pub framing: Framing,
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a go-ahead before its body.
    pub expect_continue: bool,
}

/// Why a request head is refused; each answers with its own status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    #[error(
        "the request head is larger than {MAX_HEAD} bytes or has more than {MAX_HEADERS} header lines"
    )]
    TooLarge,
    #[error("the request target is longer than {MAX_URI} bytes")]
    UriTooLong,
    #[error("conflicting or invalid Content-Length")]
    BadLength,
    #[error("both Content-Length and Transfer-Encoding")]
    BothLengths,
    #[error("a transfer coding other than chunked")]
    UnsupportedCoding,
    #[error("Transfer-Encoding on an HTTP/1.0 request")]
    CodingOnHttp10,
    #[error("a missing, repeated or invalid Host")]
    BadHost,
}

impl HeadError {
    /// The answer the client gets, in the OpenAI shape (the dialect is not known before
    /// the head is).
    pub(crate) fn answer(&self) -> ProxyError {
        match self {
            Self::TooLarge => ProxyError::HeadTooLarge,
            Self::UriTooLong => ProxyError::UriTooLong,
            Self::UnsupportedCoding => ProxyError::UnsupportedTransferCoding,
            other => ProxyError::MalformedRequest(other.to_string()),
        }
    }
}

/// Skip the empty lines a client may send before a request line (RFC 9112 §2.2).
pub(crate) fn skip_empty_lines(buf: &mut BytesMut) {
    let blank = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    if blank > 0 {
        buf.advance(blank);
    }
}

/// Whether the start of a head, not yet whole, is already invalid: a client sending
/// garbage is answered at once, not when the head limit or the timeout is reached.
pub(crate) fn check_partial(buf: &[u8]) -> Result<(), HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut slots).parse(buf) {
        Ok(_) => Ok(()),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(e) => Err(HeadError::Malformed(describe(e))),
    }
}

/// Parse the whole head `bytes` (from [`head_end`]); `storage` is the previous
/// request's field list, emptied, so a connection's requests reuse one.
pub(crate) fn parse(
    mut bytes: BytesMut,
    mut storage: Vec<fields::Span>,
) -> Result<Parsed, HeadError> {
    // Uninitialised: zeroing a hundred slots cost more than parsing a small head.
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(&bytes, &mut slots) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(describe(e))),
    }
    let http11 = match req.version {
        Some(1) => true,
        Some(0) => false,
        _ => return Err(HeadError::Malformed("version")),
    };
    let method = req.method.unwrap_or_default();
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed("method"))?;
    let target = req.path.unwrap_or_default();
    if target.len() > MAX_URI {
        return Err(HeadError::UriTooLong);
    }
    let (start, end) = fields::range_in(&bytes, target.as_bytes())
        .ok_or(HeadError::Malformed("request target"))?;
    fields::locate(&bytes, req.headers, &mut storage).ok_or(HeadError::Malformed("header"))?;
    fields::lowercase_names(&mut bytes, &storage);
    let bytes = bytes.freeze();
    let uri = Uri::from_maybe_shared(bytes.slice(start as usize..end as usize))
        .map_err(|_| HeadError::Malformed("request target"))?;
    let headers = Fields::new(bytes, storage);

    // One Host on HTTP/1.1, never two (RFC 9112 §3.2): which of two would route?
    let hosts = headers.all("host").count();
    if hosts > 1 || (http11 && hosts == 0) {
        return Err(HeadError::BadHost);
    }
    let framing = framing(http11, &headers)?;
    let expect_continue = http11
        && headers
            .get("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Ok(Parsed {
        keep_alive: h1::keep_alive(http11, headers.all("connection")),
        head: RequestHead {
            method,
            uri,
            version: if http11 {
                Version::HTTP_11
            } else {
                Version::HTTP_10
            },
            headers,
        },
        framing,
        expect_continue,
    })
}

/// The body's framing. Every ambiguity is refused, not resolved, since a request that
/// two servers delimit differently is how requests are smuggled past one of them.
fn framing(http11: bool, headers: &Fields) -> Result<Framing, HeadError> {
    let length =
        h1::content_length(headers.all("content-length")).map_err(|_| HeadError::BadLength)?;
    match h1::coding(headers.all("transfer-encoding")) {
        Coding::None => Ok(Framing::Length(length.unwrap_or(0))),
        _ if length.is_some() => Err(HeadError::BothLengths),
        _ if !http11 => Err(HeadError::CodingOnHttp10),
        Coding::Chunked => Ok(Framing::Chunked),
        Coding::ChunkedEncoded => Err(HeadError::UnsupportedCoding),
        Coding::Unframed => Err(HeadError::Malformed("chunked is not the final coding")),
    }
}

fn describe(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        httparse::Error::NewLine => "line ending",
        httparse::Error::Status => "status",
        httparse::Error::Token => "method or request target",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "version",
    }
}
