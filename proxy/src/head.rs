//! Response heads as sluice builds them, for the client's side (`session`) to write.
//!
//! Pingora's `ResponseHeader` keeps a map of header-name case beside the headers, and
//! each insert turned the name back into bytes and parsed it again (allocating for
//! names outside the standard set): about 700 instructions a header, on ten or more
//! headers a request. sluice keeps what it sets in a `HeaderMap`, a provider's head as
//! the fields it arrived as, and the writer serialises both as they are.

use http::StatusCode;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING};

use crate::fields::Fields;

/// `x-accel-buffering`, which tells intermediaries not to buffer a stream.
pub const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

/// A response head being built.
///
/// The gateway's own headers (trace id, selected provider and model, rate limits,
/// CORS) are kept as the slice they come in and written after the map, replacing any
/// of the same name in it: inserting them into the map cost a hash and a probe each,
/// about 2,500 instructions a request for seven headers. A provider's head, passed
/// through, is kept as the fields it came as and written before the map, less what
/// does not cross the proxy and what is set over it. The body's length is a number the
/// writer writes, and the framing headers are the writer's alone.
#[derive(Debug)]
pub struct Response<'x> {
    pub(crate) status: StatusCode,
    /// The headers set on the head (`set`).
    pub(crate) headers: HeaderMap,
    /// A provider's fields, passed through under the map and the gateway's headers.
    pub(crate) passed: Option<Fields>,
    /// The body's length, written as `content-length`.
    pub(crate) length: Option<u64>,
    pub(crate) extra: &'x [(HeaderName, HeaderValue)],
}

impl<'x> Response<'x> {
    /// An empty head with room for `capacity` headers; `None` for a status HTTP has not.
    pub fn new(status: u16, capacity: usize) -> Option<Self> {
        Some(Self {
            status: StatusCode::from_u16(status).ok()?,
            headers: HeaderMap::with_capacity(capacity),
            passed: None,
            length: None,
            extra: &[],
        })
    }

    /// A head passing a provider's `fields` through, with the body `length` its framing
    /// gave (`None` for a chunked body or one that ends with the connection).
    pub(crate) fn passthrough(status: u16, fields: Fields, length: Option<u64>) -> Option<Self> {
        Some(Self {
            passed: Some(fields),
            length,
            ..Self::new(status, 0)?
        })
    }

    /// Replace `name`'s values with `value` (a provider's too). Not for the framing
    /// headers, which are the writer's.
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        debug_assert!(name != CONTENT_LENGTH && name != TRANSFER_ENCODING);
        self.headers.insert(name, value);
    }

    /// The body's length, as `content-length`.
    pub fn set_length(&mut self, len: usize) {
        self.length = Some(len as u64);
    }

    /// No length: the writer frames the body (chunked to an HTTP/1.1 client).
    pub fn clear_length(&mut self) {
        self.length = None;
    }

    /// Each of `extra` in turn, replacing what the head has or is later given under
    /// the same name (the writer's own `content-length`, `transfer-encoding`, `date`
    /// and `connection` excepted); of a name given twice, the last.
    pub fn set_all(&mut self, extra: &'x [(HeaderName, HeaderValue)]) {
        // A second set: the first goes into the map, under the second.
        for (name, value) in std::mem::replace(&mut self.extra, extra) {
            self.headers.insert(name.clone(), value.clone());
        }
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
        assert_eq!(head.status, StatusCode::CREATED);
        assert_eq!(head.headers.len(), 3);
        assert_eq!(head.length, Some(13));
        assert_eq!(head.headers["x-kept"], "k");
        assert_eq!(head.extra.len(), 1);
        assert_eq!(head.extra[0].1, "t");
        head.clear_length();
        assert_eq!(head.length, None);
        assert!(Response::new(1000, 0).is_none());
    }

    #[test]
    fn a_passed_through_head_keeps_the_providers_fields() {
        let fields = Fields::from_pairs(&[("Content-Type", "application/json")]);
        let head = Response::passthrough(200, fields, Some(2)).expect("status");
        assert_eq!(head.length, Some(2));
        assert!(head.headers.is_empty());
        let passed = head.passed.expect("fields");
        assert_eq!(passed.text("content-type"), Some("application/json"));
        assert!(Response::passthrough(99, Fields::default(), None).is_none());
    }
}
