//! Which headers cross the proxy. Hop-by-hop headers never do; the client's
//! credentials for sluice never reach the provider; the provider's connection
//! management never reaches the client.

use http::HeaderName;

/// Request headers not forwarded upstream.
pub fn drop_upstream(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
            | "authorization"
            | "x-api-key"
            | "x-ag-api-key"
            | "x-ag-gateway-slug"
            | "cookie"
            // sluice reads provider bodies (usage, translation), so it asks for identity.
            | "accept-encoding"
    )
}

/// Response headers not forwarded downstream.
pub fn drop_downstream(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "proxy-connection"
            | "trailer"
            | "upgrade"
            | "set-cookie"
    )
}
