//! Assembling sluice's planes into one process. `src/main.rs` parses the command line
//! and calls [`launch`]; tests call it too, with ephemeral ports and a temporary data
//! dir, and talk to the planes over HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use sluice_admin::AdminState;
use sluice_proxy::{ProxyOptions, ProxyServer};
use sluice_shared::bus::ConfigBus;
use sluice_shared::settings::Settings;
use sluice_shared::store::Store;
use sluice_shared::sync::{self, SnapshotHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// A plane of sluice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Admin,
    Proxy,
    Mcp,
}

/// The planes of a running process.
pub struct Running {
    pub admin_addr: Option<SocketAddr>,
    pub proxy_addr: Option<SocketAddr>,
    pub mcp_addr: Option<SocketAddr>,
    pub snapshots: SnapshotHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    proxy: Option<ProxyServer>,
    store: Option<Store>,
}

/// Connect to the store and apply its migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<Store> {
    let url = settings.store_url();
    let store = Store::connect(&url)
        .await
        .context("connecting to the config store")?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Start `planes` with `settings`. Returns once every plane accepts connections.
pub async fn launch(settings: &Settings, planes: &[Plane]) -> anyhow::Result<Running> {
    let has = |p| planes.contains(&p);
    if settings.redis_url.is_none() && !has(Plane::Admin) {
        bail!(
            "the proxy and mcp planes alone need REDIS_URL: the in-process config bus only reaches planes of the same process"
        );
    }
    let bus = ConfigBus::connect(settings.redis_url.as_deref())
        .await
        .context("connecting to the config bus")?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut running = Running {
        admin_addr: None,
        proxy_addr: None,
        mcp_addr: None,
        snapshots: SnapshotHandle::default(),
        stop,
        tasks: Vec::new(),
        proxy: None,
        store: None,
    };

    if has(Plane::Admin) {
        let store = migrate(settings).await?;
        let state = AdminState {
            store: store.clone(),
            bus: bus.clone(),
        };
        let published = sluice_admin::publish_all(&state)
            .await
            .context("publishing config at boot")?;
        let listener = TcpListener::bind(settings.admin_addr)
            .await
            .context("binding the admin address")?;
        running.admin_addr = Some(listener.local_addr()?);
        info!(addr = ?running.admin_addr, gateways = published, store = ?store.backend(), "admin listening");
        let every = settings.republish_interval();
        let rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = sluice_admin::serve(listener, state, every, rx).await {
                tracing::error!(%error, "admin server failed");
            }
        }));
        running.store = Some(store);
    }

    if has(Plane::Proxy) || has(Plane::Mcp) {
        let handle = running.snapshots.clone();
        tasks.push(tokio::spawn(sync::run(
            bus.clone(),
            handle.clone(),
            settings.gateway_base_domain.clone(),
            settings.resync_interval(),
            stopped.clone(),
        )));
        // Serve once the first load is in, or after a short wait when the bus is down:
        // readiness reports the difference.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !handle.is_loaded() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    if has(Plane::Proxy) {
        let options = ProxyOptions {
            addr: settings.proxy_addr,
            threads: settings.proxy_threads,
            max_body_bytes: settings.max_body_bytes,
            connect_timeout: Duration::from_millis(settings.upstream_connect_timeout_ms),
            read_timeout: Duration::from_secs(settings.upstream_read_timeout_secs),
            grace: settings.shutdown_grace(),
        };
        let handle = running.snapshots.clone();
        let proxy = tokio::task::spawn_blocking(move || ProxyServer::start(&options, handle))
            .await?
            .context("starting the proxy")?;
        running.proxy_addr = Some(proxy.addr());
        running.proxy = Some(proxy);
    }

    if has(Plane::Mcp) {
        let listener = TcpListener::bind(settings.mcp_addr)
            .await
            .context("binding the mcp address")?;
        running.mcp_addr = Some(listener.local_addr()?);
        info!(addr = ?running.mcp_addr, "mcp listening");
        let handle = running.snapshots.clone();
        let rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = sluice_mcp::serve(listener, handle, rx).await {
                tracing::error!(%error, "mcp server failed");
            }
        }));
    }

    running.tasks = tasks;
    Ok(running)
}

impl Running {
    /// Stop every plane: listeners close, in-flight requests get the grace period.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(proxy) = self.proxy.take() {
            let _ = tokio::task::spawn_blocking(move || proxy.stop()).await;
        }
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        if let Some(store) = self.store.take() {
            store.close().await;
        }
    }
}
