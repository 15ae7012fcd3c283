//! Which headers cross the proxy. Hop-by-hop headers never do; the client's
//! credentials for sluice never reach the provider; the provider's connection
//! management never reaches the client.

use http::{HeaderMap, HeaderName};

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

/// Response headers not forwarded downstream.
const DOWNSTREAM_DROPPED: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "trailer",
    "upgrade",
    "set-cookie",
];

/// Whether a response header is not forwarded downstream.
pub fn drop_downstream(name: &HeaderName) -> bool {
    DOWNSTREAM_DROPPED.contains(&name.as_str())
}

/// Remove the headers not forwarded downstream from a provider's response head, every
/// value of each. Most heads have none, and are only looked through.
pub fn remove_downstream(headers: &mut HeaderMap) {
    if headers.keys().any(drop_downstream) {
        for name in DOWNSTREAM_DROPPED {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hop_by_hop_response_headers_are_removed_every_value() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/json"),
            ("connection", "keep-alive"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-request-id", "r"),
            ("transfer-encoding", "chunked"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        remove_downstream(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type", "x-request-id"]);

        let mut clean = HeaderMap::new();
        clean.insert("x-a", HeaderValue::from_static("1"));
        remove_downstream(&mut clean);
        assert_eq!(clean.len(), 1);
    }
}
