//! Helpers of the MCP suites (tests/mcp.rs, tests/mcp_auth.rs): the upstream MCP
//! servers (an official-SDK one of both eras, a FastMCP 2 one of the handshake era),
//! fixtures, the SDK agent, and raw JSON-RPC over the streamable-HTTP transport.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The official SDK (mcp 2.x) and the SDK-built server run here.
pub fn sdk_python() -> PathBuf {
    root().join(".venv-sdk/bin/python")
}

/// FastMCP 2 on mcp 1.x: a server of the handshake era.
pub fn legacy_python() -> PathBuf {
    root().join(".venv-mcp-legacy/bin/python")
}

/// An upstream MCP server process on a port of its own.
pub struct Upstream {
    pub process: Process,
    pub port: u16,
    pub legacy: bool,
    pub log_dir: PathBuf,
}

impl Upstream {
    pub async fn start(legacy: bool, log_dir: &Path) -> Self {
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

    pub fn spawn(legacy: bool, port: u16, log_dir: &Path) -> Process {
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

    pub async fn wait(&mut self) {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        eventually(Duration::from_secs(60), "upstream MCP server", || async {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Stop the server and start it again on the same port: its sessions are gone.
    pub async fn restart(&mut self) {
        self.process.interrupt();
        self.process = Self::spawn(self.legacy, self.port, &self.log_dir);
        self.wait().await;
    }
}

/// A gateway with two MCP registries and an MCP consumer with a key.
#[derive(Clone)]
pub struct McpFixture {
    pub gateway_id: String,
    pub gateway_slug: String,
    pub consumer_id: String,
    pub consumer_slug: String,
    pub key: String,
    pub modern_id: String,
    pub legacy_id: String,
}

pub async fn mcp_fixture(
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
pub async fn agent(addr: SocketAddr, f: &McpFixture, mode: &str, steps: Value) -> Vec<Value> {
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

/// Wait until the MCP plane serves the consumer with the fixture's key (its config has
/// arrived). A 403 is not enough: between the admin's writes that create the key's auth
/// and attach it to the consumer, a snapshot knows the key but not that it is this
/// consumer's.
pub async fn wait_mcp(addr: SocketAddr, f: &McpFixture) {
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
            (![401, 403, 404].contains(&status)).then_some(())
        }
    })
    .await;
}

/// Stop an upstream for good.
pub async fn modern_stopped(mut u: Upstream) {
    u.process.interrupt();
}

pub fn mcp_addr(s: &Embedded) -> SocketAddr {
    s.running.mcp_addr.expect("mcp plane")
}

/// A JSON-RPC POST to the MCP endpoint; returns the status, the session header and
/// the JSON-RPC message (from a JSON or an SSE body).
pub async fn rpc(
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
pub async fn modern_only(
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
pub async fn initialize_with(
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
pub async fn second_consumer(admin: &Admin, f: &McpFixture, name: &str) -> (String, String) {
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

pub fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
}

/// A raw handshake-era session with `auth` as the Authorization header; calls `tool`
/// and returns the JSON-RPC answer.
pub async fn call_with(addr: SocketAddr, f: &McpFixture, auth: &str, tool: &str) -> Value {
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

/// An RFC 8693 token endpoint: it answers a token exchange with
/// `exchanged:{audience}:{first 12 characters of the subject token}`, anything else
/// with 400.
pub async fn token_exchange_endpoint() -> SocketAddr {
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

/// A Python program on a port of its own: `python {before} PORT {after}`, once it
/// listens.
pub async fn python_on_port(
    name: &'static str,
    before: &[&str],
    after: &[&str],
    log_dir: &Path,
) -> (Process, u16) {
    let port = free_addr().port();
    let mut cmd = Command::new(sdk_python());
    cmd.args(before).arg(port.to_string()).args(after);
    let process = Process::spawn(name, cmd, log_dir);
    eventually(Duration::from_secs(60), name, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    (process, port)
}

/// One of the test MCP servers in `tests/mcp/`, on a port of its own.
pub async fn mcp_script(script: &'static str, after: &[&str], log_dir: &Path) -> (Process, u16) {
    let path = root().join("tests/mcp").join(script);
    python_on_port(script, &[path.to_str().unwrap()], after, log_dir).await
}

/// A gateway whose one MCP registry (`target` is its `mcp_target`) is linked to one
/// MCP consumer (`mcp` its `mcp` settings), with no auth yet.
pub struct OneServer {
    pub gid: String,
    pub rid: String,
    pub cid: String,
    pub consumer_slug: String,
}

pub async fn one_server(admin: &Admin, gateway: &str, target: Value, mcp: Value) -> OneServer {
    let id = |v: Value| v["id"].as_str().unwrap().to_string();
    let gid = id(admin
        .ok(
            "POST",
            "/v1/gateways",
            Some(json!({"name": gateway, "slug": gateway})),
            201,
        )
        .await);
    let rid = id(admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/registries"),
            Some(json!({"name": "upstream", "type": "MCP", "mcp_target": target})),
            201,
        )
        .await);
    let consumer = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers"),
            Some(json!({"name": "agents", "type": "MCP", "mcp": mcp})),
            201,
        )
        .await;
    let cid = id(consumer.clone());
    admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers/{cid}/registries/{rid}"),
            Some(json!({"weight": 1})),
            200,
        )
        .await;
    OneServer {
        gid,
        rid,
        cid,
        consumer_slug: consumer["slug"].as_str().unwrap().to_string(),
    }
}

impl OneServer {
    /// The fixture the raw-session helpers take, for callers with `key`.
    pub fn fixture(&self, gateway: &str, key: &str) -> McpFixture {
        McpFixture {
            gateway_id: self.gid.clone(),
            gateway_slug: gateway.into(),
            consumer_id: self.cid.clone(),
            consumer_slug: self.consumer_slug.clone(),
            key: key.into(),
            modern_id: self.rid.clone(),
            legacy_id: self.rid.clone(),
        }
    }
}
