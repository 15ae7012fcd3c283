//! The MCP plane against real MCP servers this project did not write: one built with
//! the official MCP Python SDK (both protocol eras) and one with FastMCP 2 (handshake
//! era only), driven by the official SDK's client as the agent in both of its modes.
//! `make test` prepares the virtualenvs (`scripts/sdk-venv.sh`); these tests fail, not
//! skip, without them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::mcp::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_two_real_servers_for_agents_of_both_eras() {
    let logs = tempfile::tempdir().unwrap();
    let modern = Upstream::start(false, logs.path()).await;
    let legacy = Upstream::start(true, logs.path()).await;
    let s = embedded().await;
    let toolkit = json!({"toolkit": {
        "modern": {"expose_as": {"echo": "say"}},
        "legacy": {"tools": ["search", "weather"]},
    }});
    let f = mcp_fixture(&s.admin, "mcp-agg", &modern.url(), &legacy.url(), toolkit).await;
    wait_mcp(mcp_addr(&s), &f).await;
    for (mode, version) in [("legacy", "2025-11-25"), ("auto", "2026-07-28")] {
        let out = agent(
            mcp_addr(&s),
            &f,
            mode,
            json!([
                ["list_tools"],
                ["call", "say", {"text": "hi"}],
                ["call", "mod__search", {"query": "q"}],
                ["call", "leg__search", {"query": "q"}],
                ["call", "weather", {"city": "Oslo"}],
                ["call", "add", {"a": 2, "b": 3}],
                ["call", "explode", {}],
                ["call", "delete_everything", {}],
                ["progress", "slow", {"steps": 3}],
                ["list_prompts"],
                ["prompt", "summarize", {"text": "abc"}],
                ["list_resources"],
                ["list_templates"],
                ["read", "greeting://ada"],
                ["read", "docs://readme"],
                ["ping"],
            ]),
        )
        .await;
        assert_eq!(out[0]["protocol_version"], version, "{mode}: {out:?}");
        assert_eq!(
            out[1]["tools"],
            json!([
                "add",
                "explode",
                "leg__search",
                "mod__search",
                "say",
                "sleep",
                "slow",
                "weather",
                "whoami"
            ]),
            "{mode}: renamed, collided and filtered"
        );
        assert_eq!(out[2]["text"], json!(["modern:hi"]), "{mode}");
        assert_eq!(out[3]["text"], json!(["modern results for q"]), "{mode}");
        assert_eq!(out[4]["text"], json!(["legacy results for q"]), "{mode}");
        assert_eq!(out[5]["text"], json!(["sunny in Oslo"]), "{mode}");
        assert_eq!(out[6]["text"], json!(["5"]), "{mode}");
        assert_eq!(
            out[7]["is_error"], true,
            "{mode}: a tool error stays a tool error"
        );
        assert_eq!(
            out[8]["error"]["code"], -32002,
            "{mode}: filtered out: {:?}",
            out[8]
        );
        assert_eq!(out[9]["text"], json!(["done after 3"]), "{mode}");
        assert_eq!(
            out[9]["progress"].as_array().map(Vec::len),
            Some(3),
            "{mode}: upstream progress reaches the agent: {:?}",
            out[9]
        );
        assert_eq!(out[10]["prompts"], json!(["greet", "summarize"]), "{mode}");
        assert_eq!(out[11]["messages"], json!(["Summarize: abc"]), "{mode}");
        assert_eq!(out[12]["resources"], json!(["docs://readme"]), "{mode}");
        assert_eq!(out[13]["templates"], json!(["greeting://{name}"]), "{mode}");
        assert_eq!(out[14]["contents"], json!(["Hello, ada!"]), "{mode}");
        assert_eq!(out[15]["contents"], json!(["modern readme"]), "{mode}");
        if mode == "legacy" {
            assert_eq!(out[16]["pong"], true, "{mode}: {:?}", out[16]);
        } else {
            // `ping` was removed in 2026-07-28; the agent's own SDK says so.
            assert_eq!(out[16]["error"]["code"], -32601, "{mode}: {:?}", out[16]);
        }
    }
    let metrics = client()
        .get(format!("http://{}/metrics", mcp_addr(&s)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sluice_mcp_calls_total{") && metrics.contains("tool=\"say\""),
        "tool calls are counted per tool"
    );
    // Admin's live view of a registry's tools, straight from its server.
    let live = s
        .admin
        .ok(
            "GET",
            &format!(
                "/v1/gateways/{}/registries/{}/tools",
                f.gateway_id, f.legacy_id
            ),
            None,
            200,
        )
        .await;
    let names: Vec<_> = live["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            json!("search"),
            json!("weather"),
            json!("delete_everything"),
            json!("refresh")
        ]
    );
    modern_stopped(modern).await;
    let (status, body) = s
        .admin
        .send(
            "GET",
            &format!(
                "/v1/gateways/{}/registries/{}/tools",
                f.gateway_id, f.modern_id
            ),
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"].clone()),
        (502, json!("upstream_unavailable")),
        "{body}"
    );
    let _ = &f.consumer_id;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_govern_tool_calls_with_stable_error_codes() {
    let logs = tempfile::tempdir().unwrap();
    let modern = Upstream::start(false, logs.path()).await;
    let legacy = Upstream::start(true, logs.path()).await;
    let events = logs.path().join("telemetry.jsonl");
    let file = events.clone();
    let s = embedded_with(|st| st.telemetry_file = Some(file)).await;
    let f = mcp_fixture(
        &s.admin,
        "mcp-gov",
        &modern.url(),
        &legacy.url(),
        Value::Null,
    )
    .await;
    let fx = Fixture {
        gateway_id: f.gateway_id.clone(),
        gateway_slug: f.gateway_slug.clone(),
        registry_id: f.modern_id.clone(),
        consumer_id: f.consumer_id.clone(),
        consumer_slug: f.consumer_slug.clone(),
        auth_id: String::new(),
        key: f.key.clone(),
    };
    policy(
        &s.admin,
        &fx,
        json!({"name": "no weather", "slug": "tool_allowlist", "settings": {"deny": ["weather", "delete_*"]}}),
        true,
    )
    .await;
    policy(
        &s.admin,
        &fx,
        json!({"name": "two adds", "slug": "rate_limiter",
               "settings": {"limit": 2, "window": 60, "tools": ["add"]}}),
        true,
    )
    .await;
    wait_mcp(mcp_addr(&s), &f).await;
    let out = agent(
        mcp_addr(&s),
        &f,
        "legacy",
        json!([
            ["list_tools"],
            ["call", "weather", {"city": "Oslo"}],
            ["call", "add", {"a": 1, "b": 1}],
            ["call", "add", {"a": 1, "b": 1}],
            ["call", "add", {"a": 1, "b": 1}],
            ["call", "echo", {"text": "still fine"}],
            ["call", "nope", {}],
        ]),
    )
    .await;
    let tools = out[1]["tools"].as_array().unwrap();
    assert!(!tools.contains(&json!("weather")) && !tools.contains(&json!("delete_everything")));
    assert!(tools.contains(&json!("echo")), "{tools:?}");
    assert_eq!(out[2]["error"]["code"], -32001, "{:?}", out[2]);
    assert_eq!(out[2]["error"]["data"]["reason"], "policy_blocked");
    assert_eq!(out[3]["text"], json!(["2"]));
    assert_eq!(out[4]["text"], json!(["2"]));
    assert_eq!(out[5]["error"]["code"], -32004, "third add: {:?}", out[5]);
    assert!(
        out[5]["error"]["data"]["retry_after_secs"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(
        out[6]["text"],
        json!(["modern:still fine"]),
        "other tools are not limited"
    );
    assert_eq!(out[7]["error"]["code"], -32002, "{:?}", out[7]);

    // One telemetry event per call, with what it was and how it ended.
    let calls: Vec<Value> = eventually(Duration::from_secs(10), "the mcp events", || async {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        let calls: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "mcp")
            .collect();
        (calls.len() >= 6).then_some(calls)
    })
    .await;
    let outcome = |e: &Value| {
        (
            e["mcp"]["name"].as_str().unwrap_or("").to_string(),
            e["status"].as_u64().unwrap_or(0),
        )
    };
    let seen: Vec<_> = calls.iter().map(outcome).collect();
    assert_eq!(
        seen,
        [
            ("weather", 403),
            ("add", 200),
            ("add", 200),
            ("add", 429),
            ("echo", 200),
            ("nope", 404)
        ]
        .map(|(n, s)| (n.to_string(), s)),
        "{calls:?}"
    );
    let blocked = &calls[0];
    assert_eq!(blocked["error"], "policy_blocked");
    assert_eq!(blocked["mcp"]["registry_name"], "legacy");
    assert_eq!(blocked["policies"][0]["kind"], "tool_allowlist");
    assert_eq!(calls[1]["mcp"]["upstream_name"], "add");
    assert_eq!(calls[1]["mcp"]["method"], "tools/call");
    assert_eq!(calls[1]["gateway"]["slug"], "mcp-gov");
    assert!(calls[1]["latency"]["total_ms"].as_f64().unwrap() > 0.0);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_are_skipped_open_and_fail_closed() {
    let logs = tempfile::tempdir().unwrap();
    let modern = Upstream::start(false, logs.path()).await;
    let dead = format!("http://{}/mcp", free_addr());
    let s = embedded().await;
    let open = mcp_fixture(
        &s.admin,
        "mcp-open",
        &modern.url(),
        &dead,
        json!({"fail_mode": "open"}),
    )
    .await;
    let closed = mcp_fixture(
        &s.admin,
        "mcp-closed",
        &modern.url(),
        &dead,
        json!({"fail_mode": "closed"}),
    )
    .await;
    wait_mcp(mcp_addr(&s), &open).await;
    wait_mcp(mcp_addr(&s), &closed).await;
    let out = agent(
        mcp_addr(&s),
        &open,
        "auto",
        json!([
            ["list_tools"],
            ["call", "echo", {"text": "x"}],
            ["call", "not_listed", {}]
        ]),
    )
    .await;
    assert!(
        out[1]["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("search")),
        "the live server's tools, unprefixed (nothing collides): {out:?}"
    );
    assert_eq!(out[2]["text"], json!(["modern:x"]));
    assert_eq!(
        out[3]["error"]["code"], -32005,
        "a tool that is not there may be the left-out server's: {out:?}"
    );
    assert_eq!(out[3]["error"]["data"]["registry"], "legacy");
    let out = agent(mcp_addr(&s), &closed, "auto", json!([["list_tools"]])).await;
    assert_eq!(out[1]["error"]["code"], -32005, "{out:?}");
    assert_eq!(out[1]["error"]["data"]["registry"], "legacy");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_hop_replicas_and_survive_an_upstream_restart() {
    use sluice::{Plane, launch};
    use sluice_shared::settings::Settings;
    let logs = tempfile::tempdir().unwrap();
    let mut modern = Upstream::start(false, logs.path()).await;
    let legacy = Upstream::start(true, logs.path()).await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let settings = |i: usize| {
        let mut s = Settings::ephemeral(dirs[i].path().to_path_buf());
        s.redis_url = Some("redis://127.0.0.1:6379/15".into());
        s.admin_token = Some(ADMIN_TOKEN.into());
        s.secret_key = Some(SECRET_KEY.into());
        s
    };
    let admin_plane = launch(&settings(0), &[Plane::Admin]).await.unwrap();
    let one = launch(&settings(1), &[Plane::Mcp]).await.unwrap();
    let two = launch(&settings(2), &[Plane::Mcp]).await.unwrap();
    let admin = Admin::new(admin_plane.admin_addr.unwrap());
    let slug = format!("mcp-hop-{}", std::process::id());
    let f = mcp_fixture(&admin, &slug, &modern.url(), &legacy.url(), Value::Null).await;
    let (a, b) = (one.mcp_addr.unwrap(), two.mcp_addr.unwrap());
    wait_mcp(a, &f).await;
    wait_mcp(b, &f).await;

    // A raw client opens a session on replica one and goes on with it on replica two.
    let gw = ("x-ag-gateway-slug", f.gateway_slug.as_str());
    let key = ("x-ag-api-key", f.key.as_str());
    let (status, session, _, _) = rpc(a, &f.consumer_slug, &[gw, key], initialize()).await;
    assert_eq!(status, 200);
    let session = session.unwrap();
    let sid = ("mcp-session-id", session.as_str());
    let version = ("mcp-protocol-version", "2025-06-18");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _, _) = rpc(a, &f.consumer_slug, &[gw, key, sid, version], initialized).await;
    assert_eq!(status, 202);
    let call = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"text": "hop"}}})
    };
    let (status, _, msg, _) = rpc(b, &f.consumer_slug, &[gw, key, sid, version], call(2)).await;
    assert_eq!(status, 200, "{msg}");
    assert_eq!(
        msg["result"]["content"][0]["text"], "modern:hop",
        "served on replica two: {msg}"
    );

    // The upstream restarts (its sessions are gone); the same agent session goes on.
    modern.restart().await;
    let (_, _, msg, _) = rpc(b, &f.consumer_slug, &[gw, key, sid, version], call(3)).await;
    assert_eq!(msg["result"]["content"][0]["text"], "modern:hop", "{msg}");

    // The official SDK's agent, mid-session, while the upstream restarts under it.
    let flag = logs.path().join("restarted");
    let ready = logs.path().join("called");
    let steps = json!([
        ["call", "echo", {"text": "before"}],
        ["touch", ready.to_str().unwrap()],
        ["wait_file", flag.to_str().unwrap()],
        ["call", "echo", {"text": "after"}],
    ]);
    let run = {
        let f = f.clone();
        tokio::spawn(async move { agent(a, &f, "legacy", steps).await })
    };
    eventually(
        Duration::from_secs(60),
        "the agent's first call",
        || async { ready.exists().then_some(()) },
    )
    .await;
    modern.restart().await;
    std::fs::write(&flag, b"1").unwrap();
    let out = run.await.unwrap();
    assert_eq!(out[1]["text"], json!(["modern:before"]), "{out:?}");
    assert_eq!(out[4]["text"], json!(["modern:after"]), "{out:?}");

    for r in [two, one, admin_plane] {
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_list_change_reaches_the_agent() {
    let logs = tempfile::tempdir().unwrap();
    let legacy = Upstream::start(true, logs.path()).await;
    let s = embedded().await;
    let f = mcp_fixture(
        &s.admin,
        "mcp-changed",
        &legacy.url(),
        &legacy.url(),
        Value::Null,
    )
    .await;
    wait_mcp(mcp_addr(&s), &f).await;
    let out = agent(
        mcp_addr(&s),
        &f,
        "legacy",
        json!([
            ["list_tools"],
            ["call", "leg__refresh", {}],
            ["wait_notification", "notifications/tools/list_changed"],
        ]),
    )
    .await;
    assert!(
        out[1]["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("leg__refresh")),
        "{out:?}"
    );
    assert_eq!(out[2]["text"], json!(["refreshed"]), "{out:?}");
    assert_eq!(
        out[3]["notified"], "notifications/tools/list_changed",
        "the upstream's notification is passed on: {out:?}"
    );
    s.running.shutdown().await;
}

/// The stateless era (2026-07-28) has no standing stream: the agent asks for changes
/// with `subscriptions/listen`, and so does sluice of a stateless-era upstream. A
/// change at the upstream reaches the agent through both, and the next listing has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_change_reaches_a_stateless_era_agent_from_a_stateless_era_server() {
    let logs = tempfile::tempdir().unwrap();
    let (_upstream, port) = mcp_script("changing_server.py", &[], logs.path()).await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let s = embedded().await;
    let f = mcp_fixture(&s.admin, "mcp-listen", &url, &url, Value::Null).await;
    wait_mcp(mcp_addr(&s), &f).await;
    let out = agent(
        mcp_addr(&s),
        &f,
        "auto",
        json!([
            ["listen"],
            ["list_tools"],
            ["call", "mod__refresh", {}],
            ["wait_notification", "notifications/tools/list_changed"],
            ["list_tools"],
        ]),
    )
    .await;
    assert_eq!(out[0]["protocol_version"], "2026-07-28", "{out:?}");
    assert_eq!(
        out[1]["listening"], true,
        "sluice honours the filter: {out:?}"
    );
    let before = out[2]["tools"].as_array().unwrap();
    assert!(!before.contains(&json!("mod__fresh")), "{out:?}");
    assert_eq!(out[3]["text"], json!(["refreshed"]), "{out:?}");
    assert_eq!(
        out[4]["notified"], "notifications/tools/list_changed",
        "the upstream's change reaches the listening agent: {out:?}"
    );
    assert!(
        out[5]["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("mod__fresh")),
        "the cached listing was dropped: {out:?}"
    );
    s.running.shutdown().await;
}
