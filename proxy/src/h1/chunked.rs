//! Decoding a chunked body (RFC 9112 §7.1) in place: a provider's response or a
//! client's upload.
//!
//! The decoder works on the connection's read buffer and hands out each chunk's data as
//! a slice of it (`split_to(..).freeze()`): no copy, and no buffer of its own. The size
//! lines and trailers it skips are bounded, so a hostile peer cannot make it hold
//! more than [`MAX_LINE`] bytes while it waits for a line's end.
//!
//! Chunk lines end with CRLF and nothing else (RFC 9112 §7.1, erratum 7633): a bare LF
//! or CR, or any other control byte but HTAB, anywhere in a size line, its extensions
//! or a trailer line is refused. A parser that reads a bare LF in an extension as part
//! of it, while an intermediary in front of it ends the line there, delimits the chunks
//! differently from that intermediary, which is how requests are smuggled past it
//! (CVE-2025-55315 in Kestrel, CVE-2025-22871 in Go's net/http).

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
    #[error("a control byte or bare CR or LF in a chunk extension")]
    BadExtension,
    #[error("a trailer line that is not a field, or holds a control byte")]
    BadTrailer,
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
                    } else if !field_line(&line) {
                        return Err(ChunkError::BadTrailer);
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
/// whitespace (SP or HTAB only) and extensions, which are ignored but may hold no
/// control byte other than HTAB.
fn parse_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(ChunkError::BadSize);
    }
    let blank = line[digits..]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    match &line[digits + blank..] {
        [] => {}
        [b';', ext @ ..] if !ext.iter().copied().any(control) => {}
        [b';', ..] => return Err(ChunkError::BadExtension),
        _ => return Err(ChunkError::BadSize),
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| ChunkError::BadSize)?;
    u64::from_str_radix(hex, 16).map_err(|_| ChunkError::BadSize)
}

/// A byte no chunk line may hold: a control byte other than HTAB (CR and LF among
/// them), or DEL.
fn control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Whether a trailer line is a field line, `token ":" value`, without control bytes.
/// Its contents are dropped, but a line that is not one is a peer framing the body in
/// a way sluice does not read it.
fn field_line(line: &[u8]) -> bool {
    const SEPARATORS: &[u8] = b"\"(),/:;<=>?@[\\]{}";
    let name = line
        .iter()
        .take_while(|&&b| b.is_ascii_graphic() && !SEPARATORS.contains(&b))
        .count();
    name > 0 && line.get(name) == Some(&b':') && !line.iter().copied().any(control)
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

    /// The shapes of the chunk-line smuggling attacks (a bare LF or CR where a peer in
    /// front may end the line, other control bytes) are refused wherever they stand;
    /// extensions and trailers written by the grammar still pass.
    #[test]
    fn chunk_lines_end_with_crlf_and_nothing_else() {
        for (wire, want) in [
            (&b"2;\nxx\r\n0\r\n\r\n"[..], ChunkError::BadExtension),
            (b"2;a=b\nc\r\nxx\r\n0\r\n\r\n", ChunkError::BadExtension),
            (b"2;a\rb\r\nxx\r\n0\r\n\r\n", ChunkError::BadExtension),
            (b"2;a\x00\r\nxx\r\n0\r\n\r\n", ChunkError::BadExtension),
            (b"2;a\x7f\r\nxx\r\n0\r\n\r\n", ChunkError::BadExtension),
            (b"2\n\r\nxx\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"2\r;a\r\nxx\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"2\x0c;a\r\nxx\r\n0\r\n\r\n", ChunkError::BadSize),
            (b"2\r\nxx\r\n0\r\n\n\r\n", ChunkError::BadTrailer),
            (b"2\r\nxx\r\n0\r\nx: a\nb\r\n\r\n", ChunkError::BadTrailer),
            (b"2\r\nxx\r\n0\r\nx: a\rb\r\n\r\n", ChunkError::BadTrailer),
            (b"2\r\nxx\r\n0\r\nno colon\r\n\r\n", ChunkError::BadTrailer),
            (
                b"2\r\nxx\r\n0\r\n: empty name\r\n\r\n",
                ChunkError::BadTrailer,
            ),
            (b"2\r\nxx\r\n0\r\nx y: z\r\n\r\n", ChunkError::BadTrailer),
        ] {
            for step in [1, 3, wire.len()] {
                assert_eq!(decode_in_steps(wire, step), Err(want.clone()), "{wire:?}");
            }
        }
        let allowed = b"2 \t;name=value;q=\"a \tb\xc3\xa9\"\r\nxx\r\n1;x\r\ny\r\n0\r\n\
            x-sum: a\tb\r\nx-empty:\r\n\r\n";
        for step in 1..=allowed.len() {
            let (body, exact) = decode_in_steps(allowed, step).expect("valid");
            assert_eq!(body, b"xxy", "step {step}");
            assert!(exact, "step {step}");
        }
    }

    /// Valid bodies with bytes flipped, cut, inserted or repeated at random (a fixed
    /// seed): each decodes to the same body, the same error and the same leftover
    /// bytes however it is split, and none panics.
    #[test]
    fn mangled_bodies_decode_alike_whatever_the_split() {
        let valid: &[u8] =
            b"5\r\nhello\r\n7;ext=\"a b\"\r\n, world\r\n1 \r\n!\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        let mut mangler =
            crate::mangle::Mangler::new(0x2545_f491_4f6c_dd1d, b"\r\n; \t0:\x7f\x00", 6);
        /// Everything decoding found: the body, how it ended, what was left.
        fn outcome(wire: &[u8], step: usize) -> (Vec<u8>, Result<bool, ChunkError>, Vec<u8>) {
            let mut d = Decoder::default();
            let mut buf = BytesMut::new();
            let mut body = Vec::new();
            for (i, piece) in wire.chunks(step).enumerate() {
                buf.extend_from_slice(piece);
                loop {
                    match d.decode(&mut buf) {
                        Ok(Decoded::Data(b)) => body.extend_from_slice(&b),
                        Ok(Decoded::NeedMore) => break,
                        Ok(Decoded::End) => {
                            // What follows the body: in the buffer, and not yet fed.
                            let rest = wire.get((i + 1) * step..).unwrap_or_default();
                            return (body, Ok(true), [&buf[..], rest].concat());
                        }
                        Err(e) => return (body, Err(e), Vec::new()),
                    }
                }
            }
            (body, Ok(false), Vec::new())
        }
        let mut ended = 0;
        for _ in 0..3_000 {
            let wire = mangler.mangle(valid, 3);
            let whole = outcome(&wire, wire.len().max(1));
            for step in [1, 2, 7] {
                assert_eq!(
                    outcome(&wire, step),
                    whole,
                    "{} in steps of {step}",
                    wire.escape_ascii()
                );
            }
            ended += usize::from(whole.1 == Ok(true));
        }
        assert!(
            ended > 0,
            "no mangled body decoded: the mangling is too coarse"
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
