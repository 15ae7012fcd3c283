//! Policies through the proxy: rate limits exact within a process and across proxy
//! replicas sharing Redis, request size and model limits, observe mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

async fn messages(proxy: &Proxy, f: &Fixture, body: Value) -> reqwest::Response {
    proxy
        .http
        .post(format!("{}/{}/v1/messages", proxy.base, f.consumer_slug))
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("x-api-key", &f.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A simple chat for `model`.
fn asking(model: &str) -> Value {
    let mut body = simple_chat(false);
    body["model"] = json!(model);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_headers_in_the_client_dialect() {
    let (s, _m, f, _) = with_policy(
        "limits",
        json!({"name": "three a minute", "slug": "rate_limiter",
            "settings": {"limit": 3, "window": 60}}),
    )
    .await;
    // Wait for the policy to reach the proxy: the first limited answer.
    let first = eventually(Duration::from_secs(10), "the limit to apply", || async {
        let resp = s.proxy.chat(&f, simple_chat(false)).await;
        resp.headers()
            .get("x-ratelimit-limit")
            .is_some()
            .then_some(resp)
    })
    .await;
    assert_eq!(first.headers()["x-ratelimit-remaining"], "2");
    assert_eq!(s.proxy.chat(&f, simple_chat(false)).await.status(), 200);
    assert_eq!(s.proxy.chat(&f, simple_chat(false)).await.status(), 200);
    let limited = s.proxy.chat(&f, simple_chat(false)).await;
    assert_eq!(limited.status(), 429);
    let h = limited.headers().clone();
    assert_eq!(h["x-ratelimit-limit"], "3");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() > 0);
    let v: Value = limited.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // An Anthropic client gets its own error shape.
    let resp = messages(
        &s.proxy,
        &f,
        json!({"model": "m", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("rate_limit_error"))
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_and_model_policies_and_observe_mode() {
    let s = embedded().await;
    let m = mock("sizes").await;
    let f = setup(&s.admin, "sizes", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    let pid = policy(
        &s.admin,
        &f,
        json!({"name": "small", "slug": "request_size_limiter", "settings": {"max_bytes": 300}}),
        false,
    )
    .await;
    // Global: applies to every consumer of the gateway.
    s.admin
        .ok(
            "POST",
            &format!("/v1/gateways/{}/policies/{pid}/global", f.gateway_id),
            None,
            200,
        )
        .await;
    policy(
        &s.admin,
        &f,
        json!({"name": "models", "slug": "model_allowlist", "mode": "observe",
            "settings": {"allowed": ["gpt-4o"]}}),
        true,
    )
    .await;
    let big =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(400)}]});
    let resp = eventually(
        Duration::from_secs(10),
        "the size limit to apply",
        || async {
            let resp = s.proxy.chat(&f, big.clone()).await;
            (resp.status() == 413).then_some(resp)
        },
    )
    .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");
    // gpt-4o-mini is not on the allow-list, but the policy only observes.
    assert_eq!(s.proxy.chat(&f, simple_chat(false)).await.status(), 200);

    // Tools: `admin_*` are denied, whatever the dialect the tool is defined in.
    policy(
        &s.admin,
        &f,
        json!({"name": "tools", "slug": "tool_allowlist", "settings": {"deny": ["admin_*"]}}),
        true,
    )
    .await;
    let tool = |name: &str| {
        let mut body = simple_chat(false);
        body["tools"] = json!([{"type": "function", "function": {"name": name,
            "parameters": {"type": "object", "properties": {}}}}]);
        body
    };
    let resp = eventually(
        Duration::from_secs(10),
        "the tool policy to apply",
        || async {
            let resp = s.proxy.chat(&f, tool("admin_delete")).await;
            (resp.status() == 403).then_some(resp)
        },
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "tool_not_allowed"
    );
    assert_eq!(s.proxy.chat(&f, tool("get_weather")).await.status(), 200);
    s.running.shutdown().await;
}

/// The tool allowlist reads every shape a tool can take and fails closed: a body the
/// translator cannot read (an `input_audio` part, Chat's old `functions`) still goes
/// to a same-dialect provider whole, tools and all, and a `tools` member given twice
/// would be read by the provider as the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_allowlist_cannot_be_slipped_past() {
    let (s, _m, f, _) = with_policy(
        "toolshapes",
        json!({"name": "tools", "slug": "tool_allowlist", "settings": {"deny": ["admin_*", "mcp:*"]}}),
    )
    .await;
    let function = |name: &str| json!({"type": "function", "function": {"name": name}});
    let audio = json!([{"role": "user", "content": [{"type": "input_audio",
        "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]);
    let refused = [
        json!({"model": "gpt-4o", "messages": audio, "tools": [function("admin_delete")]}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "functions": [{"name": "admin_delete", "parameters": {}}]}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "custom", "custom": {"name": "admin_shell"}}]}),
    ];
    let first = refused[0].clone();
    eventually(
        Duration::from_secs(10),
        "the tool policy to apply",
        || async { (s.proxy.chat(&f, first.clone()).await.status() == 403).then_some(()) },
    )
    .await;
    for body in &refused {
        let resp = s.proxy.chat(&f, body.clone()).await;
        assert_eq!(resp.status(), 403, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "tool_not_allowed", "{body}");
    }
    // Anthropic's server tools and MCP connector, in its own error shape.
    for tools in [
        json!({"tools": [{"type": "bash_20250124", "name": "admin_bash"}]}),
        json!({"mcp_servers": [{"type": "url", "url": "https://x.example/mcp", "name": "x"}]}),
    ] {
        let mut body = json!({"model": "gpt-4o", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(tools.as_object().unwrap().clone());
        let resp = messages(&s.proxy, &f, body).await;
        assert_eq!(resp.status(), 403, "{tools}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], "permission_error", "{tools}");
    }
    // `tools` twice: the first allowed, the last (the one a provider keeps) denied.
    let doubled = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],
        "tools":[{"type":"function","function":{"name":"get_weather"}}],
        "tools":[{"type":"function","function":{"name":"admin_delete"}}]}"#;
    let resp = s
        .proxy
        .request(&f, "chat/completions")
        .header("X-AG-API-Key", &f.key)
        .header("content-type", "application/json")
        .body(doubled)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_request");
    // Allowed tools in the same shapes still pass.
    let resp = s
        .proxy
        .chat(
            &f,
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                "functions": [{"name": "get_weather", "parameters": {}}],
                "tools": [function("get_time")]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    s.running.shutdown().await;
}

/// Two proxies on one Redis, hammered at once: exactly `limit` requests get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_are_exact_across_replicas() {
    let r = Replicas::start().await;
    let (a, proxies) = (&r.admin, &r.proxies);
    let m = mock("replicas").await;
    let f = r.fixture("replicas", &m.base_url()).await;
    policy(
        a,
        &f,
        json!({"name": "ten", "slug": "rate_limiter", "settings": {"limit": 10, "window": 300}}),
        true,
    )
    .await;
    for p in proxies {
        eventually(
            Duration::from_secs(10),
            "the limit to reach both proxies",
            || async {
                let resp = p.chat(&f, simple_chat(false)).await;
                resp.headers()
                    .get("x-ratelimit-limit")
                    .is_some()
                    .then_some(())
            },
        )
        .await;
    }
    // Two requests were counted while waiting; 40 more race for the other 8.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let p = proxies[i % 2].clone();
            let f = f.clone();
            tokio::spawn(async move { p.chat(&f, simple_chat(false)).await.status().as_u16() })
        })
        .collect();
    let mut admitted = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => admitted += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((admitted, limited), (8, 32));
    r.shutdown().await;
}

/// Token budgets across replicas: each admission reserves the prompt's estimate in
/// one Redis step, so requests racing on two proxies never overrun the budget, even
/// while none of them has been settled yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_budgets_are_exact_across_replicas() {
    let r = Replicas::start().await;
    let m = mock("token-replicas").await;
    let f = r.fixture("token-replicas", &m.base_url()).await;
    let body = simple_chat(false);
    let estimate = serde_json::to_vec(&body).unwrap().len() as u64 / 4;
    // Room for five requests' estimates, not six.
    let budget = estimate * 5 + estimate / 2;
    policy(
        &r.admin,
        &f,
        json!({"name": "team budget", "slug": "token_rate_limiter", "settings": {
            "window": 3600, "max_tokens": budget, "group_by": "header", "group_by_header": "x-team"}}),
        true,
    )
    .await;
    for p in &r.proxies {
        eventually(
            Duration::from_secs(10),
            "the budget to reach both proxies",
            || async {
                let resp = p
                    .post(&f, "chat/completions", &body, &[("x-team", "warm-up")])
                    .await;
                resp.headers()
                    .get("x-ratelimit-limit-tokens")
                    .is_some()
                    .then_some(())
            },
        )
        .await;
    }
    // The provider holds every answer for a second: all admissions happen before any
    // usage is settled.
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let p = r.proxies[i % 2].clone();
            let (f, body) = (f.clone(), body.clone());
            tokio::spawn(async move {
                let headers = [("x-team", "blue"), ("x-mock-latency-ms", "1000")];
                p.post(&f, "chat/completions", &body, &headers)
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = std::collections::HashMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(statuses.get(&200), Some(&5), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&25), "{statuses:?}");
    r.shutdown().await;
}

/// Token budgets: settled from the provider's usage, refused once spent, or answered
/// by a smaller model when the policy says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_budgets_are_charged_from_usage() {
    let (s, _m, f, pid) = with_policy(
        "tokens",
        json!({"name": "budget", "slug": "token_rate_limiter",
            "settings": {"window": 3600, "max_tokens": 50}}),
    )
    .await;
    // One simple chat costs about 28 tokens: the first passes, the second would
    // overrun the budget with its own prompt.
    let first = eventually(Duration::from_secs(10), "the budget to apply", || async {
        let resp = s.proxy.chat(&f, simple_chat(false)).await;
        resp.headers()
            .get("x-ratelimit-limit-tokens")
            .is_some()
            .then_some(resp)
    })
    .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-remaining-tokens"], "50");
    // Counting a prompt's tokens spends none, however long the prompt.
    let long = json!({"model": "gpt-4o-mini", "max_tokens": 16,
        "messages": [{"role": "user", "content": "word ".repeat(200)}]});
    for _ in 0..3 {
        let resp = s.proxy.post(&f, "messages/count_tokens", &long, &[]).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert!(v["input_tokens"].as_u64().unwrap() > 50, "{v}");
    }
    let spent = eventually(
        Duration::from_secs(5),
        "the usage to be charged",
        || async {
            let resp = s.proxy.chat(&f, simple_chat(false)).await;
            (resp.status() == 429).then_some(resp)
        },
    )
    .await;
    assert!(spent.headers().get("retry-after").is_some());
    let v: Value = spent.json().await.unwrap();
    assert_eq!(v["error"]["code"], "token_limit_exceeded");

    // With a downgrade model the request goes on, to the smaller model.
    s.admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{}/policies/{pid}", f.gateway_id),
            Some(json!({"settings": {"window": 3600, "max_tokens": 50, "downgrade_model": "gpt-4o-mini"}})),
            200,
        )
        .await;
    let resp = eventually(Duration::from_secs(10), "the downgrade", || async {
        let mut body = simple_chat(false);
        body["model"] = json!("gpt-4o");
        let resp = s.proxy.chat(&f, body).await;
        (resp.status() == 200).then_some(resp)
    })
    .await;
    assert_eq!(resp.headers()["x-selected-model"], "gpt-4o-mini");
    s.running.shutdown().await;
}

/// A budget set for a model holds however the client spells the model: pinned to the
/// registry or to the provider, the provider is sent the same model and the same
/// budget pays for it. An allow-list judges the model the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_model_budgets_hold_however_the_model_is_spelled() {
    let (s, _m, f, _) = with_policy(
        "spelled",
        json!({"name": "budget", "slug": "token_rate_limiter", "settings": {
            "window": 3600, "max_tokens": 1_000_000,
            "rules": [{"model": "gpt-4o", "max_tokens": 50}]}}),
    )
    .await;
    let first = eventually(Duration::from_secs(10), "the budget to apply", || async {
        let resp = s.proxy.chat(&f, asking("gpt-4o")).await;
        (resp
            .headers()
            .get("x-ratelimit-limit-tokens")
            .map(|v| v.to_str().unwrap())
            == Some("50"))
        .then_some(resp)
    })
    .await;
    assert_eq!(first.status(), 200);
    eventually(
        Duration::from_secs(5),
        "the usage to be charged",
        || async { (s.proxy.chat(&f, asking("gpt-4o")).await.status() == 429).then_some(()) },
    )
    .await;
    for spelled in ["mock/gpt-4o", "@openai_compatible/gpt-4o", " gpt-4o "] {
        let resp = s.proxy.chat(&f, asking(spelled)).await;
        assert_eq!(resp.status(), 429, "{spelled}");
    }
    // Another model has the default budget.
    assert_eq!(s.proxy.chat(&f, asking("gpt-4o-mini")).await.status(), 200);

    policy(
        &s.admin,
        &f,
        json!({"name": "models", "slug": "model_allowlist", "settings": {"allowed": ["gpt-4o-mini"]}}),
        true,
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the allow-list to apply",
        || async { (s.proxy.chat(&f, asking("gpt-4.1")).await.status() == 403).then_some(()) },
    )
    .await;
    assert_eq!(
        s.proxy.chat(&f, asking("mock/gpt-4o-mini")).await.status(),
        200
    );
    s.running.shutdown().await;
}

/// Dollar budgets: charged at the models catalog's price of what the provider
/// reported, and closed to a model the catalog has no price for, which would
/// otherwise cost the budget nothing however much it was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_budgets_charge_catalog_prices_and_refuse_unpriced_models() {
    let s = embedded().await;
    let m = mock("dollars").await;
    let f = setup_dialects(&s.admin, "dollars", &m.base_url()).await;
    wait_model(&s.proxy, &f, "claude-sonnet-4-5").await;
    policy(
        &s.admin,
        &f,
        json!({"name": "dollars", "slug": "token_rate_limiter",
            "settings": {"window": 3600, "max_cost_usd": 0.0001}}),
        true,
    )
    .await;
    // `mock-model` is served by an OpenAI-compatible registry the catalog has no
    // prices for.
    let resp = eventually(Duration::from_secs(10), "the budget to apply", || async {
        let resp = s.proxy.chat(&f, asking("mock-model")).await;
        (resp.status() == 403).then_some(resp)
    })
    .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_priced");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("mock-model"), "{message}");
    // Claude has a price: the first answer costs more than the budget, the next one
    // is refused until the window ends.
    let resp = s.proxy.chat(&f, asking("claude-sonnet-4-5")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-ratelimit-limit-cost").is_some());
    eventually(
        Duration::from_secs(5),
        "the answer to be charged",
        || async {
            (s.proxy.chat(&f, asking("claude-sonnet-4-5")).await.status() == 429).then_some(())
        },
    )
    .await;
    s.running.shutdown().await;
}

/// CORS: the proxy answers preflights for allowed origins and marks every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_answers() {
    let s = embedded().await;
    let m = mock("cors").await;
    let f = setup(&s.admin, "cors", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    let pid = policy(
        &s.admin,
        &f,
        json!({"name": "web app", "slug": "cors",
            "settings": {"allowed_origins": ["https://app.example"], "max_age": 900}}),
        false,
    )
    .await;
    s.admin
        .ok(
            "POST",
            &format!("/v1/gateways/{}/policies/{pid}/global", f.gateway_id),
            None,
            200,
        )
        .await;
    let url = format!("{}/{}/v1/chat/completions", s.proxy.base, f.consumer_slug);
    let preflight = |origin: &'static str| {
        s.proxy
            .http
            .request(reqwest::Method::OPTIONS, &url)
            .header("X-AG-Gateway-Slug", &f.gateway_slug)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let resp = eventually(
        Duration::from_secs(10),
        "the CORS policy to apply",
        || async {
            let resp = preflight("https://app.example").await.ok()?;
            (resp.status() == 204).then_some(resp)
        },
    )
    .await;
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-max-age"], "900");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert_eq!(
        preflight("https://evil.example").await.unwrap().status(),
        403
    );

    let resp = s
        .proxy
        .http
        .post(&url)
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("Authorization", format!("Bearer {}", f.key))
        .header("Origin", "https://app.example")
        .json(&simple_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        resp.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-ag-trace-id")
    );
    s.running.shutdown().await;
}

/// Redis counts a large limit in slices (bounded memory) and still admits exactly the
/// limit within a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_limits_are_sliced_in_redis() {
    use sluice_shared::bus::{EXACT_LOG_MAX, RedisLimits};
    let redis = RedisLimits::connect("redis://127.0.0.1:6379/15")
        .await
        .unwrap();
    let key = format!("sluice:test:sliced:{}", uuid::Uuid::now_v7());
    let limit = EXACT_LOG_MAX + 3;
    let mut admitted = 0;
    for i in 0..limit + 20 {
        let d = redis
            .check(&key, limit, Duration::from_secs(60), false, &i.to_string())
            .await
            .unwrap();
        if d.allowed {
            admitted += 1;
        } else {
            assert!(d.retry_after > Duration::ZERO);
        }
    }
    assert_eq!(admitted, limit);
}
