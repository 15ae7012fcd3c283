//! sluice's `ProxyHttp` implementation: the request path.
//!
//! Pingora's proxy loop only re-sends a request body it kept in its 64 KiB retry buffer,
//! and cannot retry on an upstream's status; LLM requests are often larger than that and
//! must fail over on 429 and 5xx. So the whole exchange runs in `request_filter`, which
//! then always reports the request as answered; Pingora still provides the server, the
//! keep-alive handling, the upstream connection pool and TLS, and `logging`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::connectors::http::Connector;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType};
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};
use rand::Rng;
use sluice_shared::snapshot::{CompiledConsumer, UpstreamTarget};
use sluice_shared::sync::SnapshotHandle;
use std::sync::Arc;
use tracing::info;
use uuid::Uuid;

use crate::body::{self, ChatPeek};
use crate::error::ProxyError;
use crate::exchange::{self, Outbound};
use crate::identity;
use crate::peer::{PeerTimeouts, Resolver};
use crate::route::{self, Endpoint};

/// Limits and timeouts of the request path.
#[derive(Debug, Clone, Copy)]
pub struct PathLimits {
    pub max_body_bytes: usize,
    pub timeouts: PeerTimeouts,
}

/// The proxy service.
pub struct SluiceProxy {
    snapshots: SnapshotHandle,
    connector: Connector,
    resolver: Resolver,
    limits: PathLimits,
}

impl SluiceProxy {
    pub fn new(snapshots: SnapshotHandle, connector: Connector, limits: PathLimits) -> Self {
        Self {
            snapshots,
            connector,
            resolver: Resolver::default(),
            limits,
        }
    }
}

/// What one request did, for the access log.
#[derive(Debug)]
pub struct RequestCtx {
    started: Instant,
    gateway: Option<Uuid>,
    consumer: Option<Uuid>,
    registry: Option<Uuid>,
    stream: bool,
    status: u16,
    error: Option<&'static str>,
    upstream_bytes: usize,
    ttfb: Option<Duration>,
    broken: bool,
    body_read: bool,
}

/// Pick an upstream by weight among the usable ones.
fn pick(consumer: &CompiledConsumer) -> Result<&Arc<UpstreamTarget>, ProxyError> {
    let usable = || {
        consumer
            .upstreams
            .iter()
            .filter(|u| u.target.as_ref().map_or(true, |t| t.enabled))
    };
    let total: u32 = usable().map(|u| u32::from(u.weight)).sum();
    if total == 0 {
        return Err(ProxyError::NoUpstream);
    }
    let mut roll = rand::rng().random_range(0..total);
    for upstream in usable() {
        let weight = u32::from(upstream.weight);
        if roll < weight {
            return upstream
                .target
                .as_ref()
                .map_err(|reason| ProxyError::UpstreamMisconfigured(reason.to_string()));
        }
        roll -= weight;
    }
    Err(ProxyError::NoUpstream)
}

impl SluiceProxy {
    async fn handle(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), ProxyError> {
        let path = session.req_header().uri.path().to_owned();
        let endpoint = route::parse(&path).ok_or(ProxyError::UnknownPath)?;
        let method = session.req_header().method.clone();
        let consumer_slug = match endpoint {
            Endpoint::Health => return self.answer_status(session, "ok").await,
            Endpoint::Ready if self.snapshots.is_loaded() => {
                return self.answer_status(session, "ready").await;
            }
            Endpoint::Ready => return Err(ProxyError::NotReady),
            Endpoint::ChatCompletions { consumer } => consumer.to_owned(),
        };
        if method != http::Method::POST {
            return Err(ProxyError::MethodNotAllowed);
        }

        // One snapshot for the whole request.
        let snapshot = self.snapshots.load();
        let header = session.req_header();
        let host = header
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| header.uri.host());
        let gateway = identity::gateway(&snapshot, &header.headers, host)?;
        ctx.gateway = Some(gateway.id);
        let consumer = identity::consumer(gateway, &consumer_slug, &header.headers)?;
        ctx.consumer = Some(consumer.id);

        let body = body::read(session, self.limits.max_body_bytes).await?;
        ctx.body_read = true;
        let peek = ChatPeek::parse(&body)?;
        ctx.stream = peek.stream;

        let target = pick(consumer)?;
        ctx.registry = Some(target.registry_id);
        if !target.provider.speaks_openai_chat() {
            return Err(ProxyError::ProviderUnsupported(target.provider.as_str()));
        }
        let peer: HttpPeer = self.resolver.peer(target, self.limits.timeouts).await?;
        let client_headers = session.req_header().headers.clone();
        let outbound = Outbound {
            target,
            consumer,
            client_headers: &client_headers,
            body,
            api_path: "/chat/completions",
        };
        let relayed = exchange::relay(
            &self.connector,
            &peer,
            outbound,
            peek.stream,
            self.limits.timeouts.read,
            session,
        )
        .await?;
        ctx.status = relayed.status;
        ctx.upstream_bytes = relayed.bytes;
        ctx.ttfb = relayed.ttfb;
        ctx.broken = relayed.broken;
        Ok(())
    }

    async fn answer_status(&self, session: &mut Session, status: &str) -> Result<(), ProxyError> {
        let body = Bytes::from(format!("{{\"status\":\"{status}\"}}"));
        write_json(session, 200, body).await;
        Ok(())
    }
}

/// Write a complete JSON response; a client that left meanwhile is not an error.
async fn write_json(session: &mut Session, status: u16, body: Bytes) {
    let Ok(mut resp) = ResponseHeader::build(status, Some(2)) else {
        return;
    };
    let _ = resp.insert_header(http::header::CONTENT_TYPE, "application/json");
    let _ = resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_ok()
    {
        let _ = session.write_response_body(Some(body), true).await;
    }
}

#[async_trait]
impl ProxyHttp for SluiceProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            gateway: None,
            consumer: None,
            registry: None,
            stream: false,
            status: 0,
            error: None,
            upstream_bytes: 0,
            ttfb: None,
            broken: false,
            body_read: false,
        }
    }

    /// Runs first for every request. sluice answers every request here, from the
    /// upstream's response or with its own error, and returns `true` ("response sent")
    /// so Pingora goes straight to `logging`.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora_error::Result<bool> {
        if let Err(error) = self.handle(session, ctx).await {
            let (status, code) = error.status_and_code();
            ctx.status = status.as_u16();
            ctx.error = Some(code);
            if !ctx.body_read {
                // The body was not read, so the connection cannot carry another request.
                session.set_keepalive(None);
            }
            if session.response_written().is_none() {
                write_json(session, status.as_u16(), error.body()).await;
            }
        }
        Ok(true)
    }

    /// Never reached: `request_filter` answers every request.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora_error::Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::InternalError,
            "sluice answers every request in request_filter",
        ))
    }

    /// Runs last for every request: one structured access-log line, never credentials.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        info!(
            target: "sluice::access",
            method = %session.req_header().method,
            path = %session.req_header().uri.path(),
            status = ctx.status,
            error = ctx.error,
            gateway = ?ctx.gateway,
            consumer = ?ctx.consumer,
            registry = ?ctx.registry,
            stream = ctx.stream,
            bytes = ctx.upstream_bytes,
            ttfb_ms = ctx.ttfb.map(|d| d.as_secs_f64() * 1000.0),
            total_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            broken = ctx.broken,
            "request"
        );
    }
}
