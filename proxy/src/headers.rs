//! Which headers cross the proxy. Hop-by-hop headers never do; the client's
//! credentials for sluice never reach the provider; the provider's connection
//! management never reaches the client.

/// Request headers not forwarded upstream (`name` in lowercase).
pub fn drop_upstream(name: &[u8]) -> bool {
    matches!(
        name,
        b"host"
            | b"content-length"
            | b"transfer-encoding"
            | b"connection"
            | b"keep-alive"
            | b"proxy-connection"
            | b"proxy-authorization"
            | b"proxy-authenticate"
            | b"te"
            | b"trailer"
            | b"upgrade"
            | b"expect"
            | b"authorization"
            | b"x-api-key"
            | b"x-ag-api-key"
            | b"x-ag-gateway-slug"
            | b"cookie"
            // sluice reads provider bodies (usage, translation), so it asks for identity.
            | b"accept-encoding"
    )
}

/// Whether a response header is not forwarded downstream (`name` in lowercase).
pub fn drop_downstream(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection"
            | b"keep-alive"
            | b"transfer-encoding"
            | b"proxy-connection"
            | b"trailer"
            | b"upgrade"
            | b"set-cookie"
    )
}

/// A number as a header value, in one allocation of its exact size. http's
/// `From<u64>` writes into a 20-byte `BytesMut` and freezes it, which shrinks the
/// buffer with a second allocation and a copy; a request under a rate limit sets
/// three such headers.
pub fn number(n: u64) -> http::HeaderValue {
    let digits = itoa::Buffer::new().format(n).as_bytes().to_vec();
    // Digits are always a valid value; the fallback is http's own way.
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(digits))
        .unwrap_or_else(|_| http::HeaderValue::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_http_writes_them() {
        for n in [0, 7, 10, 4_999, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(number(n), http::HeaderValue::from(n), "{n}");
        }
    }

    #[test]
    fn hop_by_hop_headers_stop_at_the_proxy() {
        for name in ["connection", "transfer-encoding", "set-cookie", "upgrade"] {
            assert!(drop_downstream(name.as_bytes()), "{name}");
        }
        for name in ["content-type", "x-request-id", "retry-after"] {
            assert!(!drop_downstream(name.as_bytes()), "{name}");
        }
        for name in [
            "authorization",
            "x-api-key",
            "cookie",
            "host",
            "accept-encoding",
        ] {
            assert!(drop_upstream(name.as_bytes()), "{name}");
        }
        assert!(!drop_upstream(b"content-type"));
    }
}
