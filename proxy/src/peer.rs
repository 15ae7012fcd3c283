//! Turning an upstream target into a Pingora `HttpPeer`. Host names are resolved
//! asynchronously and cached briefly, so the request path never blocks on DNS and never
//! resolves on every request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pingora_core::upstreams::peer::HttpPeer;
use sluice_shared::snapshot::UpstreamTarget;

use crate::error::ProxyError;

/// How long a resolved address is reused.
const DNS_TTL: Duration = Duration::from_secs(30);
/// How long an idle pooled upstream connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Timeouts applied to every upstream connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerTimeouts {
    pub connect: Duration,
    pub read: Duration,
}

/// A small DNS cache in front of the system resolver.
#[derive(Debug, Default)]
pub struct Resolver {
    cache: Mutex<HashMap<(String, u16), (SocketAddr, Instant)>>,
}

impl Resolver {
    async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, ProxyError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_string(), port);
        if let Ok(cache) = self.cache.lock()
            && let Some((addr, at)) = cache.get(&key)
            && at.elapsed() < DNS_TTL
        {
            return Ok(*addr);
        }
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| ProxyError::UpstreamUnreachable)?
            .next()
            .ok_or(ProxyError::UpstreamUnreachable)?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (addr, Instant::now()));
        }
        Ok(addr)
    }

    /// The peer for a target, with sluice's timeouts.
    ///
    /// Boxed: an `HttpPeer` is 672 bytes, held by the request's future through the
    /// whole exchange, streams included.
    pub async fn peer(
        &self,
        target: &UpstreamTarget,
        timeouts: PeerTimeouts,
    ) -> Result<Box<HttpPeer>, ProxyError> {
        let addr = self.resolve(&target.host, target.port).await?;
        let mut peer = Box::new(HttpPeer::new(addr, target.tls, target.host.clone()));
        let connect = target.timeouts.connect.unwrap_or(timeouts.connect);
        peer.options.connection_timeout = Some(connect);
        peer.options.total_connection_timeout = Some(connect);
        peer.options.read_timeout = Some(target.timeouts.ttfb.unwrap_or(timeouts.read));
        peer.options.idle_timeout = Some(IDLE_TIMEOUT);
        Ok(peer)
    }
}

/// How long pooled connections stay idle before they are closed.
pub fn idle_timeout() -> Duration {
    IDLE_TIMEOUT
}
