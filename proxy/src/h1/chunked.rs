//! Decoding a chunked body (RFC 9112 §7.1) in place: a provider's response or a
//! client's upload.
//!
//! The decoder works on the connection's read buffer and hands out each chunk's data as
//! a slice of it (`split_to(..).freeze()`): no copy, and no buffer of its own. The size
//! lines and trailers it skips are bounded, so a hostile peer cannot make it hold
//! more than [`MAX_LINE`] bytes while it waits for a line's end.

use bytes::{Buf, Bytes, BytesMut};

/// The longest size line (with extensions) or trailer line accepted.
pub(crate) const MAX_LINE: usize = 4096;
/// The most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChunkError {
    #[error("invalid chunk size line")]
    BadSize,
    #[error("chunk size line longer than {MAX_LINE} bytes")]
    LongLine,
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    #[error("trailers longer than {MAX_TRAILERS} bytes")]
    LongTrailers,
}

/// What one step of decoding found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A piece of the body.
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The last chunk and the trailers are read: the body is complete.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, expecting its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; bytes seen so far.
    Trailers(usize),
    End,
}

/// The state of one chunked body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoder {
    state: State,
}

impl Default for Decoder {
    fn default() -> Self {
        Self { state: State::Size }
    }
}

impl Decoder {
    /// Decode from the front of `buf`, consuming what is decoded, until a piece of data,
    /// the end, or the need for more bytes.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = parse_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - n as u64;
                    let data = buf.split_to(n).freeze();
                    self.state = if left > 0 {
                        State::Data(left)
                    } else if buf.starts_with(b"\r\n") {
                        // The chunk's CRLF is taken with it when it is there, so a
                        // buffer holding nothing else can be let go of.
                        buf.advance(2);
                        State::Size
                    } else {
                        State::DataEnd
                    };
                    return Ok(Decoded::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError::MissingCrlf);
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers(seen) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let seen = seen + line.len() + 2;
                    if line.is_empty() {
                        self.state = State::End;
                    } else if seen > MAX_TRAILERS {
                        return Err(ChunkError::LongTrailers);
                    } else {
                        self.state = State::Trailers(seen);
                    }
                }
                State::End => return Ok(Decoded::End),
            }
        }
    }
}

/// The next CRLF-terminated line, without its CRLF; `None` until it is whole.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, ChunkError> {
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let line = buf.split_to(end);
            buf.advance(2);
            Ok(Some(line))
        }
        None if buf.len() >= MAX_LINE + 2 => Err(ChunkError::LongLine),
        None => Ok(None),
    }
}

/// `chunk-size [ BWS ";" chunk-ext ]`: one to sixteen hex digits, then optional
/// whitespace and extensions, which are ignored.
fn parse_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(ChunkError::BadSize);
    }
    let rest = &line[digits..];
    let rest = rest.trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(ChunkError::BadSize);
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| ChunkError::BadSize)?;
    u64::from_str_radix(hex, 16).map_err(|_| ChunkError::BadSize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `wire` fed in pieces of `step` bytes; the body, or the first error.
    fn decode_in_steps(wire: &[u8], step: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf)? {
                    Decoded::Data(b) => body.extend_from_slice(&b),
                    Decoded::NeedMore => break,
                    Decoded::End => return Ok((body, buf.is_empty())),
                }
            }
        }
        Ok((body, false))
    }

    #[test]
    fn bodies_decode_whatever_the_split() {
        let wire =
            b"5\r\nhello\r\n7;ext=\"a b\"\r\n, world\r\n1 \r\n!\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in 1..=wire.len() {
            let (body, exact) = decode_in_steps(wire, step).expect("valid");
            assert_eq!(body, b"hello, world!", "step {step}");
            assert!(exact, "nothing after the body is consumed (step {step})");
        }
        let (body, _) = decode_in_steps(b"A\r\n0123456789\r\n0\r\n\r\n", 3).expect("hex");
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn bytes_after_the_body_stay_in_the_buffer() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"ok")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Decoded::End));
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::End),
            "the end stays the end"
        );
        assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for (wire, want) in [
            (&b"\r\nhello\r\n"[..], ChunkError::BadSize),
            (b"zz\r\n", ChunkError::BadSize),
            (b"-1\r\n", ChunkError::BadSize),
            (b"5 x\r\nhello\r\n", ChunkError::BadSize),
            (b"11111111111111111\r\n", ChunkError::BadSize),
            (b"5\r\nhelloXY0\r\n\r\n", ChunkError::MissingCrlf),
        ] {
            assert_eq!(decode_in_steps(wire, 64), Err(want), "{wire:?}");
        }
        let long_size = [b"1;".as_slice(), &[b'x'; MAX_LINE + 8]].concat();
        assert_eq!(decode_in_steps(&long_size, 512), Err(ChunkError::LongLine));
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..1000 {
            trailers.extend_from_slice(b"x-t: aaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(
            decode_in_steps(&trailers, 512),
            Err(ChunkError::LongTrailers)
        );
    }

    #[test]
    fn a_huge_declared_size_streams_what_arrives() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nabc"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Decoded::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(d.decode(&mut buf), Ok(Decoded::NeedMore));
    }
}
