//! Scenarios against `sluice all` in its embedded default (SQLite in a temporary data
//! dir, in-process bus), started in this test process on ephemeral ports, in front of
//! mock providers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sluice::{Plane, Running, launch};
use sluice_loadtest::{MockConfig, MockProvider};
use sluice_shared::settings::Settings;
use support::*;

struct Embedded {
    running: Running,
    admin: Admin,
    proxy: Proxy,
    _dir: tempfile::TempDir,
}

async fn embedded() -> Embedded {
    embedded_on(None).await
}

/// `sluice all` on the embedded SQLite store, or on `database_url`.
async fn embedded_on(database_url: Option<String>) -> Embedded {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::ephemeral(dir.path().to_path_buf());
    settings.database_url = database_url;
    settings.max_body_bytes = 64 * 1024;
    settings.admin_token = Some(ADMIN_TOKEN.into());
    let running = launch(&settings, &[Plane::Admin, Plane::Proxy, Plane::Mcp])
        .await
        .expect("sluice starts");
    Embedded {
        admin: Admin::new(running.admin_addr.expect("admin")),
        proxy: Proxy::new(running.proxy_addr.expect("proxy")),
        running,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_completion_plain_and_streamed() {
    let s = embedded().await;
    let upstream = mock("primary").await;
    let f = setup(&s.admin, "demo", &upstream.base_url()).await;
    s.proxy.wait_serving(&f).await;

    let resp = s.proxy.chat(&f, simple_chat(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-mock-name"], "primary");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().expect("usage") > 0);

    let mut req = simple_chat(true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = s.proxy.chat(&f, req).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/event-stream")
    );
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let text = resp.text().await.expect("body");
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk json"))
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        content,
        (0..8).map(|i| format!("tok{i} ")).collect::<String>()
    );
    let usage = &chunks.last().expect("usage chunk")["usage"];
    assert_eq!(usage["completion_tokens"], 8);

    // The provider saw sluice's upstream key, never the client's key or gateway header.
    let seen = upstream.recorded();
    let last = seen.last().expect("recorded");
    assert_eq!(last.path_and_query, "/v1/chat/completions");
    assert_eq!(
        last.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    for leaked in ["x-ag-api-key", "x-ag-gateway-slug", "x-api-key"] {
        assert!(
            !last.headers.contains_key(leaked),
            "{leaked} must not reach the provider"
        );
    }
    s.running.shutdown().await;
}

/// The first event reaches the client while the provider is still holding the rest of
/// the stream: sluice relays chunk by chunk and never buffers the whole answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_relayed_event_by_event() {
    let s = embedded().await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let upstream = MockProvider::start(
        "127.0.0.1:0".parse().expect("addr"),
        MockConfig {
            api_key: Some(UPSTREAM_KEY.into()),
            gate: Some(gate.clone()),
            ..MockConfig::default()
        },
    )
    .await
    .expect("mock");
    let f = setup(&s.admin, "gated", &upstream.base_url()).await;
    s.proxy.wait_serving(&f).await;

    let resp = s.proxy.chat(&f, simple_chat(true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    // The mock sends the role chunk and one content chunk, then waits for the gate.
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("tok0") {
            let chunk = body.next().await.expect("stream open").expect("chunk");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        first.is_ok(),
        "the first chunks must arrive before the provider finishes; got {seen:?}"
    );
    gate.notify_one();
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    assert!(seen.ends_with("data: [DONE]\n\n"));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_update_reroutes_without_restart() {
    let s = embedded().await;
    let (old, new) = (mock("old").await, mock("new").await);
    let f = setup(&s.admin, "reroute", &old.base_url()).await;
    s.proxy.wait_serving(&f).await;
    assert_eq!(
        s.proxy.chat(&f, simple_chat(false)).await.headers()["x-mock-name"],
        "old"
    );

    let path = format!("/v1/gateways/{}/registries/{}", f.gateway_id, f.registry_id);
    let updated = s
        .admin
        .ok(
            "PUT",
            &path,
            Some(json!({"provider_options": {"base_url": new.base_url()}})),
            200,
        )
        .await;
    // The stored key is kept and never shown.
    assert_eq!(updated["auth"]["api_key"], "****cret");
    let started = std::time::Instant::now();
    eventually(
        Duration::from_secs(5),
        "traffic to move to the new upstream",
        || async {
            let resp = s.proxy.chat(&f, simple_chat(false)).await;
            (resp.status() == 200 && resp.headers()["x-mock-name"] == "new").then_some(())
        },
    )
    .await;
    eprintln!("rerouted after {:?}", started.elapsed());
    // The key still works upstream: the masked echo did not overwrite it.
    assert_eq!(
        new.recorded().last().expect("request").headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let s = embedded().await;
    let upstream = mock("m").await;
    let f = setup(&s.admin, "errors", &upstream.base_url()).await;
    let other = setup(&s.admin, "other", &upstream.base_url()).await;
    s.proxy.wait_serving(&f).await;
    s.proxy.wait_serving(&other).await;
    let http = client();
    let url = |slug: &str| format!("{}/{slug}/v1/chat/completions", s.proxy.base);
    let body = simple_chat(false).to_string();

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "no key",
            http.post(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors")
                .body(body.clone()),
            401,
            "missing_api_key",
        ),
        (
            "wrong key",
            http.post(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors")
                .header("X-AG-API-Key", "ag_nope")
                .body(body.clone()),
            401,
            "invalid_api_key",
        ),
        // A key of another gateway is not known here at all.
        (
            "key of another gateway",
            http.post(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors")
                .header("X-AG-API-Key", &other.key)
                .body(body.clone()),
            401,
            "invalid_api_key",
        ),
        (
            "unknown consumer",
            http.post(url("nobody"))
                .header("X-AG-Gateway-Slug", "errors")
                .header("X-AG-API-Key", &f.key)
                .body(body.clone()),
            404,
            "consumer_not_found",
        ),
        (
            "unknown gateway",
            http.post(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "nope")
                .header("X-AG-API-Key", &f.key)
                .body(body.clone()),
            404,
            "gateway_not_found",
        ),
        (
            "malformed body",
            http.post(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors")
                .header("X-AG-API-Key", &f.key)
                .body("{\"messages\": ["),
            400,
            "invalid_json",
        ),
        (
            "empty body",
            http.post(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors")
                .header("X-AG-API-Key", &f.key),
            400,
            "invalid_json",
        ),
        (
            "oversized body",
            http.post(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors")
                .header("X-AG-API-Key", &f.key)
                .body("x".repeat(70 * 1024)),
            413,
            "body_too_large",
        ),
        (
            "unknown path",
            http.post(format!("{}/{}/v1/nothing", s.proxy.base, f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors"),
            404,
            "not_found",
        ),
        (
            "wrong method",
            http.get(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors"),
            405,
            "method_not_allowed",
        ),
    ];
    for (name, req, status, code) in cases {
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let body: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: JSON error body: {e}"));
        assert_eq!(body["error"], code, "{name}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}"
        );
        assert!(
            !body.to_string().contains(&f.key),
            "{name}: the key must not be echoed"
        );
    }

    // A key of the same gateway that is not attached to this consumer: 403, once the
    // new key has reached the proxy.
    let extra = s
        .admin
        .ok(
            "POST",
            &format!("/v1/gateways/{}/auths", f.gateway_id),
            Some(json!({"name": "loose"})),
            201,
        )
        .await;
    let extra_key = extra["key"].as_str().expect("key").to_string();
    let resp = eventually(
        Duration::from_secs(5),
        "the new key to reach the proxy",
        || async {
            let resp = http
                .post(url(&f.consumer_slug))
                .header("X-AG-Gateway-Slug", "errors")
                .header("X-AG-API-Key", &extra_key)
                .body(body.clone())
                .send()
                .await
                .expect("request");
            (resp.status() == 403).then_some(resp)
        },
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"],
        "forbidden"
    );

    // An upstream that is gone: 502 in the same shape.
    let dead = free_addr();
    s.admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{}/registries/{}", f.gateway_id, f.registry_id),
            Some(json!({"provider_options": {"base_url": format!("http://{dead}/v1")}})),
            200,
        )
        .await;
    let resp = eventually(
        Duration::from_secs(5),
        "the dead upstream to be used",
        || async {
            let resp = s.proxy.chat(&f, simple_chat(false)).await;
            (resp.status() == 502).then_some(resp)
        },
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"],
        "upstream_unreachable"
    );

    // No registry attached: 503.
    s.admin
        .ok(
            "DELETE",
            &format!(
                "/v1/gateways/{}/consumers/{}/registries/{}",
                f.gateway_id, f.consumer_id, f.registry_id
            ),
            None,
            200,
        )
        .await;
    let resp = eventually(Duration::from_secs(5), "the detach to apply", || async {
        let resp = s.proxy.chat(&f, simple_chat(false)).await;
        (resp.status() == 503).then_some(resp)
    })
    .await;
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"],
        "no_upstream"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_validates_and_keeps_integrity_on_sqlite() {
    let s = embedded().await;
    admin_validates_and_keeps_integrity(&s).await;
    policies_and_roles(&s).await;
    fields_and_filters(&s).await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_validates_and_keeps_integrity_on_postgres() {
    let s = embedded_on(Some(fresh_database("admin").await)).await;
    admin_validates_and_keeps_integrity(&s).await;
    policies_and_roles(&s).await;
    fields_and_filters(&s).await;
    s.running.shutdown().await;
}

async fn fields_and_filters(s: &Embedded) {
    let a = &s.admin;
    let gw = a
        .ok(
            "POST",
            "/v1/gateways",
            Some(json!({"slug": "fields", "tenant_id": "t-1",
            "telemetry": {"exporters": [{"name": "kafka", "settings": {"topic": "llm"}}]},
            "session_config": {"enabled": true, "header_name": "x-session-id"},
            "entitlements": {"tier": "gold", "burst_per_min": 100, "quota_per_month": 1000000}})),
            201,
        )
        .await;
    assert_eq!(gw["entitlements"]["tier"], "gold");
    let (status, body) = a
        .send("POST", "/v1/gateways", Some(json!({"slug": "bad-tel", "telemetry": {"exporters": [{"name": "carrier-pigeon"}]}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("telemetry.exporters[0].name"))
    );
    let g = format!("/v1/gateways/{}", gw["id"].as_str().expect("id"));

    // Registries: MCP ones need an mcp_target, LLM ones a provider.
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "m", "type": "MCP"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("mcp_target"))
    );
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "l"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("provider"))
    );
    let mcp = a
        .ok(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "tools", "type": "MCP",
            "mcp_target": {"url": "http://127.0.0.1:9/mcp", "auth": {"mode": "none"}}})),
            201,
        )
        .await;
    assert_eq!(mcp["mcp_target"]["transport"], "streamable-http");
    let llm = a
        .ok(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "llm", "provider": "openai",
            "health_checks": {"path": "/v1/models", "threshold": 3, "interval": 10}})),
            201,
        )
        .await;
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "hc", "provider": "openai", "health_checks": {"path": "models"}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("health_checks.path"))
    );
    assert_eq!(
        a.ok("GET", &format!("{g}/registries?type=mcp"), None, 200)
            .await["total"],
        1
    );
    assert_eq!(
        a.ok("GET", &format!("{g}/registries?type=LLM"), None, 200)
            .await["total"],
        1
    );
    let (status, _) = a
        .send("GET", &format!("{g}/registries?type=xyz"), None)
        .await;
    assert_eq!(status, 400);

    // Consumers: routing fields are validated; role-based consumers carry none.
    let llm_id = llm["id"].as_str().expect("id");
    let routed = a
        .ok("POST", &format!("{g}/consumers"), Some(json!({"name": "routed",
            "lb_config": {"algorithm": "weighted-round-robin", "members": [{"registry_id": llm_id, "weight": 5}]},
            "fallback": {"enabled": true, "triggers": ["http_5xx", "http_429"], "budget": {"max_attempts": 3}, "chain": [llm_id]},
            "model_policies": [{"registry_id": llm_id, "allowed": ["gpt-4o"], "default": "gpt-4o"}]})), 201)
        .await;
    assert_eq!(routed["lb_config"]["algorithm"], "weighted-round-robin");
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/consumers"),
            Some(json!({"name": "rb", "routing_mode": "role_based",
            "lb_config": {"algorithm": "random"}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("lb_config"))
    );
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/consumers"),
            Some(json!({"name": "w",
            "lb_config": {"members": [{"registry_id": llm_id, "weight": 0}]}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("lb_config.members[0].weight"))
    );
    let (status, _) = a
        .send(
            "POST",
            &format!("{g}/consumers"),
            Some(json!({"name": "alg", "lb_config": {"algorithm": "fastest"}})),
        )
        .await;
    assert_eq!(status, 422);
    a.ok(
        "POST",
        &format!("{g}/consumers"),
        Some(json!({"name": "agent", "type": "MCP", "active": false,
        "mcp": {"fail_mode": "closed"}})),
        201,
    )
    .await;
    let auth = a
        .ok(
            "POST",
            &format!("{g}/auths"),
            Some(json!({"name": "k"})),
            201,
        )
        .await;
    a.ok(
        "POST",
        &format!(
            "{g}/consumers/{}/auths/{}",
            routed["id"].as_str().expect("id"),
            auth["id"].as_str().expect("id")
        ),
        None,
        200,
    )
    .await;
    let count = |q: &'static str| {
        let url = format!("{g}/consumers?{q}");
        async move { a.ok("GET", &url, None, 200).await["total"].as_i64() }
    };
    assert_eq!(count("type=MCP").await, Some(1));
    assert_eq!(count("active=false").await, Some(1));
    assert_eq!(count("active=true").await, Some(1));
    assert_eq!(count("search=rout").await, Some(1));
    let by_auth = format!("{g}/consumers?auth_id={}", auth["id"].as_str().expect("id"));
    assert_eq!(
        a.ok("GET", &by_auth, None, 200).await["items"][0]["name"],
        "routed"
    );
    let (status, body) = a
        .send("GET", &format!("{g}/consumers?auth_id=nope"), None)
        .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_uuid"))
    );
    // Credential types: tokens and certificates are verified, not minted.
    let oauth = a
        .ok("POST", &format!("{g}/auths"), Some(json!({"name": "sso", "type": "oauth2",
            "oauth2": {"issuer": "https://id.example.com", "jwks_url": "https://id.example.com/jwks",
                       "audiences": ["sluice"], "allowed_algorithms": ["RS256"]}})), 201)
        .await;
    assert!(oauth.get("key").is_none() && oauth.get("key_prefix").is_none());
    a.ok("POST", &format!("{g}/auths"), Some(json!({"name": "mtls", "type": "mtls",
        "mtls": {"ca_cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "allowed_common_names": ["svc"]}})), 201)
        .await;
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/auths"),
            Some(json!({"name": "bad", "type": "oidc"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("oidc"))
    );
    let (status, body) = a
        .send("POST", &format!("{g}/auths"), Some(json!({"name": "bad", "type": "oauth2",
            "oauth2": {"issuer": "https://id", "jwks_url": "https://id/jwks", "allowed_algorithms": ["none"]}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("oauth2.allowed_algorithms[0]"))
    );

    // Upstream credentials of every type are masked on read.
    let azure = a
        .ok("POST", &format!("{g}/registries"), Some(json!({"name": "az", "provider": "azure",
            "provider_options": {"base_url": "https://res.openai.azure.com/openai"},
            "auth": {"type": "azure", "client_id": "cid", "client_secret": "azure-client-secret", "tenant_id": "tid"}})), 201)
        .await;
    assert_eq!(azure["auth"]["client_secret"], "****cret");
    assert!(!azure.to_string().contains("azure-client-secret"));
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "aws", "provider": "bedrock",
            "provider_options": {"base_url": "https://bedrock-runtime.us-east-1.amazonaws.com"},
            "auth": {"type": "aws", "region": "us-east-1", "access_key_id": "AKIA"}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("auth.secret_access_key"))
    );
    a.ok("DELETE", &g, None, 204).await;
}

async fn policies_and_roles(s: &Embedded) {
    let a = &s.admin;
    let upstream = "http://127.0.0.1:9/v1";
    let f = setup(a, "governed", upstream).await;
    let gw = format!("/v1/gateways/{}", f.gateway_id);

    let (status, body) = a
        .send(
            "POST",
            &format!("{gw}/policies"),
            Some(json!({"name": "p", "slug": "no_such_kind"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("slug"))
    );
    let policy = a
        .ok("POST", &format!("{gw}/policies"), Some(json!({"name": "limit", "slug": "rate_limiter",
            "priority": 10, "stages": ["pre_request"], "mode": "observe", "settings": {"limit": 5, "window": 60}})), 201)
        .await;
    assert_eq!(
        (policy["global"].as_bool(), policy["mode"].as_str()),
        (Some(false), Some("observe"))
    );
    let pid = policy["id"].as_str().expect("id");
    let global = a
        .ok("POST", &format!("{gw}/policies/{pid}/global"), None, 200)
        .await;
    assert_eq!(global["global"], true);
    assert_eq!(
        a.ok("DELETE", &format!("{gw}/policies/{pid}/global"), None, 200)
            .await["global"],
        false
    );
    let copy = a
        .ok("POST", &format!("{gw}/policies/{pid}/duplicate"), None, 201)
        .await;
    assert_eq!(copy["name"], "limit (copy)");
    let copy2 = a
        .ok("POST", &format!("{gw}/policies/{pid}/duplicate"), None, 201)
        .await;
    assert_eq!(copy2["name"], "limit (copy 2)");
    let updated = a
        .ok(
            "PUT",
            &format!("{gw}/policies/{pid}"),
            Some(json!({"enabled": false})),
            200,
        )
        .await;
    assert_eq!(
        (updated["enabled"].as_bool(), updated["priority"].as_i64()),
        (Some(false), Some(10))
    );
    assert_eq!(
        a.ok("GET", &format!("{gw}/policies"), None, 200).await["total"],
        3
    );

    let (status, body) = a
        .send(
            "POST",
            &format!("{gw}/roles"),
            Some(json!({"name": "r", "model_policies": [
            {"registry_id": f.registry_id, "allowed": ["a"], "default": "b"}]})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("model_policies[0].default"))
    );
    let role = a
        .ok(
            "POST",
            &format!("{gw}/roles"),
            Some(json!({"name": "analysts"})),
            201,
        )
        .await;
    let rid = role["id"].as_str().expect("id");
    let linked = a
        .ok(
            "POST",
            &format!("{gw}/roles/{rid}/registries/{}", f.registry_id),
            None,
            200,
        )
        .await;
    assert_eq!(linked["registry_ids"], json!([f.registry_id]));
    // A registry linked to a role is in use too.
    a.ok(
        "DELETE",
        &format!(
            "{gw}/consumers/{}/registries/{}",
            f.consumer_id, f.registry_id
        ),
        None,
        200,
    )
    .await;
    let (status, _) = a
        .send(
            "DELETE",
            &format!("{gw}/registries/{}", f.registry_id),
            None,
        )
        .await;
    assert_eq!(status, 409);
    a.ok(
        "DELETE",
        &format!("{gw}/roles/{rid}/registries/{}", f.registry_id),
        None,
        200,
    )
    .await;

    let consumer = format!("{gw}/consumers/{}", f.consumer_id);
    a.ok("POST", &format!("{consumer}/policies/{pid}"), None, 200)
        .await;
    let c = a
        .ok("POST", &format!("{consumer}/roles/{rid}"), None, 200)
        .await;
    assert_eq!(
        (c["policy_ids"].clone(), c["role_ids"].clone()),
        (json!([pid]), json!([rid]))
    );
    let (status, _) = a
        .send(
            "POST",
            &format!("{consumer}/roles/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Deleting a policy removes its links.
    a.ok("DELETE", &format!("{gw}/policies/{pid}"), None, 204)
        .await;
    assert_eq!(
        a.ok("GET", &consumer, None, 200).await["policy_ids"],
        json!([])
    );
    a.ok("DELETE", &format!("{consumer}/roles/{rid}"), None, 200)
        .await;
    a.ok("DELETE", &format!("{gw}/roles/{rid}"), None, 204)
        .await;
}

async fn admin_validates_and_keeps_integrity(s: &Embedded) {
    let a = &s.admin;
    let (status, body) = a
        .send(
            "POST",
            "/v1/gateways",
            Some(json!({"slug": "ok-gw", "colour": "red"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["details"][0]["field"], "colour");
    let (status, body) = a
        .send("POST", "/v1/gateways", Some(json!({"slug": "Not A Slug"})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("slug"))
    );
    let gw = a
        .ok("POST", "/v1/gateways", Some(json!({"slug": "ok-gw"})), 201)
        .await;
    let (status, body) = a
        .send("POST", "/v1/gateways", Some(json!({"slug": "ok-gw"})))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (409, Some("already_exists"))
    );
    let (status, body) = a.send("GET", "/v1/gateways/not-a-uuid", None).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_uuid"))
    );
    let (status, _) = a
        .send(
            "GET",
            &format!("/v1/gateways/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let gid = gw["id"].as_str().expect("id");
    let (status, body) = a
        .send(
            "POST",
            &format!("/v1/gateways/{gid}/registries"),
            Some(json!({"name": "x", "provider": "openai_compatible"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("provider_options.base_url"))
    );
    let (status, body) = a
        .send("POST", &format!("/v1/gateways/{gid}/registries"), Some(json!({"name": "x", "provider": "openai", "auth": {"type": "api_key", "api_key": "k", "extra": 1}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("auth"))
    );
    assert!(
        body["details"][0]["problem"]
            .as_str()
            .expect("problem")
            .contains("extra"),
        "{body}"
    );

    // A registry in use cannot be deleted unless forced.
    let f = setup(a, "integrity", "http://127.0.0.1:9/v1").await;
    let reg = format!("/v1/gateways/{}/registries/{}", f.gateway_id, f.registry_id);
    let (status, body) = a.send("DELETE", &reg, None).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (409, Some("has_dependents"))
    );
    a.ok("DELETE", &format!("{reg}?force=true"), None, 204)
        .await;
    let consumer = a
        .ok(
            "GET",
            &format!("/v1/gateways/{}/consumers/{}", f.gateway_id, f.consumer_id),
            None,
            200,
        )
        .await;
    assert_eq!(consumer["registry_ids"], json!([]));

    // Keys are shown once; reads show only their ends.
    let auth = a
        .ok(
            "GET",
            &format!("/v1/gateways/{}/auths/{}", f.gateway_id, f.auth_id),
            None,
            200,
        )
        .await;
    assert!(auth.get("key").is_none() && auth.get("key_hash").is_none());
    assert_eq!(auth["key_suffix"].as_str(), Some(&f.key[f.key.len() - 4..]));

    // Listing pages.
    let page = a.ok("GET", "/v1/gateways?page=1&size=1", None, 200).await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
    let (status, _) = a.send("GET", "/v1/gateways?size=500", None).await;
    assert_eq!(status, 400);

    // Deleting a gateway removes everything under it.
    a.ok(
        "DELETE",
        &format!("/v1/gateways/{}", f.gateway_id),
        None,
        204,
    )
    .await;
    let (status, _) = a
        .send(
            "GET",
            &format!("/v1/gateways/{}/consumers/{}", f.gateway_id, f.consumer_id),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// Without `X-AG-Gateway-Slug`, the gateway comes from the `Host`: its own `domain`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_is_found_by_host() {
    let s = embedded().await;
    let upstream = mock("m").await;
    let f = setup(&s.admin, "hosted", &upstream.base_url()).await;
    s.admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{}", f.gateway_id),
            Some(json!({"domain": "llm.hosted.test"})),
            200,
        )
        .await;
    let http = client();
    let send = |host: &'static str| {
        http.post(format!(
            "{}/{}/v1/chat/completions",
            s.proxy.base, f.consumer_slug
        ))
        .header("Host", host)
        .header("X-AG-API-Key", &f.key)
        .json(&simple_chat(false))
        .send()
    };
    eventually(Duration::from_secs(5), "host routing", || async {
        (send("llm.hosted.test:8081")
            .await
            .expect("request")
            .status()
            == 200)
            .then_some(())
    })
    .await;
    assert_eq!(send("other.test").await.expect("request").status(), 404);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requires_its_token() {
    let s = embedded().await;
    let http = client();
    let url = format!("{}/v1/gateways", s.admin.base);
    for token in [None, Some("wrong"), Some("test-admin-tokenX")] {
        let mut req = http.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 401, "{token:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            resp.json::<Value>().await.expect("json")["error"],
            "unauthorized"
        );
    }
    assert_eq!(
        http.get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("ok")
            .status(),
        200
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_admin_tokens_reach_only_their_gateway_and_resources() {
    let s = embedded().await;
    let a = &s.admin;
    let mine = setup(a, "mine", "http://127.0.0.1:9/v1").await;
    let theirs = setup(a, "theirs", "http://127.0.0.1:9/v1").await;
    let (status, body) = a
        .send("POST", "/v1/admin-tokens", Some(json!({"name": "ci", "gateway_id": mine.gateway_id, "scopes": ["registries:admin"]})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("scopes[0]"))
    );
    let created = a
        .ok(
            "POST",
            "/v1/admin-tokens",
            Some(json!({"name": "ci", "gateway_id": mine.gateway_id,
            "scopes": ["registries:read", "consumers:write"]})),
            201,
        )
        .await;
    let token = created["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("sls_"));
    let listed = a.ok("GET", "/v1/admin-tokens", None, 200).await;
    assert!(
        !listed.to_string().contains(&token),
        "the token is shown once"
    );

    let scoped = |method: &str, path: String| {
        let http = client();
        let url = format!("{}{path}", a.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let token = token.clone();
        async move {
            http.request(method, url)
                .bearer_auth(token)
                .json(&json!({"name": "x"}))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    let g = format!("/v1/gateways/{}", mine.gateway_id);
    assert_eq!(scoped("GET", format!("{g}/registries")).await, 200);
    assert_eq!(scoped("POST", format!("{g}/registries")).await, 403);
    assert_eq!(scoped("POST", format!("{g}/consumers")).await, 201);
    assert_eq!(scoped("GET", format!("{g}/auths")).await, 403);
    assert_eq!(
        scoped(
            "GET",
            format!("/v1/gateways/{}/registries", theirs.gateway_id)
        )
        .await,
        403
    );
    assert_eq!(scoped("GET", "/v1/gateways".into()).await, 403);
    assert_eq!(scoped("GET", "/v1/admin-tokens".into()).await, 403);
    assert_eq!(scoped("GET", "/v1/policies-catalog".into()).await, 200);

    a.ok(
        "DELETE",
        &format!("/v1/admin-tokens/{}", created["id"].as_str().expect("id")),
        None,
        204,
    )
    .await;
    assert_eq!(scoped("GET", format!("{g}/registries")).await, 401);
    s.running.shutdown().await;
}

/// The upstream key is in no response, not in the store file, not in the config
/// document on the bus; the proxy still uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_secrets_are_sealed_at_rest_and_on_the_bus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::ephemeral(dir.path().to_path_buf());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    let running = launch(&settings, &[Plane::Admin, Plane::Proxy])
        .await
        .expect("sluice starts");
    let admin = Admin::new(running.admin_addr.expect("admin"));
    let proxy = Proxy::new(running.proxy_addr.expect("proxy"));
    let upstream = mock("m").await;
    let f = setup(&admin, "sealed", &upstream.base_url()).await;
    proxy.wait_serving(&f).await;
    assert_eq!(
        upstream.recorded().last().expect("request").headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );

    let listed = admin
        .ok(
            "GET",
            &format!("/v1/gateways/{}/registries", f.gateway_id),
            None,
            200,
        )
        .await;
    assert!(!listed.to_string().contains(UPSTREAM_KEY));
    // The SQLite file and its WAL.
    for entry in std::fs::read_dir(dir.path()).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(UPSTREAM_KEY),
                "{} holds the plaintext key",
                path.display()
            );
            assert!(
                !text.contains(&f.key),
                "{} holds a plaintext API key",
                path.display()
            );
        }
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_and_policy_settings() {
    let s = embedded().await;
    let a = &s.admin;
    let providers = a.ok("GET", "/v1/providers-catalog", None, 200).await;
    let ids: Vec<_> = providers["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 13);
    assert!(ids.contains(&"anthropic") && ids.contains(&"openrouter"));
    let models = a
        .ok("GET", "/v1/models-catalog?provider=anthropic", None, 200)
        .await;
    let items = models["items"].as_array().expect("items");
    assert!(!items.is_empty() && items.iter().all(|m| m["provider"] == "anthropic"));
    assert!(
        items
            .iter()
            .all(|m| m["max_output_tokens"].as_u64().is_some()
                && m["input_per_1m"].as_f64().is_some())
    );
    let (status, _) = a
        .send("GET", "/v1/models-catalog?provider=nope", None)
        .await;
    assert_eq!(status, 400);
    let kinds = a.ok("GET", "/v1/policies-catalog", None, 200).await;
    let rate = kinds["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["slug"] == "rate_limiter")
        .expect("kind");
    assert_eq!(
        rate["settings_schema"]["required"],
        json!(["limit", "window"])
    );
    assert!(
        a.ok("GET", "/v1/mcp-servers-catalog", None, 200).await["items"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );

    // Policy settings are checked against the kind's schema.
    a.ok("POST", "/v1/gateways", Some(json!({"slug": "pol"})), 201)
        .await;
    let gw = a.ok("GET", "/v1/gateways?slug=pol", None, 200).await["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let url = format!("/v1/gateways/{gw}/policies");
    let (status, body) = a
        .send("POST", &url, Some(json!({"name": "rl", "slug": "rate_limiter", "settings": {"limit": 0, "window": 60, "burst": 1}})))
        .await;
    assert_eq!(status, 422);
    let fields: Vec<_> = body["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("f"))
        .collect();
    assert_eq!(fields, ["settings.burst", "settings.limit"]);
    let (status, body) = a
        .send("POST", &url, Some(json!({"name": "rl", "slug": "cors", "mode": "throttle", "settings": {"allowed_origins": ["*"]}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("mode"))
    );
    let (status, body) = a
        .send("POST", &url, Some(json!({"name": "rl", "slug": "cors", "stages": ["post_response"], "settings": {"allowed_origins": ["*"]}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("stages[0]"))
    );
    a.ok("POST", &url, Some(json!({"name": "rl", "slug": "rate_limiter", "mode": "throttle",
        "settings": {"limit": 10, "window": 60, "group_by": "header", "group_by_header": "x-user"}})), 201)
        .await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_connection_tests_name_the_failing_stage() {
    let s = embedded().await;
    let a = &s.admin;
    let upstream = mock("m").await;
    let f = setup(a, "probe", &upstream.base_url()).await;
    let url = format!("/v1/gateways/{}/registries/test-connection", f.gateway_id);

    let saved = a
        .ok(
            "POST",
            &url,
            Some(json!({"registry_id": f.registry_id})),
            200,
        )
        .await;
    assert_eq!(
        (
            saved["ok"].as_bool(),
            saved["stage"].as_str(),
            saved["status_code"].as_u64()
        ),
        (Some(true), Some("provider"), Some(200))
    );
    assert_eq!(saved["provider"], "openai_compatible");
    assert!(saved["latency_ms"].as_u64().is_some());
    let seen = upstream.recorded();
    let probe = seen.last().expect("probe reached the mock");
    assert_eq!(
        (probe.method.as_str(), probe.path_and_query.as_str()),
        ("GET", "/v1/models")
    );

    let unsaved = |key: &str, base: String| {
        json!({"provider": "openai_compatible",
        "provider_options": {"base_url": base}, "auth": {"type": "api_key", "api_key": key}})
    };
    let wrong = a
        .ok(
            "POST",
            &url,
            Some(unsaved("sk-wrong", upstream.base_url())),
            200,
        )
        .await;
    assert_eq!(
        (
            wrong["ok"].as_bool(),
            wrong["stage"].as_str(),
            wrong["status_code"].as_u64()
        ),
        (Some(false), Some("authentication"), Some(401))
    );
    let down = a
        .ok(
            "POST",
            &url,
            Some(unsaved(UPSTREAM_KEY, format!("http://{}/v1", free_addr()))),
            200,
        )
        .await;
    assert_eq!(
        (down["ok"].as_bool(), down["stage"].as_str()),
        (Some(false), Some("connectivity"))
    );
    let other = a
        .ok("POST", &url, Some(json!({"provider": "bedrock", "provider_options": {"base_url": "https://bedrock.example"},
            "auth": {"type": "aws", "region": "us-east-1"}})), 200)
        .await;
    assert_eq!(other["stage"], "unsupported");
    let (status, _) = a
        .send("POST", &url, Some(json!({"provider": "openai_compatible"})))
        .await;
    assert_eq!(status, 422);
    let (status, _) = a
        .send(
            "POST",
            &url,
            Some(json!({"registry_id": uuid::Uuid::new_v4()})),
        )
        .await;
    assert_eq!(status, 404);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plane_reports_health() {
    let s = embedded().await;
    let http = client();
    for addr in [
        s.running.admin_addr,
        s.running.proxy_addr,
        s.running.mcp_addr,
    ] {
        let addr = addr.expect("plane");
        for path in ["healthz", "readyz"] {
            let resp = http
                .get(format!("http://{addr}/{path}"))
                .send()
                .await
                .expect("probe");
            assert_eq!(resp.status(), 200, "{addr}/{path}");
        }
    }
    s.running.shutdown().await;
}
