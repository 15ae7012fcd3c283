//! Who is calling: the gateway (by `X-AG-Gateway-Slug`, then by `Host`), the consumer
//! (by the slug in the path), and whether the presented API key is one of that
//! consumer's. Keys are compared by SHA-256 digest against the snapshot's table, so the
//! lookup costs one hash and one map probe and no plaintext key is kept anywhere.

use std::sync::Arc;

use crate::session::Fields;
use sluice_shared::apikey::{self, KEY_PREFIX};
use sluice_shared::snapshot::{CompiledConsumer, CompiledGateway, Snapshot};

use crate::error::ProxyError;

pub const GATEWAY_HEADER: &str = "x-ag-gateway-slug";

/// Find the gateway a request is for.
pub fn gateway<'s>(
    snapshot: &'s Snapshot,
    headers: &Fields,
    host: Option<&str>,
) -> Result<&'s Arc<CompiledGateway>, ProxyError> {
    let slug = headers.text(GATEWAY_HEADER);
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
    headers: &'h Fields,
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
fn bearer_token(headers: &Fields) -> Option<&str> {
    apikey::bearer(headers).filter(|t| !t.starts_with(KEY_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sources_in_order() {
        let presented = |pairs: &[(&str, &str)]| {
            apikey::presented(&Fields::from_pairs(pairs)).map(str::to_string)
        };
        assert_eq!(presented(&[]), None);
        assert_eq!(presented(&[("Authorization", "Bearer sk-not-ours")]), None);
        let bearer = ("Authorization", "bearer ag_abc");
        assert_eq!(presented(&[bearer]).as_deref(), Some("ag_abc"));
        let x_api = ("X-Api-Key", "ag_x");
        assert_eq!(presented(&[bearer, x_api]).as_deref(), Some("ag_x"));
        let ours = ("X-AG-API-Key", " ag_y ");
        assert_eq!(presented(&[bearer, x_api, ours]).as_deref(), Some("ag_y"));
    }

    #[test]
    fn a_bearer_token_that_is_not_a_key_is_for_the_auths() {
        let fields = Fields::from_pairs(&[("authorization", "Bearer eyJ.x.y")]);
        assert_eq!(bearer_token(&fields), Some("eyJ.x.y"));
        let key = Fields::from_pairs(&[("authorization", "Bearer ag_abc")]);
        assert_eq!(bearer_token(&key), None);
    }
}
