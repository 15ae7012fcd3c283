//! The compiled, immutable view of every gateway's config that the request path reads.
//!
//! A request loads the current `Arc<Snapshot>` once and uses it to the end, so a config
//! change never shows half-applied. Everything that can be decided before a request
//! arrives is decided here: gateways by slug and host, consumers by slug, API keys by
//! digest, upstream targets with their parsed address and prepared credential header.

mod compile;
pub mod mask;
pub mod mcp;
pub mod policies;
mod upstream;

use std::sync::Arc;

use uuid::Uuid;

use crate::map::Map;

pub use compile::{
    BearerAuth, CompileError, CompiledConsumer, CompiledFallback, CompiledGateway, CompiledLb,
    WeightedUpstream,
};
pub use upstream::{
    ActiveCheck, DEFAULT_ANTHROPIC_VERSION, TargetHealth, UpstreamCredential, UpstreamTarget,
    WireApi,
};

/// Every gateway this plane serves, compiled.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Local generation counter: grows with every swap in this process.
    pub generation: u64,
    /// When this snapshot was built.
    pub built: Option<std::time::Instant>,
    gateways: Map<Uuid, Arc<CompiledGateway>>,
    by_slug: Map<String, Arc<CompiledGateway>>,
    by_host: Map<String, Arc<CompiledGateway>>,
    base_domain: Option<String>,
}

impl Snapshot {
    /// Index compiled gateways. `base_domain` enables `{slug}.{base_domain}` host lookup.
    pub fn new(
        generation: u64,
        gateways: Map<Uuid, Arc<CompiledGateway>>,
        base_domain: Option<String>,
    ) -> Self {
        let mut by_slug = Map::with_capacity(gateways.len());
        let mut by_host = Map::new();
        for gw in gateways.values() {
            by_slug.insert(gw.slug.clone(), gw.clone());
            if let Some(domain) = &gw.domain {
                by_host.insert(domain.to_ascii_lowercase(), gw.clone());
            }
        }
        Self {
            generation,
            built: Some(std::time::Instant::now()),
            gateways,
            by_slug,
            by_host,
            base_domain: base_domain.map(|d| d.trim_start_matches('.').to_ascii_lowercase()),
        }
    }

    pub fn gateways(&self) -> &Map<Uuid, Arc<CompiledGateway>> {
        &self.gateways
    }

    pub fn gateway_by_slug(&self, slug: &str) -> Option<&Arc<CompiledGateway>> {
        self.by_slug.get(slug)
    }

    /// The gateway a request is for: the slug it names (`X-AG-Gateway-Slug`), else
    /// its `Host`. Both planes resolve gateways here.
    pub fn gateway_for(
        &self,
        slug: Option<&str>,
        host: Option<&str>,
    ) -> Option<&Arc<CompiledGateway>> {
        match slug {
            Some(slug) => self.gateway_by_slug(slug.trim()),
            None => host.and_then(|h| self.gateway_by_host(h)),
        }
    }

    /// The gateway a `Host` header names: its own `domain`, or `{slug}.{base_domain}`.
    /// A port in the host is ignored.
    pub fn gateway_by_host(&self, host: &str) -> Option<&Arc<CompiledGateway>> {
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        if let Some(gw) = self.by_host.get(host) {
            return Some(gw);
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.gateway_by_host(&host.to_ascii_lowercase());
        }
        let base = self.base_domain.as_deref()?;
        let slug = host.strip_suffix(base)?.strip_suffix('.')?;
        self.by_slug.get(slug)
    }
}
