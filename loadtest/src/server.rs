//! The mock's HTTP server: hyper on a tokio listener, one task per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::{anthropic, openai, responses};

/// The APIs the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Models,
    Chat,
    Messages,
    CountTokens,
    Responses,
    Embeddings,
    Moderations,
}

type Body = BoxBody<Bytes, Infallible>;

/// How the mock answers when a request does not say otherwise.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Sent back in `x-mock-name`.
    pub name: String,
    /// When set, requests must carry `Authorization: Bearer <api_key>`.
    pub api_key: Option<String>,
    /// Content chunks in a stream, and tokens in a plain answer.
    pub chunks: u32,
    /// Delay before each stream chunk.
    pub chunk_delay: Duration,
    /// Delay before the response header.
    pub latency: Duration,
    /// Keep every request for the test to inspect.
    pub record: bool,
    /// When set, a stream stops after its first content chunk until this is notified.
    pub gate: Option<Arc<Notify>>,
    /// When set, every API request is answered with this error status (a provider
    /// that is down or rate limiting).
    pub status: Option<u16>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            name: "mock".into(),
            api_key: None,
            chunks: 8,
            chunk_delay: Duration::ZERO,
            latency: Duration::ZERO,
            record: false,
            gate: None,
            status: None,
        }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The usage the mock reported for one answer, as the provider's own numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedUsage {
    /// Every prompt token, cached ones included.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
}

struct Shared {
    config: MockConfig,
    recorded: Mutex<Vec<RecordedRequest>>,
    reported: Mutex<Vec<ReportedUsage>>,
    served: AtomicU64,
    accepted: AtomicU64,
}

/// A running mock provider. Dropping it stops the listener.
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: watch::Sender<bool>,
}

impl MockProvider {
    /// Listen on `addr` (port 0 for any) and serve until dropped.
    pub async fn start(addr: SocketAddr, config: MockConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            recorded: Mutex::new(Vec::new()),
            reported: Mutex::new(Vec::new()),
            served: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(listener, shared.clone(), stopped));
        Ok(Self {
            addr,
            shared,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL of this mock, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests received so far (only with `record`).
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared
            .recorded
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The usage of every answer given so far, in order.
    pub fn reported(&self) -> Vec<ReportedUsage> {
        self.shared
            .reported
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// How many requests were answered.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// How many connections were accepted: a client that keeps its connections alive
    /// opens fewer than it sends requests.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let mut closed = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(shared.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // Dropping the mock closes its open connections too, as a dead provider would.
            tokio::select! {
                _ = conn => {}
                _ = closed.changed() => {}
            }
        });
    }
}

fn header_num(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

fn full(status: StatusCode, name: &str, content_type: &str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_str(content_type)
            .unwrap_or(http::HeaderValue::from_static("application/json")),
    );
    if let Ok(v) = http::HeaderValue::from_str(name) {
        h.insert("x-mock-name", v);
    }
    resp
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let config = &shared.config;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if config.record
        && let Ok(mut recorded) = shared.recorded.lock()
    {
        recorded.push(RecordedRequest {
            method: parts.method.to_string(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    shared.served.fetch_add(1, Ordering::Relaxed);
    let json = "application/json";
    let path = parts.uri.path().trim_start_matches("/v1");
    let api = match (parts.method.clone(), path) {
        (http::Method::GET, "/health") => {
            return Ok(full(
                StatusCode::OK,
                &config.name,
                json,
                Bytes::from_static(b"{\"status\":\"ok\"}"),
            ));
        }
        (http::Method::GET, "/models") => Api::Models,
        (http::Method::POST, "/chat/completions") => Api::Chat,
        (http::Method::POST, "/messages") => Api::Messages,
        (http::Method::POST, "/messages/count_tokens") => Api::CountTokens,
        (http::Method::POST, "/responses") => Api::Responses,
        (http::Method::POST, "/embeddings") => Api::Embeddings,
        (http::Method::POST, "/moderations") => Api::Moderations,
        _ => {
            return Ok(full(
                StatusCode::NOT_FOUND,
                &config.name,
                json,
                openai::error(404, "unknown path"),
            ));
        }
    };
    let anthropic_shape = matches!(api, Api::Messages | Api::CountTokens);
    let error = |status: StatusCode, message: &str| {
        let body = if anthropic_shape {
            anthropic::error(status.as_u16(), message)
        } else {
            openai::error(status.as_u16(), message)
        };
        Ok(full(status, &config.name, json, body))
    };
    if let Some(key) = &config.api_key {
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
        };
        let bearer =
            header(http::header::AUTHORIZATION.as_str()) == Some(format!("Bearer {key}").as_str());
        let x_api_key = header("x-api-key") == Some(key.as_str());
        if !(bearer || x_api_key) {
            return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided");
        }
    }
    if anthropic_shape && !parts.headers.contains_key("anthropic-version") {
        return error(
            StatusCode::BAD_REQUEST,
            "anthropic-version: header is required",
        );
    }
    let latency = header_num(&parts.headers, "x-mock-latency-ms")
        .map_or(config.latency, Duration::from_millis);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(status) = header_num(&parts.headers, "x-mock-status")
        .and_then(|s| u16::try_from(s).ok())
        .or(config.status.filter(|_| api != Api::Models))
        .and_then(|s| StatusCode::from_u16(s).ok())
    {
        return error(status, "mock error");
    }
    let served = shared.served.load(Ordering::Relaxed);
    let chunks = header_num(&parts.headers, "x-mock-chunks")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(config.chunks);
    let (ask, id, call_prefix) = match api {
        Api::Models => {
            return Ok(full(
                StatusCode::OK,
                &config.name,
                json,
                openai::model_list(),
            ));
        }
        Api::Embeddings => {
            return match openai::embeddings(&body) {
                Some(b) => Ok(full(StatusCode::OK, &config.name, json, b)),
                None => error(StatusCode::BAD_REQUEST, "body is not an embeddings request"),
            };
        }
        Api::Moderations => {
            return match openai::moderation(&body) {
                Some(b) => Ok(full(StatusCode::OK, &config.name, json, b)),
                None => error(StatusCode::BAD_REQUEST, "body is not a moderation request"),
            };
        }
        Api::Chat => match openai::parse(&body) {
            Some(ask) => (
                ask,
                format!("chatcmpl-mock-{served}"),
                format!("call_mock_{served}_"),
            ),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "body is not a chat completion request",
                );
            }
        },
        Api::Messages | Api::CountTokens => {
            match anthropic::parse(&body, api == Api::CountTokens) {
                Ok(ask) if api == Api::CountTokens => {
                    return Ok(full(
                        StatusCode::OK,
                        &config.name,
                        json,
                        anthropic::count_tokens(&ask),
                    ));
                }
                Ok(ask) => (
                    ask,
                    format!("msg_mock_{served}"),
                    format!("toolu_mock_{served}_"),
                ),
                Err(message) => return error(StatusCode::BAD_REQUEST, &message),
            }
        }
        Api::Responses => match responses::parse(&body) {
            Some(ask) => (
                ask,
                format!("resp_mock_{served}"),
                format!("call_mock_{served}_"),
            ),
            None => return error(StatusCode::BAD_REQUEST, "body is not a responses request"),
        },
    };
    let mut plan = ask.plan(chunks, &call_prefix);
    // `x-mock-reply: <text>` answers with that text, in pieces of three characters, so
    // a test can see how the gateway handles text split across stream chunks.
    if let Some(reply) = parts
        .headers
        .get("x-mock-reply")
        .and_then(|v| v.to_str().ok())
        && plan.calls.is_empty()
    {
        let chars: Vec<char> = reply.chars().collect();
        plan.pieces = chars.chunks(3).map(|c| c.iter().collect()).collect();
        plan.completion_tokens = plan.pieces.len() as u64;
    }
    if let Ok(mut reported) = shared.reported.lock() {
        reported.push(ReportedUsage {
            prompt_tokens: plan.prompt_tokens,
            completion_tokens: plan.completion_tokens,
            cached_tokens: plan.cached_tokens,
        });
    }
    if !ask.stream {
        let body = match api {
            Api::Messages => anthropic::message(&plan, &id),
            Api::Responses => responses::complete(&plan, &id),
            _ => openai::completion(&plan, &id),
        };
        return Ok(full(StatusCode::OK, &config.name, json, body));
    }
    let events = match api {
        Api::Messages => anthropic::stream(&plan, &id),
        Api::Responses => responses::stream(&plan, &id),
        _ => openai::stream(&plan, &id, ask.include_usage),
    };
    let delay = header_num(&parts.headers, "x-mock-delay-ms")
        .map_or(config.chunk_delay, Duration::from_millis);
    // `x-mock-truncate-after: N` ends the body cleanly after N events, as a provider
    // that drops a stream half way does.
    let mut events = events;
    if let Some(n) = header_num(&parts.headers, "x-mock-truncate-after") {
        events.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let gate = config.gate.clone();
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(Frame::data(event))).await.is_err() {
                return;
            }
            if i == 1
                && let Some(gate) = &gate
            {
                gate.notified().await;
            }
        }
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(rx)));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&config.name) {
        h.insert("x-mock-name", v);
    }
    Ok(resp)
}
