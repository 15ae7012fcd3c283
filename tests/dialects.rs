//! The three client dialects against the three provider dialects, on the wire: every
//! pair answers in the client's shape with the selection headers, same-dialect routes
//! pass bytes through with only the edits they need, model policies decide the route,
//! and every error reaches the client in its own dialect. (What the official SDKs parse
//! of all this is checked by `tests/sdk.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use support::*;

/// A request to the fixture's consumer on `api` (`chat/completions`, `messages`, …).
fn post(s: &Embedded, f: &Fixture, api: &str) -> RequestBuilder {
    s.proxy
        .http
        .post(format!("{}/{}/v1/{api}", s.proxy.base, f.consumer_slug))
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("X-AG-API-Key", &f.key)
}

fn body_for(api: &str, model: &str, stream: bool) -> Value {
    match api {
        "messages" => json!({"model": model, "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]}),
        "responses" => json!({"model": model, "stream": stream, "input": "hello"}),
        _ => json!({"model": model, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]}),
    }
}

async fn started() -> (Embedded, sluice_loadtest::MockProvider, Fixture) {
    let s = embedded().await;
    let m = mock("dialects").await;
    let f = setup_dialects(&s.admin, "dialects", &m.base_url()).await;
    wait_model(&s.proxy, &f, "claude-sonnet-4-5").await;
    (s, m, f)
}

async fn text(resp: Response) -> String {
    resp.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_dialect_reaches_every_provider_dialect() {
    let (s, _m, f) = started().await;
    for api in ["chat/completions", "messages", "responses"] {
        for (upstream, model) in DIALECT_MODELS {
            for stream in [false, true] {
                let case = format!("{api} -> {upstream} stream={stream}");
                let resp = post(&s, &f, api)
                    .json(&body_for(api, model, stream))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(resp.status(), 200, "{case}");
                let h = resp.headers().clone();
                assert_eq!(h["x-selected-model"], model, "{case}");
                assert!(!h["x-ag-trace-id"].is_empty(), "{case}");
                let provider = match upstream {
                    "anthropic" => "anthropic",
                    "responses" => "openai",
                    _ => "openai_compatible",
                };
                assert_eq!(h["x-selected-provider"], provider, "{case}");
                let body = text(resp).await;
                assert!(body.contains("tok0 "), "{case}: {body}");
                if stream {
                    assert!(
                        h["content-type"]
                            .to_str()
                            .unwrap()
                            .starts_with("text/event-stream"),
                        "{case}"
                    );
                    assert_eq!(h["cache-control"], "no-cache", "{case}");
                    assert_eq!(h["x-accel-buffering"], "no", "{case}");
                    // Chunked, so the connection outlives the stream.
                    assert_eq!(h["transfer-encoding"], "chunked", "{case}");
                    let end_marker = match api {
                        "messages" => "event: message_stop",
                        "responses" => "event: response.completed",
                        _ => "data: [DONE]",
                    };
                    assert!(body.contains(end_marker), "{case}: {body}");
                } else {
                    let v: Value = serde_json::from_str(&body).expect("json");
                    let shape = match api {
                        "messages" => v["type"] == "message",
                        "responses" => v["object"] == "response",
                        _ => v["object"] == "chat.completion",
                    };
                    assert!(shape, "{case}: {v}");
                }
            }
        }
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_dialect_routes_pass_bytes_through_with_only_needed_edits() {
    let (s, m, f) = started().await;

    // Byte for byte, odd formatting and unknown fields included.
    let raw = "{ \"model\" : \"mock-model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}], \"temperature\":0.50, \"x_vendor\":{\"a\":[1]} }";
    let resp = post(&s, &f, "chat/completions")
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let sent = m.recorded().last().expect("recorded").clone();
    assert_eq!(std::str::from_utf8(&sent.body).unwrap(), raw);

    // A stream without include_usage: usage is asked for upstream, not shown to the client.
    let resp = post(&s, &f, "chat/completions")
        .json(&body_for("chat", "mock-model", true))
        .send()
        .await
        .expect("send");
    let body = text(resp).await;
    let sent: Value = serde_json::from_slice(&m.recorded().last().unwrap().body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert!(!body.contains("\"usage\":{"), "{body}");
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    // With include_usage, the client gets the usage chunk.
    let mut asked = body_for("chat", "mock-model", true);
    asked["stream_options"] = json!({"include_usage": true});
    let body = text(
        post(&s, &f, "chat/completions")
            .json(&asked)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        body.contains("\"choices\":[],") && body.contains("\"prompt_tokens\""),
        "{body}"
    );

    // Anthropic without max_tokens: filled from the models catalog; anthropic-version is
    // added since this client sent none; pins are rewritten to the bare model name.
    let resp = post(&s, &f, "messages")
        .json(&json!({"model": "claude/claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let sent = m.recorded().last().unwrap().clone();
    let v: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert!(v["max_tokens"].as_u64().unwrap() > 4096, "{v}");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(sent.headers["x-api-key"], UPSTREAM_KEY);
    assert!(!sent.headers.contains_key("authorization"));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_route_by_policy_and_errors_speak_the_client_dialect() {
    let (s, _m, f) = started().await;
    let selected = |resp: &Response| {
        resp.headers()["x-selected-model"]
            .to_str()
            .unwrap()
            .to_string()
    };

    // No model: the default. A pin by provider. A model no policy allows: 403.
    let resp = post(&s, &f, "chat/completions")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.status().as_u16(), selected(&resp)),
        (200, "mock-model".to_string())
    );
    let resp = post(&s, &f, "responses")
        .json(&body_for(
            "responses",
            "@anthropic/claude-sonnet-4-5",
            false,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-selected-provider"], "anthropic");
    let resp = post(&s, &f, "messages")
        .json(&body_for("messages", "gpt-5-secret", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "permission_error");
    assert_eq!(v["error"]["code"], "model_not_allowed");

    // The provider's errors, translated: an Anthropic 429 to an OpenAI client, an
    // Anthropic 529 becomes 503 for OpenAI SDKs, an OpenAI 401 to an Anthropic client.
    let resp = post(&s, &f, "chat/completions")
        .header("x-mock-status", "429")
        .json(&body_for("chat", "claude-sonnet-4-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["message"], "mock error");
    let resp = post(&s, &f, "responses")
        .header("x-mock-status", "529")
        .json(&body_for("responses", "claude-sonnet-4-5", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let resp = post(&s, &f, "messages")
        .header("x-mock-status", "401")
        .json(&body_for("messages", "mock-model", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );

    // The gateway's own errors, in the client's dialect.
    for (api, body, status, check) in [
        ("messages", "{not json", 400, "/type"),
        (
            "messages",
            "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
            200,
            "",
        ),
        (
            "responses",
            "{\"model\":\"mock-model\",\"input\":[{\"type\":\"computer_call\"}]}",
            400,
            "/error/code",
        ),
        (
            "chat/completions",
            "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
            400,
            "/error/code",
        ),
    ] {
        let resp = post(&s, &f, api)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let got = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 200 {
            // Anthropic refuses a system role; the mock does too, and says so in its shape.
            assert_eq!(got, 400, "{api} {body}: {v}");
            assert_eq!(v["type"], "error", "{v}");
            continue;
        }
        assert_eq!(got, status, "{api} {body}: {v}");
        assert!(
            !v.pointer(check).unwrap_or(&Value::Null).is_null(),
            "{api} {body}: {v}"
        );
    }

    // What a translation cannot give whole is refused, not cut down: several choices
    // or log-probabilities from Anthropic, a conversation OpenAI keeps, MCP servers
    // Anthropic would call.
    for (api, model, extra) in [
        ("chat/completions", "claude-sonnet-4-5", json!({"n": 2})),
        (
            "chat/completions",
            "claude-sonnet-4-5",
            json!({"logprobs": true}),
        ),
        (
            "responses",
            "claude-sonnet-4-5",
            json!({"conversation": "conv_1"}),
        ),
        (
            "messages",
            "mock-model",
            json!({"mcp_servers": [{"type": "url", "url": "https://x.example/mcp", "name": "x"}]}),
        ),
    ] {
        let mut body = body_for(api, model, false);
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let resp = post(&s, &f, api).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unsupported_feature", "{body}: {v}");
    }
    // To a provider of the client's own dialect they pass through.
    let mut body = body_for("chat/completions", "mock-model", false);
    body["n"] = json!(2);
    let resp = post(&s, &f, "chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_embeddings_and_token_counts() {
    let (s, _m, f) = started().await;
    let resp = s
        .proxy
        .http
        .get(format!("{}/{}/v1/models", s.proxy.base, f.consumer_slug))
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("Authorization", format!("Bearer {}", f.key))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    let mut ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["claude-sonnet-4-5", "gpt-4.1", "mock-model"]);

    let resp = post(&s, &f, "embeddings")
        .json(&json!({"model": "mock-model", "input": ["a", "b"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let resp = post(&s, &f, "embeddings")
        .json(&json!({"model": "claude-sonnet-4-5", "input": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "embeddings_not_supported"
    );

    // Anthropic counts; for another provider the count is estimated.
    let count = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello there"}]});
    let resp = post(&s, &f, "messages/count_tokens")
        .json(&count)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.json::<Value>().await.unwrap()["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let mut estimated = count.clone();
    estimated["model"] = json!("mock-model");
    let resp = post(&s, &f, "messages/count_tokens")
        .json(&estimated)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-selected-provider").is_none());
    assert!(
        resp.json::<Value>().await.unwrap()["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    s.running.shutdown().await;
}

/// A provider that closes a stream half way never produces an answer that looks
/// complete: every client dialect, over every provider dialect, translated or passed
/// through, ends with an error event in its own shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_cut_short_end_with_an_error_event() {
    let (s, _m, f) = started().await;
    for api in ["chat/completions", "messages", "responses"] {
        for (upstream, model) in DIALECT_MODELS {
            let case = format!("{api} -> {upstream}");
            let resp = post(&s, &f, api)
                .header("x-mock-truncate-after", "4")
                .json(&body_for(api, model, true))
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 200, "{case}");
            let body = text(resp).await;
            let last = body.trim_end().rsplit("\n\n").next().unwrap_or_default();
            let ok = match api {
                "messages" => {
                    last.starts_with("event: error") && last.contains("upstream_incomplete")
                }
                "responses" => {
                    last.starts_with("event: response.failed") || last.starts_with("event: error")
                }
                _ => last.starts_with("data: {\"error\"") && last.contains("upstream_incomplete"),
            };
            assert!(ok, "{case}: {body}");
            assert!(
                !body.contains("[DONE]") && !body.contains("message_stop"),
                "{case}: {body}"
            );
        }
    }
    s.running.shutdown().await;
}
