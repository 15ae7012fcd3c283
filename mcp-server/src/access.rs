//! Who is calling the MCP endpoint: the gateway (by `X-AG-Gateway-Slug`, then by
//! `Host`), the consumer (by the slug in the path) and the API key it presents. Checked
//! on every HTTP request before the MCP transport sees it, so an unauthenticated caller
//! never opens a session; the answer to a refusal is a JSON-RPC error body with the
//! HTTP status that says why.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_shared::apikey;
use sluice_shared::snapshot::mcp::CompiledMcp;
use sluice_shared::snapshot::{CompiledConsumer, CompiledGateway, Snapshot};

pub const GATEWAY_HEADER: &str = "x-ag-gateway-slug";

/// An authenticated caller, put into the HTTP request's extensions for the MCP handler.
#[derive(Clone)]
pub struct Caller {
    pub gateway: Arc<CompiledGateway>,
    pub consumer: Arc<CompiledConsumer>,
    pub mcp: Arc<CompiledMcp>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Why a caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no gateway matches X-AG-Gateway-Slug or Host")]
    UnknownGateway,
    #[error("the gateway is not active")]
    GatewayInactive,
    #[error("no consumer with this slug")]
    UnknownConsumer,
    #[error("this consumer reaches no MCP server")]
    NotMcp,
    #[error("an API key is required (X-AG-API-Key or Authorization: Bearer)")]
    MissingKey,
    #[error("the API key is not valid")]
    InvalidKey,
    #[error("the API key does not belong to this consumer")]
    KeyNotForConsumer,
    #[error("the consumer is not active")]
    ConsumerInactive,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Self::UnknownGateway | Self::UnknownConsumer | Self::NotMcp => StatusCode::NOT_FOUND,
            Self::MissingKey | Self::InvalidKey => StatusCode::UNAUTHORIZED,
            Self::KeyNotForConsumer | Self::ConsumerInactive | Self::GatewayInactive => {
                StatusCode::FORBIDDEN
            }
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::UnknownGateway => "unknown_gateway",
            Self::GatewayInactive => "gateway_inactive",
            Self::UnknownConsumer => "unknown_consumer",
            Self::NotMcp => "not_an_mcp_consumer",
            Self::MissingKey => "missing_credentials",
            Self::InvalidKey => "invalid_api_key",
            Self::KeyNotForConsumer => "key_not_for_consumer",
            Self::ConsumerInactive => "consumer_inactive",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32600,
                "message": self.to_string(),
                "data": {"reason": self.code(), "status": status.as_u16()},
            }
        });
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sluice-mcp\""),
            );
        }
        response
    }
}

/// Resolve and authenticate the caller of `/{consumer_slug}/mcp`.
pub fn resolve(
    snapshot: &Snapshot,
    consumer_slug: &str,
    headers: &HeaderMap,
) -> Result<Caller, Refusal> {
    let gateway = match headers.get(GATEWAY_HEADER).and_then(|v| v.to_str().ok()) {
        Some(slug) => snapshot.gateway_by_slug(slug.trim()),
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| snapshot.gateway_by_host(h)),
    }
    .ok_or(Refusal::UnknownGateway)?;
    if !gateway.active {
        return Err(Refusal::GatewayInactive);
    }
    let consumer = gateway
        .consumer(consumer_slug)
        .ok_or(Refusal::UnknownConsumer)?;
    let key = apikey::presented(headers).ok_or(Refusal::MissingKey)?;
    let auth = gateway
        .auth_for_key(&apikey::digest(key))
        .ok_or(Refusal::InvalidKey)?;
    if !consumer.accepts(auth) {
        return Err(Refusal::KeyNotForConsumer);
    }
    if !consumer.active {
        return Err(Refusal::ConsumerInactive);
    }
    let mcp = consumer.mcp.clone().ok_or(Refusal::NotMcp)?;
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    Ok(Caller {
        gateway: gateway.clone(),
        consumer: consumer.clone(),
        mcp,
        client_ip: text("x-forwarded-for"),
        user_agent: text("user-agent"),
    })
}
