//! The request path: sluice's application on Pingora's HTTP server.
//!
//! Pingora's proxy framework (`ProxyHttp`) only re-sends a request body it kept in its
//! 64 KiB retry buffer, and cannot retry on an upstream's status; LLM requests are often
//! larger than that and must fail over on 429 and 5xx. So sluice runs the whole exchange
//! itself: Pingora provides HTTP/1.1, the upstream connection pool and TLS; sluice
//! accepts connections itself (`accept`) and keeps each connection's requests in one
//! future (see `session` for why the framework in between is left out).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora_core::connectors::TransportConnector;
use pingora_core::server::ShutdownWatch;
use sluice_shared::snapshot::WireApi;
use sluice_shared::sync::SnapshotHandle;
use sluice_telemetry::metrics::METRICS;
use sluice_telemetry::{Attempt, PolicyOutcome, Telemetry, TelemetryEvent};
use sluice_translate::Dialect;
use sluice_translate::canonical::Usage;
use std::sync::Arc;
use tracing::info;
use uuid::Uuid;

use crate::balance::{Health, Semantic};
use crate::body;
use crate::error::ProxyError;
use crate::peer::{PeerTimeouts, Resolver};
use crate::policy::{Pending, Policies, ResponseStage, Seen, Settle, Verdict};
use crate::route::{self, Api, Endpoint};
use crate::session::{Closing, Fields, Next, Session};
use crate::{cors, forward, head, identity, listing, models, report};
use sluice_shared::bus::RedisLimits;
use sluice_translate::peek::Peek;

/// Limits and timeouts of the request path.
#[derive(Debug, Clone, Copy)]
pub struct PathLimits {
    pub max_body_bytes: usize,
    pub timeouts: PeerTimeouts,
}

/// The proxy service.
pub struct SluiceProxy {
    pub(crate) snapshots: SnapshotHandle,
    /// Pingora's transport connector, for new TLS connections; the HTTP/1.1 spoken over
    /// them, plain TCP connects and the idle pool are sluice's (`upstream`, `connect`).
    /// Peers offer only HTTP/1.1.
    pub(crate) connector: TransportConnector,
    pub(crate) resolver: Resolver,
    pub(crate) limits: PathLimits,
    pub(crate) health: Arc<Health>,
    pub(crate) semantic: Semantic,
    pub(crate) telemetry: Telemetry,
    pub(crate) policies: Policies,
    pub(crate) bearer: sluice_shared::bearer::Verifier,
    /// Set when the server stops listening.
    pub(crate) closing: Closing,
}

impl SluiceProxy {
    pub fn new(
        snapshots: SnapshotHandle,
        connector: TransportConnector,
        limits: PathLimits,
        health: Arc<Health>,
        telemetry: Telemetry,
        counters: Option<RedisLimits>,
    ) -> Self {
        Self {
            snapshots,
            connector,
            resolver: Resolver::default(),
            limits,
            health,
            semantic: Semantic::default(),
            telemetry,
            policies: Policies::new(counters),
            bearer: sluice_shared::bearer::Verifier::default(),
            closing: Closing::default(),
        }
    }
}

/// What one request did, for the access log.
#[derive(Debug)]
pub struct RequestCtx {
    pub(crate) started: Instant,
    pub(crate) trace_id: String,
    pub(crate) dialect: Dialect,
    pub(crate) gateway: Option<Uuid>,
    pub(crate) consumer: Option<Uuid>,
    pub(crate) registry: Option<Uuid>,
    pub(crate) model: Option<String>,
    pub(crate) translated: bool,
    pub(crate) attempts: u32,
    pub(crate) attempt_log: Vec<Attempt>,
    pub(crate) fallbacks: u32,
    pub(crate) upstream_time: Duration,
    pub(crate) usage: Option<Usage>,
    pub(crate) provider: Option<&'static str>,
    pub(crate) api: Option<Api>,
    pub(crate) requested_model: Option<String>,
    pub(crate) gateway_slug: Option<String>,
    pub(crate) consumer_name: Option<String>,
    pub(crate) consumer_slug: Option<String>,
    pub(crate) exporters: Vec<String>,
    pub(crate) kafka_topic: Option<String>,
    /// The body-capture cap, when the gateway turned capture on.
    pub(crate) capture: Option<usize>,
    pub(crate) request_body: Option<String>,
    /// What the policies did, for telemetry.
    pub(crate) policy_outcomes: Vec<PolicyOutcome>,
    /// Headers every answer to this request carries (`X-RateLimit-*`).
    pub(crate) extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// Token budgets to charge when the usage is known.
    pub(crate) settle: Vec<Settle>,
    /// The verified bearer-token caller, when the request presented one.
    pub(crate) caller: Option<sluice_shared::bearer::Caller>,
    /// Policy outcomes still being decided beside the request.
    pub(crate) pending: Vec<Pending>,
    pub(crate) response_body: Option<String>,
    pub(crate) stream: bool,
    pub(crate) status: u16,
    pub(crate) error: Option<&'static str>,
    pub(crate) upstream_bytes: usize,
    pub(crate) ttfb: Option<Duration>,
    pub(crate) broken: bool,
}

pub const TRACE_HEADER: &str = "x-ag-trace-id";

/// The trace id of a request: the client's `X-AG-Trace-Id` when it is a sane token,
/// else a fresh one.
fn trace_id(headers: &Fields) -> String {
    headers
        .text(TRACE_HEADER)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(fresh_trace_id, str::to_string)
}

/// A new trace id: a UUIDv7 (time-ordered) in 32 hex digits, encoded directly rather
/// than through `Display` and the formatting machinery.
fn fresh_trace_id() -> String {
    let mut buf = Uuid::encode_buffer();
    Uuid::now_v7().simple().encode_lower(&mut buf).to_string()
}

impl SluiceProxy {
    async fn handle(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), ProxyError> {
        // A clone of the target is a reference count (it is a slice of the bytes read):
        // the path and the consumer's slug borrow from it while the session is written.
        let uri = session.req_header().uri.clone();
        let path = uri.path();
        let Some(endpoint) = route::parse(path) else {
            // Answered in the dialect the path looks like (two substring searches, so
            // only for a path that is not one of sluice's).
            ctx.dialect = route::guess_dialect(path);
            return Err(ProxyError::UnknownPath);
        };
        let (consumer_slug, api) = match endpoint {
            Endpoint::Health => return self.answer_status(session, ctx, "ok").await,
            Endpoint::Ready if self.snapshots.is_loaded() => {
                return self.answer_status(session, ctx, "ready").await;
            }
            Endpoint::Ready => return Err(ProxyError::NotReady),
            Endpoint::Metrics => {
                let body = self.metrics_text();
                write_text(session, body, &ctx.trace_id).await;
                return Ok(());
            }
            Endpoint::Upstreams => {
                let body = serde_json::json!({"upstreams": self.health.view()}).to_string();
                write_json(session, 200, Bytes::from(body), &ctx.trace_id).await;
                return Ok(());
            }
            Endpoint::Consumer { consumer, api } => (consumer, api),
        };
        ctx.dialect = api.dialect();
        ctx.api = Some(api);
        let preflight = session.req_header().method == http::Method::OPTIONS;
        if !preflight && session.req_header().method != api.method() {
            return Err(ProxyError::MethodNotAllowed);
        }

        // One snapshot for the whole request.
        let snapshot = self.snapshots.load();
        let header = session.req_header();
        // An absolute-form target's authority is the host, whatever `Host` says (RFC
        // 9112 §3.2.2): a proxy in front that routed by the target must not see the
        // request land on another gateway here.
        let host = header.uri.host().or_else(|| header.headers.text("host"));
        let gateway = identity::gateway(&snapshot, &header.headers, host)?;
        // Cross-origin: the gateway's rules answer a preflight here, before any key is
        // asked for, and put their headers on every other answer.
        let origin = header.headers.text("origin").map(str::to_string);
        let allowed = match (&gateway.cors, &origin) {
            (Some(cors), Some(origin)) => cors.allow(origin).map(|o| (cors, o)),
            _ => None,
        };
        if let Some((cors, allow)) = &allowed {
            ctx.extra_headers.extend(cors::answer_headers(cors, allow));
        }
        if preflight {
            return match (&gateway.cors, allowed) {
                (None, _) => Err(ProxyError::MethodNotAllowed),
                (Some(_), None) => Err(ProxyError::CorsOriginNotAllowed),
                (Some(cors), Some(_)) => {
                    ctx.extra_headers.extend(cors::preflight_headers(cors));
                    ctx.status = 204;
                    write_empty(session, 204, &ctx.trace_id, &ctx.extra_headers).await;
                    Ok(())
                }
            };
        }
        ctx.gateway = Some(gateway.id);
        ctx.gateway_slug = Some(gateway.slug.clone());
        ctx.exporters.clone_from(&gateway.exporters);
        ctx.kafka_topic.clone_from(&gateway.kafka_topic);
        ctx.capture = gateway.capture_bodies;
        let (consumer, presented) = identity::consumer(gateway, consumer_slug, &header.headers)?;
        if let identity::Presented::Bearer(token) = presented {
            let token = token.to_string();
            let auths: Vec<_> = gateway.bearer_auths(&consumer.auth_ids).cloned().collect();
            // Boxed: a 2 KiB future that only bearer-token requests need.
            ctx.caller = Some(Box::pin(self.bearer.verify(&auths, &token)).await?);
        }
        ctx.consumer = Some(consumer.id);
        ctx.consumer_name = Some(consumer.name.clone());
        ctx.consumer_slug = Some(consumer.slug.clone());

        if api == Api::Models {
            ctx.status = 200;
            write_json_with(
                session,
                200,
                listing::models(consumer),
                &ctx.trace_id,
                &ctx.extra_headers,
            )
            .await;
            return Ok(());
        }

        let body = body::read(session, self.limits.max_body_bytes).await?;
        let mut peek = Peek::parse(&body)?;
        ctx.stream = peek.stream;
        ctx.requested_model = peek.model.clone();

        let mut body = body;
        let mut model_override = None;
        let mut stage = ResponseStage::default();
        if !consumer.policies.is_empty() {
            let mut verdict = Verdict::default();
            let mut seen = Seen {
                gateway_id: gateway.id,
                gateway_slug: &gateway.slug,
                consumer,
                headers: &session.req_header().headers,
                body: body.clone(),
                model: Some(models::judged(
                    consumer,
                    peek.model.as_deref().unwrap_or(""),
                )),
                dialect: ctx.dialect,
                api,
                claims: ctx.caller.as_ref().map(|c| &c.claims),
            };
            // Boxed, as the cache's store in `forward` is: the chain's future is 7 KiB,
            // and inline it would stay in every request's future, open streams included,
            // long after the chain ran.
            let result = Box::pin(self.policies.pre_request(&mut seen, &mut verdict)).await;
            ctx.policy_outcomes = verdict.outcomes;
            ctx.pending = verdict.pending;
            crate::policy::join(&mut ctx.extra_headers, &mut verdict.headers);
            ctx.settle = verdict.settle;
            result?;
            if let Some(rewritten) = verdict.body {
                body = rewritten;
                // Its members lie elsewhere now: edits to it scan it again.
                peek.layout = None;
            }
            if let Some(hit) = verdict.cached {
                return self.answer_cached(session, ctx, &hit, &peek).await;
            }
            model_override = verdict.model_override;
            stage = verdict.respond;
        }
        // Captured after the policies' rewrites, so masked data stays masked in
        // telemetry; a request the chain refused is not captured.
        if let Some(max) = ctx.capture {
            ctx.request_body = Some(TelemetryEvent::capture(&body, max));
        }
        let requested = model_override
            .as_deref()
            .or(peek.model.as_deref())
            .unwrap_or("");
        let mut route = models::resolve(consumer, requested)?;
        if api == Api::CountTokens {
            // Only Anthropic counts tokens for a Messages request; when no candidate is
            // an Anthropic registry the count is estimated from the request's text.
            route.candidates.retain(|u| {
                u.target
                    .as_ref()
                    .is_ok_and(|t| t.wire == WireApi::AnthropicMessages)
            });
            if route.candidates.is_empty() {
                let req = sluice_translate::parse_request(Dialect::Anthropic, &body)?;
                let body = Bytes::from(format!(
                    "{{\"input_tokens\":{}}}",
                    listing::estimate_tokens(&req)
                ));
                ctx.status = 200;
                write_json(session, 200, body, &ctx.trace_id).await;
                return Ok(());
            }
        }
        let client_headers = session.lend_headers();
        let request = forward::Request {
            consumer,
            api,
            body,
            peek: &peek,
            client_headers: &client_headers,
            stage: &stage,
        };
        let forwarded = self.forward(session, ctx, request, route).await;
        session.return_headers(client_headers);
        forwarded
    }

    /// Answer from the cache, in the client's dialect and shape (a stream when it
    /// asked for one).
    async fn answer_cached(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        hit: &crate::cache::Hit,
        peek: &Peek,
    ) -> Result<(), ProxyError> {
        let client = ctx.dialect;
        let answer = (*hit.answer).clone();
        let (content_type, body) = if peek.stream {
            let options = sluice_translate::EncoderOptions {
                include_usage: peek.include_usage(),
            };
            (
                "text/event-stream",
                sluice_translate::render_stream(client, answer, options),
            )
        } else {
            (
                "application/json",
                Bytes::from(sluice_translate::render_response(client, &answer)),
            )
        };
        ctx.status = 200;
        let reply = Reply {
            status: 200,
            content_type,
            trace_id: &ctx.trace_id,
            extra: &ctx.extra_headers,
        };
        write_body(session, reply, body).await;
        Ok(())
    }

    async fn answer_status(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        status: &str,
    ) -> Result<(), ProxyError> {
        let body = Bytes::from(format!("{{\"status\":\"{status}\"}}"));
        write_json(session, 200, body, &ctx.trace_id).await;
        Ok(())
    }
}

/// A header value from text that may not make one (a model name a client sent).
pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

impl SluiceProxy {
    /// The process's metrics, with the gauges that are read at scrape time.
    fn metrics_text(&self) -> String {
        let m = &*METRICS;
        let snapshot = self.snapshots.load();
        m.snapshot_generation
            .set(i64::try_from(snapshot.generation).unwrap_or(i64::MAX));
        m.snapshot_age_seconds.set(snapshot.built.map_or(0, |b| {
            i64::try_from(b.elapsed().as_secs()).unwrap_or(i64::MAX)
        }));
        let stats = self.telemetry.stats();
        m.telemetry_queue_depth
            .set(i64::try_from(self.telemetry.depth()).unwrap_or(i64::MAX));
        m.telemetry_dropped
            .set(i64::try_from(stats.dropped()).unwrap_or(i64::MAX));
        m.telemetry_delivered.set(
            i64::try_from(stats.delivered.load(std::sync::atomic::Ordering::Relaxed))
                .unwrap_or(i64::MAX),
        );
        for v in self.health.view() {
            m.backend_healthy
                .with_label_values(&[&v.registry_id.to_string()])
                .set(i64::from(v.healthy));
        }
        m.render()
    }
}

/// Write a Prometheus text response.
async fn write_text(session: &mut Session, body: String, trace_id: &str) {
    let Some(mut resp) = head::Response::new(200, 3) else {
        return;
    };
    resp.set(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp.set(
        HeaderName::from_static(TRACE_HEADER),
        header_value(trace_id),
    );
    resp.set_length(body.len());
    if session.write_response_header(resp).await.is_ok() {
        let _ = session
            .write_response_body(Some(Bytes::from(body)), true)
            .await;
    }
}

/// Write a response without a body.
async fn write_empty(
    session: &mut Session,
    status: u16,
    trace_id: &str,
    extra: &[(HeaderName, HeaderValue)],
) {
    let Some(mut resp) = head::Response::new(status, 2) else {
        return;
    };
    resp.set(
        HeaderName::from_static(TRACE_HEADER),
        header_value(trace_id),
    );
    resp.set_length(0);
    resp.set_all(extra);
    let _ = session.write_response_header(resp).await;
}

/// Write a complete JSON response; a client that left meanwhile is not an error.
async fn write_json(session: &mut Session, status: u16, body: Bytes, trace_id: &str) {
    write_json_with(session, status, body, trace_id, &[]).await;
}

/// [`write_json`] with extra headers.
async fn write_json_with(
    session: &mut Session,
    status: u16,
    body: Bytes,
    trace_id: &str,
    extra: &[(HeaderName, HeaderValue)],
) {
    let reply = Reply {
        status,
        content_type: "application/json",
        trace_id,
        extra,
    };
    write_body(session, reply, body).await;
}

/// The head of a response the proxy writes itself.
struct Reply<'a> {
    status: u16,
    content_type: &'static str,
    trace_id: &'a str,
    extra: &'a [(HeaderName, HeaderValue)],
}

/// Write a complete response; a client that left meanwhile is not an error.
async fn write_body(session: &mut Session, reply: Reply<'_>, body: Bytes) {
    let Some(mut resp) = head::Response::new(reply.status, 3) else {
        return;
    };
    resp.set(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    resp.set(
        HeaderName::from_static(TRACE_HEADER),
        header_value(reply.trace_id),
    );
    resp.set_all(reply.extra);
    resp.set_length(body.len());
    if session.write_response_header(resp).await.is_ok() {
        let _ = session.write_response_body(Some(body), true).await;
    }
}

impl SluiceProxy {
    /// Serve a client connection's requests until it closes or cannot carry another.
    ///
    /// Each request runs inside this one future, the connection's task (see `accept`):
    /// Pingora's `HttpServerApp` loop would also hold HTTP/2's handshake and session
    /// accept loop for every connection (3.8 KiB, though the listener is plain HTTP/1.1)
    /// and box each request's future anew.
    pub(crate) async fn connection(
        &self,
        tcp: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        shutdown: &ShutdownWatch,
    ) {
        let mut session = Session::new(tcp, peer);
        loop {
            let next = tokio::select! {
                // Biased: a request already buffered is served, not dropped, at shutdown.
                biased;
                next = session.read_request() => next,
                () = self.closing.wait() => Next::Closed,
            };
            match next {
                Next::Request => {}
                Next::Closed => break,
                Next::Refused(error) => {
                    session.refuse(&error).await;
                    return;
                }
            }
            // CONNECT changes how the rest of the connection is framed: refused and
            // closed.
            if session.req_header().method == http::Method::CONNECT {
                session.refuse(&ProxyError::MethodNotAllowed).await;
                return;
            }
            if *shutdown.borrow() {
                session.close_after();
            }
            let mut ctx = self.new_ctx();
            self.serve(&mut session, &mut ctx).await;
            self.logging(&mut session, &mut ctx).await;
            if !session.finish().await {
                break;
            }
        }
        session.close().await;
    }

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            trace_id: String::new(),
            dialect: Dialect::OpenAiChat,
            model: None,
            translated: false,
            attempts: 0,
            attempt_log: Vec::new(),
            fallbacks: 0,
            upstream_time: Duration::ZERO,
            usage: None,
            provider: None,
            api: None,
            requested_model: None,
            gateway_slug: None,
            consumer_name: None,
            consumer_slug: None,
            exporters: Vec::new(),
            kafka_topic: None,
            capture: None,
            request_body: None,
            policy_outcomes: Vec::new(),
            extra_headers: Vec::new(),
            settle: Vec::new(),
            pending: Vec::new(),
            caller: None,
            response_body: None,
            gateway: None,
            consumer: None,
            registry: None,
            stream: false,
            status: 0,
            error: None,
            upstream_bytes: 0,
            ttfb: None,
            broken: false,
        }
    }

    /// Answer the request, from the upstream's response or with sluice's own error.
    async fn serve(&self, session: &mut Session, ctx: &mut RequestCtx) {
        ctx.trace_id = trace_id(&session.req_header().headers);
        METRICS.in_flight.inc();
        if let Err(error) = self.handle(session, ctx).await {
            let (status, code) = error.status_and_code();
            ctx.status = status.as_u16();
            ctx.error = Some(code);
            if !session.responded() {
                write_json_with(
                    session,
                    status.as_u16(),
                    error.body(ctx.dialect),
                    &ctx.trace_id,
                    &ctx.extra_headers,
                )
                .await;
            }
        }
    }

    /// Runs last for every request: one structured access-log line, never credentials.
    async fn logging(&self, session: &mut Session, ctx: &mut RequestCtx) {
        METRICS.in_flight.dec();
        if !ctx.settle.is_empty() {
            // Boxed: a 5.4 KiB future that only requests with token budgets need.
            Box::pin(self.policies.settle(
                &ctx.settle,
                ctx.usage,
                (200..300).contains(&ctx.status),
                ctx.provider,
                ctx.model.as_deref(),
            ))
            .await;
        }
        info!(
            target: "sluice::access",
            method = %session.req_header().method,
            path = %session.req_header().uri.path(),
            status = ctx.status,
            error = ctx.error,
            gateway = ?ctx.gateway,
            consumer = ?ctx.consumer,
            auth = ?ctx.caller.as_ref().map(|c| c.auth_id),
            subject = ctx.caller.as_ref().and_then(|c| c.subject.as_deref()),
            registry = ?ctx.registry,
            model = ctx.model.as_deref(),
            dialect = ctx.dialect.as_str(),
            translated = ctx.translated,
            attempts = ctx.attempts,
            input_tokens = ctx.usage.map(|u| u.input_tokens),
            output_tokens = ctx.usage.map(|u| u.output_tokens),
            cached_tokens = ctx.usage.map(|u| u.cached_input_tokens),
            trace_id = %ctx.trace_id,
            stream = ctx.stream,
            bytes = ctx.upstream_bytes,
            ttfb_ms = ctx.ttfb.map(|d| d.as_secs_f64() * 1000.0),
            total_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            broken = ctx.broken,
            "request"
        );
        // Last: the event takes the context's fields.
        let pending = std::mem::take(&mut ctx.pending);
        let Some(mut event) = report::report(ctx, session) else {
            return;
        };
        if pending.is_empty() {
            self.telemetry.emit(event);
            return;
        }
        // Outcomes still being decided (observe-mode calls) complete the event later,
        // so neither this connection's next request nor anything else waits for them.
        let telemetry = self.telemetry.clone();
        tokio::spawn(async move {
            for p in pending {
                let what = p.outcome.await.unwrap_or_else(|_| "failed".to_string());
                event.policies.push(PolicyOutcome {
                    policy_id: p.policy_id,
                    kind: p.kind,
                    outcome: what.into(),
                });
            }
            telemetry.emit(event);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_the_clients_when_sane_else_fresh_v7() {
        let fresh = trace_id(&Fields::default());
        assert_eq!(fresh.len(), 32);
        assert!(
            fresh
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let id = Uuid::parse_str(&fresh).expect("a uuid");
        assert_eq!(id.get_version_num(), 7);
        assert_ne!(trace_id(&Fields::default()), fresh);

        let sent = |v: &str| trace_id(&Fields::from_pairs(&[("X-AG-Trace-Id", v)]));
        assert_eq!(sent("req-42.a:b_c"), "req-42.a:b_c");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            assert_eq!(sent(bad).len(), 32, "{bad:?}");
        }
    }
}
