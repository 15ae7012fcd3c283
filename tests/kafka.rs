//! Telemetry to a real Kafka-protocol broker (tansu, started by this test on loopback):
//! events of plain, streamed and failed requests are read back from the topic; with
//! the broker stopped requests still succeed and the lost events are counted; after a
//! restart delivery resumes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{Value, json};
use support::*;

const TOPIC: &str = "sluice-events";

fn broker(port: u16, logs: &std::path::Path) -> Process {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new("tansu");
    cmd.args([
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
        "--storage-engine",
        "memory://tansu/",
    ]);
    Process::spawn("tansu", cmd, logs)
}

async fn create_topic(brokers: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the broker to take a topic",
        || async {
            let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1));
            let done = admin
                .create_topics(
                    [&topic],
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(2))),
                )
                .await
                .ok()?;
            done.iter()
                .all(|r| {
                    r.is_ok()
                        || matches!(
                            r,
                            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
                        )
                })
                .then_some(())
        },
    )
    .await;
}

/// Every event on the topic so far.
fn read_all(brokers: &str) -> Vec<Value> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::now_v7()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 3 {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                idle = 0;
                if let Some(v) = m.payload().and_then(|p| serde_json::from_slice(p).ok()) {
                    out.push(v);
                }
            }
            _ => idle += 1,
        }
    }
    out
}

async fn events_with(brokers: String, traces: Vec<String>) -> Vec<Value> {
    eventually(Duration::from_secs(30), "the events on the topic", || {
        let brokers = brokers.clone();
        let traces = traces.clone();
        async move {
            let all = tokio::task::spawn_blocking(move || read_all(&brokers))
                .await
                .ok()?;
            let found: Vec<Value> = traces
                .iter()
                .filter_map(|t| all.iter().find(|e| e["trace_id"] == t.as_str()).cloned())
                .collect();
            (found.len() == traces.len()).then_some(found)
        }
    })
    .await
}

async fn chat(s: &Embedded, f: &Fixture, stream: bool, status: Option<u16>) -> (u16, String) {
    let mut req = s
        .proxy
        .http
        .post(format!(
            "{}/{}/v1/chat/completions",
            s.proxy.base, f.consumer_slug
        ))
        .header("X-AG-Gateway-Slug", &f.gateway_slug)
        .header("X-AG-API-Key", &f.key);
    if let Some(st) = status {
        req = req.header("x-mock-status", st.to_string());
    }
    let mut body = simple_chat(stream);
    body["stream_options"] = json!({"include_usage": true});
    let resp = req.json(&body).send().await.unwrap();
    let code = resp.status().as_u16();
    let trace = resp.headers()["x-ag-trace-id"]
        .to_str()
        .unwrap()
        .to_string();
    let _ = resp.bytes().await;
    (code, trace)
}

async fn dropped(s: &Embedded) -> u64 {
    s.proxy.metric("sluice_telemetry_dropped_total").await as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_kafka_and_survive_a_broker_outage() {
    let logs = tempfile::tempdir().unwrap();
    let port = free_addr().port();
    let brokers = format!("127.0.0.1:{port}");
    let mut tansu = broker(port, logs.path());
    create_topic(&brokers).await;

    let kafka = brokers.clone();
    let s = embedded_with(move |st| {
        st.telemetry = "kafka".into();
        st.kafka_brokers = Some(kafka);
        st.kafka_topic = TOPIC.into();
        st.kafka_message_timeout_ms = 3_000;
    })
    .await;
    let m = mock("kafka").await;
    let f = setup(&s.admin, "kafka", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;

    let plain = chat(&s, &f, false, None).await;
    let streamed = chat(&s, &f, true, None).await;
    let failed = chat(&s, &f, false, Some(503)).await;
    assert_eq!((plain.0, streamed.0, failed.0), (200, 200, 503));
    let events = events_with(brokers.clone(), vec![plain.1, streamed.1, failed.1]).await;
    assert_eq!(events[0]["outcome"], "success");
    assert_eq!(events[1]["stream"], true);
    assert!(events[1]["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(events[2]["status"], 503);
    assert_eq!(events[2]["outcome"], "upstream_error");
    for e in &events {
        assert_eq!(e["gateway"]["slug"], "kafka");
        assert_eq!(e["schema_version"], 1);
    }

    // The broker goes away: requests do not notice; the events are counted as dropped.
    tansu.interrupt();
    drop(tansu);
    let before = dropped(&s).await;
    for _ in 0..3 {
        assert_eq!(chat(&s, &f, false, None).await.0, 200);
    }
    eventually(
        Duration::from_secs(20),
        "the lost events to be counted",
        || async { (dropped(&s).await >= before + 3).then_some(()) },
    )
    .await;

    // It comes back: new events are delivered.
    let _tansu = broker(port, logs.path());
    create_topic(&brokers).await;
    let after = chat(&s, &f, false, None).await;
    let events = events_with(brokers.clone(), vec![after.1]).await;
    assert_eq!(events[0]["status"], 200);
    s.running.shutdown().await;
}
