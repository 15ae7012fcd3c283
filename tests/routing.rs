//! Routing across several mock providers: the balancing algorithms, passive and active
//! health, retries, and fallback to another provider (and dialect) within a budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::Response;
use serde_json::{Value, json};
use sluice_loadtest::{MockConfig, MockProvider};
use support::*;
use tokio::sync::Notify;

async fn mock_with(name: &str, addr: &str, tweak: impl FnOnce(&mut MockConfig)) -> MockProvider {
    let mut config = MockConfig {
        name: name.into(),
        api_key: Some(UPSTREAM_KEY.into()),
        ..MockConfig::default()
    };
    tweak(&mut config);
    MockProvider::start(addr.parse().unwrap(), config)
        .await
        .expect("mock starts")
}

/// A gateway whose consumer routes to one registry per `(name, provider, base_url)`,
/// with `routing` (lb_config, fallback, model_policies) merged into the consumer.
/// Returns the fixture and the registry ids by name.
async fn gateway(
    s: &Embedded,
    slug: &str,
    registries: &[(&str, &str, String, u8, bool)],
    routing: impl FnOnce(&HashMap<String, String>) -> Value,
) -> (Fixture, HashMap<String, String>) {
    gateway_on(
        &s.admin,
        &s.proxy,
        slug,
        registries,
        &HashMap::new(),
        routing,
    )
    .await
}

/// [`gateway`], with `extra` registry fields per registry name.
async fn gateway_with(
    s: &Embedded,
    slug: &str,
    registries: &[(&str, &str, String, u8, bool)],
    extra: &HashMap<&str, Value>,
    routing: impl FnOnce(&HashMap<String, String>) -> Value,
) -> (Fixture, HashMap<String, String>) {
    gateway_on(&s.admin, &s.proxy, slug, registries, extra, routing).await
}

/// [`gateway_with`] through any admin and proxy.
async fn gateway_on(
    a: &Admin,
    proxy: &Proxy,
    slug: &str,
    registries: &[(&str, &str, String, u8, bool)],
    extra: &HashMap<&str, Value>,
    routing: impl FnOnce(&HashMap<String, String>) -> Value,
) -> (Fixture, HashMap<String, String>) {
    let gw = a
        .ok(
            "POST",
            "/v1/gateways",
            Some(json!({"name": slug, "slug": slug})),
            201,
        )
        .await;
    let gid = gw["id"].as_str().unwrap().to_string();
    let mut ids = HashMap::new();
    for (name, provider, base_url, _, _) in registries {
        let mut spec = json!({"name": name, "provider": provider,
            "provider_options": {"base_url": base_url},
            "auth": {"type": "api_key", "api_key": UPSTREAM_KEY},
            "health_checks": {"path": "/health", "interval": 1, "threshold": 2}});
        if let Some(Value::Object(fields)) = extra.get(name) {
            for (k, v) in fields {
                spec[k] = v.clone();
            }
        }
        let reg = a
            .ok(
                "POST",
                &format!("/v1/gateways/{gid}/registries"),
                Some(spec),
                201,
            )
            .await;
        ids.insert(name.to_string(), reg["id"].as_str().unwrap().to_string());
    }
    let mut consumer = json!({"name": "App"});
    if let Value::Object(extra) = routing(&ids) {
        for (k, v) in extra {
            consumer[k] = v;
        }
    }
    let c = a
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers"),
            Some(consumer),
            201,
        )
        .await;
    let cid = c["id"].as_str().unwrap().to_string();
    for (name, _, _, weight, linked) in registries {
        if *linked {
            a.ok(
                "POST",
                &format!(
                    "/v1/gateways/{gid}/consumers/{cid}/registries/{}",
                    ids[*name]
                ),
                Some(json!({"weight": weight})),
                200,
            )
            .await;
        }
    }
    let (aid, key) = attach_key(a, &gid, &cid).await;
    let f = Fixture {
        gateway_id: gid,
        gateway_slug: slug.to_string(),
        registry_id: String::new(),
        consumer_id: cid,
        consumer_slug: c["slug"].as_str().unwrap().to_string(),
        auth_id: aid,
        key,
    };
    // Wait for the config to reach the proxy (some of these consumers never succeed),
    // and for the first active check of every registry that has one: until then a
    // registry is not in rotation.
    eventually(
        Duration::from_secs(10),
        "the consumer to reach the proxy",
        || async {
            let status = proxy.chat(&f, simple_chat(false)).await.status().as_u16();
            // 403: the key's auth is known but not yet attached to the consumer.
            (![401, 403, 404].contains(&status)).then_some(())
        },
    )
    .await;
    let probed: Vec<&String> = registries
        .iter()
        .filter(|(name, ..)| {
            extra
                .get(name)
                .and_then(|e| e.get("health_checks"))
                .is_none_or(|hc| !hc.is_null() && hc["active"] != false)
        })
        .map(|(name, ..)| &ids[*name])
        .collect();
    eventually(
        Duration::from_secs(10),
        "the first health checks",
        || async {
            let seen = upstream_health(proxy).await?;
            probed
                .iter()
                .all(|id| {
                    seen.iter()
                        .any(|u| u["registry_id"] == id.as_str() && u["probed"] == true)
                })
                .then_some(())
        },
    )
    .await;
    (f, ids)
}

fn served_by(resp: &Response) -> String {
    resp.headers()
        .get("x-mock-name")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn tally(s: &Embedded, f: &Fixture, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let resp = s.proxy.chat(f, simple_chat(false)).await;
        assert_eq!(resp.status(), 200);
        *counts.entry(served_by(&resp)).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_algorithms_split_by_weight() {
    let s = embedded().await;
    let (a, b) = (mock("a").await, mock("b").await);
    let regs = [
        ("a", "openai_compatible", a.base_url(), 3, true),
        ("b", "openai_compatible", b.base_url(), 1, true),
    ];
    let (f, _) = gateway(
        &s,
        "wrr",
        &regs,
        |_| json!({"lb_config": {"algorithm": "weighted-round-robin"}}),
    )
    .await;
    // wait_serving sent one request; start counting on a fresh cycle boundary.
    let counts = tally(&s, &f, 400).await;
    let (ca, cb) = (counts["a"], counts["b"]);
    assert!((297..=303).contains(&ca) && ca + cb == 400, "{counts:?}");

    let (f, _) = gateway(
        &s,
        "random",
        &regs,
        |_| json!({"lb_config": {"algorithm": "random"}}),
    )
    .await;
    let counts = tally(&s, &f, 400).await;
    // 3:1 by weight: 300 expected, 4.5 standard deviations either side.
    assert!((261..=339).contains(&counts["a"]), "{counts:?}");

    let (f, ids) = gateway(
        &s,
        "rr",
        &regs,
        |_| json!({"lb_config": {"algorithm": "round-robin"}}),
    )
    .await;
    let counts = tally(&s, &f, 100).await;
    assert!((49..=51).contains(&counts["a"]), "{counts:?}");
    assert!(!ids.is_empty());
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_prefers_the_idle_backend() {
    let s = embedded().await;
    let gates = [Arc::new(Notify::new()), Arc::new(Notify::new())];
    let a = mock_with("a", "127.0.0.1:0", |c| c.gate = Some(gates[0].clone())).await;
    let b = mock_with("b", "127.0.0.1:0", |c| c.gate = Some(gates[1].clone())).await;
    let regs = [
        ("a", "openai_compatible", a.base_url(), 1, true),
        ("b", "openai_compatible", b.base_url(), 1, true),
    ];
    let (f, _) = gateway(
        &s,
        "lc",
        &regs,
        |_| json!({"lb_config": {"algorithm": "least-connections"}}),
    )
    .await;
    // A stream held open by its mock's gate keeps one backend busy.
    let held = s.proxy.chat(&f, simple_chat(true)).await;
    assert_eq!(held.status(), 200);
    let busy = served_by(&held);
    let mut stream = held.bytes_stream();
    let first = stream.next().await.expect("first chunk").expect("bytes");
    assert!(!first.is_empty());
    for _ in 0..10 {
        let resp = s.proxy.chat(&f, simple_chat(false)).await;
        assert_eq!(resp.status(), 200);
        assert_ne!(
            served_by(&resp),
            busy,
            "the idle backend takes new requests"
        );
    }
    for g in &gates {
        g.notify_waiters();
        g.notify_one();
    }
    while stream.next().await.is_some() {}
    s.running.shutdown().await;
}

/// A proxy's view of every registry's health (`GET /healthz/upstreams`).
async fn upstream_health(proxy: &Proxy) -> Option<Vec<Value>> {
    let v: Value = proxy
        .http
        .get(format!("{}/healthz/upstreams", proxy.base))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["upstreams"].as_array().cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_is_ejected_without_client_errors_and_returns_after_recovery() {
    let s = embedded().await;
    let a = mock("a").await;
    let b = mock("b").await;
    let b_addr = b.addr();
    let regs = [
        ("a", "openai_compatible", a.base_url(), 1, true),
        ("b", "openai_compatible", b.base_url(), 1, true),
    ];
    let (f, ids) = gateway(
        &s,
        "eject",
        &regs,
        |_| json!({"lb_config": {"algorithm": "round-robin"}}),
    )
    .await;
    drop(b);
    // Every request still succeeds: the attempt on the dead backend is retried on the
    // live one before anything reaches the client.
    for _ in 0..20 {
        let resp = s.proxy.chat(&f, simple_chat(false)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(served_by(&resp), "a");
    }
    // Ejected (passively by traffic, and by the active checks): no more attempts on it.
    let resp = s.proxy.chat(&f, simple_chat(false)).await;
    assert_eq!(resp.headers()["x-ag-attempts"], "1");
    let health = upstream_health(&s.proxy).await.unwrap();
    let b_health = health
        .iter()
        .find(|h| h["registry_id"] == ids["b"])
        .expect("b is tracked");
    assert_eq!(b_health["healthy"], false, "{health:?}");
    let via_admin = s
        .admin
        .ok(
            "GET",
            &format!(
                "/v1/gateways/{}/registries/{}/health",
                f.gateway_id, ids["b"]
            ),
            None,
            200,
        )
        .await;
    assert_eq!(
        (via_admin["healthy"].as_bool(), via_admin["source"].as_str()),
        (Some(false), Some("proxy"))
    );

    // The backend comes back on its address; the active check restores it.
    let _b = mock_with("b", &b_addr.to_string(), |_| {}).await;
    eventually(
        Duration::from_secs(15),
        "traffic to return to b",
        || async {
            let counts = tally(&s, &f, 4).await;
            counts.contains_key("b").then_some(())
        },
    )
    .await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_and_failing_providers_fall_back_across_dialects() {
    let s = embedded().await;
    let limited = mock_with("limited", "127.0.0.1:0", |c| c.status = Some(429)).await;
    let broken = mock_with("broken", "127.0.0.1:0", |c| c.status = Some(503)).await;
    let claude = mock_with("claude", "127.0.0.1:0", |_| {}).await;
    let regs = [
        ("limited", "openai_compatible", limited.base_url(), 1, true),
        ("broken", "openai_compatible", broken.base_url(), 1, false),
        ("claude", "anthropic", claude.base_url(), 1, false),
    ];
    let (f, ids) = gateway(&s, "fallback", &regs, |ids| {
        json!({
            "fallback": {"enabled": true, "triggers": ["http_429", "http_5xx"],
                "budget": {"max_attempts": 3, "max_total_latency_ms": 20000},
                "chain": [ids["broken"], ids["claude"]]},
            "model_policies": [{"registry_id": ids["claude"], "allowed": ["claude-sonnet-4-5"],
                "default": "claude-sonnet-4-5"}]
        })
    })
    .await;
    let _ = ids;
    // OpenAI client, 429 then 503 then Anthropic: the client still gets OpenAI format.
    for stream in [false, true] {
        let mut body = simple_chat(stream);
        body["model"] = json!("gpt-4o-mini");
        let resp = s.proxy.chat(&f, body).await;
        assert_eq!(resp.status(), 200, "stream={stream}");
        assert_eq!(resp.headers()["x-selected-provider"], "anthropic");
        assert_eq!(resp.headers()["x-selected-model"], "claude-sonnet-4-5");
        assert_eq!(resp.headers()["x-ag-attempts"], "3");
        let text = resp.text().await.unwrap();
        if stream {
            assert!(
                text.contains("chat.completion.chunk") && text.ends_with("data: [DONE]\n\n"),
                "{text}"
            );
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["object"], "chat.completion");
            assert!(
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .contains("tok0")
            );
        }
    }
    s.running.shutdown().await;
}

/// A provider that pushes back with a 429 is the one called again soonest: its
/// connection is kept (its error body read past) rather than closed, so the next call
/// does not pay a new handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_attempt_keeps_its_connection() {
    let s = embedded().await;
    let limited = mock_with("limited", "127.0.0.1:0", |c| c.status = Some(429)).await;
    let spare = mock_with("spare", "127.0.0.1:0", |_| {}).await;
    let regs = [
        ("limited", "openai_compatible", limited.base_url(), 1, true),
        ("spare", "openai_compatible", spare.base_url(), 1, false),
    ];
    let (f, _) = gateway(&s, "keeps", &regs, |ids| {
        json!({"fallback": {"enabled": true, "triggers": ["http_429"],
            "budget": {"max_attempts": 2, "max_total_latency_ms": 20000},
            "chain": [ids["spare"]]}})
    })
    .await;
    // Setting the gateway up sent requests of its own; count from here.
    let (served, mut conns) = (limited.served(), None);
    for n in 1..=3 {
        let resp = s.proxy.chat(&f, simple_chat(false)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-ag-attempts"], "2");
        assert_eq!(limited.served(), served + n, "each request tried it first");
        let now = limited.accepted();
        assert_eq!(
            *conns.get_or_insert(now),
            now,
            "request {n} opened a connection"
        );
        // A body that came after its head is read past in the background: give it
        // the moment it needs before the next request looks for the connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_answers_in_the_client_dialect() {
    let s = embedded().await;
    let one = mock_with("one", "127.0.0.1:0", |c| c.status = Some(503)).await;
    let two = mock_with("two", "127.0.0.1:0", |c| c.status = Some(503)).await;
    let three = mock_with("three", "127.0.0.1:0", |_| {}).await;
    let regs = [
        ("one", "openai_compatible", one.base_url(), 1, true),
        ("two", "openai_compatible", two.base_url(), 1, false),
        ("three", "openai_compatible", three.base_url(), 1, false),
    ];
    // Two attempts allowed: the healthy third registry is never reached (and not
    // probed, so its request count says so).
    let unprobed = HashMap::from([("three", json!({"health_checks": null}))]);
    let (f, _) = gateway_with(&s, "budget", &regs, &unprobed, |ids| {
        json!({"fallback": {"enabled": true, "budget": {"max_attempts": 2},
            "chain": [ids["two"], ids["three"]]}})
    })
    .await;
    let resp = s
        .proxy
        .http
        .post(format!("{}/{}/v1/messages", s.proxy.base, f.consumer_slug))
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("x-api-key", &f.key)
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-ag-attempts"], "2");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "overloaded_error", "{v}");
    assert_eq!(three.served(), 0);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_bound_each_wait_but_never_cut_a_live_stream() {
    let s = embedded().await;
    let gate = Arc::new(Notify::new());
    let slow = mock_with("slow", "127.0.0.1:0", |c| {
        c.latency = Duration::from_secs(3)
    })
    .await;
    let fast = mock_with("fast", "127.0.0.1:0", |c| {
        c.chunk_delay = Duration::from_millis(60)
    })
    .await;
    let stuck = mock_with("stuck", "127.0.0.1:0", |c| c.gate = Some(gate.clone())).await;

    // A provider slower than its time-to-first-byte limit: the attempt is abandoned and
    // retried on the other registry; the client sees only the success.
    let regs = [
        ("slow", "openai_compatible", slow.base_url(), 1, true),
        ("fast", "openai_compatible", fast.base_url(), 1, true),
    ];
    let limits = HashMap::from([
        ("slow", json!({"timeouts": {"ttfb_ms": 200}})),
        // 8 chunks 60 ms apart take longer than the total limit, which binds only
        // non-streaming requests.
        (
            "fast",
            json!({"timeouts": {"total_ms": 300, "idle_ms": 2000}}),
        ),
    ]);
    let (f, _) = gateway_with(
        &s,
        "timeouts",
        &regs,
        &limits,
        |_| json!({"lb_config": {"algorithm": "round-robin"}}),
    )
    .await;
    for _ in 0..4 {
        let resp = s.proxy.chat(&f, simple_chat(true)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(served_by(&resp), "fast");
        let body = resp.text().await.unwrap();
        assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    }
    // The same registry's non-streaming answer takes longer than its total limit.
    let only_fast = [("fast", "openai_compatible", fast.base_url(), 1, true)];
    let (f, _) = gateway_with(&s, "total", &only_fast, &limits, |_| json!({})).await;
    let resp = s
        .proxy
        .http
        .post(format!(
            "{}/{}/v1/chat/completions",
            s.proxy.base, f.consumer_slug
        ))
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("X-AG-API-Key", &f.key)
        .header("x-mock-latency-ms", "1000")
        .json(&simple_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "upstream_timeout"
    );

    // A stream that stalls after it started ends with an explicit error event once the
    // idle limit passes.
    let only_stuck = [("stuck", "openai_compatible", stuck.base_url(), 1, true)];
    let stuck_limits = HashMap::from([("stuck", json!({"timeouts": {"idle_ms": 300}}))]);
    let (f, _) = gateway_with(&s, "idle", &only_stuck, &stuck_limits, |_| json!({})).await;
    let resp = s.proxy.chat(&f, simple_chat(true)).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("tok0") && body.contains("upstream_timeout"),
        "{body}"
    );
    assert!(!body.contains("[DONE]"), "{body}");
    gate.notify_waiters();
    s.running.shutdown().await;
}

/// Two proxies on one Redis: the registry one of them ejects is out for the other too,
/// before the other ever sent it a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_share_passive_health_through_redis() {
    let r = Replicas::start().await;
    let (admin_client, p1, p2) = (&r.admin, &r.proxies[0], &r.proxies[1]);

    let dead = mock("dead").await;
    let live = mock("live").await;
    let regs = [
        ("dead", "openai_compatible", dead.base_url(), 1, true),
        ("live", "openai_compatible", live.base_url(), 1, true),
    ];
    // No active checks: only traffic through proxy one can find the dead registry.
    let passive = HashMap::from([
        (
            "dead",
            json!({"health_checks": {"active": false, "threshold": 2, "interval": 60}}),
        ),
        ("live", json!({"health_checks": null})),
    ]);
    let slug = format!("shared-{}", std::process::id());
    let (f, ids) = gateway_on(
        admin_client,
        p1,
        &slug,
        &regs,
        &passive,
        |_| json!({"lb_config": {"algorithm": "round-robin"}}),
    )
    .await;
    drop(dead);
    for _ in 0..6 {
        assert_eq!(p1.chat(&f, simple_chat(false)).await.status(), 200);
    }
    eventually(
        Duration::from_secs(10),
        "proxy two to learn the registry is down",
        || async {
            upstream_health(p2)
                .await?
                .iter()
                .any(|u| u["registry_id"] == ids["dead"] && u["healthy"] == false)
                .then_some(())
        },
    )
    .await;
    let via_admin = admin_client
        .ok(
            "GET",
            &format!(
                "/v1/gateways/{}/registries/{}/health",
                f.gateway_id, ids["dead"]
            ),
            None,
            200,
        )
        .await;
    assert_eq!(via_admin["healthy"], false, "{via_admin}");
    assert_eq!(via_admin["source"], "shared");
    // Proxy two sends nothing to it: one attempt per request.
    for _ in 0..4 {
        let resp = p2.chat(&f, simple_chat(false)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-ag-attempts"], "1");
    }
    r.shutdown().await;
}

/// The semantic balancer sends each prompt to the member whose description is most
/// like it, through an embeddings registry, and balances round robin when that fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_balancing_follows_the_prompt() {
    let s = embedded().await;
    let code = mock("code").await;
    let poetry = mock("poetry").await;
    let embedder = mock("embedder").await;
    let regs = [
        ("code", "openai_compatible", code.base_url(), 1, true),
        ("poetry", "openai_compatible", poetry.base_url(), 1, true),
        ("embed", "openai_compatible", embedder.base_url(), 1, false),
    ];
    let (f, _) = gateway(&s, "semantic", &regs, |ids| {
        json!({"lb_config": {"algorithm": "semantic", "embedding_registry_id": ids["embed"],
            "members": [
                {"registry_id": ids["code"], "description": "programming code rust python functions compiler"},
                {"registry_id": ids["poetry"], "description": "poems poetry verse rhyme sonnet"}
            ]}})
    })
    .await;
    let ask = |text: &str| {
        json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "be helpful"}, {"role": "user", "content": text}]})
    };
    for _ in 0..3 {
        let resp = s
            .proxy
            .chat(
                &f,
                ask("write a python function that calls the rust compiler"),
            )
            .await;
        assert_eq!(served_by(&resp), "code");
        let resp = s.proxy.chat(&f, ask("a sonnet in verse, with rhyme")).await;
        assert_eq!(served_by(&resp), "poetry");
    }
    // Without the embeddings registry: round robin, no errors.
    drop(embedder);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let resp = s.proxy.chat(&f, ask("a sonnet in verse, with rhyme")).await;
        assert_eq!(resp.status(), 200);
        seen.insert(served_by(&resp));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    s.running.shutdown().await;
}

/// `latency` learns which backend answers faster and sends it the traffic; a pool
/// alias picks among its members with each member's default model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_balancing_and_pool_aliases() {
    let s = embedded().await;
    let slow = mock_with("slow", "127.0.0.1:0", |c| {
        c.latency = Duration::from_millis(150)
    })
    .await;
    let quick = mock("quick").await;
    let spare = mock("spare").await;
    let regs = [
        ("slow", "openai_compatible", slow.base_url(), 1, true),
        ("quick", "openai_compatible", quick.base_url(), 1, true),
        ("spare", "openai_compatible", spare.base_url(), 1, false),
    ];
    let (f, _) = gateway(&s, "latency", &regs, |ids| {
        json!({
            "lb_config": {"algorithm": "latency", "members": [
                {"registry_id": ids["quick"], "pool_alias": "cheap"},
                {"registry_id": ids["spare"], "pool_alias": "cheap"}
            ]},
            "model_policies": [
                {"registry_id": ids["quick"], "allowed": [], "default": "quick-model"},
                {"registry_id": ids["spare"], "allowed": ["spare-model"], "default": "spare-model"}
            ]
        })
    })
    .await;
    // Until both are measured either may be chosen; then the quick one always wins.
    for _ in 0..6 {
        s.proxy.chat(&f, simple_chat(false)).await;
    }
    let counts = tally(&s, &f, 10).await;
    assert_eq!(counts.get("quick"), Some(&10), "{counts:?}");

    let mut seen = std::collections::HashMap::new();
    for _ in 0..10 {
        let mut body = simple_chat(false);
        body["model"] = json!("pool:cheap");
        let resp = s.proxy.chat(&f, body).await;
        assert_eq!(resp.status(), 200);
        let model = resp.headers()["x-selected-model"]
            .to_str()
            .unwrap()
            .to_string();
        let by = served_by(&resp);
        assert_eq!(model, format!("{by}-model"));
        *seen.entry(by).or_insert(0) += 1;
    }
    assert!(!seen.contains_key("slow"), "{seen:?}");
    s.running.shutdown().await;
}
