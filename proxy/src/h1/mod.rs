//! HTTP/1.1 message framing (RFC 9112) shared by sluice's two sides: the server its
//! clients talk to (`session`) and the client it talks to providers with (`upstream`).
//! Both read lengths, codings and connection options by these same rules, so a message
//! one side would frame differently from the other cannot pass through.

mod body;
pub(crate) mod chunked;

pub(crate) use body::{Body, let_go};

/// Where the head in `buf` ends (past its blank line), once it is whole.
///
/// Looked for before parsing, so a head arriving in pieces is parsed once, and only
/// after it is split off the buffer: the parsed values can then point into it.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|i| match buf.get(i + 1..) {
        Some([b'\n', ..]) => Some(i + 2),
        Some([b'\r', b'\n', ..]) => Some(i + 3),
        _ => None,
    })
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: a 1xx, 204 or 304 response, or one to `HEAD`.
    Empty,
    /// This many bytes (still) to come.
    Length(u64),
    Chunked,
    /// Until the connection closes.
    Close,
}

impl Framing {
    /// Whether the body is complete with nothing more.
    pub(crate) fn complete(self) -> bool {
        matches!(self, Self::Empty | Self::Length(0))
    }
}

/// A `Content-Length` that cannot be trusted: not a number, or several that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadLength;

/// The message's `Content-Length`, if it has one.
///
/// A list of identical values is one length (RFC 9110 §8.6); anything else is refused
/// rather than guessed at, as a guess is what request smuggling relies on.
/// `values` are every `Content-Length` value of the message, in order.
pub(crate) fn content_length<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<u64>, BadLength> {
    let mut length = None;
    for value in values {
        for part in value.split(|b| *b == b',') {
            let n = parse_length(part.trim_ascii()).ok_or(BadLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(BadLength);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Decimal digits only: no sign, no space, no empty value, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// How `Transfer-Encoding` frames a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// No `Transfer-Encoding`.
    None,
    /// `chunked` alone: the framing sluice reads.
    Chunked,
    /// `chunked` last, after other codings (`gzip, chunked`): framed, but encoded in a
    /// way sluice does not decode.
    ChunkedEncoded,
    /// `chunked` is not the last coding: the length is unknowable (to the end of the
    /// connection for a response; an error for a request).
    Unframed,
}

/// What the message's `Transfer-Encoding` (every value of it, in order) says about
/// its framing.
pub(crate) fn coding<'a>(values: impl Iterator<Item = &'a [u8]>) -> Coding {
    let mut values = values.peekable();
    if values.peek().is_none() {
        return Coding::None;
    }
    let mut count = 0;
    let mut last = None;
    // The codings in order, empty elements skipped.
    let codings = values
        .flat_map(|v| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    for c in codings {
        count += 1;
        last = Some(c);
    }
    match last {
        Some(c) if c.eq_ignore_ascii_case(b"chunked") && count == 1 => Coding::Chunked,
        Some(c) if c.eq_ignore_ascii_case(b"chunked") => Coding::ChunkedEncoded,
        _ => Coding::Unframed,
    }
}

/// Whether the sender lets the connection carry another message afterwards: HTTP/1.1
/// unless told `close`, HTTP/1.0 only when told `keep-alive`. `connection` are every
/// `Connection` value of the message.
pub(crate) fn keep_alive<'a>(http11: bool, connection: impl Iterator<Item = &'a [u8]>) -> bool {
    let token: &[u8] = if http11 { b"close" } else { b"keep-alive" };
    let listed = connection
        .flat_map(|v| v.split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token));
    if http11 { !listed } else { listed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Fields;

    // Leaked: a test's few lists, so the values can outlive the helper.
    fn of(
        pairs: &[(&'static str, &'static str)],
        name: &'static str,
    ) -> impl Iterator<Item = &'static [u8]> {
        Box::leak(Box::new(Fields::from_pairs(pairs))).all(name)
    }

    fn lengths(pairs: &[(&'static str, &'static str)]) -> impl Iterator<Item = &'static [u8]> {
        of(pairs, "content-length")
    }

    fn codings(pairs: &[(&'static str, &'static str)]) -> impl Iterator<Item = &'static [u8]> {
        of(pairs, "transfer-encoding")
    }

    fn connection(pairs: &[(&'static str, &'static str)]) -> impl Iterator<Item = &'static [u8]> {
        of(pairs, "connection")
    }

    #[test]
    fn lengths_are_read_strictly() {
        assert_eq!(content_length(lengths(&[])), Ok(None));
        assert_eq!(
            content_length(lengths(&[("content-length", "12")])),
            Ok(Some(12))
        );
        assert_eq!(
            content_length(lengths(&[
                ("content-length", "7, 7"),
                ("content-length", "7")
            ])),
            Ok(Some(7))
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1 2",
            "0x10",
            "7, 8",
            "18446744073709551616",
        ] {
            assert_eq!(
                content_length(lengths(&[("content-length", bad)])),
                Err(BadLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            content_length(lengths(&[("content-length", "1"), ("content-length", "2")])),
            Err(BadLength)
        );
    }

    #[test]
    fn codings_frame_by_their_last_element() {
        let te = |v| coding(codings(&[("transfer-encoding", v)]));
        assert_eq!(coding(codings(&[])), Coding::None);
        assert_eq!(te("chunked"), Coding::Chunked);
        assert_eq!(te("Chunked"), Coding::Chunked);
        assert_eq!(te("gzip, chunked"), Coding::ChunkedEncoded);
        assert_eq!(te("chunked, gzip"), Coding::Unframed);
        assert_eq!(te("gzip"), Coding::Unframed);
        assert_eq!(te(""), Coding::Unframed);
        assert_eq!(
            coding(codings(&[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked")
            ])),
            Coding::ChunkedEncoded
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        assert!(keep_alive(true, connection(&[])));
        assert!(!keep_alive(true, connection(&[("connection", "Close")])));
        assert!(!keep_alive(true, connection(&[("connection", "x, close")])));
        assert!(!keep_alive(false, connection(&[])));
        assert!(keep_alive(
            false,
            connection(&[("connection", "Keep-Alive")])
        ));
    }
}
