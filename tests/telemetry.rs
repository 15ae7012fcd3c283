//! Telemetry and metrics: one event per request with exact usage and cost, whatever
//! the dialect pair; never a credential or prompt text; and a Prometheus scrape with
//! every family.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::RequestBuilder;
use serde_json::{Value, json};
use sluice_shared::catalog;
use support::*;

fn post(s: &Embedded, f: &Fixture, api: &str) -> RequestBuilder {
    s.proxy
        .http
        .post(format!("{}/{}/v1/{api}", s.proxy.base, f.consumer_slug))
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("X-AG-API-Key", &f.key)
        .header("user-agent", "telemetry-test/1.0")
}

/// The event of a trace id, once the pipeline has written it.
async fn event(file: &Path, trace_id: &str) -> Value {
    eventually(Duration::from_secs(10), "the telemetry event", || async {
        let text = std::fs::read_to_string(file).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["trace_id"] == trace_id)
    })
    .await
}

const MARKER: &str = "a-prompt-that-must-not-be-logged";

fn body(api: &str, model: &str, stream: bool) -> Value {
    match api {
        "messages" => json!({"model": model, "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": MARKER}]}),
        "responses" => json!({"model": model, "stream": stream, "input": MARKER}),
        _ => json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": MARKER}]}),
    }
}

async fn started(file: PathBuf) -> (Embedded, sluice_loadtest::MockProvider, Fixture) {
    let s = embedded_with(|st| st.telemetry_file = Some(file)).await;
    let m = mock("telemetry").await;
    let f = setup_dialects(&s.admin, "telemetry", &m.base_url()).await;
    wait_model(&s.proxy, &f, "claude-sonnet-4-5").await;
    (s, m, f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_an_event_with_exact_usage_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let (s, m, f) = started(file.clone()).await;
    for api in ["chat/completions", "messages", "responses"] {
        for (upstream, model) in DIALECT_MODELS {
            for stream in [false, true] {
                let case = format!("{api} -> {upstream} stream={stream}");
                let resp = post(&s, &f, api)
                    .json(&body(api, model, stream))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{case}");
                let trace = resp.headers()["x-ag-trace-id"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let _ = resp.bytes().await.unwrap();
                let reported = *m.reported().last().unwrap();
                let e = event(&file, &trace).await;
                assert_eq!(e["schema_version"], 1);
                assert_eq!(e["status"], 200, "{case}: {e}");
                assert_eq!(e["outcome"], "success", "{case}: {e}");
                assert_eq!(e["stream"], stream, "{case}");
                assert_eq!(e["model"]["selected"], model, "{case}");
                assert_eq!(e["gateway"]["slug"], "telemetry");
                assert_eq!(e["consumer"]["name"], "My App");
                assert_eq!(e["user_agent"], "telemetry-test/1.0");
                assert!(e["client_ip"].as_str().unwrap().starts_with("127.0.0.1"));
                assert_eq!(e["attempts"].as_array().unwrap().len(), 1, "{case}");
                let u = &e["usage"];
                assert_eq!(
                    (
                        u["input_tokens"].as_u64(),
                        u["output_tokens"].as_u64(),
                        u["cached_tokens"].as_u64()
                    ),
                    (
                        Some(reported.prompt_tokens),
                        Some(reported.completion_tokens),
                        Some(reported.cached_tokens)
                    ),
                    "{case}: the provider's usage, exactly: {e}"
                );
                let l = &e["latency"];
                assert!(l["total_ms"].as_f64().unwrap() >= l["upstream_ms"].as_f64().unwrap());
                assert!(l["gateway_ms"].as_f64().unwrap() >= 0.0);
                assert_eq!(l["ttfb_ms"].is_null(), !stream, "{case}");
                let provider = e["provider"].as_str().unwrap();
                match catalog::find_model(provider, model) {
                    Some(price) => {
                        let want = price.cost(
                            reported.prompt_tokens,
                            reported.cached_tokens,
                            reported.completion_tokens,
                        );
                        let got = e["cost_usd"].as_f64().unwrap();
                        assert!(
                            (got - want).abs() < 1e-12 && want > 0.0,
                            "{case}: {got} vs {want}"
                        );
                    }
                    None => assert!(e["cost_usd"].is_null(), "{case}"),
                }
            }
        }
    }

    // A provider error and a gateway refusal are events too.
    let resp = post(&s, &f, "messages")
        .header("x-mock-status", "500")
        .json(&body("messages", "mock-model", false))
        .send()
        .await
        .unwrap();
    let trace = resp.headers()["x-ag-trace-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(resp.status(), 500);
    let e = event(&file, &trace).await;
    assert_eq!(
        (e["status"].as_u64(), e["outcome"].as_str()),
        (Some(500), Some("upstream_error"))
    );
    assert_eq!(e["attempts"][0]["status"], 500);
    let resp = post(&s, &f, "chat/completions")
        .json(&body("chat", "not-allowed", false))
        .send()
        .await
        .unwrap();
    let trace = resp.headers()["x-ag-trace-id"]
        .to_str()
        .unwrap()
        .to_string();
    let e = event(&file, &trace).await;
    assert_eq!(
        (e["status"].as_u64(), e["error"].as_str()),
        (Some(403), Some("model_not_allowed"))
    );
    assert_eq!(e["outcome"], "client_error");

    let all = std::fs::read_to_string(&file).unwrap();
    for secret in [f.key.as_str(), UPSTREAM_KEY, MARKER] {
        assert!(!all.contains(secret), "telemetry must not carry {secret}");
    }
    s.running.shutdown().await;
}

/// A line of Prometheus text: a comment, or `name{labels} value`.
fn valid_line(line: &str) -> bool {
    if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
        return true;
    }
    let (series, value) = match line.rsplit_once(' ') {
        Some(parts) => parts,
        None => return false,
    };
    let name_end = series.find('{').unwrap_or(series.len());
    let name = &series[..name_end];
    let labels_ok =
        name_end == series.len() || (series.ends_with('}') && series[name_end..].contains('='));
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && labels_ok
        && (value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scrape_parses_and_has_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _m, f) = started(dir.path().join("events.jsonl")).await;
    for stream in [false, true] {
        let resp = post(&s, &f, "chat/completions")
            .json(&body("chat", "claude-sonnet-4-5", stream))
            .send()
            .await
            .unwrap();
        let _ = resp.bytes().await.unwrap();
    }
    // Metrics are recorded when the request's last phase ends.
    let text = eventually(Duration::from_secs(5), "token metrics", || async {
        let text = s
            .proxy
            .http
            .get(format!("{}/metrics", s.proxy.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("sluice_tokens_total{").then_some(text)
    })
    .await;
    for line in text.lines() {
        assert!(valid_line(line), "not Prometheus text: {line:?}");
    }
    for family in [
        "sluice_requests_total",
        "sluice_request_duration_seconds",
        "sluice_upstream_duration_seconds",
        "sluice_upstream_ttfb_seconds",
        "sluice_gateway_overhead_seconds",
        "sluice_tokens_total",
        "sluice_cost_micro_usd_total",
        "sluice_upstream_attempts_total",
        "sluice_retries_total",
        "sluice_fallbacks_total",
        "sluice_rate_limit_rejections_total",
        "sluice_policy_rejections_total",
        "sluice_cache_hits_total",
        "sluice_cache_misses_total",
        "sluice_backend_healthy",
        "sluice_in_flight_requests",
        "sluice_config_snapshot_generation",
        "sluice_config_snapshot_age_seconds",
        "sluice_telemetry_queue_depth",
        "sluice_telemetry_dropped_total",
        "sluice_telemetry_delivered_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "missing {family}"
        );
    }
    // Bounded labels: no key, no path, no prompt.
    assert!(!text.contains(&f.key) && !text.contains("/v1/") && !text.contains(MARKER));
    let admin = s
        .proxy
        .http
        .get(format!("http://{}/metrics", s.running.admin_addr.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    s.running.shutdown().await;
}

/// Bodies are in events only when the gateway turns capture on, and then cut to its cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_capture_is_opt_in_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let (s, _m, f) = started(file.clone()).await;
    s.admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{}", f.gateway_id),
            Some(
                json!({"telemetry": {"exporters": [{"name": "file"}], "capture_bodies": true,
                "body_capture_max_bytes": 40}}),
            ),
            200,
        )
        .await;
    let trace = eventually(Duration::from_secs(10), "capture to apply", || async {
        let resp = post(&s, &f, "chat/completions")
            .json(&body("chat", "mock-model", false))
            .send()
            .await
            .ok()?;
        let trace = resp.headers()["x-ag-trace-id"].to_str().ok()?.to_string();
        let e = event(&file, &trace).await;
        e["request_body"].is_string().then_some(e)
    })
    .await;
    let req = trace["request_body"].as_str().unwrap();
    let resp = trace["response_body"].as_str().unwrap();
    assert!(req.len() <= 40 && req.starts_with('{'), "{req}");
    assert!(resp.len() <= 40 && resp.starts_with('{'), "{resp}");
    s.running.shutdown().await;
}
