//! Response heads built as plain `http` parts, for the client's side (`session`) to
//! write.
//!
//! Pingora's `ResponseHeader` keeps a map of header-name case beside the headers, and
//! each insert turned the name back into bytes and parsed it again (allocating for
//! names outside the standard set): about 700 instructions a header, on ten or more
//! headers a request. sluice fills a `HeaderMap` and the writer serialises it as is.

use http::StatusCode;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};

/// `x-accel-buffering`, which tells intermediaries not to buffer a stream.
pub const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Headers the writer may add to the map: `transfer-encoding`, when the body's length is
/// not known ahead (`date` and `connection` it writes without the map).
const ADDED_ON_WRITE: usize = 1;

/// A response head being built.
///
/// The gateway's own headers (trace id, selected provider and model, rate limits,
/// CORS) are kept as the slice they come in and written after the map, replacing any
/// of the same name in it: inserting them into the map cost a hash and a probe each,
/// about 2,500 instructions a request for seven headers.
pub struct Response<'x> {
    parts: http::response::Parts,
    extra: &'x [(HeaderName, HeaderValue)],
}

impl<'x> Response<'x> {
    /// An empty head with room for `capacity` headers and those the writer adds; `None`
    /// for a status HTTP has not.
    ///
    /// A head sized for only its own headers can be full when the writer adds its two,
    /// and the map then reallocates at twice the size and copies itself: a translated
    /// stream's head with the rate-limit headers did, on every request (a page-fault
    /// profile of 1,000 held streams showed it; the memory per stream did not move, as
    /// the freed first map is reused by the next request's).
    pub fn new(status: u16, capacity: usize) -> Option<Self> {
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = StatusCode::from_u16(status).ok()?;
        parts.headers = HeaderMap::with_capacity(capacity + ADDED_ON_WRITE);
        Some(Self { parts, extra: &[] })
    }

    /// A head around `headers` (a provider's, passed through), with room for
    /// `additional` more and those the writer adds.
    pub fn with_headers(status: u16, mut headers: HeaderMap, additional: usize) -> Option<Self> {
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = StatusCode::from_u16(status).ok()?;
        headers.reserve(additional + ADDED_ON_WRITE);
        parts.headers = headers;
        Some(Self { parts, extra: &[] })
    }

    /// The map; the headers of [`Response::set_all`] are not in it.
    pub fn headers(&mut self) -> &mut HeaderMap {
        &mut self.parts.headers
    }

    /// Replace `name`'s values with `value`.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.parts.headers.insert(name, value);
    }

    /// The body's length, as `content-length`.
    pub fn set_length(&mut self, len: usize) {
        self.parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
    }

    /// Each of `extra` in turn, replacing what the head has or is later given under
    /// the same name (the writer's own `content-length`, `transfer-encoding`, `date`
    /// and `connection` excepted); of a name given twice, the last.
    pub fn set_all(&mut self, extra: &'x [(HeaderName, HeaderValue)]) {
        // A second set: the first goes into the map, under the second.
        for (name, value) in std::mem::replace(&mut self.extra, extra) {
            self.parts.headers.insert(name.clone(), value.clone());
        }
    }

    /// The status, the map and the headers set over it, for the writer.
    pub(crate) fn into_parts(self) -> (StatusCode, HeaderMap, &'x [(HeaderName, HeaderValue)]) {
        (self.parts.status, self.parts.headers, self.extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_response_head_has_what_was_set() {
        let mut head = Response::new(201, 4).expect("status");
        head.set(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let first = [
            (
                HeaderName::from_static("x-trace"),
                HeaderValue::from_static("0"),
            ),
            (
                HeaderName::from_static("x-kept"),
                HeaderValue::from_static("k"),
            ),
        ];
        let second = [(
            HeaderName::from_static("x-trace"),
            HeaderValue::from_static("t"),
        )];
        head.set_all(&first);
        head.set_all(&second);
        head.set_length(12);
        head.set_length(13);
        let (status, headers, extra) = head.into_parts();
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(headers.len(), 4);
        assert_eq!(headers[CONTENT_LENGTH], "13");
        assert_eq!(headers["x-kept"], "k");
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].1, "t");
        assert!(Response::new(1000, 0).is_none());
    }

    #[test]
    fn a_full_head_takes_the_writers_header_without_growing() {
        for n in 0..40 {
            let mut head = Response::new(200, n).expect("status");
            for i in 0..n {
                head.set(
                    HeaderName::try_from(format!("x-h{i}")).expect("name"),
                    HeaderValue::from_static("v"),
                );
            }
            let (_, mut headers, _) = head.into_parts();
            let room = headers.capacity();
            // What the writer adds to a head without a length.
            headers.insert(
                http::header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
            assert_eq!(headers.len(), n + 1);
            assert_eq!(headers.capacity(), room, "{n} headers");
        }
    }
}
