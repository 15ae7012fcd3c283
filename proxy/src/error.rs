//! The proxy's own errors and how each answers the client: a status code and a body in
//! the client's dialect (OpenAI's `{"error":{"message","type","code"}}`, Anthropic's
//! `{"type":"error","error":{…}}`). One exhaustive `match` decides status and code, so
//! every rejection has a stable code, and no message carries a secret.

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use sluice_translate::canonical::{ErrorInfo, ErrorKind};
use sluice_translate::{Dialect, TranslateError, errors};

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
    #[error(
        "an API key or bearer token is required: send X-AG-API-Key, x-api-key or Authorization: Bearer"
    )]
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
    #[error("the request names no model and the consumer has no default model")]
    ModelRequired,
    #[error("model {0:?} is not allowed for this consumer")]
    ModelNotAllowed(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnsupportedFeature(String),
    #[error("the provider's answer could not be translated: {0}")]
    BadUpstreamResponse(String),
    #[error("provider {0} has no embeddings API")]
    NoEmbeddings(&'static str),
    #[error("every attempt failed; the last provider answered with status {0}")]
    AllAttemptsFailed(u16),
    #[error("rate limit exceeded; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("the request is larger than a policy allows ({0})")]
    PolicyTooLarge(String),
    #[error("a policy requires Content-Length")]
    LengthRequired,
    #[error("the rate limiter is unavailable")]
    LimiterUnavailable,
    #[error("the token budget of this window is spent; retry in {retry_after} s")]
    TokensExhausted { retry_after: u64 },
    #[error(
        "no price is known for {0}, so a dollar budget cannot be kept: add it to the models catalog"
    )]
    PriceUnknown(String),
    #[error("this origin may not call this gateway")]
    CorsOriginNotAllowed,
    #[error("tool {0:?} is not allowed for this consumer")]
    ToolNotAllowed(String),
    #[error("the request contains data a policy does not let through")]
    SensitiveData,
    #[error("the content was flagged by moderation ({0})")]
    ContentFlagged(String),
    #[error("the moderation service is unavailable")]
    ModerationUnavailable,
    #[error("the request is not valid HTTP/1.1: {0}")]
    MalformedRequest(String),
    #[error("the request head is too large")]
    HeadTooLarge,
    #[error("the request target is too long")]
    UriTooLong,
    #[error("the request head did not arrive in time")]
    HeadTimeout,
    #[error("only the chunked transfer coding is supported")]
    UnsupportedTransferCoding,
    #[error("the bearer token is not valid: {0}")]
    InvalidToken(String),
    #[error("the bearer token lacks a required scope")]
    InsufficientScope,
    #[error("the token issuer could not be reached to verify the token")]
    AuthUnavailable,
}

impl From<TranslateError> for ProxyError {
    fn from(e: TranslateError) -> Self {
        match e {
            TranslateError::InvalidRequest(m) => Self::InvalidRequest(m),
            TranslateError::Unsupported(m) => Self::UnsupportedFeature(m),
            TranslateError::BadUpstream(m) => Self::BadUpstreamResponse(m),
        }
    }
}

impl From<sluice_translate::peek::MalformedJson> for ProxyError {
    fn from(e: sluice_translate::peek::MalformedJson) -> Self {
        Self::MalformedJson(e.0)
    }
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
            Self::ModelRequired => (StatusCode::BAD_REQUEST, "model_required"),
            Self::ModelNotAllowed(_) => (StatusCode::FORBIDDEN, "model_not_allowed"),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::UnsupportedFeature(_) => (StatusCode::BAD_REQUEST, "unsupported_feature"),
            Self::BadUpstreamResponse(_) => (StatusCode::BAD_GATEWAY, "upstream_bad_response"),
            Self::NoEmbeddings(_) => (StatusCode::BAD_REQUEST, "embeddings_not_supported"),
            Self::AllAttemptsFailed(429 | 503 | 529) => {
                (StatusCode::SERVICE_UNAVAILABLE, "attempts_exhausted")
            }
            Self::AllAttemptsFailed(_) => (StatusCode::BAD_GATEWAY, "attempts_exhausted"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::PolicyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
            Self::LengthRequired => (StatusCode::LENGTH_REQUIRED, "length_required"),
            Self::LimiterUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "rate_limiter_unavailable")
            }
            Self::TokensExhausted { .. } => (StatusCode::TOO_MANY_REQUESTS, "token_limit_exceeded"),
            Self::PriceUnknown(_) => (StatusCode::FORBIDDEN, "model_not_priced"),
            Self::CorsOriginNotAllowed => (StatusCode::FORBIDDEN, "cors_origin_not_allowed"),
            Self::ToolNotAllowed(_) => (StatusCode::FORBIDDEN, "tool_not_allowed"),
            Self::SensitiveData => (StatusCode::BAD_REQUEST, "sensitive_data_blocked"),
            Self::ContentFlagged(_) => (StatusCode::BAD_REQUEST, "content_flagged"),
            Self::ModerationUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "moderation_unavailable")
            }
            Self::MalformedRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::HeadTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
            ),
            Self::UriTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            Self::HeadTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::UnsupportedTransferCoding => {
                (StatusCode::NOT_IMPLEMENTED, "transfer_coding_not_supported")
            }
            Self::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Self::InsufficientScope => (StatusCode::FORBIDDEN, "insufficient_scope"),
            Self::AuthUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable"),
        }
    }

    /// The error in no dialect.
    pub fn info(&self) -> ErrorInfo {
        let (status, code) = self.status_and_code();
        ErrorInfo {
            kind: ErrorKind::from_status(status.as_u16()),
            message: self.to_string(),
            code: Some(code.to_string()),
        }
    }

    /// The JSON body of this error, in the client's dialect.
    pub fn body(&self, dialect: Dialect) -> Bytes {
        errors::body(dialect, &self.info())
    }

    /// The error as the event that ends a stream which already started: the client
    /// sees the failure instead of a silently truncated answer.
    pub fn sse_event(&self, dialect: Dialect) -> Bytes {
        let mut out = BytesMut::new();
        errors::stream_event(dialect, &self.info(), &mut out);
        out.freeze()
    }
}

impl From<sluice_shared::bearer::BearerError> for ProxyError {
    fn from(e: sluice_shared::bearer::BearerError) -> Self {
        use sluice_shared::bearer::BearerError;
        match e {
            BearerError::NotAccepted => Self::InvalidApiKey,
            BearerError::Invalid(reason) => Self::InvalidToken(reason),
            BearerError::InsufficientScope => Self::InsufficientScope,
            BearerError::Unavailable => Self::AuthUnavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_stable_codes_in_each_dialect() {
        let body: serde_json::Value =
            serde_json::from_slice(&ProxyError::InvalidApiKey.body(Dialect::OpenAiChat))
                .expect("json");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert_eq!(body["error"]["type"], "authentication_error");
        let body: serde_json::Value =
            serde_json::from_slice(&ProxyError::InvalidApiKey.body(Dialect::Anthropic))
                .expect("json");
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "authentication_error");
        assert_eq!(
            ProxyError::BodyTooLarge(10).status_and_code().0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let event = String::from_utf8(
            ProxyError::UpstreamFailed
                .sse_event(Dialect::OpenAiChat)
                .to_vec(),
        )
        .expect("utf8");
        assert!(event.starts_with("data: {") && event.ends_with("\n\n"));
    }
}
