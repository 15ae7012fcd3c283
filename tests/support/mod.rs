//! The test harness shared by the scenario suites: a mock provider on port 0, sluice
//! either in-process or as separate processes, and small helpers that drive the admin
//! API and the proxy over HTTP as a user would.

#![allow(dead_code)]

pub mod mcp;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sluice::{Plane, Running, launch};
use sluice_loadtest::{MockConfig, MockProvider};
use sluice_shared::settings::Settings;

/// The admin token of these tests.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// The secret key of these tests (32 bytes of 0x2a, base64).
pub const SECRET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// The upstream key every mock of these tests demands.
pub const UPSTREAM_KEY: &str = "sk-upstream-secret";

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// A mock provider that checks the upstream key and records requests.
pub async fn mock(name: &str) -> MockProvider {
    MockProvider::start(
        "127.0.0.1:0".parse().expect("addr"),
        MockConfig {
            name: name.into(),
            api_key: Some(UPSTREAM_KEY.into()),
            record: true,
            ..MockConfig::default()
        },
    )
    .await
    .expect("mock starts")
}

/// Retry `check` until it returns `Some`, or fail after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub const PG: &str = "postgres://postgres@127.0.0.1:5432";

/// A fresh, empty PostgreSQL database for one test.
pub async fn fresh_database(name: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&format!("{PG}/postgres"))
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    let db = format!("sluice_test_{name}_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .expect("drop");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut conn)
        .await
        .expect("create");
    format!("{PG}/{db}")
}

/// A client of the admin API.
#[derive(Clone)]
pub struct Admin {
    pub base: String,
    pub http: Client,
}

impl Admin {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            http: client(),
        }
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).expect("admin answers JSON")
            },
        )
    }

    /// Send and insist on `expected`.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>, expected: u16) -> Value {
        let (status, value) = self.send(method, path, body).await;
        assert_eq!(
            status.as_u16(),
            expected,
            "{method} {path} answered {value}"
        );
        value
    }
}

/// A gateway with one consumer, one registry and one key, as the README walkthrough makes.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub gateway_id: String,
    pub gateway_slug: String,
    pub registry_id: String,
    pub consumer_id: String,
    pub consumer_slug: String,
    pub auth_id: String,
    pub key: String,
}

pub async fn setup(admin: &Admin, slug: &str, base_url: &str) -> Fixture {
    let gw = admin
        .ok(
            "POST",
            "/v1/gateways",
            Some(json!({"name": slug, "slug": slug})),
            201,
        )
        .await;
    let gid = gw["id"].as_str().expect("id").to_string();
    let reg = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/registries"),
            Some(json!({"name": "mock", "provider": "openai_compatible",
                "provider_options": {"base_url": base_url},
                "auth": {"type": "api_key", "api_key": UPSTREAM_KEY}})),
            201,
        )
        .await;
    let consumer = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers"),
            Some(json!({"name": "My App"})),
            201,
        )
        .await;
    let (rid, cid) = (
        reg["id"].as_str().expect("id"),
        consumer["id"].as_str().expect("id"),
    );
    admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers/{cid}/registries/{rid}"),
            Some(json!({"weight": 1})),
            200,
        )
        .await;
    let (aid, key) = attach_key(admin, &gid, cid).await;
    Fixture {
        gateway_id: gid.clone(),
        gateway_slug: slug.to_string(),
        registry_id: rid.to_string(),
        consumer_id: cid.to_string(),
        consumer_slug: consumer["slug"].as_str().expect("slug").to_string(),
        auth_id: aid,
        key,
    }
}

/// Create an API-key auth and attach it to a consumer; returns its id and key.
pub async fn attach_key(admin: &Admin, gid: &str, cid: &str) -> (String, String) {
    let auth = attach_auth(
        admin,
        gid,
        cid,
        json!({"name": "app key", "type": "api_key"}),
    )
    .await;
    let aid = auth["id"].as_str().expect("id").to_string();
    (aid, auth["key"].as_str().expect("key").to_string())
}

/// Create an auth from `spec` and attach it to a consumer; returns the created auth.
pub async fn attach_auth(admin: &Admin, gid: &str, cid: &str, spec: Value) -> Value {
    let auth = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/auths"),
            Some(spec),
            201,
        )
        .await;
    let aid = auth["id"].as_str().expect("id");
    admin
        .ok(
            "POST",
            &format!("/v1/gateways/{gid}/consumers/{cid}/auths/{aid}"),
            None,
            200,
        )
        .await;
    auth
}

/// A client of the proxy.
#[derive(Clone)]
pub struct Proxy {
    pub base: String,
    pub http: Client,
}

impl Proxy {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            http: client(),
        }
    }

    /// POST a chat completion as the fixture's consumer.
    pub async fn chat(&self, f: &Fixture, body: Value) -> Response {
        self.http
            .post(format!(
                "{}/{}/v1/chat/completions",
                self.base, f.consumer_slug
            ))
            .header("X-AG-Gateway-Slug", &f.gateway_slug)
            .header("X-AG-API-Key", &f.key)
            .json(&body)
            .send()
            .await
            .expect("proxy request")
    }

    /// The value of an unlabelled metric on the proxy's `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// A POST to one of the consumer's APIs with the gateway header and no credential.
    pub fn request(&self, f: &Fixture, api: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/{}/v1/{api}", self.base, f.consumer_slug))
            .header("X-AG-Gateway-Slug", &f.gateway_slug)
    }

    /// POST `body` to one of the consumer's APIs (`chat/completions`, `messages`, …)
    /// with extra headers.
    pub async fn post(
        &self,
        f: &Fixture,
        api: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.request(f, api).header("X-AG-API-Key", &f.key);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.json(body).send().await.expect("proxy request")
    }

    /// Wait up to `limit` until the fixture's requests are answered by the mock `name`.
    pub async fn wait_served_by(&self, f: &Fixture, name: &str, limit: Duration) {
        eventually(
            limit,
            &format!("traffic to reach the upstream {name}"),
            || async {
                let resp = self.chat(f, simple_chat(false)).await;
                (resp.status() == StatusCode::OK && resp.headers()["x-mock-name"] == name)
                    .then_some(())
            },
        )
        .await;
    }

    /// Wait until the proxy's snapshot serves the fixture (config propagation).
    pub async fn wait_serving(&self, f: &Fixture) {
        eventually(
            Duration::from_secs(10),
            "the proxy to serve the new consumer",
            || async {
                let resp = self.chat(f, simple_chat(false)).await;
                (resp.status() == StatusCode::OK).then_some(())
            },
        )
        .await;
    }
}

pub fn simple_chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream,
           "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hello"}]})
}

/// Parse an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_string)
        })
        .collect()
}

/// `sluice all` started in this test process.
pub struct Embedded {
    pub running: Running,
    pub admin: Admin,
    pub proxy: Proxy,
    _dir: tempfile::TempDir,
}

pub async fn embedded() -> Embedded {
    embedded_on(None).await
}

/// `sluice all` on the embedded SQLite store, or on `database_url`.
pub async fn embedded_on(database_url: Option<String>) -> Embedded {
    embedded_with(|s| s.database_url = database_url).await
}

/// `sluice all` with the test defaults, changed by `configure`.
pub async fn embedded_with(configure: impl FnOnce(&mut Settings)) -> Embedded {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::ephemeral(dir.path().to_path_buf());
    settings.max_body_bytes = 64 * 1024;
    settings.admin_token = Some(ADMIN_TOKEN.into());
    configure(&mut settings);
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

/// A tiny HTTP server that answers every request with `body` as JSON.
pub async fn serve_json(body: String) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    addr
}

/// A child process stopped with SIGINT when dropped.
pub struct Process {
    pub name: &'static str,
    pub child: Child,
}

impl Process {
    pub fn spawn(name: &'static str, mut cmd: Command, log_dir: &Path) -> Self {
        let log = std::fs::File::create(log_dir.join(format!("{name}.log"))).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self { name, child }
    }

    pub fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.interrupt();
    }
}

/// Wait until an HTTP endpoint answers 200.
pub async fn wait_ready(url: &str) {
    let http = client();
    eventually(Duration::from_secs(30), url, || async {
        match http.get(url).send().await {
            Ok(r) if r.status() == StatusCode::OK => Some(()),
            _ => None,
        }
    })
    .await;
}

/// One consumer routed to three registries on one mock, one per provider dialect, so
/// the model name picks the dialect: `mock-model` → Chat Completions (openai_compatible),
/// `claude-sonnet-4-5` → Anthropic Messages, `gpt-4.1` → OpenAI Responses. Requests
/// without a model get `mock-model`.
pub async fn setup_dialects(admin: &Admin, slug: &str, base_url: &str) -> Fixture {
    let f = setup(admin, slug, base_url).await;
    let gid = &f.gateway_id;
    let mut ids = vec![f.registry_id.clone()];
    for (name, provider, options) in [
        ("claude", "anthropic", json!({"base_url": base_url})),
        (
            "resp",
            "openai",
            json!({"base_url": base_url, "api": "responses"}),
        ),
    ] {
        let reg = admin
            .ok(
                "POST",
                &format!("/v1/gateways/{gid}/registries"),
                Some(
                    json!({"name": name, "provider": provider, "provider_options": options,
                    "auth": {"type": "api_key", "api_key": UPSTREAM_KEY}}),
                ),
                201,
            )
            .await;
        let rid = reg["id"].as_str().expect("id").to_string();
        admin
            .ok(
                "POST",
                &format!(
                    "/v1/gateways/{gid}/consumers/{}/registries/{rid}",
                    f.consumer_id
                ),
                Some(json!({"weight": 1})),
                200,
            )
            .await;
        ids.push(rid);
    }
    admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{gid}/consumers/{}", f.consumer_id),
            Some(json!({"name": "My App", "model_policies": [
                {"registry_id": ids[0], "allowed": ["mock-model"], "default": "mock-model"},
                {"registry_id": ids[1], "allowed": ["claude-sonnet-4-5"]},
                {"registry_id": ids[2], "allowed": ["gpt-4.1"]},
            ]})),
            200,
        )
        .await;
    f
}

/// Wait until the proxy routes the fixture's requests for `model` (config propagation).
pub async fn wait_model(proxy: &Proxy, f: &Fixture, model: &str) {
    eventually(
        Duration::from_secs(10),
        &format!("the route to {model}"),
        || async {
            let mut body = simple_chat(false);
            body["model"] = json!(model);
            (proxy.chat(f, body).await.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
}

/// The models of [`setup_dialects`], by upstream dialect.
pub const DIALECT_MODELS: [(&str, &str); 3] = [
    ("chat", "mock-model"),
    ("anthropic", "claude-sonnet-4-5"),
    ("responses", "gpt-4.1"),
];

/// Production shape in one test process: an admin and two proxies sharing one Redis
/// (db 15), each with its own data dir.
pub struct Replicas {
    pub admin: Admin,
    pub proxies: [Proxy; 2],
    running: Vec<Running>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Replicas {
    pub async fn start() -> Self {
        let redis = "redis://127.0.0.1:6379/15".to_string();
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let settings = |i: usize| {
            let mut s = Settings::ephemeral(dirs[i].path().to_path_buf());
            s.redis_url = Some(redis.clone());
            s.admin_token = Some(ADMIN_TOKEN.into());
            s.secret_key = Some(SECRET_KEY.into());
            s.proxy_threads = 2;
            s
        };
        let admin = launch(&settings(0), &[Plane::Admin]).await.expect("admin");
        let one = launch(&settings(1), &[Plane::Proxy])
            .await
            .expect("proxy one");
        let two = launch(&settings(2), &[Plane::Proxy])
            .await
            .expect("proxy two");
        Self {
            admin: Admin::new(admin.admin_addr.expect("admin addr")),
            proxies: [
                Proxy::new(one.proxy_addr.expect("proxy addr")),
                Proxy::new(two.proxy_addr.expect("proxy addr")),
            ],
            running: vec![two, one, admin],
            _dirs: dirs,
        }
    }

    /// A fixture on `base_url`, named `name` plus this process's id, served by both
    /// proxies.
    pub async fn fixture(&self, name: &str, base_url: &str) -> Fixture {
        let f = setup(
            &self.admin,
            &format!("{name}-{}", std::process::id()),
            base_url,
        )
        .await;
        for p in &self.proxies {
            p.wait_serving(&f).await;
        }
        f
    }

    pub async fn shutdown(mut self) {
        for r in self.running.drain(..) {
            r.shutdown().await;
        }
    }
}

/// Create a policy; `attach` links it to the fixture's consumer. Returns its id.
pub async fn policy(admin: &Admin, f: &Fixture, spec: Value, attach: bool) -> String {
    let p = admin
        .ok(
            "POST",
            &format!("/v1/gateways/{}/policies", f.gateway_id),
            Some(spec),
            201,
        )
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    if attach {
        admin
            .ok(
                "POST",
                &format!(
                    "/v1/gateways/{}/consumers/{}/policies/{pid}",
                    f.gateway_id, f.consumer_id
                ),
                None,
                200,
            )
            .await;
    }
    pid
}

/// An embedded sluice and a mock named `name`, with a fixture of that slug served and
/// the policy `spec` attached to its consumer; returns the policy's id too.
pub async fn with_policy(name: &str, spec: Value) -> (Embedded, MockProvider, Fixture, String) {
    let s = embedded().await;
    let m = mock(name).await;
    let f = setup(&s.admin, name, &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    let pid = policy(&s.admin, &f, spec, true).await;
    (s, m, f, pid)
}

/// The test issuer's RSA key, whose public half is in `JWKS` (kid `test-rsa-1`).
pub const RSA_PRIVATE: &str = include_str!("../fixtures/jwt/rsa-private.pem");
pub const JWKS: &str = include_str!("../fixtures/jwt/jwks.json");

/// A JWT of the test issuer, signed RS256 with the key the JWKS publishes.
pub fn rs256(claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-rsa-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key");
    jsonwebtoken::encode(&header, claims, &key).expect("jwt")
}
