//! Process settings, read from the environment (or the matching flags) with documented
//! defaults. The backend of every concern is chosen here, never by a code change:
//! `DATABASE_URL` picks PostgreSQL over the embedded SQLite file, `REDIS_URL` picks the
//! Redis config bus over the in-process one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Everything a plane needs to start. `sluice --help` lists each field with its variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address of the admin REST API.
    #[arg(long, env = "SLUICE_ADMIN_ADDR", default_value = "127.0.0.1:8080")]
    pub admin_addr: SocketAddr,

    /// Address of the LLM proxy.
    #[arg(long, env = "SLUICE_PROXY_ADDR", default_value = "0.0.0.0:8081")]
    pub proxy_addr: SocketAddr,

    /// Address of the MCP plane.
    #[arg(long, env = "SLUICE_MCP_ADDR", default_value = "0.0.0.0:8082")]
    pub mcp_addr: SocketAddr,

    /// Directory for the embedded SQLite store and other local state.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Config store URL: `postgres://…` for PostgreSQL, `sqlite://…` for a SQLite file.
    /// Unset: a SQLite file `sluice.db` in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis URL of the config bus (`redis://host:port/db`). Unset: in-process bus, which
    /// only works when admin and proxy run in one process (`sluice all`).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Base domain for host-based gateway lookup: `{slug}.{base domain}`.
    #[arg(long, env = "GATEWAY_BASE_DOMAIN")]
    pub gateway_base_domain: Option<String>,

    /// Bearer token of the admin API. Unset: generated on first start into
    /// `admin-token` in the data dir (mode 0600) and printed once.
    #[arg(long, env = "SLUICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Key that seals upstream secrets (32 bytes, base64). Unset: `secret.key` in the
    /// data dir, created on first start. Admin and proxies must share it.
    #[arg(long, env = "SLUICE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// URL of a models catalog (the shape of `shared/catalog/models.json`) that admin
    /// fetches at boot and every `SLUICE_MODELS_CATALOG_SYNC_SECS`. Unset: the shipped one.
    #[arg(long, env = "SLUICE_MODELS_CATALOG_URL")]
    pub models_catalog_url: Option<String>,

    /// Seconds between syncs of the models catalog.
    #[arg(
        long,
        env = "SLUICE_MODELS_CATALOG_SYNC_SECS",
        default_value_t = 86_400
    )]
    pub models_catalog_sync_secs: u64,

    /// Log filter in `tracing` syntax, e.g. `info` or `sluice_proxy=debug,info`.
    #[arg(long, env = "SLUICE_LOG", default_value = "info")]
    pub log: String,

    /// Log line format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Seconds between full config resyncs of the proxy and mcp planes, on top of the
    /// bus notifications; it heals missed notifications.
    #[arg(long, env = "SLUICE_RESYNC_SECS", default_value_t = 10)]
    pub resync_secs: u64,

    /// Seconds between the admin plane's republish of every gateway from the store, so a
    /// flushed Redis heals itself.
    #[arg(long, env = "SLUICE_REPUBLISH_SECS", default_value_t = 60)]
    pub republish_secs: u64,

    /// Worker threads of the proxy. 0: one per available core.
    #[arg(long, env = "SLUICE_PROXY_THREADS", default_value_t = 0)]
    pub proxy_threads: usize,

    /// How the proxy's worker threads share connections. `pinned` (the default): each
    /// connection stays on the thread it was given, which runs it on a single-threaded
    /// runtime with no cross-thread hand-offs; `stealing`: one runtime whose idle
    /// threads take work from busy ones, for loads of few connections with very uneven
    /// requests.
    #[arg(
        long,
        env = "SLUICE_PROXY_RUNTIME",
        value_enum,
        default_value = "pinned"
    )]
    pub proxy_runtime: ProxyRuntime,

    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "SLUICE_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub shutdown_grace_secs: u64,

    /// Largest request body the proxy accepts, in bytes.
    #[arg(long, env = "SLUICE_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Timeout for connecting to a provider, in milliseconds.
    #[arg(
        long,
        env = "SLUICE_UPSTREAM_CONNECT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub upstream_connect_timeout_ms: u64,

    /// Longest wait for a provider's response header or next body chunk, in seconds.
    #[arg(long, env = "SLUICE_UPSTREAM_READ_TIMEOUT_SECS", default_value_t = 600)]
    pub upstream_read_timeout_secs: u64,

    /// Telemetry sinks for gateways that name none: a comma list of `file`, `stdout`,
    /// `kafka`, or `off`.
    #[arg(long, env = "SLUICE_TELEMETRY", default_value = "file")]
    pub telemetry: String,

    /// The JSON-lines file of the `file` sink (default `<data dir>/telemetry.jsonl`).
    #[arg(long, env = "SLUICE_TELEMETRY_FILE")]
    pub telemetry_file: Option<PathBuf>,

    /// Events held while the sinks catch up; beyond that they are dropped and counted.
    #[arg(long, env = "SLUICE_TELEMETRY_QUEUE", default_value_t = 10_000)]
    pub telemetry_queue: usize,

    /// Kafka brokers (`host:port,…`) of the `kafka` sink.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Kafka topic of gateways that name none.
    #[arg(long, env = "KAFKA_TOPIC", default_value = "sluice-telemetry")]
    pub kafka_topic: String,

    /// How long Kafka retries an event before dropping it, in milliseconds.
    #[arg(long, env = "KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 30_000)]
    pub kafka_message_timeout_ms: u64,
}

/// How the proxy's worker threads share connections (see `Settings::proxy_runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyRuntime {
    Pinned,
    Stealing,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// The settings a test or an embedding program starts from: every default, the given
    /// data dir, and every listener on an ephemeral loopback port.
    pub fn ephemeral(data_dir: PathBuf) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            admin_addr: any,
            proxy_addr: any,
            mcp_addr: any,
            data_dir,
            database_url: None,
            redis_url: None,
            gateway_base_domain: None,
            admin_token: None,
            secret_key: None,
            models_catalog_url: None,
            models_catalog_sync_secs: 86_400,
            log: "info".into(),
            log_format: LogFormat::Text,
            resync_secs: 10,
            republish_secs: 60,
            proxy_threads: 1,
            proxy_runtime: ProxyRuntime::Pinned,
            shutdown_grace_secs: 1,
            max_body_bytes: 32 * 1024 * 1024,
            upstream_connect_timeout_ms: 10_000,
            upstream_read_timeout_secs: 600,
            telemetry: "file".into(),
            telemetry_file: None,
            telemetry_queue: 10_000,
            kafka_brokers: None,
            kafka_topic: "sluice-telemetry".into(),
            kafka_message_timeout_ms: 30_000,
        }
    }

    /// The store URL in force: `DATABASE_URL`, or the SQLite file in the data dir.
    pub fn store_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("sluice.db").display()
            ),
        }
    }

    pub fn resync_interval(&self) -> Duration {
        Duration::from_secs(self.resync_secs.max(1))
    }

    pub fn republish_interval(&self) -> Duration {
        Duration::from_secs(self.republish_secs.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}
