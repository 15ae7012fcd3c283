//! The Kafka sink: librdkafka batches and compresses in its own thread; this side only
//! enqueues. A full local queue or an undeliverable event (broker down past the
//! message timeout) is counted as dropped; delivery resumes by itself when the broker
//! is back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::pipeline::TelemetryStats;

struct Counting(Arc<TelemetryStats>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = match result {
            Ok(_) => &self.0.delivered,
            Err(_) => &self.0.dropped_sink,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<Counting>,
}

impl KafkaSink {
    pub fn new(
        brokers: &str,
        message_timeout: Duration,
        stats: Arc<TelemetryStats>,
    ) -> KafkaResult<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set(
                "message.timeout.ms",
                message_timeout.as_millis().to_string(),
            )
            .set("linger.ms", "20")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "100000")
            .set("reconnect.backoff.max.ms", "1000")
            .create_with_context(Counting(stats))?;
        Ok(Self { producer })
    }

    /// Enqueue one event; `false` when librdkafka's queue refused it.
    pub fn send(&self, topic: &str, key: &str, payload: &[u8]) -> bool {
        self.producer
            .send(BaseRecord::to(topic).key(key).payload(payload))
            .is_ok()
    }

    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}
