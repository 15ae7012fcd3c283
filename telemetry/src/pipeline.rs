//! The queue between requests and sinks, and the task that drains it.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tracing::{info, warn};
use uuid::Uuid;

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

/// Where an event goes: its gateway's exporters, else the process's default sinks;
/// each sink once, unknown names skipped. An array, not a `Vec`: this runs for every
/// event.
fn sinks_of(defaults: &[Sink], event: &TelemetryEvent) -> [Option<Sink>; 3] {
    let mut sinks = [None; 3];
    let mut n = 0;
    let mut add = |sink: Sink| {
        if n < sinks.len() && !sinks[..n].contains(&Some(sink)) {
            sinks[n] = Some(sink);
            n += 1;
        }
    };
    if event.exporters.is_empty() {
        defaults.iter().copied().for_each(&mut add);
    } else {
        event
            .exporters
            .iter()
            .filter_map(|name| Sink::parse(name))
            .for_each(&mut add);
    }
    sinks
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

/// One queued event: where its line ends in [`Queue::lines`], where it goes, and what
/// Kafka needs beside the line.
#[derive(Debug)]
struct Entry {
    /// The end of its line, newline included.
    end: usize,
    sinks: [Option<Sink>; 3],
    /// The gateway's Kafka topic, when it names one.
    topic: Option<String>,
    /// The Kafka key.
    gateway: Option<Uuid>,
}

/// Events written as their JSON lines, one after another, with an entry each.
#[derive(Debug, Default)]
struct Queue {
    lines: Vec<u8>,
    entries: Vec<Entry>,
}

impl Queue {
    fn with_room(events: usize) -> Self {
        Self {
            lines: Vec::with_capacity(events * LINE),
            entries: Vec::with_capacity(events),
        }
    }

    /// Each entry with its line, in order.
    fn iter(&self) -> impl Iterator<Item = (&Entry, &[u8])> {
        let mut start = 0;
        self.entries.iter().map(move |e| {
            let line = &self.lines[start..e.end];
            start = e.end;
            (e, line)
        })
    }

    fn clear(&mut self) {
        self.lines.clear();
        self.entries.clear();
    }
}

/// What the request side and the sink task share.
#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the sink task when a batch is full.
    full: Notify,
    /// Wakes the sink task, parked while no event came, when one lands in the empty
    /// queue (a permit is kept when the task is not parked; see `drain`).
    first: Notify,
    /// Rounds the sink task has made, for tests of its idling.
    rounds: AtomicU64,
    stats: Arc<TelemetryStats>,
    capacity: usize,
    default_sinks: Vec<Sink>,
}

/// The request side of the pipeline; cheap to clone.
///
/// An event is written as its JSON line on the thread that emits it, and the line goes
/// into a bounded buffer that the sink task empties in batches of [`BATCH`], or on a
/// [`TICK`] when traffic is too light to fill one. Handing over the event itself made
/// the sink's thread free its fifteen-odd allocations, each a cross-thread free, and
/// read it cold; a line is one copy into a buffer that is reused. A channel would wake
/// that task (on another thread) for every request, and those wake-ups cost more than
/// the event itself; the buffer costs one uncontended lock, and the task is woken once
/// a batch.
#[derive(Debug, Clone)]
pub struct Telemetry {
    shared: Option<Arc<Shared>>,
    /// Counted even when telemetry is off, so that `stats` always answers.
    stats: Arc<TelemetryStats>,
}

/// How many events wake the sink task. Small on purpose: a batch is written while its
/// lines are still in the CPU's caches. With a 25 ms tick alone, a busy proxy handed
/// over 750 events at a time, cold by then, and the sink task's burst of cache misses
/// took nearly a fifth off scenario 1's throughput (README, "Measured").
const BATCH: usize = 64;
/// The longest an event waits for its batch to fill.
const TICK: Duration = Duration::from_millis(25);
/// The most events' room the queue's two buffers keep between rounds. A backlog (the
/// sink stalled: the kernel throttling the file's writes while it flushes, a slow
/// broker) grows them to its size, up to the queue's capacity, 10,000 events of about
/// 1 KiB by default; kept, that memory stayed with the process for its life, and the
/// soak's RSS rose in steps of several MiB each time a longer stall came. A round
/// usually carries one or two batches; four batches' room covers that with margin
/// and leaves at most half a MiB behind a stall (1,024 events could leave 2 MiB, the
/// size of the one step, 8%, of a 60 s soak on a VM whose host took up to a quarter
/// of its CPU time).
const KEEP: usize = 4 * BATCH;
/// A usual line's length, for the buffers' room.
const LINE: usize = 1024;

thread_local! {
    /// The line being written, reused by every event of the thread.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(2 * LINE));
}

impl Telemetry {
    /// No telemetry: events are discarded without being counted as drops.
    pub fn off() -> Self {
        Self {
            shared: None,
            stats: Arc::default(),
        }
    }

    /// Start the pipeline; its task ends, after draining the buffer, when `stopped`.
    pub fn start(config: TelemetryConfig, stopped: watch::Receiver<bool>) -> Self {
        let stats = Arc::new(TelemetryStats::default());
        let capacity = config.queue.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::with_room(capacity.min(BATCH * 2))),
            full: Notify::new(),
            first: Notify::new(),
            rounds: AtomicU64::new(0),
            stats: stats.clone(),
            capacity,
            default_sinks: config.default_sinks.clone(),
        });
        tokio::spawn(drain(config, shared.clone(), stopped));
        Self {
            shared: Some(shared),
            stats,
        }
    }

    /// Write the event's line and queue it without waiting; a full buffer drops it and
    /// counts the drop. An event no sink takes is not written. The event is dropped
    /// here, on the thread that made it.
    pub fn emit(&self, mut event: TelemetryEvent) {
        let Some(shared) = &self.shared else { return };
        let sinks = sinks_of(&shared.default_sinks, &event);
        if sinks[0].is_none() {
            return;
        }
        let topic = if sinks.contains(&Some(Sink::Kafka)) {
            event.kafka_topic.take()
        } else {
            None
        };
        let gateway = event.gateway.id;
        let queued = SCRATCH.with_borrow_mut(|line| {
            line.clear();
            crate::line::write(line, &event);
            line.push(b'\n');
            let queued = match shared.queue.lock() {
                Ok(mut q) if q.entries.len() < shared.capacity => {
                    q.lines.extend_from_slice(line);
                    let end = q.lines.len();
                    q.entries.push(Entry {
                        end,
                        sinks,
                        topic,
                        gateway,
                    });
                    Some(q.entries.len())
                }
                _ => None,
            };
            if line.capacity() > SCRATCH_KEEP {
                // One event with large captured bodies does not keep its buffer.
                *line = Vec::with_capacity(2 * LINE);
            }
            queued
        });
        match queued {
            // Into an empty queue: one atomic operation a round, and a wake-up only
            // when the sink task is parked.
            Some(1) => shared.first.notify_one(),
            Some(BATCH) => shared.full.notify_one(),
            _ => {}
        }
        let counter = if queued.is_some() {
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
        self.shared
            .as_ref()
            .and_then(|s| s.queue.lock().ok().map(|q| q.entries.len()))
            .unwrap_or(0)
    }
}

/// The most a thread's scratch line keeps between events: one event with large
/// captured bodies does not keep its room.
const SCRATCH_KEEP: usize = 64 * 1024;

struct Sinks {
    config: TelemetryConfig,
    /// Unbuffered: the queue's lines are already one buffer, written a batch at a time
    /// (a `BufWriter` copied every line once more, and wrote as often: once a round).
    file: Option<std::fs::File>,
    kafka: Option<KafkaSink>,
    stats: Arc<TelemetryStats>,
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
                Ok(f) => Some(f),
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
        }
    }

    /// Write a batch: each run of lines bound for the file in one `write` (usually the
    /// whole batch), each line to its entry's other sinks.
    fn write_batch(&mut self, batch: &Queue) {
        // The run of file-bound lines not yet written: where it starts and its count.
        let mut run = (0, 0);
        let mut start = 0;
        for (entry, line) in batch.iter() {
            if entry.sinks.contains(&Some(Sink::File)) {
                if run.1 == 0 {
                    run.0 = start;
                }
                run.1 += 1;
            } else if run.1 > 0 {
                self.write_file(&batch.lines[run.0..start], run.1);
                run.1 = 0;
            }
            self.write(entry, line);
            start = entry.end;
        }
        if run.1 > 0 {
            self.write_file(&batch.lines[run.0..start], run.1);
        }
    }

    /// `lines`, `count` of them, to the file sink.
    fn write_file(&mut self, lines: &[u8], count: u64) {
        let ok = self
            .file
            .as_mut()
            .is_some_and(|f| f.write_all(lines).is_ok());
        let counter = if ok {
            &self.stats.delivered
        } else {
            &self.stats.dropped_sink
        };
        counter.fetch_add(count, Ordering::Relaxed);
    }

    /// Write one queued line, newline included, to each of its entry's sinks but the
    /// file (`write_batch`).
    fn write(&mut self, entry: &Entry, line: &[u8]) {
        for sink in entry.sinks.into_iter().flatten() {
            let ok = match sink {
                Sink::File => continue,
                Sink::Stdout => std::io::stdout().lock().write_all(line).is_ok(),
                Sink::Kafka => {
                    let topic = entry.topic.as_deref().unwrap_or(&self.config.kafka_topic);
                    // Kafka counts its own deliveries when the broker acknowledges them.
                    match &self.kafka {
                        Some(k) => {
                            let mut key = Uuid::encode_buffer();
                            let key = entry
                                .gateway
                                .map_or("", |id| id.hyphenated().encode_lower(&mut key));
                            let payload = line.strip_suffix(b"\n").unwrap_or(line);
                            if !k.send(topic, key, payload) {
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
    }
}

async fn drain(config: TelemetryConfig, shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut sinks = Sinks::open(config, shared.stats.clone());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Queue::with_room(BATCH * 2);
    loop {
        let mut stopping = tokio::select! {
            () = shared.full.notified() => {
                // A full batch: the tick restarts, so the next one waits for a batch
                // or a quiet spell, not for a deadline already near.
                tick.reset();
                false
            }
            _ = tick.tick() => false,
            _ = stopped.changed() => true,
        };
        shared.rounds.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut q) = shared.queue.lock() {
            std::mem::swap(&mut *q, &mut batch);
        }
        if batch.entries.is_empty() && !stopping {
            // Nothing came for a whole tick: park until an event does, rather than
            // waking forty times a second for nothing (each wake-up of an idle VM's
            // CPU cost about 90 µs of CPU time). An event that lands after the swap
            // above leaves `first` a permit, so none waits here; the one after a
            // quiet spell still waits at most a tick for its batch.
            stopping = tokio::select! {
                () = shared.first.notified() => false,
                _ = stopped.changed() => true,
            };
            tick.reset();
            if !stopping {
                continue;
            }
            if let Ok(mut q) = shared.queue.lock() {
                std::mem::swap(&mut *q, &mut batch);
            }
        }
        sinks.write_batch(&batch);
        batch.clear();
        // Swapped back into the queue next round: neither keeps a backlog's room.
        batch.lines.shrink_to(KEEP * LINE);
        batch.entries.shrink_to(KEEP);
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

    fn event(exporters: &[&str]) -> TelemetryEvent {
        let mut e = TelemetryEvent::new("t".into());
        e.exporters = exporters.iter().map(|s| (*s).to_string()).collect();
        e
    }

    /// A backlog's room is given back once it is written: the queue's buffers return to
    /// at most `KEEP` events' worth.
    #[tokio::test]
    async fn a_backlog_does_not_keep_its_memory() {
        let (_stop, stopped) = watch::channel(false);
        let config = TelemetryConfig {
            queue: 10_000,
            // A file sink with no file: every line is written and dropped.
            default_sinks: vec![Sink::File],
            file: None,
            kafka_brokers: None,
            kafka_topic: "t".into(),
            kafka_message_timeout: Duration::from_secs(1),
        };
        let t = Telemetry::start(config, stopped);
        let room = |t: &Telemetry| {
            let q = t.shared.as_ref().expect("on").queue.lock().expect("lock");
            (q.entries.capacity(), q.lines.capacity())
        };
        // Emitted without a yield: the drain cannot run meanwhile, as a stalled sink.
        for _ in 0..5_000 {
            t.emit(event(&[]));
        }
        assert!(room(&t).0 >= 5_000);
        // The drain's rounds swap the queue's two vectors: the backlog's one comes back
        // into the queue every other round, and must come back shrunk. Sampled twice a
        // round for several rounds.
        let mut most = (0, 0);
        for _ in 0..16 {
            tokio::time::sleep(TICK / 2).await;
            if t.depth() == 0 {
                let (entries, lines) = room(&t);
                most = (most.0.max(entries), most.1.max(lines));
            }
        }
        assert_eq!(t.depth(), 0);
        assert!(most.0 <= KEEP && most.1 <= KEEP * LINE, "{most:?}");
        assert_eq!(t.stats().dropped_sink.load(Ordering::Relaxed), 5_000);
    }

    #[test]
    fn an_event_goes_to_its_gateways_exporters_each_once_else_the_defaults() {
        let file = &[Sink::File];
        assert_eq!(sinks_of(file, &event(&[])), [Some(Sink::File), None, None]);
        assert_eq!(
            sinks_of(
                file,
                &event(&["stdout", "bogus", "stdout", "kafka", "file", "file"])
            ),
            [Some(Sink::Stdout), Some(Sink::Kafka), Some(Sink::File)]
        );
        assert_eq!(sinks_of(file, &event(&["bogus"])), [None, None, None]);
        assert_eq!(sinks_of(&[], &event(&[])), [None, None, None]);
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

    /// With no events the sink task parks instead of ticking, the first event after a
    /// quiet spell still leaves within a tick, and events emitted while it is parked
    /// are written when it stops.
    #[tokio::test(start_paused = true)]
    async fn an_idle_sink_task_parks_and_the_next_event_wakes_it() {
        let (telemetry, path, stop) = to_file("idle");
        let rounds = || {
            let shared = telemetry.shared.as_ref().expect("on");
            shared.rounds.load(Ordering::Relaxed)
        };
        // One empty round parks it.
        tokio::time::sleep(TICK * 2).await;
        settle().await;
        let parked = rounds();
        tokio::time::sleep(Duration::from_secs(10)).await;
        settle().await;
        assert_eq!(
            rounds(),
            parked,
            "the sink task ticked with nothing to write"
        );

        for written in 0..3 {
            telemetry.emit(event(&[]));
            settle().await;
            assert_eq!(
                lines(&path),
                written,
                "written before its batch filled or ticked"
            );
            tokio::time::sleep(TICK + Duration::from_millis(1)).await;
            settle().await;
            // Parked again once a round finds nothing.
            tokio::time::sleep(Duration::from_secs(5)).await;
            settle().await;
        }
        assert_eq!(
            lines(&path),
            3,
            "an event after a quiet spell was not written"
        );
        let idle = rounds();
        tokio::time::sleep(Duration::from_secs(5)).await;
        settle().await;
        assert_eq!(rounds(), idle);

        telemetry.emit(event(&[]));
        let _ = stop.send(true);
        settle().await;
        assert_eq!(lines(&path), 4, "stopping lost a queued event");
        let _ = std::fs::remove_file(&path);
    }

    /// Lines bound elsewhere split the file's runs; the file gets its own lines, in
    /// order, each counted once.
    #[tokio::test(start_paused = true)]
    async fn lines_for_other_sinks_split_the_files_runs() {
        let (telemetry, path, _stop) = to_file("runs");
        settle().await;
        let exporters: [&[&str]; 6] = [&[], &["kafka"], &[], &[], &["bogus"], &["file", "kafka"]];
        for (i, names) in exporters.into_iter().enumerate() {
            let mut e = event(names);
            e.trace_id = format!("t{i}");
            telemetry.emit(e);
        }
        tokio::time::sleep(TICK + Duration::from_millis(1)).await;
        settle().await;
        let text = std::fs::read_to_string(&path).expect("telemetry file");
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<TelemetryEvent>(l)
                    .expect("event")
                    .trace_id
            })
            .collect();
        assert_eq!(ids, ["t0", "t2", "t3", "t5"]);
        let stats = telemetry.stats();
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 4);
        // Kafka is not configured: its two lines are dropped; "bogus" names no sink.
        assert_eq!(stats.dropped_sink.load(Ordering::Relaxed), 2);
        let _ = std::fs::remove_file(&path);
    }
}
