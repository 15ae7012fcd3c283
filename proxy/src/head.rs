//! Response heads built as plain `http` parts.
//!
//! Pingora's `insert_header` and `append_header` keep a map of header-name case beside
//! the headers. Even on a head built without that map, each call turns the name back
//! into bytes and parses it again (allocating for names outside the standard set):
//! about 700 instructions a header, on ten or more headers a request. A head without a
//! case map is exactly its `http` parts, so sluice fills a `HeaderMap` and converts it
//! once; the head Pingora writes is the same.

use http::StatusCode;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use pingora_http::ResponseHeader;

/// `x-accel-buffering`, which tells intermediaries not to buffer a stream.
pub const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// Headers Pingora's HTTP/1 server adds to every response head as it writes it: `date`
/// and `connection`.
const ADDED_ON_WRITE: usize = 2;

/// A response head being built.
pub struct Response(http::response::Parts);

impl Response {
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
        Some(Self(parts))
    }

    pub fn headers(&mut self) -> &mut HeaderMap {
        &mut self.0.headers
    }

    /// Replace `name`'s values with `value`.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.headers.insert(name, value);
    }

    /// The body's length, as `content-length`.
    pub fn set_length(&mut self, len: usize) {
        self.0
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(len));
    }

    /// Each of `extra` in turn, replacing what the head had under the same name.
    pub fn set_all(&mut self, extra: &[(HeaderName, HeaderValue)]) {
        for (name, value) in extra {
            self.0.headers.insert(name.clone(), value.clone());
        }
    }

    /// The head as Pingora writes it.
    pub fn done(self) -> Box<ResponseHeader> {
        Box::new(ResponseHeader::from(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_response_head_is_what_pingora_would_build() {
        let mut head = Response::new(201, 4).expect("status");
        head.set(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        head.set_all(&[(
            HeaderName::from_static("x-trace"),
            HeaderValue::from_static("t"),
        )]);
        head.set_length(12);
        let ours = head.done();

        let mut theirs = ResponseHeader::build_no_case(201, None).expect("status");
        theirs
            .insert_header(http::header::CONTENT_TYPE, "application/json")
            .expect("insert");
        theirs.insert_header("x-trace", "t").expect("insert");
        theirs.insert_header(CONTENT_LENGTH, "12").expect("insert");
        assert_eq!(ours.status, theirs.status);
        assert_eq!(ours.version, theirs.version);
        assert_eq!(ours.headers, theirs.headers);
        assert!(Response::new(1000, 0).is_none());
    }

    #[test]
    fn a_full_head_takes_the_writers_headers_without_growing() {
        for n in 0..40 {
            let mut head = Response::new(200, n).expect("status");
            for i in 0..n {
                head.set(
                    HeaderName::try_from(format!("x-h{i}")).expect("name"),
                    HeaderValue::from_static("v"),
                );
            }
            let mut head = head.done();
            let room = head.headers.capacity();
            // What Pingora's server does to every head it writes.
            head.insert_header(http::header::DATE, "Tue, 01 Dec 2026 00:00:00 GMT")
                .expect("date");
            head.insert_header(http::header::CONNECTION, "keep-alive")
                .expect("connection");
            assert_eq!(head.headers.len(), n + 2);
            assert_eq!(head.headers.capacity(), room, "{n} headers");
        }
    }
}
