//! Production mode: PostgreSQL store and Redis bus, admin and proxy as separate
//! processes of the real binary, against the machine's PostgreSQL (127.0.0.1:5432) and
//! Redis (127.0.0.1:6379). Each test uses its own database and Redis database number.
//! The fault test runs its own `redis-server` on a free port and never touches the
//! shared one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use support::*;

fn sluice(plane: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg(plane)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SLUICE_LOG", "info")
        .env("SLUICE_RESYNC_SECS", "1")
        .env("SLUICE_REPUBLISH_SECS", "1")
        .env("SLUICE_SHUTDOWN_GRACE_SECS", "0")
        .env("SLUICE_PROXY_THREADS", "1")
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SLUICE_SECRET_KEY", SECRET_KEY);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

struct Deployment {
    admin: Admin,
    proxy: Proxy,
    _admin_process: Process,
    proxy_process: Process,
}

async fn deploy(database_url: String, redis_url: String, logs: &std::path::Path) -> Deployment {
    let (admin_addr, proxy_addr) = (free_addr(), free_addr());
    let admin_process = Process::spawn(
        "admin",
        sluice(
            "admin",
            &[
                ("DATABASE_URL", database_url),
                ("REDIS_URL", redis_url.clone()),
                ("SLUICE_ADMIN_ADDR", admin_addr.to_string()),
                ("SLUICE_DATA_DIR", logs.display().to_string()),
            ],
        ),
        logs,
    );
    wait_ready(&format!("http://{admin_addr}/readyz")).await;
    // The proxy process has no database credentials: only Redis.
    let proxy_process = Process::spawn(
        "proxy",
        sluice(
            "proxy",
            &[
                ("REDIS_URL", redis_url),
                ("SLUICE_PROXY_ADDR", proxy_addr.to_string()),
            ],
        ),
        logs,
    );
    wait_ready(&format!("http://{proxy_addr}/readyz")).await;
    Deployment {
        admin: Admin::new(admin_addr),
        proxy: Proxy::new(proxy_addr),
        _admin_process: admin_process,
        proxy_process,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_over_postgres_and_redis() {
    let logs = tempfile::tempdir().expect("tempdir");
    let db = fresh_database("separate").await;
    let redis_db = 1 + (std::process::id() % 14);
    let d = deploy(
        db.clone(),
        format!("redis://127.0.0.1:6379/{redis_db}"),
        logs.path(),
    )
    .await;
    let (first, second) = (mock("first").await, mock("second").await);
    let f = setup(
        &d.admin,
        &format!("prod-{}", std::process::id()),
        &first.base_url(),
    )
    .await;
    d.proxy.wait_serving(&f).await;

    let resp = d.proxy.chat(&f, simple_chat(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-mock-name"], "first");
    let resp = d.proxy.chat(&f, simple_chat(true)).await;
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().await.expect("body"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    d.admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{}/registries/{}", f.gateway_id, f.registry_id),
            Some(json!({"provider_options": {"base_url": second.base_url()}})),
            200,
        )
        .await;
    d.proxy
        .wait_served_by(&f, "second", Duration::from_secs(5))
        .await;

    // No plaintext secret in the store, on the bus, or in any log line.
    let mut conn = sqlx::PgConnection::connect(&db).await.expect("db");
    let specs: Vec<(String,)> = sqlx::query_as("SELECT spec FROM registries")
        .fetch_all(&mut conn)
        .await
        .expect("rows");
    assert!(
        specs
            .iter()
            .all(|(s,)| !s.contains(UPSTREAM_KEY) && s.contains("enc:v1:"))
    );
    let doc = Command::new("redis-cli")
        .args([
            "-n",
            &redis_db.to_string(),
            "GET",
            &format!("sluice:config:gw:{}", f.gateway_id),
        ])
        .output()
        .expect("redis-cli");
    let doc = String::from_utf8_lossy(&doc.stdout);
    assert!(doc.contains(&f.registry_id), "the document is on the bus");
    assert!(!doc.contains(UPSTREAM_KEY) && !doc.contains(&f.key));
    for log in ["admin.log", "proxy.log"] {
        let text = std::fs::read_to_string(logs.path().join(log)).expect("log");
        assert!(
            !text.contains(UPSTREAM_KEY) && !text.contains(&f.key),
            "{log} leaks a secret"
        );
    }

    // Bad input is answered the same way in production mode.
    let resp = d
        .proxy
        .http
        .post(format!(
            "{}/{}/v1/chat/completions",
            d.proxy.base, f.consumer_slug
        ))
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("X-AG-API-Key", "ag_wrong")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 401);
}

/// A `redis-server` of this test's own, on a free port.
fn own_redis(port: u16, logs: &std::path::Path) -> Process {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    Process::spawn("redis", cmd, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_serves_from_its_last_snapshot_while_redis_is_down() {
    let logs = tempfile::tempdir().expect("tempdir");
    let port = free_addr().port();
    let mut redis = own_redis(port, logs.path());
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    eventually(Duration::from_secs(10), "redis to start", || async {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    })
    .await;
    let db = fresh_database("redisdown").await;
    let mut d = deploy(db, redis_url, logs.path()).await;
    let (first, second) = (mock("first").await, mock("second").await);
    let f = setup(&d.admin, "outage", &first.base_url()).await;
    d.proxy.wait_serving(&f).await;

    redis.interrupt();
    // Across several resync periods (1 s each) the proxy keeps serving.
    for _ in 0..6 {
        let resp = d.proxy.chat(&f, simple_chat(false)).await;
        assert_eq!(
            resp.status(),
            200,
            "served from the last snapshot while Redis is down"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Writes still land in the store; once Redis is back (empty), admin republishes and
    // the proxy follows.
    d.admin
        .ok(
            "PUT",
            &format!("/v1/gateways/{}/registries/{}", f.gateway_id, f.registry_id),
            Some(json!({"provider_options": {"base_url": second.base_url()}})),
            200,
        )
        .await;
    let _redis = own_redis(port, logs.path());
    d.proxy
        .wait_served_by(&f, "second", Duration::from_secs(30))
        .await;
    // SIGINT stops the proxy gracefully and promptly.
    d.proxy_process.interrupt();
    let status = d
        .proxy_process
        .child
        .try_wait()
        .expect("wait")
        .expect("the proxy exited");
    assert!(status.success(), "proxy exit status {status}");
}
