//! The Redis config bus and a plane's sync loop over it, against a `redis-server` of
//! this test's own on a free port (the shared one's key space is used by other tests'
//! admin planes, whose republish removes gateways they do not know).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sluice_shared::bus::ConfigBus;
use sluice_shared::document::GatewayDocument;
use sluice_shared::sync::{self, SnapshotHandle};
use support::*;
use tokio::sync::watch;
use uuid::Uuid;

fn doc(id: Uuid, slug: &str, version: i64) -> GatewayDocument {
    serde_json::from_value(json!({
        "version": version,
        "gateway": {"id": id, "slug": slug, "version": version,
            "created_at": "t", "updated_at": "t"},
        "consumers": []
    }))
    .expect("document")
}

struct OwnRedis {
    port: u16,
    _process: Process,
    _logs: tempfile::TempDir,
}

impl OwnRedis {
    async fn start() -> Self {
        let logs = tempfile::tempdir().expect("tempdir");
        let port = free_addr().port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        let process = Process::spawn("redis", cmd, logs.path());
        eventually(Duration::from_secs(10), "redis to start", || async {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        })
        .await;
        Self {
            port,
            _process: process,
            _logs: logs,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A command sent around the bus, as another writer (or damage) would.
    fn cli(&self, args: &[&str]) {
        let status = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success(), "redis-cli {args:?}");
    }

    /// How many times the server ran `command` (from `INFO commandstats`).
    fn calls(&self, command: &str) -> u64 {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "INFO", "commandstats"])
            .output()
            .expect("redis-cli");
        let stats = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |rest| {
                rest.split(',').next().unwrap().parse().expect("calls")
            })
    }
}

#[tokio::test]
async fn versions_list_every_gateway_and_fetch_many_returns_what_is_held() {
    let redis = OwnRedis::start().await;
    let bus = ConfigBus::connect(Some(&redis.url())).await.expect("bus");
    let (a, b, gone) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    assert!(bus.publish(&doc(a, "a", 3)).await.unwrap());
    assert!(bus.publish(&doc(b, "b", 1)).await.unwrap());
    // An older version never replaces a newer one.
    assert!(!bus.publish(&doc(a, "a", 2)).await.unwrap());
    assert_eq!(
        bus.versions().await.unwrap(),
        HashMap::from([(a, 3), (b, 1)])
    );

    let docs = bus.fetch_many(&[b, gone]).await.unwrap();
    assert_eq!(docs.len(), 1, "only the held document comes back");
    assert_eq!(docs[0].gateway_id(), b);
    assert!(bus.fetch_many(&[]).await.unwrap().is_empty());

    bus.remove(b).await.unwrap();
    assert_eq!(bus.versions().await.unwrap(), HashMap::from([(a, 3)]));
    let all = bus.fetch_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].version, 3);
}

/// The periodic resync reads versions and fetches only what changed: an unchanged
/// document is not fetched again (not even one damaged in place), a gateway written
/// without a notification is found, a damaged new version is skipped while its gateway
/// keeps its last good version, and a gateway gone from the bus goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resync_fetches_only_changed_documents() {
    let redis = OwnRedis::start().await;
    let bus = ConfigBus::connect(Some(&redis.url())).await.expect("bus");
    let first = Uuid::now_v7();
    bus.publish(&doc(first, "first", 1)).await.unwrap();

    let handle = SnapshotHandle::default();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(sync::run(
        bus.clone(),
        handle.clone(),
        None,
        Duration::from_millis(100),
        None,
        stopped,
    ));
    eventually(Duration::from_secs(10), "the first gateway", || async {
        handle.load().gateway_by_slug("first").map(|_| ())
    })
    .await;

    // Damage the loaded document in place, version unchanged.
    redis.cli(&["SET", &format!("sluice:config:gw:{first}"), "{not json"]);
    // A second gateway written without a notification: only the resync finds it.
    let second = Uuid::now_v7();
    let json = serde_json::to_string(&doc(second, "second", 1)).unwrap();
    redis.cli(&["SET", &format!("sluice:config:gw:{second}"), &json]);
    redis.cli(&["HSET", "sluice:config:versions", &second.to_string(), "1"]);
    eventually(
        Duration::from_secs(10),
        "the resync to load the second",
        || async { handle.load().gateway_by_slug("second").map(|_| ()) },
    )
    .await;
    assert!(handle.load().gateway_by_slug("first").is_some());

    // Nothing changes now: resyncs read versions and fetch no document.
    let (hgetall, mget) = (redis.calls("hgetall"), redis.calls("mget"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(redis.calls("hgetall") >= hgetall + 2, "no resync ran");
    assert_eq!(
        redis.calls("mget"),
        mget,
        "an unchanged document was fetched"
    );

    // A damaged new version: skipped, the last good version stays.
    redis.cli(&["HSET", "sluice:config:versions", &first.to_string(), "2"]);
    let generation = handle.load().generation;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let snapshot = handle.load();
    assert_eq!(snapshot.gateway_by_slug("first").unwrap().version, 1);
    assert_eq!(snapshot.generation, generation, "nothing changed, no swap");

    // Gone from the bus: gone from the snapshot.
    redis.cli(&["HDEL", "sluice:config:versions", &second.to_string()]);
    eventually(Duration::from_secs(10), "the second to go", || async {
        handle
            .load()
            .gateway_by_slug("second")
            .is_none()
            .then_some(())
    })
    .await;

    stop.send(true).unwrap();
    task.await.unwrap();
}
