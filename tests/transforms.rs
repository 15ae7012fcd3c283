//! Body-aware policies through the proxy: tools injected, system prompts templated,
//! personal data masked in requests and in streamed answers, answers cached exactly
//! and by meaning (in one process and across replicas), moderation, parallel checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use sluice_loadtest::MockProvider;
use support::*;

/// The last request the mock received, as JSON.
fn last_upstream(m: &MockProvider) -> Value {
    let recorded = m.recorded();
    let last = recorded
        .iter()
        .rev()
        .find(|r| r.path_and_query.ends_with("/chat/completions"))
        .expect("an upstream chat request");
    serde_json::from_slice(&last.body).unwrap()
}

fn ask(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream,
        "messages": [{"role": "user", "content": text}]})
}

/// The text a client got, from a complete answer or an SSE stream.
async fn answer_text(resp: reqwest::Response) -> String {
    let body = resp.text().await.unwrap();
    if let Ok(v) = serde_json::from_str::<Value>(&body) {
        return v["choices"][0]["message"]["content"]
            .as_str()
            .or(v["content"][0]["text"].as_str())
            .unwrap_or("")
            .to_string();
    }
    sse_data(&body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .or(v["delta"]["text"].as_str())
                .map(str::to_string)
        })
        .collect()
}

async fn chat_with(
    proxy: &Proxy,
    f: &Fixture,
    body: Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    proxy.post(f, "chat/completions", &body, headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_and_prompts_are_injected_in_the_clients_dialect() {
    let (s, m, f, _) = with_policy(
        "inject",
        json!({"name": "search tool", "slug": "tool_injection", "priority": 1, "settings": {"tools": [
            {"name": "company_search", "description": "Search the wiki",
             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]}}),
    )
    .await;
    policy(
        &s.admin,
        &f,
        json!({"name": "house prompt", "slug": "prompt_template", "priority": 2, "settings": {
            "system": "You help {{header.x-user}} of {{consumer.name}}.",
            "position": "prepend",
            "templates": {"pirate": "Talk like a pirate to {{header.x-user}}."}}}),
        true,
    )
    .await;
    // The mock calls the tools it is offered: the injected one shows in the answer.
    // Both policies must have reached the proxy's snapshot (they are attached by two
    // admin writes), so the wait also looks for the prompt upstream.
    let v: Value = eventually(Duration::from_secs(10), "the policies to apply", || async {
        let resp = chat_with(&s.proxy, &f, ask("hi", false), &[("x-user", "ana")]).await;
        let v: Value = resp.json().await.ok()?;
        let both = v["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
            == "company_search"
            && last_upstream(&m)["messages"][0]["role"] == "system";
        both.then_some(v)
    })
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let up = last_upstream(&m);
    assert_eq!(up["tools"][0]["function"]["name"], "company_search");
    assert_eq!(up["messages"][0]["role"], "system");
    assert_eq!(up["messages"][0]["content"], "You help ana of My App.");

    // A named template, picked by header.
    let resp = chat_with(
        &s.proxy,
        &f,
        ask("hi", false),
        &[("x-user", "bo"), ("x-ag-prompt-template", "pirate")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let up = last_upstream(&m);
    assert_eq!(up["messages"][0]["content"], "Talk like a pirate to bo.");

    // An Anthropic client: its `system` and tools are rewritten in its dialect, then
    // translated for the OpenAI-wire provider.
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 50, "system": "Be short.",
        "messages": [{"role": "user", "content": "hi"}]});
    let resp = s
        .proxy
        .post(&f, "messages", &body, &[("x-user", "cy")])
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["name"], "company_search");
    let up = last_upstream(&m);
    assert_eq!(
        up["messages"][0]["content"],
        "You help cy of My App.\n\nBe short."
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_masked_in_requests_and_in_streamed_answers() {
    let s = embedded().await;
    let m = mock("mask").await;
    let f = setup(&s.admin, "mask", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    // A pattern that does not compile, or that matches nothing at all, is refused.
    let (status, body) = s
        .admin
        .send(
            "POST",
            &format!("/v1/gateways/{}/policies", f.gateway_id),
            Some(json!({"name": "bad", "slug": "regex_replace",
                "settings": {"patterns": [{"pattern": "(unclosed"}, {"pattern": "x*"}]}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let text = body.to_string();
    assert!(text.contains("settings.patterns[0].pattern"), "{text}");
    assert!(text.contains("settings.patterns[1].pattern"), "{text}");

    policy(
        &s.admin,
        &f,
        json!({"name": "pii", "slug": "regex_replace", "stages": ["pre_request", "pre_response"],
            "settings": {"detectors": ["email", "credit_card"],
                "patterns": [{"pattern": "project-[a-z]+", "replacement": "project-X"}]}}),
        true,
    )
    .await;
    let secret = "mail ana@example.com about project-apollo";
    eventually(Duration::from_secs(10), "masking to apply", || async {
        let resp = chat_with(&s.proxy, &f, ask(secret, false), &[]).await;
        (resp.status() == 200 && last_upstream(&m)["messages"][0]["content"] != secret)
            .then_some(())
    })
    .await;
    assert_eq!(
        last_upstream(&m)["messages"][0]["content"],
        "mail [EMAIL] about project-X"
    );

    // The mock answers in pieces of three characters: every match is split across
    // chunks, and none may leak.
    let reply =
        "Write to bob.smith@example.org or pay with 4111 1111 1111 1111, not 4111 1111 1111 1112.";
    let want = "Write to [EMAIL] or pay with [CARD], not 4111 1111 1111 1112.";
    for stream in [true, false] {
        let resp = chat_with(&s.proxy, &f, ask("hi", stream), &[("x-mock-reply", reply)]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(answer_text(resp).await, want, "stream={stream}");
    }
    // An Anthropic client streaming: masked the same way, in its own events.
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let resp = s
        .proxy
        .post(&f, "messages", &body, &[("x-mock-reply", reply)])
        .await;
    assert_eq!(answer_text(resp).await, want);

    // The answer goes through the canonical model to be masked; the request does not,
    // so what that model does not carry still reaches the provider...
    let mut tuned = ask("hi", false);
    tuned["seed"] = json!(7);
    tuned["reasoning_effort"] = json!("low");
    let resp = chat_with(&s.proxy, &f, tuned, &[]).await;
    assert_eq!(resp.status(), 200);
    let sent = last_upstream(&m);
    assert_eq!(
        (&sent["seed"], &sent["reasoning_effort"]),
        (&json!(7), &json!("low"))
    );
    // ...and an answer the masking could not give whole is refused, not cut down.
    let mut several = ask("hi", false);
    several["n"] = json!(2);
    let resp = chat_with(&s.proxy, &f, several, &[]).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_feature");

    // `action: block` refuses instead.
    let g = setup(&s.admin, "mask-block", &m.base_url()).await;
    s.proxy.wait_serving(&g).await;
    policy(
        &s.admin,
        &g,
        json!({"name": "no cards", "slug": "regex_replace",
            "settings": {"detectors": ["credit_card"], "action": "block", "apply_to": "request"}}),
        true,
    )
    .await;
    let resp = eventually(Duration::from_secs(10), "blocking to apply", || async {
        let resp = chat_with(&s.proxy, &g, ask("card 4111-1111-1111-1111", false), &[]).await;
        (resp.status() == 400).then_some(resp)
    })
    .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "sensitive_data_blocked");
    // A number that fails the Luhn check is not a card.
    let resp = chat_with(&s.proxy, &g, ask("order 4111-1111-1111-1112", false), &[]).await;
    assert_eq!(resp.status(), 200);
    s.running.shutdown().await;
}

/// The answer's `X-Cache-Status`, empty when it has none.
async fn cache_status(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Wait for the cache policy to reach the proxy: the first answer that says MISS.
async fn first_miss(proxy: &Proxy, f: &Fixture, question: &Value) {
    eventually(Duration::from_secs(10), "the cache to apply", || async {
        let resp = proxy.chat(f, question.clone()).await;
        (cache_status(&resp).await == "MISS").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_cached_exactly_and_replayed_in_any_shape() {
    let (s, m, f, _) = with_policy(
        "cache",
        json!({"name": "cache", "slug": "semantic_cache", "settings": {"mode": "exact", "ttl": 600}}),
    )
    .await;
    let question = ask("What is the boiling point of water?", false);
    first_miss(&s.proxy, &f, &question).await;
    let served = m.served();
    let resp = s.proxy.chat(&f, question.clone()).await;
    assert_eq!(cache_status(&resp).await, "HIT");
    let first: Value = resp.json().await.unwrap();
    assert_eq!(
        first["choices"][0]["message"]["content"],
        "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 "
    );
    // The same question streamed: replayed as a stream.
    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    let resp = s.proxy.chat(&f, streamed).await;
    assert_eq!(cache_status(&resp).await, "HIT");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(m.served(), served, "hits never reach the provider");
    let hits = s.proxy.metric("sluice_cache_hits_total").await;
    assert!(hits >= 2.0, "{hits}");

    // A different question misses; the bypass header skips the cache.
    let resp = s.proxy.chat(&f, ask("Something else?", false)).await;
    assert_eq!(cache_status(&resp).await, "MISS");
    let resp = chat_with(
        &s.proxy,
        &f,
        question.clone(),
        &[("x-ag-cache-bypass", "1")],
    )
    .await;
    assert_eq!(cache_status(&resp).await, "BYPASS");
    assert_eq!(m.served(), served + 2);
    // Requests with tools are not cached unless the policy says so.
    let mut with_tools = question.clone();
    with_tools["tools"] =
        json!([{"type": "function", "function": {"name": "t", "parameters": {}}}]);
    let resp = s.proxy.chat(&f, with_tools).await;
    assert_eq!(cache_status(&resp).await, "BYPASS");
    // What the translation does not carry still tells requests apart: another seed is
    // another answer, cached on its own.
    let mut seeded = question.clone();
    seeded["seed"] = json!(7);
    for expected in ["MISS", "HIT"] {
        let resp = s.proxy.chat(&f, seeded.clone()).await;
        assert_eq!(cache_status(&resp).await, expected);
    }
    // Several choices are more than a cached answer holds: never cached.
    let mut several = question.clone();
    several["n"] = json!(2);
    for _ in 0..2 {
        let resp = s.proxy.chat(&f, several.clone()).await;
        assert_eq!(cache_status(&resp).await, "BYPASS");
    }
    assert_eq!(m.served(), served + 6);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paraphrase_hits_the_semantic_cache_and_an_unrelated_prompt_misses() {
    let s = embedded().await;
    let m = mock("semantic-cache").await;
    let f = setup(&s.admin, "semcache", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    policy(
        &s.admin,
        &f,
        json!({"name": "cache", "slug": "semantic_cache", "settings": {"mode": "semantic",
            "threshold": 0.75, "embedding_registry_id": f.registry_id,
            "embedding_model": "text-embedding-3-small"}}),
        true,
    )
    .await;
    first_miss(
        &s.proxy,
        &f,
        &ask("What is the capital city of France?", false),
    )
    .await;
    let resp = s
        .proxy
        .chat(&f, ask("Tell me the capital city of France", false))
        .await;
    assert_eq!(cache_status(&resp).await, "HIT");
    let similarity: f64 = resp.headers()["x-cache-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.75..1.0).contains(&similarity), "{similarity}");
    let resp = s
        .proxy
        .chat(&f, ask("How do volcanoes erupt under the ocean?", false))
        .await;
    assert_eq!(cache_status(&resp).await, "MISS");
    // Same last turn, different context: another partition, no hit.
    let mut other_context = ask("Tell me the capital city of France", false);
    other_context["messages"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"role": "system", "content": "Answer in French."}));
    let resp = s.proxy.chat(&f, other_context).await;
    assert_eq!(cache_status(&resp).await, "MISS");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_is_shared_by_replicas_through_redis() {
    let r = Replicas::start().await;
    let (a, proxies) = (&r.admin, &r.proxies);
    let m = mock("cache-replicas").await;
    let f = r.fixture("cache-rep", &m.base_url()).await;
    policy(
        a,
        &f,
        json!({"name": "cache", "slug": "semantic_cache", "settings": {"mode": "semantic",
            "threshold": 0.75, "embedding_registry_id": f.registry_id}}),
        true,
    )
    .await;
    for p in proxies {
        eventually(
            Duration::from_secs(10),
            "the cache to reach both proxies",
            || async {
                let resp = p.chat(&f, ask("warm-up question", false)).await;
                (!cache_status(&resp).await.is_empty()).then_some(())
            },
        )
        .await;
    }
    let resp = proxies[0]
        .chat(&f, ask("What is the capital city of Spain?", false))
        .await;
    assert_eq!(cache_status(&resp).await, "MISS");
    let completions = || {
        m.recorded()
            .iter()
            .filter(|r| r.path_and_query.ends_with("/chat/completions"))
            .count()
    };
    let before = completions();
    // Exactly the same request on the other replica, then a paraphrase.
    let resp = proxies[1]
        .chat(&f, ask("What is the capital city of Spain?", false))
        .await;
    assert_eq!(cache_status(&resp).await, "HIT");
    let resp = proxies[1]
        .chat(&f, ask("Tell me the capital city of Spain", false))
        .await;
    assert_eq!(cache_status(&resp).await, "HIT");
    assert!(resp.headers().contains_key("x-cache-similarity"));
    // Embedding calls reach the mock; completions do not.
    assert_eq!(completions(), before);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_blocks_in_enforce_mode_and_only_records_in_observe_mode() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let s = embedded_with(|st| st.telemetry_file = Some(file.clone())).await;
    let m = mock("moderation").await;
    let f = setup(&s.admin, "moderation", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    let url = format!("{}/moderations", m.base_url());
    let pid = policy(
        &s.admin,
        &f,
        json!({"name": "moderation", "slug": "openai_moderation",
            "settings": {"url": url, "registry_id": f.registry_id, "fail_open": false}}),
        true,
    )
    .await;
    let flagged = ask("how do I build a bomb", false);
    let resp = eventually(Duration::from_secs(10), "moderation to apply", || async {
        let resp = s.proxy.chat(&f, flagged.clone()).await;
        (resp.status() == 400).then_some(resp)
    })
    .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "content_flagged");
    assert!(v["error"]["message"].as_str().unwrap().contains("violence"));
    assert_eq!(
        s.proxy
            .chat(&f, ask("how do I bake bread", false))
            .await
            .status(),
        200
    );

    // Observe: the flagged request goes through; the verdict lands in telemetry.
    s.admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{}/policies/{pid}", f.gateway_id),
            Some(
                json!({"name": "moderation", "slug": "openai_moderation", "mode": "observe",
                "settings": {"url": url, "registry_id": f.registry_id}}),
            ),
            200,
        )
        .await;
    let resp = eventually(Duration::from_secs(10), "observe mode to apply", || async {
        let resp = s.proxy.chat(&f, flagged.clone()).await;
        (resp.status() == 200).then_some(resp)
    })
    .await;
    let trace = resp.headers()["x-ag-trace-id"]
        .to_str()
        .unwrap()
        .to_string();
    let event = eventually(Duration::from_secs(10), "the telemetry event", || async {
        let text = std::fs::read_to_string(&file).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["trace_id"] == trace.as_str())
    })
    .await;
    let outcomes = event["policies"].as_array().unwrap();
    assert!(
        outcomes
            .iter()
            .any(|o| o["kind"] == "openai_moderation" && o["outcome"] == "would_reject"),
        "{event}"
    );

    // Closed on failure: an unreachable moderation service refuses. (PUT merges, so
    // the mode is set back explicitly.)
    s.admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{}/policies/{pid}", f.gateway_id),
            Some(
                json!({"name": "moderation", "slug": "openai_moderation", "mode": "enforce",
                "settings": {"url": format!("http://{}/v1/moderations", free_addr()),
                    "fail_open": false, "timeout_ms": 500}}),
            ),
            200,
        )
        .await;
    let resp = eventually(
        Duration::from_secs(10),
        "the dead service to apply",
        || async {
            let resp = s.proxy.chat(&f, ask("hello", false)).await;
            (resp.status() == 503).then_some(resp)
        },
    )
    .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "moderation_unavailable");
    assert!(s.proxy.metric("sluice_policy_errors_total").await >= 1.0);
    s.running.shutdown().await;
}

/// Parallel checks run together, and each still decides: the tighter of two parallel
/// limits rejects, and both limits' counts move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_policies_each_decide() {
    let s = embedded().await;
    let m = mock("parallel").await;
    let f = setup(&s.admin, "parallel", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    for (name, limit) in [("loose", 50), ("tight", 3)] {
        policy(
            &s.admin,
            &f,
            json!({"name": name, "slug": "rate_limiter", "parallel": true,
                "settings": {"limit": limit, "window": 300}}),
            true,
        )
        .await;
    }
    let first = eventually(Duration::from_secs(10), "both limits to apply", || async {
        let resp = s.proxy.chat(&f, simple_chat(false)).await;
        // The last limit in the chain (the tight one) speaks in the headers.
        (resp
            .headers()
            .get("x-ratelimit-limit")
            .is_some_and(|v| v == "3"))
        .then_some(resp)
    })
    .await;
    assert_eq!(first.status(), 200);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(s.proxy.chat(&f, simple_chat(false)).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    s.running.shutdown().await;
}

/// A moderation service that holds every answer until released, and counts calls.
async fn held_moderation() -> (
    std::net::SocketAddr,
    std::sync::Arc<tokio::sync::Notify>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (g, c) = (gate.clone(), calls.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (g, c) = (g.clone(), c.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                g.notified().await;
                let body = r#"{"id":"m","model":"x","results":[{"flagged":true,"categories":{"violence":true}}]}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, gate, calls)
}

/// Observe-mode moderation runs beside the request: while the moderation service
/// still holds its verdict, the next request on the same keep-alive connection is
/// answered; the verdict reaches telemetry once it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_moderation_never_holds_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let s = embedded_with(|st| st.telemetry_file = Some(file.clone())).await;
    let m = mock("held-moderation").await;
    let f = setup(&s.admin, "held-moderation", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    let (addr, gate, calls) = held_moderation().await;
    policy(
        &s.admin,
        &f,
        json!({"name": "moderation", "slug": "openai_moderation", "mode": "observe",
            "settings": {"url": format!("http://{addr}/v1/moderations"), "timeout_ms": 60000}}),
        true,
    )
    .await;
    // One connection, reused: every request below goes over it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let one = Proxy {
        base: s.proxy.base.clone(),
        http: client,
    };
    let first = eventually(Duration::from_secs(10), "moderation to apply", || async {
        let resp = one.chat(&f, ask("how do I build a bomb", false)).await;
        assert_eq!(resp.status(), 200);
        let trace = resp.headers()["x-ag-trace-id"]
            .to_str()
            .unwrap()
            .to_string();
        (calls.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(trace)
    })
    .await;
    // The verdict is still held; the connection serves the next request regardless.
    let next = tokio::time::timeout(
        Duration::from_secs(20),
        one.chat(&f, ask("hello again", false)),
    )
    .await
    .expect("the next request was held behind a pending moderation call");
    assert_eq!(next.status(), 200);
    gate.notify_waiters();
    let event = eventually(Duration::from_secs(20), "the completed event", || async {
        gate.notify_waiters();
        let text = std::fs::read_to_string(&file).ok()?;
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["trace_id"] == first.as_str())
    })
    .await;
    assert!(
        event["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["kind"] == "openai_moderation" && o["outcome"] == "would_reject"),
        "{event}"
    );
    s.running.shutdown().await;
}
