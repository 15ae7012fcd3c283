//! Reading the request body, bounded. The one parse of it the proxy needs here is
//! [`sluice_translate::peek`].
//!
//! A body larger than the limit is refused from its `Content-Length` before a byte is
//! read, or as soon as the running total passes the limit for chunked uploads.

use bytes::{Bytes, BytesMut};

use crate::error::ProxyError;
use crate::session::Session;

/// Read the whole request body, refusing more than `limit` bytes.
pub async fn read(session: &mut Session, limit: usize) -> Result<Bytes, ProxyError> {
    let declared = session.body_length();
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ProxyError::BodyTooLarge(limit));
    }
    let first = match session.read_request_body().await {
        Ok(Some(piece)) => piece,
        Ok(None) => return Ok(Bytes::new()),
        Err(_) => return Err(ProxyError::BodyUnreadable),
    };
    if first.len() > limit {
        return Err(ProxyError::BodyTooLarge(limit));
    }
    // The usual case, a body that arrived with its head or in one read: it is handed
    // on as read, no copy.
    if declared == Some(first.len() as u64) {
        return Ok(first);
    }
    let expected = declared.map_or(4096, |n| n as usize);
    let mut buf = BytesMut::with_capacity(expected.clamp(first.len(), limit));
    buf.extend_from_slice(&first);
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    return Err(ProxyError::BodyTooLarge(limit));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(_) => return Err(ProxyError::BodyUnreadable),
        }
    }
}
