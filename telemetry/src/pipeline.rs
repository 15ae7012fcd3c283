//! The queue between requests and sinks, and the task that drains it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::event::TelemetryEvent;
use crate::kafka::KafkaSink;

/// A kind of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Kafka,
    File,
    Stdout,
}

impl Sink {
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "kafka" => Some(Self::Kafka),
            "file" => Some(Self::File),
            "stdout" => Some(Self::Stdout),
            _ => None,
        }
    }
}

/// How the pipeline is set up.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Events held at most while the sinks catch up.
    pub queue: usize,
    /// Sinks for gateways that name none.
    pub default_sinks: Vec<Sink>,
    /// The JSON-lines file of the `file` sink.
    pub file: Option<PathBuf>,
    /// `host:port,…` of the Kafka brokers.
    pub kafka_brokers: Option<String>,
    pub kafka_topic: String,
    /// How long Kafka keeps trying to deliver one event before it is dropped.
    pub kafka_message_timeout: Duration,
}

/// Counters of the pipeline.
#[derive(Debug, Default)]
pub struct TelemetryStats {
    /// Events accepted onto the queue.
    pub queued: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Events a sink could not take or deliver (broker down, file error, no broker).
    pub dropped_sink: AtomicU64,
    /// Events written to the file or stdout, or acknowledged by Kafka.
    pub delivered: AtomicU64,
}

impl TelemetryStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full.load(Ordering::Relaxed) + self.dropped_sink.load(Ordering::Relaxed)
    }
}

/// The request side of the pipeline; cheap to clone.
///
/// Events go into a bounded buffer that the sink task empties in batches of
/// [`BATCH`], or on a [`TICK`] when traffic is too light to fill one. A channel would
/// wake that task (on another thread) for every request, and those wake-ups cost more
/// than the event itself; the buffer costs one uncontended lock, and the task is woken
/// once a batch.
#[derive(Debug, Clone)]
pub struct Telemetry {
    buffer: Option<Arc<Mutex<Vec<TelemetryEvent>>>>,
    /// Wakes the sink task when a batch is full.
    full: Arc<Notify>,
    stats: Arc<TelemetryStats>,
    capacity: usize,
}

/// How many events wake the sink task. Small on purpose: a batch is written while its
/// events are still in the CPU's caches. With a 25 ms tick alone, a busy proxy handed
/// over 750 events at a time, cold by then, and the sink task's burst of cache misses
/// took nearly a fifth off scenario 1's throughput (README, "Measured").
const BATCH: usize = 64;
/// The longest an event waits for its batch to fill.
const TICK: Duration = Duration::from_millis(25);
/// The most events' room the queue's two vectors keep between rounds. A backlog (the
/// sink stalled: the kernel throttling the file's writes while it flushes, a slow
/// broker) grows them to its size, up to the queue's capacity, 10,000 events of about
/// 850 bytes by default; kept, that memory stayed with the process for its life, and
/// the soak's RSS rose in steps of several MiB each time a longer stall came.
const KEEP: usize = 1024;

impl Telemetry {
    /// No telemetry: events are discarded without being counted as drops.
    pub fn off() -> Self {
        Self {
            buffer: None,
            full: Arc::default(),
            stats: Arc::default(),
            capacity: 0,
        }
    }

    /// Start the pipeline; its task ends, after draining the buffer, when `stopped`.
    pub fn start(config: TelemetryConfig, stopped: watch::Receiver<bool>) -> Self {
        let stats = Arc::new(TelemetryStats::default());
        let capacity = config.queue.max(1);
        let buffer = Arc::new(Mutex::new(Vec::with_capacity(capacity.min(KEEP))));
        let full = Arc::new(Notify::new());
        tokio::spawn(drain(
            config,
            buffer.clone(),
            full.clone(),
            stats.clone(),
            stopped,
        ));
        Self {
            buffer: Some(buffer),
            full,
            stats,
            capacity,
        }
    }

    /// Queue an event without waiting; a full buffer drops it and counts the drop.
    pub fn emit(&self, event: TelemetryEvent) {
        let Some(buffer) = &self.buffer else { return };
        let (queued, len) = match buffer.lock() {
            Ok(mut b) if b.len() < self.capacity => {
                b.push(event);
                (true, b.len())
            }
            _ => (false, 0),
        };
        if len == BATCH {
            self.full.notify_one();
        }
        let counter = if queued {
            &self.stats.queued
        } else {
            &self.stats.dropped_queue_full
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> &TelemetryStats {
        &self.stats
    }

    /// Events waiting for the sink task.
    pub fn depth(&self) -> usize {
        self.buffer
            .as_ref()
            .and_then(|b| b.lock().ok().map(|b| b.len()))
            .unwrap_or(0)
    }
}

/// The file sink's write buffer. With the 8 KiB default a busy proxy made a `write`
/// call every five or six events (about 1 KiB each); 64 KiB makes it one in sixty, and
/// the tick's flush bounds how long an event waits in it.
const FILE_BUFFER: usize = 64 * 1024;

struct Sinks {
    config: TelemetryConfig,
    file: Option<std::io::BufWriter<std::fs::File>>,
    kafka: Option<KafkaSink>,
    stats: Arc<TelemetryStats>,
    /// One event's JSON line, reused so that serializing allocates nothing.
    line: Vec<u8>,
}

impl Sinks {
    fn open(config: TelemetryConfig, stats: Arc<TelemetryStats>) -> Self {
        let file = config.file.as_ref().and_then(|path| {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => Some(std::io::BufWriter::with_capacity(FILE_BUFFER, f)),
                Err(error) => {
                    warn!(%error, path = %path.display(), "telemetry file cannot be opened");
                    None
                }
            }
        });
        let kafka = config.kafka_brokers.as_deref().and_then(|brokers| {
            match KafkaSink::new(brokers, config.kafka_message_timeout, stats.clone()) {
                Ok(k) => {
                    info!(%brokers, topic = %config.kafka_topic, "telemetry to Kafka");
                    Some(k)
                }
                Err(error) => {
                    warn!(%error, "Kafka producer cannot be created; Kafka events are dropped");
                    None
                }
            }
        });
        Self {
            config,
            file,
            kafka,
            stats,
            line: Vec::with_capacity(2048),
        }
    }

    /// Where an event goes: its gateway's exporters, else the process's default sinks;
    /// each sink once, unknown names skipped. An array, not a `Vec`: this runs for
    /// every event.
    fn sinks_of(&self, event: &TelemetryEvent) -> [Option<Sink>; 3] {
        let mut sinks = [None; 3];
        let mut n = 0;
        let mut add = |sink: Sink| {
            if n < sinks.len() && !sinks[..n].contains(&Some(sink)) {
                sinks[n] = Some(sink);
                n += 1;
            }
        };
        if event.exporters.is_empty() {
            self.config.default_sinks.iter().copied().for_each(&mut add);
        } else {
            event
                .exporters
                .iter()
                .filter_map(|name| Sink::parse(name))
                .for_each(&mut add);
        }
        sinks
    }

    fn write(&mut self, event: &TelemetryEvent) {
        let sinks = self.sinks_of(event);
        if sinks[0].is_none() {
            return;
        }
        self.line.clear();
        crate::line::write(&mut self.line, event);
        self.line.push(b'\n');
        let line = &self.line;
        for sink in sinks.into_iter().flatten() {
            let ok = match sink {
                Sink::File => self
                    .file
                    .as_mut()
                    .is_some_and(|f| f.write_all(line).is_ok()),
                Sink::Stdout => std::io::stdout().lock().write_all(line).is_ok(),
                Sink::Kafka => {
                    let topic = event
                        .kafka_topic
                        .as_deref()
                        .unwrap_or(&self.config.kafka_topic);
                    // Kafka counts its own deliveries when the broker acknowledges them.
                    match &self.kafka {
                        Some(k) => {
                            if !k.send(topic, &event.gateway_key(), &line[..line.len() - 1]) {
                                self.stats.dropped_sink.fetch_add(1, Ordering::Relaxed);
                            }
                            continue;
                        }
                        None => false,
                    }
                }
            };
            let counter = if ok {
                &self.stats.delivered
            } else {
                &self.stats.dropped_sink
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if self.line.capacity() > FILE_BUFFER {
            // One event with large captured bodies does not keep its buffer.
            self.line = Vec::with_capacity(2048);
        }
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
    }
}

async fn drain(
    config: TelemetryConfig,
    buffer: Arc<Mutex<Vec<TelemetryEvent>>>,
    full: Arc<Notify>,
    stats: Arc<TelemetryStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut sinks = Sinks::open(config, stats);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        let stopping = tokio::select! {
            () = full.notified() => {
                // A full batch: the tick restarts, so the next one waits for a batch
                // or a quiet spell, not for a deadline already near.
                tick.reset();
                false
            }
            _ = tick.tick() => false,
            _ = stopped.changed() => true,
        };
        if let Ok(mut b) = buffer.lock() {
            std::mem::swap(&mut *b, &mut batch);
        }
        for e in batch.drain(..) {
            sinks.write(&e);
        }
        // Swapped back into the queue next round: neither vector keeps a backlog's room.
        if batch.capacity() > KEEP {
            batch.shrink_to(KEEP);
        }
        sinks.flush();
        if stopping {
            if let Some(k) = &sinks.kafka {
                k.flush(Duration::from_secs(2));
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sinks(default: Vec<Sink>) -> Sinks {
        let config = TelemetryConfig {
            queue: 1,
            default_sinks: default,
            file: None,
            kafka_brokers: None,
            kafka_topic: "t".into(),
            kafka_message_timeout: Duration::from_secs(1),
        };
        Sinks::open(config, Arc::default())
    }

    fn event(exporters: &[&str]) -> TelemetryEvent {
        let mut e = TelemetryEvent::new("t".into());
        e.exporters = exporters.iter().map(|s| (*s).to_string()).collect();
        e
    }

    /// A backlog's room is given back once it is written: the queue's vector returns
    /// to at most `KEEP` events' worth.
    #[tokio::test]
    async fn a_backlog_does_not_keep_its_memory() {
        let (_stop, stopped) = watch::channel(false);
        let config = TelemetryConfig {
            queue: 10_000,
            default_sinks: Vec::new(),
            file: None,
            kafka_brokers: None,
            kafka_topic: "t".into(),
            kafka_message_timeout: Duration::from_secs(1),
        };
        let t = Telemetry::start(config, stopped);
        let room = |t: &Telemetry| {
            t.buffer
                .as_ref()
                .expect("on")
                .lock()
                .expect("lock")
                .capacity()
        };
        // Emitted without a yield: the drain cannot run meanwhile, as a stalled sink.
        for _ in 0..5_000 {
            t.emit(event(&[]));
        }
        assert!(room(&t) >= 5_000);
        // The drain's rounds swap the queue's two vectors: the backlog's one comes back
        // into the queue every other round, and must come back shrunk. Sampled twice a
        // round for several rounds.
        let mut most = 0;
        for _ in 0..16 {
            tokio::time::sleep(TICK / 2).await;
            if t.depth() == 0 {
                most = most.max(room(&t));
            }
        }
        assert_eq!(t.depth(), 0);
        assert!(most <= KEEP, "{most}");
    }

    #[test]
    fn an_event_goes_to_its_gateways_exporters_each_once_else_the_defaults() {
        let s = sinks(vec![Sink::File]);
        assert_eq!(s.sinks_of(&event(&[])), [Some(Sink::File), None, None]);
        assert_eq!(
            s.sinks_of(&event(&[
                "stdout", "bogus", "stdout", "kafka", "file", "file"
            ])),
            [Some(Sink::Stdout), Some(Sink::Kafka), Some(Sink::File)]
        );
        assert_eq!(s.sinks_of(&event(&["bogus"])), [None, None, None]);
        assert_eq!(sinks(vec![]).sinks_of(&event(&[])), [None, None, None]);
    }

    /// A running pipeline writing to a fresh file.
    fn to_file(name: &str) -> (Telemetry, PathBuf, watch::Sender<bool>) {
        let path = std::env::temp_dir().join(format!(
            "sluice-telemetry-{name}-{}-{:?}.jsonl",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let config = TelemetryConfig {
            queue: 1000,
            default_sinks: vec![Sink::File],
            file: Some(path.clone()),
            kafka_brokers: None,
            kafka_topic: "t".into(),
            kafka_message_timeout: Duration::from_secs(1),
        };
        let (stop, stopped) = watch::channel(false);
        (Telemetry::start(config, stopped), path, stop)
    }

    fn lines(path: &PathBuf) -> usize {
        std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
    }

    /// Let the sink task run without letting the (paused) clock move.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_is_written_at_once_and_a_partial_one_on_the_tick() {
        let (telemetry, path, _stop) = to_file("batch");
        let start = tokio::time::Instant::now();
        settle().await;

        for _ in 0..BATCH - 1 {
            telemetry.emit(event(&[]));
        }
        settle().await;
        assert_eq!(
            lines(&path),
            0,
            "a partial batch was written before the tick"
        );

        telemetry.emit(event(&[]));
        settle().await;
        assert_eq!(lines(&path), BATCH, "a full batch waited");
        assert_eq!(start.elapsed(), Duration::ZERO, "the clock moved");

        telemetry.emit(event(&[]));
        settle().await;
        assert_eq!(lines(&path), BATCH);
        tokio::time::sleep(TICK + Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(
            lines(&path),
            BATCH + 1,
            "the tick did not write a partial batch"
        );
        let _ = std::fs::remove_file(&path);
    }
}
