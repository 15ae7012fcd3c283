//! The `sluice` command: parse the command line, set up logging, start the planes, and
//! stop them gracefully on SIGTERM or SIGINT.

use clap::{Parser, Subcommand};
use sluice::{Plane, launch, migrate};
use sluice_shared::settings::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// The request path allocates many small, short-lived buffers across threads; mimalloc
/// serves that pattern with less contention than glibc's allocator.
#[global_allocator]
static GLOBAL: sluice::alloc::Allocator = sluice::alloc::Allocator;

/// sluice: a gateway for LLM and agent traffic.
///
/// Every setting comes from an environment variable or the matching flag.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand, Clone, Copy)]
enum Command {
    /// Admin, proxy and mcp planes in one process (the default).
    All,
    /// The admin REST API only.
    Admin,
    /// The LLM proxy only (needs REDIS_URL).
    Proxy,
    /// The MCP plane only (needs REDIS_URL).
    Mcp,
    /// Apply the store's migrations and exit.
    Migrate,
    /// Print the admin API's OpenAPI 3.1 document and exit (the one `GET /openapi.json`
    /// serves), for client generators and CI checks that run no server.
    Openapi,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let planes: &[Plane] = match cli.command.unwrap_or(Command::All) {
        Command::All => &[Plane::Admin, Plane::Proxy, Plane::Mcp],
        Command::Admin => &[Plane::Admin],
        Command::Proxy => &[Plane::Proxy],
        Command::Mcp => &[Plane::Mcp],
        Command::Migrate => {
            migrate(&cli.settings).await?.close().await;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Command::Openapi => {
            println!("{}", sluice_admin::openapi::DOCUMENT.as_str());
            return Ok(());
        }
    };
    let running = launch(&cli.settings, planes).await?;
    // The planes are up: the code that only starting needed leaves memory.
    if let Some(bytes) = sluice::resident::release_startup_code() {
        tracing::debug!(kib = bytes / 1024, "released start-up code pages");
    }
    if running.admin_token_generated
        && let Some(token) = &running.admin_token
    {
        // Shown once, on the terminal rather than in the logs; it is kept in the data dir.
        println!(
            "admin token (saved in {}): {token}",
            cli.settings.data_dir.join("admin-token").display()
        );
    }
    wait_for_signal().await?;
    tracing::info!(
        grace_secs = cli.settings.shutdown_grace_secs,
        "shutting down"
    );
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

fn init_logging(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
