//! One exchange with an upstream: connect (from the pool), send the request, relay the
//! response to the client chunk by chunk.
//!
//! Until the response header reaches the client, a failure is returned as a
//! [`ProxyError`] and the caller answers with a JSON error. After that the client already
//! has a status line, so a failure is reported in-band: an SSE stream gets an explicit
//! error event; any other body is cut and the connection closed, never padded into
//! something that looks complete.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use sluice_shared::snapshot::{CompiledConsumer, UpstreamCredential, UpstreamTarget};
use tracing::{debug, warn};

use crate::error::ProxyError;
use crate::headers;
use crate::peer::idle_timeout;

/// What the caller learns of an exchange that reached the client.
#[derive(Debug, Default, Clone, Copy)]
pub struct Relayed {
    pub status: u16,
    pub bytes: usize,
    pub ttfb: Option<Duration>,
    /// The upstream failed after the response started.
    pub broken: bool,
}

/// The request to send upstream, already decided.
pub struct Outbound<'a> {
    pub target: &'a UpstreamTarget,
    pub consumer: &'a CompiledConsumer,
    pub client_headers: &'a HeaderMap,
    pub body: Bytes,
    pub api_path: &'a str,
}

/// Build the upstream request header: provider path, provider host, the client's
/// headers minus credentials and hop-by-hop ones, the consumer's extra headers, the
/// provider credential, and the exact content length.
pub fn request_header(out: &Outbound<'_>) -> Result<RequestHeader, ProxyError> {
    let target = out.target;
    let mut path = format!("{}{}", target.base_path, out.api_path);
    if let Some(UpstreamCredential::Query { name, value }) = &target.credential {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        path.push_str(&format!("?{}={}", encode(name), encode(value)));
    }
    let internal =
        |_| ProxyError::UpstreamMisconfigured("cannot build the upstream request".into());
    let mut req = RequestHeader::build("POST", path.as_bytes(), Some(out.client_headers.len() + 4))
        .map_err(internal)?;
    for (name, value) in out.client_headers {
        if !headers::drop_upstream(name) {
            req.append_header(name.clone(), value.clone())
                .map_err(internal)?;
        }
    }
    for (name, value) in &out.consumer.headers {
        req.insert_header(name.clone(), value.clone())
            .map_err(internal)?;
    }
    req.insert_header(http::header::HOST, target.authority.as_str())
        .map_err(internal)?;
    if let Some(UpstreamCredential::Header { name, value }) = &target.credential {
        req.insert_header(name.clone(), value.clone())
            .map_err(internal)?;
    }
    req.insert_header(http::header::CONTENT_LENGTH, out.body.len().to_string())
        .map_err(internal)?;
    Ok(req)
}

fn classify(err: &Error) -> ProxyError {
    match err.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ProxyError::UpstreamTimeout
        }
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::ConnectProxyFailure
        | ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::BindError => ProxyError::UpstreamUnreachable,
        _ => ProxyError::UpstreamFailed,
    }
}

/// Send the request and read the response header. A pooled connection the upstream
/// closed meanwhile fails on first use; that is retried once on a fresh connection.
async fn send(
    connector: &Connector,
    peer: &HttpPeer,
    req: &RequestHeader,
    body: &Bytes,
    read_timeout: Duration,
) -> Result<HttpSession, ProxyError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (mut up, reused) = connector.get_http_session(peer).await.map_err(|e| {
            debug!(error = %e, "upstream connect failed");
            classify(&e)
        })?;
        up.set_read_timeout(Some(read_timeout));
        let sent = async {
            up.write_request_header(Box::new(req.clone())).await?;
            up.write_request_body(body.clone(), true).await?;
            up.finish_request_body().await?;
            up.read_response_header().await
        }
        .await;
        match sent {
            Ok(()) => return Ok(up),
            Err(e) if reused && attempt == 1 => {
                debug!(error = %e, "pooled upstream connection failed; retrying on a fresh one");
            }
            Err(e) => {
                debug!(error = %e, "upstream exchange failed");
                return Err(classify(&e));
            }
        }
    }
}

/// Run the exchange and relay the answer to the client.
pub async fn relay(
    connector: &Connector,
    peer: &HttpPeer,
    out: Outbound<'_>,
    stream_requested: bool,
    read_timeout: Duration,
    session: &mut Session,
) -> Result<Relayed, ProxyError> {
    let started = Instant::now();
    let req = request_header(&out)?;
    let mut up = send(connector, peer, &req, &out.body, read_timeout).await?;
    let upstream = up.response_header().ok_or(ProxyError::UpstreamFailed)?;
    let status = upstream.status.as_u16();
    let is_sse = upstream
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));

    let mut resp = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 3))
        .map_err(|_| ProxyError::UpstreamFailed)?;
    for (name, value) in &upstream.headers {
        if !headers::drop_downstream(name) {
            resp.append_header(name.clone(), value.clone())
                .map_err(|_| ProxyError::UpstreamFailed)?;
        }
    }
    if is_sse || stream_requested {
        // Streams go out as they come: no intermediary may buffer them.
        let _ = resp.insert_header(http::header::CACHE_CONTROL, "no-cache");
        let _ = resp.insert_header("x-accel-buffering", "no");
        resp.remove_header(&http::header::CONTENT_LENGTH);
    }
    let mut relayed = Relayed {
        status,
        ..Relayed::default()
    };
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_err()
    {
        // The client left; nothing more to do, and the upstream connection is not reusable.
        relayed.broken = true;
        return Ok(relayed);
    }

    loop {
        match up.read_response_body().await {
            Ok(Some(chunk)) => {
                relayed.ttfb.get_or_insert_with(|| started.elapsed());
                relayed.bytes += chunk.len();
                if session
                    .write_response_body(Some(chunk), false)
                    .await
                    .is_err()
                {
                    debug!("client went away mid-response");
                    return Ok(relayed);
                }
            }
            Ok(None) => {
                let _ = session.write_response_body(None, true).await;
                if up.response_done() {
                    connector
                        .release_http_session(up, peer, Some(idle_timeout()))
                        .await;
                }
                return Ok(relayed);
            }
            Err(e) => {
                let error = classify(&e);
                warn!(error = %e, status, bytes = relayed.bytes, "upstream failed mid-response");
                relayed.broken = true;
                if is_sse {
                    let _ = session
                        .write_response_body(Some(error.sse_event()), true)
                        .await;
                } else {
                    session.set_keepalive(None);
                }
                return Ok(relayed);
            }
        }
    }
}
