//! Scenarios against `sluice all` in its embedded default (SQLite in a temporary data
//! dir, in-process bus), started in this test process on ephemeral ports, in front of
//! mock providers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use sluice::{Plane, launch};
use sluice_loadtest::{MockConfig, MockProvider};
use sluice_shared::settings::Settings;
use support::*;

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
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
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

/// Pingora keeps each fast timer until its deadline even when it is cancelled, so the
/// proxy's long timeouts (the 600 s upstream read above all) must go to Tokio's timer,
/// or every request holds memory for ten minutes. The setting is process-wide and the
/// Pingora server applies its own when its thread starts, over anything set before it;
/// the proxy sets it too before it listens, so no request finds the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_timeouts_do_not_use_pingoras_fast_timers() {
    let _s = embedded().await;
    let threshold = pingora_timeout::fast_timeout::fast_timeout_to_tokio_threshold();
    assert!(
        threshold.is_some_and(|t| t <= Duration::from_secs(5)),
        "{threshold:?}"
    );
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
    s.proxy
        .wait_served_by(&f, "new", Duration::from_secs(5))
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
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
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
        resp.json::<Value>().await.expect("json")["error"]["code"],
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
        resp.json::<Value>().await.expect("json")["error"]["code"],
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
        resp.json::<Value>().await.expect("json")["error"]["code"],
        "no_upstream"
    );
    s.running.shutdown().await;
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

    // An absolute-form target names the gateway, not the Host field beside it.
    let addr = s.running.proxy_addr.expect("proxy");
    let body = simple_chat(false).to_string();
    let absolute = |target_host: &str, host: &str| {
        format!(
            "POST http://{target_host}/{}/v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n\
             X-AG-API-Key: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            f.consumer_slug,
            f.key,
            body.len()
        )
    };
    let got = raw_exchange(
        addr,
        &[absolute("llm.hosted.test:8081", "other.test").as_bytes()],
        "",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let got = raw_exchange(
        addr,
        &[absolute("other.test", "llm.hosted.test").as_bytes()],
        "",
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 404"), "{got}");
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
    // MCP targets: static header values and auth secrets are sealed and masked too.
    let mcp = admin
        .ok("POST", &format!("/v1/gateways/{}/registries", f.gateway_id), Some(json!({"name": "tools", "type": "MCP",
            "mcp_target": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer mcp-static-header-secret"},
                           "auth": {"mode": "static", "value": "mcp-auth-value-secret"}}})), 201)
        .await;
    assert!(
        !mcp.to_string().contains("mcp-static-header-secret")
            && !mcp.to_string().contains("mcp-auth-value-secret")
    );
    let path = format!(
        "/v1/gateways/{}/registries/{}",
        f.gateway_id,
        mcp["id"].as_str().expect("id")
    );
    let echoed = admin
        .ok(
            "PUT",
            &path,
            Some(json!({"mcp_target": mcp["mcp_target"].clone()})),
            200,
        )
        .await;
    assert_eq!(
        echoed["mcp_target"], mcp["mcp_target"],
        "a masked echo keeps the stored secrets"
    );
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

/// Send each request on one fresh connection to the proxy, each after the previous
/// answer ended (`until` seen) or, for the last, until the proxy closes.
async fn raw_exchange(addr: std::net::SocketAddr, requests: &[&[u8]], until: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (i, request) in requests.iter().enumerate() {
        conn.write_all(request).await.unwrap();
        let last = i + 1 == requests.len();
        loop {
            let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
                .await
                .expect("the proxy neither answered nor closed")
                .unwrap_or(0);
            if n == 0 {
                return String::from_utf8_lossy(&got).into_owned();
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if !last && text.matches(until).count() > i {
                break;
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// sluice serves HTTP/1.1 itself: keep-alive carries a second request, pipelined
/// requests are answered in order, a head that does not parse or frames its body two
/// ways gets a 400 in the OpenAI error shape and a closed connection, an oversized head
/// a 431, and `CONNECT` (which would change how the connection is framed) a 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_speaks_http_1_1_on_its_own() {
    let s = embedded().await;
    let addr = s.running.proxy_addr.expect("proxy");

    let health: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let close: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let got = raw_exchange(addr, &[health, close], "{\"status\":\"ok\"}").await;
    assert_eq!(got.matches("HTTP/1.1 200").count(), 2, "{got}");
    let pipelined = [health, health, close].concat();
    let got = raw_exchange(addr, &[&pipelined], "").await;
    assert_eq!(got.matches("HTTP/1.1 200").count(), 3, "{got}");

    let garbage: &[u8] = b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n";
    let refused = raw_exchange(addr, &[garbage], "").await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(refused.contains("\"code\":\"bad_request\""), "{refused}");

    let smuggled: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let refused = raw_exchange(addr, &[smuggled], "").await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(
        !refused.contains("HTTP/1.1 200"),
        "the smuggled request was served: {refused}"
    );

    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let refused = raw_exchange(addr, &[huge.as_bytes()], "").await;
    assert!(refused.starts_with("HTTP/1.1 431"), "{refused}");

    let connect: &[u8] = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    let refused = raw_exchange(addr, &[connect], "").await;
    assert!(refused.starts_with("HTTP/1.1 405"), "{refused}");

    // Each refusal is counted by its code.
    let metrics: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let metrics = raw_exchange(addr, &[metrics], "").await;
    for code in ["bad_request", "header_too_large", "method_not_allowed"] {
        assert!(
            metrics.contains(&format!("sluice_http_refused_total{{code=\"{code}\"}}")),
            "{code}: {metrics}"
        );
    }
    s.running.shutdown().await;
}

/// A chunked upload whose size line holds a bare LF in its extension (the shape of the
/// chunk-extension smuggling attacks: a proxy in front that ends the line at the LF
/// reads the chunks differently) is refused with a 400 in the client's shape and a
/// closed connection: the body is not sent upstream and the request pipelined behind
/// it is not served. The same upload framed correctly goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_lines_with_bare_line_feeds_are_refused() {
    let s = embedded().await;
    let upstream = mock("chunks").await;
    let f = setup(&s.admin, "chunks", &upstream.base_url()).await;
    s.proxy.wait_serving(&f).await;
    let addr = s.running.proxy_addr.expect("proxy");
    let body = simple_chat(false).to_string();
    let upload = |size_line: &str| {
        format!(
            "POST /{}/v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-AG-Gateway-Slug: chunks\r\n\
             X-AG-API-Key: {}\r\nTransfer-Encoding: chunked\r\n\r\n{size_line}\r\n{body}\r\n0\r\n\r\n",
            f.consumer_slug, f.key,
        )
    };
    let health = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    let before = upstream.recorded().len();
    let fine = upload(&format!("{:x};name=value", body.len())) + health;
    let got = raw_exchange(addr, &[fine.as_bytes()], "").await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(got.matches("HTTP/1.1 200").count(), 2, "{got}");
    let sent = upstream.recorded().len();
    assert_eq!(sent, before + 1);

    for size_line in [
        format!("{:x};\nx", body.len()),
        format!("{:x};a=b\rc", body.len()),
        format!("{:x}\n", body.len()),
    ] {
        let hostile = upload(&size_line) + health;
        let got = raw_exchange(addr, &[hostile.as_bytes()], "").await;
        assert!(got.starts_with("HTTP/1.1 400"), "{size_line:?}: {got}");
        assert!(got.contains("\"code\":\"body_unreadable\""), "{got}");
        assert!(
            !got.contains("HTTP/1.1 200"),
            "the request behind it was served: {got}"
        );
    }
    assert_eq!(
        upstream.recorded().len(),
        sent,
        "nothing more went upstream"
    );
    s.running.shutdown().await;
}

/// Both proxy runtimes serve on several threads: pinned (one single-threaded runtime
/// per thread, the default) and work-stealing. Concurrent clients on their own
/// connections get their answers, plain and streamed, whichever thread they land on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_proxy_runtimes_serve_on_several_threads() {
    use sluice_shared::settings::ProxyRuntime;
    let upstream = mock("primary").await;
    for runtime in [ProxyRuntime::Pinned, ProxyRuntime::Stealing] {
        let s = embedded_with(|s| {
            s.proxy_threads = 3;
            s.proxy_runtime = runtime;
        })
        .await;
        let f = setup(&s.admin, "demo", &upstream.base_url()).await;
        s.proxy.wait_serving(&f).await;
        let calls = (0..12).map(|i| {
            // A client of its own each: its own connection.
            let proxy = Proxy::new(s.running.proxy_addr.expect("proxy"));
            let f = f.clone();
            async move {
                let resp = proxy.chat(&f, simple_chat(i % 2 == 1)).await;
                (resp.status(), resp.text().await.expect("body"))
            }
        });
        for (i, (status, body)) in futures::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(status, 200, "{runtime:?} call {i}: {body}");
            let done = if i % 2 == 1 {
                "[DONE]"
            } else {
                "chat.completion"
            };
            assert!(body.contains(done), "{runtime:?} call {i}: {body}");
        }
        s.running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_proxy_port_fails_the_start_and_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::ephemeral(dir.path().to_path_buf());
    settings.proxy_addr = addr;
    let err = match launch(&settings, &[Plane::Admin, Plane::Proxy, Plane::Mcp]).await {
        Ok(_) => panic!("the proxy started on a port another socket listens on"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(err.to_lowercase().contains("in use"), "{err}");
    // The port is still the other socket's.
    let _client = std::net::TcpStream::connect(addr).expect("the first listener still accepts");
}
