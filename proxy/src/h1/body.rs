//! Where a body being read stands, for either side: the next piece is cut from the
//! connection's read buffer by the body's framing.

use bytes::BytesMut;

use super::Framing;
use super::chunked::{ChunkError, Decoded, Decoder};

/// Drop a read buffer once everything in it is handed out, so a connection between
/// reads (an open stream waiting for its next event, an idle keep-alive) holds no memory
/// for it; the next read allocates afresh.
pub(crate) fn let_go(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() != 0 {
        *buf = BytesMut::new();
    }
}

/// A body being read.
#[derive(Debug)]
pub(crate) enum Body {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Decoder),
    /// Until the peer closes the connection.
    Close,
    Done,
}

impl Body {
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => Self::Done,
            Framing::Length(n) => Self::Length(n),
            Framing::Chunked => Self::Chunked(Decoder::default()),
            Framing::Close => Self::Close,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// The next piece from the front of `buf` (as a slice of it), the end, or the need
    /// for more bytes. A buffer this empties is let go of (see [`let_go`]).
    pub(crate) fn next(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        let step = self.step(buf)?;
        if step != Decoded::NeedMore {
            let_go(buf);
        }
        Ok(step)
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        match self {
            Self::Done => Ok(Decoded::End),
            Self::Length(_) | Self::Close if buf.is_empty() => Ok(Decoded::NeedMore),
            Self::Length(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                *left -= n as u64;
                if *left == 0 {
                    *self = Self::Done;
                }
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            Self::Close => Ok(Decoded::Data(buf.split().freeze())),
            Self::Chunked(decoder) => {
                let step = decoder.decode(buf)?;
                if step == Decoded::End {
                    *self = Self::Done;
                }
                Ok(step)
            }
        }
    }

    /// The peer closed the connection: the end of a body delimited by closing, an error
    /// for any other.
    pub(crate) fn closed(&mut self) -> bool {
        let ended = matches!(self, Self::Close | Self::Done);
        *self = Self::Done;
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn data(s: &'static str) -> Result<Decoded, ChunkError> {
        Ok(Decoded::Data(Bytes::from_static(s.as_bytes())))
    }

    #[test]
    fn each_framing_cuts_its_pieces_and_leaves_the_rest() {
        let mut buf = BytesMut::from("helloNEXT");
        let mut body = Body::new(Framing::Length(5));
        assert_eq!(body.next(&mut buf), data("hello"));
        assert!(body.is_done());
        assert_eq!(body.next(&mut buf), Ok(Decoded::End));
        assert_eq!(&buf[..], b"NEXT");

        let mut body = Body::new(Framing::Length(8));
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"abc");
        assert_eq!(body.next(&mut buf), data("abc"));
        assert_eq!(buf.capacity(), 0, "an emptied buffer is kept");
        let mut buf = BytesMut::from("abc");
        assert_eq!(body.next(&mut buf), data("abc"));
        assert_eq!(body.next(&mut buf), Ok(Decoded::NeedMore));
        assert!(!body.closed(), "a length cut short is an error");

        let mut body = Body::new(Framing::Close);
        let mut buf = BytesMut::from("all of it");
        assert_eq!(body.next(&mut buf), data("all of it"));
        assert_eq!(body.next(&mut buf), Ok(Decoded::NeedMore));
        assert!(body.closed());
        assert!(body.is_done());

        let mut body = Body::new(Framing::Chunked);
        let mut buf = BytesMut::from("2\r\nok\r\n0\r\n\r\nNEXT");
        assert_eq!(body.next(&mut buf), data("ok"));
        assert_eq!(body.next(&mut buf), Ok(Decoded::End));
        assert!(body.is_done());
        assert_eq!(&buf[..], b"NEXT");

        assert!(Body::new(Framing::Empty).is_done());
        assert!(Body::new(Framing::Length(0)).is_done());
    }
}
