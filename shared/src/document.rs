//! The config document of one gateway: what admin publishes on the bus and what the
//! proxy and mcp planes compile into their snapshot. It is plain JSON so any plane of any
//! version can read it; unknown fields are ignored, which lets admin roll out ahead of
//! the proxies.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Auth, Consumer, Gateway, Policy, Registry, Role};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayDocument {
    /// The gateway's config version; a plane never replaces a newer document with an
    /// older one.
    pub version: i64,
    pub gateway: Gateway,
    #[serde(default)]
    pub registries: Vec<Registry>,
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    #[serde(default)]
    pub auths: Vec<Auth>,
    #[serde(default)]
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub roles: Vec<Role>,
}

impl GatewayDocument {
    pub fn gateway_id(&self) -> Uuid {
        self.gateway.id
    }
}
