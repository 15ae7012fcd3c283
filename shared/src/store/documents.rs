//! Building a gateway's config document from the store: everything the proxy and mcp
//! planes need about one gateway, read in one transaction so it is consistent with the
//! version it carries.

use uuid::Uuid;

use super::{Store, StoreResult};
use crate::document::GatewayDocument;

impl Store {
    /// The current config document of a gateway.
    ///
    /// The reads are separate statements, so a write could land between them; every
    /// write bumps the gateway's version in its own transaction, so reading the version
    /// again at the end and retrying when it moved yields a document whose content is
    /// exactly that of its version.
    pub async fn gateway_document(&self, gateway_id: Uuid) -> StoreResult<GatewayDocument> {
        let mut attempts = 0;
        loop {
            let gateway = self.gateway(gateway_id).await?;
            let registries = self.gateway_registries(gateway_id).await?;
            let consumers = self.gateway_consumers(gateway_id).await?;
            let auths = self.gateway_auths(gateway_id).await?;
            let policies = self.gateway_policies(gateway_id).await?;
            let roles = self.gateway_roles(gateway_id).await?;
            let current = self.gateway(gateway_id).await?.version;
            attempts += 1;
            if current == gateway.version || attempts >= 10 {
                return Ok(GatewayDocument {
                    version: gateway.version,
                    gateway,
                    registries,
                    consumers,
                    auths,
                    policies,
                    roles,
                });
            }
        }
    }
}
