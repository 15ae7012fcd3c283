//! Running the proxy: a Pingora server on its own threads, stopped through a watch
//! channel rather than Pingora's own signal handlers, so the binary decides how SIGTERM
//! and SIGINT are handled and tests can start and stop proxies in-process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora_core::services::background::background_service;
use sluice_shared::sync::SnapshotHandle;
use tokio::sync::watch;
use tracing::info;

use crate::accept::{self, Accept};
use crate::balance::{Health, Prober};
use crate::peer::PeerTimeouts;
use crate::service::{PathLimits, SluiceProxy};
use sluice_shared::bus::RedisLimits;
use sluice_telemetry::Telemetry;

/// How to run the proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Listen address; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Worker threads; 0 for one per core.
    pub threads: usize,
    /// One work-stealing runtime for all threads, rather than one single-threaded
    /// runtime per thread with each connection pinned to one.
    pub work_stealing: bool,
    pub max_body_bytes: usize,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// How long in-flight requests get to finish on shutdown.
    pub grace: Duration,
}

/// A running proxy.
pub struct ProxyServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// Pingora's shutdown signal, fed from a watch channel.
struct WatchSignal(watch::Receiver<bool>);

#[async_trait]
impl ShutdownSignalWatch for WatchSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
        ShutdownSignal::GracefulTerminate
    }
}

/// The longest timeout left to Pingora's fast timers (see `ProxyServer::start`).
const FAST_TIMER_LIMIT: Duration = Duration::from_secs(2);

impl ProxyServer {
    /// Start the proxy. Its socket listens when this returns; connections made before
    /// the server threads are up wait in the kernel's queue.
    pub fn start(
        options: &ProxyOptions,
        snapshots: SnapshotHandle,
        health: Arc<Health>,
        telemetry: Telemetry,
        limits: Option<RedisLimits>,
    ) -> std::io::Result<Self> {
        // Bound here, before the server runs: the address (a free port for port 0) is
        // known and taken when this returns.
        let listener = accept::bind(options.addr).map_err(|e| {
            std::io::Error::new(e.kind(), format!("listening on {}: {e}", options.addr))
        })?;
        let addr = listener.local_addr()?;
        let threads = if options.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            options.threads
        };
        let grace = options.grace.as_secs();
        let conf = ServerConf {
            threads,
            grace_period_seconds: Some(grace),
            graceful_shutdown_timeout_seconds: Some(grace.max(1)),
            // Pingora keeps each of its fast timers until the deadline passes, cancelled
            // or not (one entry per 10 ms of deadline). With the 600 s upstream read
            // timeout every request left one behind for ten minutes: RSS rose by about
            // 1 MiB a minute under load through a ten-minute soak. Longer timeouts use
            // Tokio's timer, which forgets a cancelled one at once. (The server applies
            // this when its thread starts, over any earlier setting; see below.)
            fast_timeout_to_tokio_threshold_seconds: Some(FAST_TIMER_LIMIT.as_secs()),
            // A pinned connection never moves between threads: no task hand-off, no
            // cross-thread wake-up, no atomic run queue. On scenario 1 this took a tenth
            // off sluice's CPU per request (README, "Measured"). Pingora still spreads new
            // connections over the threads at random.
            work_stealing: options.work_stealing,
            ..ServerConf::default()
        };
        // Set here too, not only by the server when its thread runs it: the proxy
        // listens from the moment this returns, and no request may get the long-lived
        // timer in between.
        pingora_timeout::fast_timeout::set_fast_timeout_to_tokio_threshold(Some(FAST_TIMER_LIMIT));
        let connector = TransportConnector::new(Some(ConnectorOptions::from_server_conf(&conf)));
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        let path_limits = PathLimits {
            max_body_bytes: options.max_body_bytes,
            timeouts: PeerTimeouts {
                connect: options.connect_timeout,
                read: options.read_timeout,
            },
        };
        let prober = Prober {
            snapshots: snapshots.clone(),
            health: health.clone(),
        };
        server.add_service(Accept::new(
            listener,
            SluiceProxy::new(snapshots, connector, path_limits, health, telemetry, limits),
        ));
        server.add_service(background_service("health checks", prober));

        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("sluice-proxy".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(WatchSignal(stopped)),
                });
            })?;
        info!(%addr, threads, work_stealing = options.work_stealing, "proxy listening");
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, let in-flight requests finish within the grace period, and wait
    /// for the server threads to end. Blocking: call it from a blocking context.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
