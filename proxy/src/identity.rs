//! Who is calling: the gateway (by `X-AG-Gateway-Slug`, then by `Host`), the consumer
//! (by the slug in the path), and whether the presented API key is one of that
//! consumer's. Keys are compared by SHA-256 digest against the snapshot's table, so the
//! lookup costs one hash and one map probe and no plaintext key is kept anywhere.

use std::sync::Arc;

use http::HeaderMap;
use sluice_shared::apikey::{self, KEY_PREFIX};
use sluice_shared::snapshot::{CompiledConsumer, CompiledGateway, Snapshot};

use crate::error::ProxyError;

pub const GATEWAY_HEADER: &str = "x-ag-gateway-slug";

/// Find the gateway a request is for.
pub fn gateway<'s>(
    snapshot: &'s Snapshot,
    headers: &HeaderMap,
    host: Option<&str>,
) -> Result<&'s Arc<CompiledGateway>, ProxyError> {
    let slug = headers.get(GATEWAY_HEADER).and_then(|v| v.to_str().ok());
    let gateway = snapshot
        .gateway_for(slug, host)
        .ok_or(ProxyError::UnknownGateway)?;
    if !gateway.active {
        return Err(ProxyError::GatewayInactive);
    }
    Ok(gateway)
}

/// How the caller proved who it is, as far as can be told without I/O.
pub enum Presented<'h> {
    /// An API key of this consumer.
    Key,
    /// A bearer token that is not a sluice key: the caller verifies it against the
    /// consumer's OAuth2 / OIDC auths.
    Bearer(&'h str),
}

/// Find the consumer and check that the request's API key belongs to it.
pub fn consumer<'g, 'h>(
    gateway: &'g CompiledGateway,
    slug: &str,
    headers: &'h HeaderMap,
) -> Result<(&'g Arc<CompiledConsumer>, Presented<'h>), ProxyError> {
    let consumer = gateway.consumer(slug).ok_or(ProxyError::UnknownConsumer)?;
    let presented = match apikey::presented(headers) {
        Some(key) => {
            let auth = gateway
                .auth_for_key(&apikey::digest(key))
                .ok_or(ProxyError::InvalidApiKey)?;
            if !consumer.accepts(auth) {
                return Err(ProxyError::KeyNotForConsumer);
            }
            Presented::Key
        }
        None => Presented::Bearer(bearer_token(headers).ok_or(ProxyError::MissingApiKey)?),
    };
    if !consumer.active {
        return Err(ProxyError::ConsumerInactive);
    }
    Ok((consumer, presented))
}

/// A bearer token that is not a sluice key.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    apikey::bearer(headers).filter(|t| !t.starts_with(KEY_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn key_sources_in_order() {
        let mut h = HeaderMap::new();
        assert_eq!(apikey::presented(&h), None);
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer sk-not-ours"),
        );
        assert_eq!(apikey::presented(&h), None);
        h.insert("authorization", HeaderValue::from_static("bearer ag_abc"));
        assert_eq!(apikey::presented(&h), Some("ag_abc"));
        h.insert("x-api-key", HeaderValue::from_static("ag_x"));
        assert_eq!(apikey::presented(&h), Some("ag_x"));
        h.insert("x-ag-api-key", HeaderValue::from_static(" ag_y "));
        assert_eq!(apikey::presented(&h), Some("ag_y"));
    }
}
