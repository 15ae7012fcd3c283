//! Who is calling the MCP endpoint: the gateway (by `X-AG-Gateway-Slug`, then by
//! `Host`), the consumer (by the slug in the path) and the API key it presents. Checked
//! on every HTTP request before the MCP transport sees it, so an unauthenticated caller
//! never opens a session; the answer to a refusal is a JSON-RPC error body with the
//! HTTP status that says why. A caller proves itself with one of the consumer's API
//! keys or with an access token from sluice's authorization server ([`crate::oauth`]).

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_shared::apikey;
use sluice_shared::bearer::{BearerError, Verifier};
use sluice_shared::snapshot::mcp::CompiledMcp;
use sluice_shared::snapshot::{CompiledConsumer, CompiledGateway, Snapshot};

use crate::oauth::OAuth;
use crate::upstream::Agent;

pub const GATEWAY_HEADER: &str = "x-ag-gateway-slug";

/// An authenticated caller, put into the HTTP request's extensions for the MCP handler.
#[derive(Clone)]
pub struct Caller {
    pub gateway: Arc<CompiledGateway>,
    pub consumer: Arc<CompiledConsumer>,
    pub mcp: Arc<CompiledMcp>,
    /// Who the caller is when it presented a token: its subject claim.
    pub subject: Option<String>,
    /// The token of a trusted issuer the caller presented, for upstreams that take
    /// the caller's own token (`passthrough`); never sluice's own tokens.
    pub token: Option<Arc<str>>,
    /// Who the caller acts for, stable across sessions and doors: the API key it
    /// signed in with (directly or through sluice's authorization server), or a
    /// trusted issuer's subject. `forwarded` servers keep each user's tokens under it.
    pub user: Option<String>,
    /// `{scheme}://{host}` as the caller reached this plane (consent links go there).
    pub base_url: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Caller {
    /// What the upstreams may need to know of this caller.
    pub fn agent(&self) -> Agent<'_> {
        Agent {
            token: self.token.as_deref(),
            user: self.user.as_deref(),
            subject: self.subject.as_deref(),
            gateway_id: self.gateway.id,
            consumer_id: self.consumer.id,
            base_url: &self.base_url,
        }
    }
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
    #[error("an API key or an access token is required (X-AG-API-Key or Authorization: Bearer)")]
    MissingKey,
    #[error(
        "the access token is not valid for this endpoint (unknown, expired or for another resource)"
    )]
    InvalidToken,
    #[error("the token lacks a scope this consumer requires")]
    InsufficientScope,
    #[error("the token cannot be verified now (its issuer is unreachable)")]
    AuthUnavailable,
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
            Self::MissingKey | Self::InvalidKey | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::KeyNotForConsumer
            | Self::ConsumerInactive
            | Self::GatewayInactive
            | Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::UnknownGateway => "unknown_gateway",
            Self::GatewayInactive => "gateway_inactive",
            Self::UnknownConsumer => "unknown_consumer",
            Self::NotMcp => "not_an_mcp_consumer",
            Self::MissingKey => "missing_credentials",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::AuthUnavailable => "auth_unavailable",
            Self::InvalidKey => "invalid_api_key",
            Self::KeyNotForConsumer => "key_not_for_consumer",
            Self::ConsumerInactive => "consumer_inactive",
        }
    }
}

impl Refusal {
    /// The HTTP answer: a JSON-RPC error body; a `401` names where the endpoint's
    /// OAuth metadata is (`resource_metadata`), as MCP clients expect.
    pub fn response(self, resource_metadata: &str) -> Response {
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
            let error = if self == Self::InvalidToken {
                "error=\"invalid_token\", "
            } else {
                ""
            };
            let value = format!("Bearer {error}resource_metadata=\"{resource_metadata}\"");
            if let Ok(value) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

/// The gateway a request is for: `X-AG-Gateway-Slug`, else `Host`.
pub fn gateway<'s>(
    snapshot: &'s Snapshot,
    headers: &HeaderMap,
) -> Result<&'s Arc<CompiledGateway>, Refusal> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let gateway = snapshot
        .gateway_for(text(GATEWAY_HEADER), text(header::HOST.as_str()))
        .ok_or(Refusal::UnknownGateway)?;
    if !gateway.active {
        return Err(Refusal::GatewayInactive);
    }
    Ok(gateway)
}

/// Resolve and authenticate the caller of `/{consumer_slug}/mcp`: one of the
/// consumer's API keys, an access token sluice's authorization server issued for it,
/// or a token of an issuer the consumer trusts (its OAuth2 / OIDC auths: a JWT by
/// the issuer's keys, an opaque token by introspection).
pub async fn resolve(
    snapshot: &Snapshot,
    oauth: &OAuth,
    verifier: &Verifier,
    consumer_slug: &str,
    headers: &HeaderMap,
) -> Result<Caller, Refusal> {
    let gateway = gateway(snapshot, headers)?;
    let consumer = gateway
        .consumer(consumer_slug)
        .ok_or(Refusal::UnknownConsumer)?;
    let (subject, presented, user);
    if let Some(key) = apikey::presented(headers) {
        let auth = gateway
            .auth_for_key(&apikey::digest(key))
            .ok_or(Refusal::InvalidKey)?;
        if !consumer.accepts(auth) {
            return Err(Refusal::KeyNotForConsumer);
        }
        (subject, presented, user) = (None, None, Some(format!("key:{auth}")));
    } else {
        let token = apikey::bearer(headers).ok_or(Refusal::MissingKey)?;
        (subject, presented, user) = bearer(gateway, consumer, oauth, verifier, token).await?;
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
        subject,
        token: presented,
        user,
        base_url: crate::oauth::base_url(headers),
        client_ip: text("x-forwarded-for"),
        user_agent: text("user-agent"),
    })
}

/// A bearer token: sluice's own (opaque, from its authorization server) or, when the
/// consumer trusts an issuer, that issuer's. Returns the token's subject, the token
/// when it is an issuer's (an upstream may take it), and the user it stands for.
async fn bearer(
    gateway: &CompiledGateway,
    consumer: &CompiledConsumer,
    oauth: &OAuth,
    verifier: &Verifier,
    token: &str,
) -> Result<(Option<String>, Option<Arc<str>>, Option<String>), Refusal> {
    let is_jwt = token.bytes().filter(|b| *b == b'.').count() == 2;
    if !is_jwt && let Some(grant) = oauth.access(token).await {
        // Bound to one gateway's consumer: its audience is this endpoint.
        if grant.gateway_id != gateway.id || grant.consumer_id != consumer.id {
            return Err(Refusal::InvalidToken);
        }
        // The user is the API key that signed in, as when the key is presented itself.
        let user = match (grant.auth_id, &grant.subject) {
            (Some(auth), Some(subject)) => Some(format!("sub:{auth}:{subject}")),
            (Some(auth), None) => Some(format!("key:{auth}")),
            (None, _) => None,
        };
        return Ok((Some(format!("client:{}", grant.client_id)), None, user));
    }
    let auths: Vec<_> = gateway.bearer_auths(&consumer.auth_ids).cloned().collect();
    if auths.is_empty() {
        return Err(Refusal::InvalidToken);
    }
    match verifier.verify(&auths, token).await {
        Ok(caller) => {
            let user = caller
                .subject
                .as_ref()
                .map(|s| format!("sub:{}:{s}", caller.auth_id));
            Ok((caller.subject, Some(Arc::from(token)), user))
        }
        Err(BearerError::InsufficientScope) => Err(Refusal::InsufficientScope),
        Err(BearerError::Unavailable) => Err(Refusal::AuthUnavailable),
        Err(e) => {
            tracing::debug!(error = %e, "bearer token refused");
            Err(Refusal::InvalidToken)
        }
    }
}
