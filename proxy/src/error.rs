//! The proxy's own errors and how each answers the client: a status code and a JSON body
//! `{"error": code, "message": …}`. One exhaustive `match` decides both, so every
//! rejection has a stable code, and no message carries a secret or an internal detail.

use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

/// Why the proxy answered a request itself instead of with the upstream's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no route for this path")]
    UnknownPath,
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("no gateway matches the X-AG-Gateway-Slug header or the Host")]
    UnknownGateway,
    #[error("this gateway is not active")]
    GatewayInactive,
    #[error("no consumer with this slug in this gateway")]
    UnknownConsumer,
    #[error("this consumer is not active")]
    ConsumerInactive,
    #[error("an API key is required: send X-AG-API-Key, x-api-key or Authorization: Bearer")]
    MissingApiKey,
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("the API key does not belong to this consumer")]
    KeyNotForConsumer,
    #[error("the request body exceeds {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the request body could not be read")]
    BodyUnreadable,
    #[error("the consumer has no usable upstream registry")]
    NoUpstream,
    #[error("the selected registry is misconfigured: {0}")]
    UpstreamMisconfigured(String),
    #[error("provider {0} cannot be routed to yet")]
    ProviderUnsupported(&'static str),
    #[error("the upstream could not be reached")]
    UpstreamUnreachable,
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    #[error("the upstream failed during the exchange")]
    UpstreamFailed,
    #[error("the proxy is not ready: no config loaded yet")]
    NotReady,
}

impl ProxyError {
    /// The status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UnknownPath => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::UnknownGateway => (StatusCode::NOT_FOUND, "gateway_not_found"),
            Self::GatewayInactive => (StatusCode::FORBIDDEN, "gateway_inactive"),
            Self::UnknownConsumer => (StatusCode::NOT_FOUND, "consumer_not_found"),
            Self::ConsumerInactive => (StatusCode::FORBIDDEN, "consumer_inactive"),
            Self::MissingApiKey => (StatusCode::UNAUTHORIZED, "missing_api_key"),
            Self::InvalidApiKey => (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            Self::KeyNotForConsumer => (StatusCode::FORBIDDEN, "forbidden"),
            Self::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::BodyUnreadable => (StatusCode::BAD_REQUEST, "body_unreadable"),
            Self::NoUpstream => (StatusCode::SERVICE_UNAVAILABLE, "no_upstream"),
            Self::UpstreamMisconfigured(_) => (StatusCode::BAD_GATEWAY, "upstream_misconfigured"),
            Self::ProviderUnsupported(_) => (StatusCode::NOT_IMPLEMENTED, "provider_not_supported"),
            Self::UpstreamUnreachable => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            Self::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            Self::UpstreamFailed => (StatusCode::BAD_GATEWAY, "upstream_error"),
            Self::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Bytes {
        let (_, code) = self.status_and_code();
        Bytes::from(json!({"error": code, "message": self.to_string()}).to_string())
    }

    /// The error as one SSE event, for a stream that already started: the client sees
    /// the failure instead of a silently truncated answer.
    pub fn sse_event(&self) -> Bytes {
        let (_, code) = self.status_and_code();
        let event =
            json!({"error": {"message": self.to_string(), "type": "upstream_error", "code": code}});
        Bytes::from(format!("data: {event}\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_json_with_stable_codes() {
        let body: serde_json::Value =
            serde_json::from_slice(&ProxyError::InvalidApiKey.body()).expect("json");
        assert_eq!(body["error"], "invalid_api_key");
        assert_eq!(
            ProxyError::BodyTooLarge(10).status_and_code().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let event =
            String::from_utf8(ProxyError::UpstreamFailed.sse_event().to_vec()).expect("utf8");
        assert!(event.starts_with("data: {") && event.ends_with("\n\n"));
    }
}
