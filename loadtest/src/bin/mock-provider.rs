//! `mock-provider`: run the mock LLM provider standalone, for load tests and local play.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use sluice_loadtest::{MockConfig, MockProvider};

/// A fast mock LLM provider speaking OpenAI Chat Completions (plain and SSE).
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "MOCK_ADDR", default_value = "127.0.0.1:9000")]
    addr: SocketAddr,
    /// Name sent back in `x-mock-name`.
    #[arg(long, default_value = "mock")]
    name: String,
    /// Require `Authorization: Bearer <key>`.
    #[arg(long, env = "MOCK_API_KEY")]
    api_key: Option<String>,
    /// Content chunks per stream (and tokens per answer).
    #[arg(long, default_value_t = 8)]
    chunks: u32,
    /// Milliseconds before each stream chunk.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Milliseconds before each response header.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        runtime.worker_threads(args.threads);
    }
    runtime.enable_all().build()?.block_on(async move {
        let config = MockConfig {
            name: args.name,
            api_key: args.api_key,
            chunks: args.chunks,
            chunk_delay: Duration::from_millis(args.chunk_delay_ms),
            latency: Duration::from_millis(args.latency_ms),
            ..MockConfig::default()
        };
        let mock = MockProvider::start(args.addr, config).await?;
        tracing::info!(addr = %mock.addr(), "mock provider listening");
        tokio::signal::ctrl_c().await?;
        Ok(())
    })
}
