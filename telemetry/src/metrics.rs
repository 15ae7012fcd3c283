//! The Prometheus metrics of a sluice process, served as text at `GET /metrics` by
//! every plane. Labels are bounded by configuration (gateway and consumer slugs,
//! providers, models the consumer is allowed): never raw paths, keys or user ids.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Buckets for latencies, in seconds: 1 ms to 2 minutes.
const LATENCY: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Buckets for the gateway's own time, in seconds: 10 µs to 100 ms.
const OVERHEAD: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1,
];

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub ttfb: HistogramVec,
    pub overhead: HistogramVec,
    pub tokens: IntCounterVec,
    pub cost_micro_usd: IntCounterVec,
    pub attempts: IntCounterVec,
    pub retries: IntCounter,
    pub fallbacks: IntCounter,
    pub rate_limited: IntCounter,
    pub policy_rejections: IntCounter,
    /// Requests refused before they were served (not valid HTTP/1.1, too large, too
    /// slow), by error code.
    pub http_refused: IntCounterVec,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    /// Limiter or moderation calls that failed, whichever way the policy then went.
    pub policy_errors: IntCounter,
    /// MCP requests (tool calls, reads, prompt gets) by registry, method and outcome.
    pub mcp_calls: IntCounterVec,
    pub mcp_duration: HistogramVec,
    /// Upstream MCP servers skipped because they were unreachable (`fail_mode: open`).
    pub mcp_upstream_skipped: IntCounterVec,
    pub backend_healthy: IntGaugeVec,
    pub in_flight: IntGauge,
    pub snapshot_generation: IntGauge,
    pub snapshot_age_seconds: IntGauge,
    pub telemetry_queue_depth: IntGauge,
    pub telemetry_dropped: IntGauge,
    pub telemetry_delivered: IntGauge,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let m = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable!());
    let _ = r.register(Box::new(m.clone()));
    m
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let m = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .unwrap_or_else(|_| unreachable!());
    let _ = r.register(Box::new(m.clone()));
    m
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let m = IntCounter::new(name, help).unwrap_or_else(|_| unreachable!());
    let _ = r.register(Box::new(m.clone()));
    m
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let m = IntGauge::new(name, help).unwrap_or_else(|_| unreachable!());
    let _ = r.register(Box::new(m.clone()));
    m
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let route = ["gateway", "consumer", "provider", "model"];
        Self {
            requests: counter_vec(
                &r,
                "sluice_requests_total",
                "Proxied requests",
                &[
                    "gateway",
                    "consumer",
                    "provider",
                    "model",
                    "status_class",
                    "dialect",
                ],
            ),
            duration: histogram(
                &r,
                "sluice_request_duration_seconds",
                "Total request time",
                &["dialect", "stream"],
                LATENCY,
            ),
            upstream_duration: histogram(
                &r,
                "sluice_upstream_duration_seconds",
                "Time spent on providers",
                &["provider"],
                LATENCY,
            ),
            ttfb: histogram(
                &r,
                "sluice_upstream_ttfb_seconds",
                "Time to a provider's first body byte",
                &["provider"],
                LATENCY,
            ),
            overhead: histogram(
                &r,
                "sluice_gateway_overhead_seconds",
                "Time spent in sluice itself",
                &["dialect"],
                OVERHEAD,
            ),
            tokens: counter_vec(
                &r,
                "sluice_tokens_total",
                "Tokens by kind (input, output, cached, reasoning)",
                &["gateway", "consumer", "provider", "model", "kind"],
            ),
            cost_micro_usd: counter_vec(
                &r,
                "sluice_cost_micro_usd_total",
                "Cost in millionths of a US dollar, from the models catalog",
                &route,
            ),
            attempts: counter_vec(
                &r,
                "sluice_upstream_attempts_total",
                "Upstream attempts by result",
                &["provider", "result"],
            ),
            retries: counter(&r, "sluice_retries_total", "Attempts after the first"),
            fallbacks: counter(
                &r,
                "sluice_fallbacks_total",
                "Attempts on a fallback chain registry",
            ),
            rate_limited: counter(
                &r,
                "sluice_rate_limit_rejections_total",
                "Requests rejected by a rate limit",
            ),
            policy_rejections: counter(
                &r,
                "sluice_policy_rejections_total",
                "Requests rejected by a policy",
            ),
            http_refused: counter_vec(
                &r,
                "sluice_http_refused_total",
                "Requests refused before they were served: malformed, ambiguous, too large or too slow",
                &["code"],
            ),
            cache_hits: counter(
                &r,
                "sluice_cache_hits_total",
                "Answers served from the cache",
            ),
            cache_misses: counter(&r, "sluice_cache_misses_total", "Cache lookups that missed"),
            policy_errors: counter(
                &r,
                "sluice_policy_errors_total",
                "Limiter or moderation calls that failed (the policy then failed open or closed)",
            ),
            mcp_calls: counter_vec(
                &r,
                "sluice_mcp_calls_total",
                "MCP tool calls, resource reads and prompt gets",
                &[
                    "gateway", "consumer", "registry", "method", "tool", "outcome",
                ],
            ),
            mcp_duration: histogram(
                &r,
                "sluice_mcp_call_duration_seconds",
                "Time of MCP calls, upstream included",
                &["registry", "method"],
                LATENCY,
            ),
            mcp_upstream_skipped: counter_vec(
                &r,
                "sluice_mcp_upstream_skipped_total",
                "Unreachable MCP servers left out of a listing (fail_mode open)",
                &["registry"],
            ),
            backend_healthy: {
                let m = IntGaugeVec::new(
                    Opts::new("sluice_backend_healthy", "1 when a registry is in rotation"),
                    &["registry"],
                )
                .unwrap_or_else(|_| unreachable!());
                let _ = r.register(Box::new(m.clone()));
                m
            },
            in_flight: gauge(&r, "sluice_in_flight_requests", "Requests being answered"),
            snapshot_generation: gauge(
                &r,
                "sluice_config_snapshot_generation",
                "Config snapshots loaded by this process",
            ),
            snapshot_age_seconds: gauge(
                &r,
                "sluice_config_snapshot_age_seconds",
                "Age of the config snapshot in force",
            ),
            telemetry_queue_depth: gauge(
                &r,
                "sluice_telemetry_queue_depth",
                "Telemetry events waiting for their sinks",
            ),
            telemetry_dropped: gauge(
                &r,
                "sluice_telemetry_dropped_total",
                "Telemetry events dropped (queue full, sink down)",
            ),
            telemetry_delivered: gauge(
                &r,
                "sluice_telemetry_delivered_total",
                "Telemetry events written or acknowledged",
            ),
            registry: r,
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// `status_class` label of a status: `2xx`, `4xx`, …
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
