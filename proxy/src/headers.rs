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

#[cfg(test)]
mod tests {
    use super::*;

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
