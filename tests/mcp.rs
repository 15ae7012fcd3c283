//! The MCP plane against real MCP servers this project did not write: one built with
//! the official MCP Python SDK (both protocol eras) and one with FastMCP 2 (handshake
//! era only), driven by the official SDK's client as the agent in both of its modes.
//! `make test` prepares the virtualenvs (`scripts/sdk-venv.sh`); these tests fail, not
//! skip, without them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The official SDK (mcp 2.x) and the SDK-built server run here.
fn sdk_python() -> PathBuf {
    root().join(".venv-sdk/bin/python")
}

/// FastMCP 2 on mcp 1.x: a server of the handshake era.
fn legacy_python() -> PathBuf {
    root().join(".venv-mcp-legacy/bin/python")
}

/// An upstream MCP server process on a port of its own.
struct Upstream {
    process: Process,
    port: u16,
    legacy: bool,
    log_dir: PathBuf,
}

impl Upstream {
    async fn start(legacy: bool, log_dir: &Path) -> Self {
        let port = free_addr().port();
        let mut u = Self {
            process: Self::spawn(legacy, port, log_dir),
            port,
            legacy,
            log_dir: log_dir.to_path_buf(),
        };
        u.wait().await;
        u.port = port;
        u
    }

    fn spawn(legacy: bool, port: u16, log_dir: &Path) -> Process {
        let (python, script, name) = if legacy {
            (legacy_python(), "legacy_server.py", "legacy-mcp")
        } else {
            (sdk_python(), "modern_server.py", "modern-mcp")
        };
        assert!(
            python.exists(),
            "{} is missing: run scripts/sdk-venv.sh (make test does)",
            python.display()
        );
        let mut cmd = Command::new(python);
        cmd.arg(root().join("tests/mcp").join(script))
            .arg(port.to_string());
        Process::spawn(name, cmd, log_dir)
    }

    async fn wait(&mut self) {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        eventually(Duration::from_secs(60), "upstream MCP server", || async {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Stop the server and start it again on the same port: its sessions are gone.
    async fn restart(&mut self) {
        self.process.interrupt();
        self.process = Self::spawn(self.legacy, self.port, &self.log_dir);
        self.wait().await;
    }
}

/// A gateway with two MCP registries and an MCP consumer with a key.
#[derive(Clone)]
struct McpFixture {
    gateway_id: String,
    gateway_slug: String,
    consumer_id: String,
    consumer_slug: String,
    key: String,
    modern_id: String,
    legacy_id: String,
}

async fn mcp_fixture(
    admin: &Admin,
    slug: &str,
    modern: &str,
    legacy: &str,
    mcp: Value,
) -> McpFixture {
    let gw = admin
        .ok(
            "POST",
            "/v1/gateways",
            Some(json!({"name": slug, "slug": slug})),
            201,
        )
        .await;
    let gid = gw["id"].as_str().unwrap().to_string();
    let registry = |name: &str, code: &str, url: &str| json!({"name": name, "type": "MCP", "mcp_target": {"url": url, "code": code}});
    let modern_id = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/registries"),
            Some(registry("modern", "mod", modern)),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let legacy_id = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/registries"),
            Some(registry("legacy", "leg", legacy)),
            201,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut consumer = json!({"name": "agent", "type": "MCP"});
    if !mcp.is_null() {
        consumer["mcp"] = mcp;
    }
    let consumer = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers"),
            Some(consumer),
            201,
        )
        .await;
    let cid = consumer["id"].as_str().unwrap().to_string();
    for rid in [&modern_id, &legacy_id] {
        admin
            .ok(
                "POST",
                &format!("/v1/gateways/{gid}/consumers/{cid}/registries/{rid}"),
                Some(json!({"weight": 1})),
                200,
            )
            .await;
    }
    let (_, key) = attach_key(admin, &gid, &cid).await;
    McpFixture {
        gateway_id: gid,
        gateway_slug: slug.to_string(),
        consumer_id: cid,
        consumer_slug: consumer["slug"].as_str().unwrap().to_string(),
        key,
        modern_id,
        legacy_id,
    }
}

/// Run the SDK agent against `addr` and return its JSON lines (the first one is the
/// negotiated protocol version).
async fn agent(addr: SocketAddr, f: &McpFixture, mode: &str, steps: Value) -> Vec<Value> {
    let url = format!("http://{addr}/{}/mcp", f.consumer_slug);
    let headers = json!({"X-AG-API-Key": f.key, "X-AG-Gateway-Slug": f.gateway_slug});
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(sdk_python())
            .arg(root().join("tests/mcp/agent.py"))
            .args([
                url,
                headers.to_string(),
                mode.to_string(),
                steps.to_string(),
            ])
            .output(),
    )
    .await
    .expect("agent finishes")
    .expect("agent runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "agent failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("agent line: {l}")))
        .collect()
}

/// Wait until the MCP plane serves the consumer (its config has arrived).
async fn wait_mcp(addr: SocketAddr, f: &McpFixture) {
    let http = client();
    let url = format!("http://{addr}/{}/mcp", f.consumer_slug);
    eventually(Duration::from_secs(10), "mcp consumer served", || {
        let req = http
            .delete(&url)
            .header("x-ag-api-key", &f.key)
            .header("x-ag-gateway-slug", &f.gateway_slug)
            .send();
        async move {
            let status = req.await.ok()?.status().as_u16();
            (status != 404 && status != 401).then_some(())
        }
    })
    .await;
}

/// Stop an upstream for good.
async fn modern_stopped(mut u: Upstream) {
    u.process.interrupt();
}

fn mcp_addr(s: &Embedded) -> SocketAddr {
    s.running.mcp_addr.expect("mcp plane")
}

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
            json!("delete_everything")
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
        json!([["list_tools"], ["call", "echo", {"text": "x"}]]),
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
    let out = agent(mcp_addr(&s), &closed, "auto", json!([["list_tools"]])).await;
    assert_eq!(out[1]["error"]["code"], -32005, "{out:?}");
    assert_eq!(out[1]["error"]["data"]["registry"], "legacy");
    s.running.shutdown().await;
}

/// A JSON-RPC POST to the MCP endpoint; returns the status, the session header and
/// the JSON-RPC message (from a JSON or an SSE body).
async fn rpc(
    addr: SocketAddr,
    consumer: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Option<String>, Value, reqwest::header::HeaderMap) {
    let mut req = client()
        .post(format!("http://{addr}/{consumer}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let hdrs = resp.headers().clone();
    let session = hdrs
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let message = serde_json::from_str(&text).unwrap_or_else(|_| {
        sse_data(&text)
            .iter()
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|m| m.get("id").is_some())
            .unwrap_or(Value::Null)
    });
    (status, session, message, hdrs)
}

/// A fresh embedded sluice whose fixture has the modern server behind both
/// registries, served by its MCP plane.
async fn modern_only(
    slug: &str,
    mcp: Value,
) -> (tempfile::TempDir, Upstream, Embedded, McpFixture) {
    let logs = tempfile::tempdir().unwrap();
    let modern = Upstream::start(false, logs.path()).await;
    let s = embedded().await;
    let f = mcp_fixture(&s.admin, slug, &modern.url(), &modern.url(), mcp).await;
    wait_mcp(mcp_addr(&s), &f).await;
    (logs, modern, s, f)
}

/// `initialize` with a bearer token.
async fn initialize_with(
    addr: SocketAddr,
    f: &McpFixture,
    token: &str,
) -> (u16, Option<String>, Value, reqwest::header::HeaderMap) {
    let bearer = format!("Bearer {token}");
    let gw = ("x-ag-gateway-slug", f.gateway_slug.as_str());
    rpc(
        addr,
        &f.consumer_slug,
        &[gw, ("authorization", &bearer)],
        initialize(),
    )
    .await
}

/// Another MCP consumer of the fixture's gateway, reaching its modern registry:
/// its slug and id.
async fn second_consumer(admin: &Admin, f: &McpFixture, name: &str) -> (String, String) {
    let gid = &f.gateway_id;
    let c = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers"),
            Some(json!({"name": name, "type": "MCP"})),
            201,
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    admin
        .ok(
            "POST",
            &format!(
                "/v1/gateways/{gid}/consumers/{id}/registries/{}",
                f.modern_id
            ),
            Some(json!({"weight": 1})),
            200,
        )
        .await;
    (c["slug"].as_str().unwrap().to_string(), id)
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_the_right_key_are_refused_before_any_session() {
    let (_logs, _modern, s, a) = modern_only("mcp-auth", Value::Null).await;
    let gid = &a.gateway_id;
    let (b_slug, b_id) = second_consumer(&s.admin, &a, "other").await;
    let auth = s
        .admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/auths"),
            Some(json!({"name": "b key", "type": "api_key"})),
            201,
        )
        .await;
    let b_key = auth["key"].as_str().unwrap().to_string();
    s.admin
        .ok(
            "POST",
            &format!(
                "/v1/gateways/{gid}/consumers/{b_id}/auths/{}",
                auth["id"].as_str().unwrap()
            ),
            None,
            200,
        )
        .await;
    // Consumer b and its key are served too before they are used.
    let b_fixture = McpFixture {
        consumer_slug: b_slug.clone(),
        key: b_key.clone(),
        ..a.clone()
    };
    wait_mcp(mcp_addr(&s), &b_fixture).await;
    let addr = mcp_addr(&s);
    let gw = ("x-ag-gateway-slug", a.gateway_slug.as_str());

    let (status, session, msg, hdrs) = rpc(addr, &a.consumer_slug, &[gw], initialize()).await;
    assert_eq!(status, 401);
    assert!(session.is_none());
    assert!(
        hdrs.get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        msg["error"]["data"]["reason"], "missing_credentials",
        "{msg}"
    );
    let (status, _, msg, _) = rpc(
        addr,
        &a.consumer_slug,
        &[gw, ("x-ag-api-key", "ag_not-a-key")],
        initialize(),
    )
    .await;
    assert_eq!(
        (status, msg["error"]["data"]["reason"].clone()),
        (401, json!("invalid_api_key"))
    );
    let (status, _, msg, _) = rpc(
        addr,
        &a.consumer_slug,
        &[gw, ("x-ag-api-key", &b_key)],
        initialize(),
    )
    .await;
    assert_eq!(
        (status, msg["error"]["data"]["reason"].clone()),
        (403, json!("key_not_for_consumer"))
    );
    let (status, _, _, _) = rpc(
        addr,
        "nobody",
        &[gw, ("x-ag-api-key", &a.key)],
        initialize(),
    )
    .await;
    assert_eq!(status, 404);

    // A session opened by consumer A is not consumer B's, even with B's own key.
    let (status, session, msg, _) = rpc(
        addr,
        &a.consumer_slug,
        &[gw, ("x-ag-api-key", &a.key)],
        initialize(),
    )
    .await;
    assert_eq!(status, 200, "{msg}");
    let session = session.expect("a session id");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (_, _, msg, _) = rpc(
        addr,
        &b_slug,
        &[
            gw,
            ("x-ag-api-key", &b_key),
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        list.clone(),
    )
    .await;
    assert!(
        msg["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("another consumer"),
        "{msg}"
    );
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
async fn the_sdk_signs_in_through_sluices_authorization_server() {
    let (_logs, _modern, s, f) = modern_only("mcp-oauth", json!({"toolkit": {"modern": {}}})).await;
    let addr = mcp_addr(&s);
    let url = format!("http://{addr}/{}/mcp", f.consumer_slug);

    // Without credentials the endpoint says where its authorization metadata is.
    let (status, _, _, hdrs) = rpc(
        addr,
        &f.consumer_slug,
        &[("x-ag-gateway-slug", &f.gateway_slug)],
        initialize(),
    )
    .await;
    assert_eq!(status, 401);
    let challenge = hdrs
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/{}/mcp?gateway={}\"",
            f.consumer_slug, f.gateway_slug
        )
    );

    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(sdk_python())
            .arg(root().join("tests/mcp/oauth_agent.py"))
            .args([&url, &f.gateway_slug, &f.key])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sign_in_pages"], 1, "{r}");
    assert_eq!(r["sign_in_status"], 200);
    assert_eq!(
        r["wrong_key_status"], 401,
        "a wrong key gets the form again"
    );
    assert_eq!(r["authorize_status"], 303, "{r}");
    assert!(
        r["tools"].as_array().unwrap().contains(&json!("echo")),
        "{r}"
    );
    assert_eq!(r["after_refresh"], json!(["modern:after refresh"]));
    assert_ne!(
        r["first_access"], r["second_access"],
        "the refresh issued a new token"
    );

    // The old access token still works until it expires; the used refresh token never again.
    let http = client();
    let token = |body: Vec<(&str, &str)>| {
        http.post(format!("http://{addr}/oauth/{}/token", f.gateway_slug))
            .header("x-ag-gateway-slug", &f.gateway_slug)
            .form(&body)
            .send()
    };
    let again = token(vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", r["first_refresh"].as_str().unwrap()),
        ("client_id", r["client_id"].as_str().unwrap()),
    ])
    .await
    .unwrap();
    assert_eq!(again.status().as_u16(), 400);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // A token is worth one consumer: presented on another's endpoint it is refused.
    let bearer = format!("Bearer {}", r["second_access"].as_str().unwrap());
    let gw = ("x-ag-gateway-slug", f.gateway_slug.as_str());
    let (status, _, _, _) = rpc(
        addr,
        &f.consumer_slug,
        &[gw, ("authorization", &bearer)],
        initialize(),
    )
    .await;
    assert_eq!(status, 200);
    let (other_slug, _) = second_consumer(&s.admin, &f, "b").await;
    let (status, _, msg, hdrs) = eventually(Duration::from_secs(10), "consumer b served", || {
        let bearer = bearer.clone();
        let other_slug = other_slug.clone();
        async move {
            let r = rpc(
                addr,
                &other_slug,
                &[gw, ("authorization", &bearer)],
                initialize(),
            )
            .await;
            (r.0 != 404).then_some(r)
        }
    })
    .await;
    assert_eq!(
        (status, msg["error"]["data"]["reason"].clone()),
        (401, json!("invalid_token"))
    );
    assert!(
        hdrs.get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_server_refuses_hostile_requests() {
    let (_logs, _modern, s, f) = modern_only("mcp-as", Value::Null).await;
    let base = format!("http://{}/oauth/{}", mcp_addr(&s), f.gateway_slug);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta: Value = http
        .get(format!(
            "http://{}/.well-known/oauth-authorization-server/oauth/{}",
            mcp_addr(&s),
            f.gateway_slug
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], base);
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));

    // Registration: only https or loopback redirects.
    let reg = |uris: Value| {
        http.post(format!("{base}/register"))
            .json(&json!({"redirect_uris": uris, "token_endpoint_auth_method": "none"}))
            .send()
    };
    let bad = reg(json!(["http://evil.example/cb"])).await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"],
        "invalid_redirect_uri"
    );
    let client: Value = reg(json!(["http://127.0.0.1:9/cb"]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = client["client_id"].as_str().unwrap();
    assert!(
        client.get("client_secret").is_none(),
        "a public client gets no secret"
    );

    let verifier = "a-verifier-that-is-long-enough-to-be-a-real-pkce-verifier-0123456789";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let resource = format!("http://{}/{}/mcp", mcp_addr(&s), f.consumer_slug);
    let params = |redirect: &str, method: &str| {
        vec![
            ("response_type", "code".to_string()),
            ("client_id", client_id.to_string()),
            ("redirect_uri", redirect.to_string()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", method.to_string()),
            ("resource", resource.clone()),
            ("state", "s1".to_string()),
        ]
    };
    // An unregistered redirect is shown an error, never redirected to.
    let r = http
        .get(format!("{base}/authorize"))
        .query(&params("http://127.0.0.1:9/other", "S256"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // plain PKCE is refused.
    let r = http
        .get(format!("{base}/authorize"))
        .query(&params("http://127.0.0.1:9/cb", "plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // A sign-in page whose values are escaped.
    let mut p = params("http://127.0.0.1:9/cb", "S256");
    p[6].1 = "\"><script>alert(1)</script>".into();
    let page = http
        .get(format!("{base}/authorize"))
        .query(&p)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>alert"), "{page}");

    // A code, redeemed with a wrong verifier, then with the right one once.
    let mut form = params("http://127.0.0.1:9/cb", "S256");
    form.push(("api_key", f.key.clone()));
    let r = http
        .post(format!("{base}/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(
        location
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1,
        "s1"
    );
    let redeem = |verifier: &str| {
        http.post(format!("{base}/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("client_id", client_id),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let wrong = redeem("not-the-verifier").await.unwrap();
    assert_eq!(wrong.status().as_u16(), 400);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // The failed attempt used the code up: a code is tried once.
    let again = redeem(verifier).await.unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let r = http
        .post(format!("{base}/token"))
        .form(&[("grant_type", "password"), ("client_id", client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_an_issuer_the_consumer_trusts_open_the_endpoint() {
    let (_logs, _modern, s, f) = modern_only("mcp-jwt", Value::Null).await;
    let jwks = serve_json(JWKS.to_string()).await;
    let auth = s
        .admin
        .ok(
            "POST",
            &format!("/v1/gateways/{}/auths", f.gateway_id),
            Some(
                json!({"name": "idp", "type": "oauth2", "oauth2": {"issuer": "https://idp.test",
                "audiences": ["sluice-mcp"], "jwks_url": format!("http://{jwks}/jwks.json"),
                "required_scopes": ["mcp"]}}),
            ),
            201,
        )
        .await;
    s.admin
        .ok(
            "POST",
            &format!(
                "/v1/gateways/{}/consumers/{}/auths/{}",
                f.gateway_id,
                f.consumer_id,
                auth["id"].as_str().unwrap()
            ),
            None,
            200,
        )
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |aud: &str, scope: &str, exp: u64| json!({"iss": "https://idp.test", "aud": aud, "sub": "agent-7", "exp": exp, "scope": scope});
    let addr = mcp_addr(&s);
    let good = rs256(&claims("sluice-mcp", "mcp read", now + 600));
    eventually(Duration::from_secs(10), "the oauth2 auth applies", || {
        let good = good.clone();
        let f = &f;
        async move { (initialize_with(addr, f, &good).await.0 == 200).then_some(()) }
    })
    .await;
    for (token, expected) in [
        (
            rs256(&claims("someone-else", "mcp", now + 600)),
            (401, "invalid_token"),
        ),
        (
            rs256(&claims("sluice-mcp", "read", now + 600)),
            (403, "insufficient_scope"),
        ),
        (
            rs256(&claims("sluice-mcp", "mcp", now - 600)),
            (401, "invalid_token"),
        ),
    ] {
        let (status, _, msg, _) = initialize_with(addr, &f, &token).await;
        assert_eq!(
            (
                status,
                msg["error"]["data"]["reason"].as_str().unwrap_or("")
            ),
            expected,
            "{msg}"
        );
    }
    s.running.shutdown().await;
}

/// A raw handshake-era session with `auth` as the Authorization header; calls `tool`
/// and returns the JSON-RPC answer.
async fn call_with(addr: SocketAddr, f: &McpFixture, auth: &str, tool: &str) -> Value {
    let gw = ("x-ag-gateway-slug", f.gateway_slug.as_str());
    let authz = ("authorization", auth);
    let (status, session, msg, _) = rpc(addr, &f.consumer_slug, &[gw, authz], initialize()).await;
    assert_eq!(status, 200, "{msg}");
    let session = session.unwrap();
    let headers = [
        gw,
        authz,
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    rpc(addr, &f.consumer_slug, &headers, initialized).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": tool, "arguments": {}}});
    rpc(addr, &f.consumer_slug, &headers, call).await.2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_see_the_registrys_token_or_the_callers_own() {
    let logs = tempfile::tempdir().unwrap();
    let modern = Upstream::start(false, logs.path()).await;
    let s = embedded().await;
    let token_endpoint = serve_json(
        json!({"access_token": "cc-token-1", "token_type": "Bearer", "expires_in": 3600})
            .to_string(),
    )
    .await;
    let jwks = serve_json(JWKS.to_string()).await;
    let exchange = token_exchange_endpoint().await;
    let gw = s
        .admin
        .ok(
            "POST",
            "/v1/gateways",
            Some(json!({"name": "mcp-up", "slug": "mcp-up"})),
            201,
        )
        .await;
    let gid = gw["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for (name, auth) in [
        (
            "cc",
            json!({"mode": "client_credentials", "token_url": format!("http://{token_endpoint}/token"),
                      "client_id": "sluice", "client_secret": "s3cret"}),
        ),
        (
            "pt",
            json!({"mode": "passthrough", "audience": "modern-mcp"}),
        ),
        (
            "ex",
            json!({"mode": "exchange", "token_url": format!("http://{exchange}/token"),
                   "client_id": "sluice", "client_secret": "s3cret", "audience": "modern-mcp"}),
        ),
    ] {
        let r = s
            .admin
            .ok(
                "POST",
                &format!("/v1/gateways/{gid}/registries"),
                Some(json!({"name": name, "type": "MCP",
                            "mcp_target": {"url": modern.url(), "code": name, "auth": auth}})),
                201,
            )
            .await;
        assert!(
            !r.to_string().contains("s3cret"),
            "the client secret is never shown: {r}"
        );
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let consumer = s
        .admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers"),
            Some(
                json!({"name": "agent", "type": "MCP", "mcp": {"fail_mode": "closed",
                "toolkit": {"cc": {"tools": ["whoami"]}, "pt": {"tools": ["whoami"]},
                            "ex": {"tools": ["whoami"]}}}}),
            ),
            201,
        )
        .await;
    let cid = consumer["id"].as_str().unwrap().to_string();
    for rid in &ids {
        s.admin
            .ok(
                "POST",
                &format!("/v1/gateways/{gid}/consumers/{cid}/registries/{rid}"),
                Some(json!({"weight": 1})),
                200,
            )
            .await;
    }
    let auth = s
        .admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/auths"),
            Some(
                json!({"name": "idp", "type": "oauth2", "oauth2": {"issuer": "https://idp.test",
                "audiences": ["sluice-mcp"], "jwks_url": format!("http://{jwks}/jwks.json")}}),
            ),
            201,
        )
        .await;
    s.admin
        .ok(
            "POST",
            &format!(
                "/v1/gateways/{gid}/consumers/{cid}/auths/{}",
                auth["id"].as_str().unwrap()
            ),
            None,
            200,
        )
        .await;
    let (_, key) = attach_key(&s.admin, &gid, &cid).await;
    let f = McpFixture {
        gateway_id: gid.clone(),
        gateway_slug: "mcp-up".into(),
        consumer_id: cid.clone(),
        consumer_slug: consumer["slug"].as_str().unwrap().to_string(),
        key: key.clone(),
        modern_id: ids[0].clone(),
        legacy_id: ids[1].clone(),
    };
    wait_mcp(mcp_addr(&s), &f).await;
    let addr = mcp_addr(&s);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let jwt = rs256(
        &json!({"iss": "https://idp.test", "aud": ["sluice-mcp", "modern-mcp"],
                            "sub": "agent-7", "exp": exp}),
    );
    let bearer = format!("Bearer {jwt}");

    // The registry's own token, from its token endpoint.
    let msg = call_with(addr, &f, &bearer, "cc__whoami").await;
    assert_eq!(
        msg["result"]["content"][0]["text"], "Bearer cc-token-1",
        "{msg}"
    );
    // The caller's own token, because it names the server as an audience.
    let msg = call_with(addr, &f, &bearer, "pt__whoami").await;
    assert_eq!(
        msg["result"]["content"][0]["text"],
        bearer.as_str(),
        "{msg}"
    );

    // A token for the server, exchanged for the caller's (RFC 8693).
    let msg = call_with(addr, &f, &bearer, "ex__whoami").await;
    assert_eq!(
        msg["result"]["content"][0]["text"],
        format!("Bearer exchanged:modern-mcp:{}", &jwt[..12]),
        "{msg}"
    );

    // A token not meant for the server is never replayed to it; an API key has no
    // token to pass through.
    let narrow = format!(
        "Bearer {}",
        rs256(
            &json!({"iss": "https://idp.test", "aud": "sluice-mcp", "sub": "agent-7", "exp": exp})
        )
    );
    let msg = call_with(addr, &f, &narrow, "pt__whoami").await;
    assert_eq!(msg["error"]["code"], -32005, "fail_mode closed: {msg}");
    assert!(
        msg["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not meant for modern-mcp"),
        "{msg}"
    );
    let msg = call_with(addr, &f, &format!("Bearer {key}"), "pt__whoami").await;
    assert_eq!(msg["error"]["code"], -32005, "{msg}");
    // The registry's own token needs no caller token.
    let msg = call_with(addr, &f, &format!("Bearer {key}"), "cc__whoami").await;
    assert_eq!(
        msg["result"]["content"][0]["text"], "Bearer cc-token-1",
        "{msg}"
    );
    s.running.shutdown().await;
}

/// An RFC 8693 token endpoint: it answers a token exchange with
/// `exchanged:{audience}:{first 12 characters of the subject token}`, anything else
/// with 400.
async fn token_exchange_endpoint() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let body_at = loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                    if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..body_at]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while request.len() < body_at + length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let form: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(&request[body_at..])
                        .into_owned()
                        .collect();
                let exchange = form.get("grant_type").map(String::as_str)
                    == Some("urn:ietf:params:oauth:grant-type:token-exchange");
                let (status, body) = match (
                    exchange,
                    form.get("subject_token"),
                    form.get("audience"),
                ) {
                    (true, Some(subject), Some(audience)) if subject.len() > 12 => (
                        "200 OK",
                        json!({"access_token": format!("exchanged:{audience}:{}", &subject[..12]),
                               "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                               "token_type": "Bearer", "expires_in": 600}),
                    ),
                    _ => ("400 Bad Request", json!({"error": "invalid_request"})),
                };
                let body = body.to_string();
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    addr
}
