//! What a finished request leaves behind: its telemetry event and its metrics.

use sluice_shared::catalog;
use sluice_telemetry::metrics::{METRICS, status_class};
use sluice_telemetry::{ConsumerRef, EventModel, GatewayRef, Latency, TelemetryEvent, TokenUsage};
use std::mem::take;
use std::net::SocketAddr;

use crate::route::Api;
use crate::series;
use crate::service::RequestCtx;
use crate::session::Session;

fn endpoint(api: Api) -> &'static str {
    match api {
        Api::ChatCompletions => "chat/completions",
        Api::Messages => "messages",
        Api::CountTokens => "messages/count_tokens",
        Api::Responses => "responses",
        Api::Embeddings => "embeddings",
        Api::Models => "models",
    }
}

/// The model as a metrics label: names the models catalog knows (`known`, its entry
/// looked up once for the price too), else `other`, so a client cannot grow the label
/// set.
fn model_label(model: Option<&str>, known: bool) -> &str {
    match model {
        Some(m) if known => m,
        None => "none",
        Some(_) => "other",
    }
}

/// The client's address as text (`ip:port`), IPv4 written by hand: `Display` goes
/// through the formatting machinery, about 1,700 instructions on every request.
fn client_addr(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    let mut text = String::with_capacity(21);
    let mut n = itoa::Buffer::new();
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        text.push_str(n.format(octet));
    }
    text.push(':');
    text.push_str(n.format(v4.port()));
    text
}

fn outcome(ctx: &RequestCtx) -> &'static str {
    match (ctx.status, ctx.error, ctx.broken) {
        (_, _, true) => "incomplete",
        (200..=299, _, _) => "success",
        (_, Some(_), _) if ctx.status < 500 => "client_error",
        (_, Some(_), _) => "gateway_error",
        _ => "upstream_error",
    }
}

/// Send the request's telemetry event and record its metrics.
/// Record the request's metrics and return its telemetry event (none for probes and
/// other requests that were not proxied). The context is spent: its fields move into
/// the event rather than being copied.
pub fn report(ctx: &mut RequestCtx, session: &Session) -> Option<TelemetryEvent> {
    let api = ctx.api?;
    if api == Api::Models {
        return None;
    }
    let total = ctx.started.elapsed();
    let upstream = ctx.upstream_time.min(total);
    let usage = ctx.usage.map(|u| TokenUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_tokens: u.cached_input_tokens,
        cache_creation_tokens: u.cache_creation_tokens,
        reasoning_tokens: u.reasoning_tokens,
    });
    let price = match (ctx.provider, ctx.model.as_deref()) {
        (Some(p), Some(m)) => catalog::find_model(p, m),
        _ => None,
    };
    let cost = match (&price, &usage) {
        (Some(price), Some(u)) => {
            Some(price.cost(u.input_tokens, u.cached_tokens, u.output_tokens))
        }
        _ => None,
    };
    let headers = &session.req_header().headers;

    let m = &*METRICS;
    let gateway = ctx.gateway_slug.as_deref().unwrap_or("none");
    let consumer = ctx.consumer_slug.as_deref().unwrap_or("none");
    let provider = ctx.provider.unwrap_or("none");
    let model = model_label(ctx.model.as_deref(), price.is_some());
    let labels = series::Labels {
        gateway,
        consumer,
        provider,
        model,
        status: status_class(ctx.status),
        dialect: ctx.dialect.as_str(),
        stream: ctx.stream,
    };
    series::with(labels, |s| {
        s.requests.inc();
        s.duration.observe(total.as_secs_f64());
        s.overhead.observe((total - upstream).as_secs_f64());
        if ctx.provider.is_some() {
            s.upstream().observe(upstream.as_secs_f64());
            if let Some(ttfb) = ctx.ttfb {
                s.ttfb().observe(ttfb.as_secs_f64());
            }
        }
        if let Some(u) = &usage {
            let counts = [
                u.input_tokens,
                u.output_tokens,
                u.cached_tokens,
                u.reasoning_tokens,
            ];
            for (counter, n) in s.tokens().iter().zip(counts) {
                counter.inc_by(n);
            }
        }
        if let Some(c) = cost {
            s.cost().inc_by((c * 1_000_000.0).round() as u64);
        }
    });
    for a in &ctx.attempt_log {
        let result = a.error_class.as_deref().unwrap_or("answered");
        series::attempt(a.provider.as_deref().unwrap_or("none"), result);
    }
    m.retries.inc_by(u64::from(ctx.attempts.saturating_sub(1)));
    m.fallbacks.inc_by(u64::from(ctx.fallbacks));

    let mut event = TelemetryEvent::new(take(&mut ctx.trace_id));
    event.gateway = GatewayRef {
        id: ctx.gateway,
        slug: take(&mut ctx.gateway_slug),
    };
    event.consumer = ConsumerRef {
        id: ctx.consumer,
        name: take(&mut ctx.consumer_name),
    };
    event.dialect = ctx.dialect.as_str().into();
    event.endpoint = Some(endpoint(api).into());
    event.stream = ctx.stream;
    event.model = EventModel {
        requested: take(&mut ctx.requested_model),
        selected: take(&mut ctx.model),
    };
    event.provider = ctx.provider.map(Into::into);
    event.registry_id = ctx.registry;
    event.attempts = take(&mut ctx.attempt_log);
    event.status = ctx.status;
    event.outcome = outcome(ctx).into();
    event.error = ctx.error.map(Into::into);
    event.latency = Latency {
        total_ms: total.as_secs_f64() * 1000.0,
        upstream_ms: upstream.as_secs_f64() * 1000.0,
        ttfb_ms: ctx
            .ttfb
            .filter(|_| ctx.stream)
            .map(|t| t.as_secs_f64() * 1000.0),
        gateway_ms: (total - upstream).as_secs_f64() * 1000.0,
    };
    event.usage = usage;
    event.cost_usd = cost;
    event.client_ip = Some(client_addr(session.client_addr()));
    event.user_agent = headers
        .text("user-agent")
        .map(|v| v.chars().take(256).collect());
    event.policies = take(&mut ctx.policy_outcomes);
    event.request_body = take(&mut ctx.request_body);
    event.response_body = take(&mut ctx.response_body);
    event.exporters = take(&mut ctx.exporters);
    event.kafka_topic = take(&mut ctx.kafka_topic);
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_the_catalog_does_not_know_are_one_label() {
        assert_eq!(model_label(Some("gpt-4o"), true), "gpt-4o");
        assert_eq!(model_label(Some("made-up-model-7"), false), "other");
        assert_eq!(model_label(None, false), "none");
    }

    #[test]
    fn client_addresses_read_as_display_writes_them() {
        for text in [
            "127.0.0.1:56480",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:8080",
        ] {
            let addr: SocketAddr = text.parse().expect("address");
            assert_eq!(client_addr(addr), addr.to_string());
            assert_eq!(client_addr(addr), text);
        }
    }
}
