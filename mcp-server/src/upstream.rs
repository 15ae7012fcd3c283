//! Connections to upstream MCP servers: one client per registry, opened on first use
//! and shared by every agent session that reaches it, because MCP requests multiplex
//! over one session. A connection made under an older registry config (URL or headers)
//! is replaced; one whose transport died is reopened on the next call. Whether the
//! server speaks the stateless era (`server/discover`) or the handshake era
//! (`initialize`) is found out by the SDK client, which tries the first and falls back;
//! a session the server expired is re-initialised by the SDK transparently.
//!
//! What an upstream sends back unasked goes through [`Relay`]: progress is routed to
//! the agent that asked for it, and `list_changed` invalidates the cached listings and
//! is passed on to the agents whose consumers reach that server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam, ProgressToken,
    ProtocolVersion,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, Peer, RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, RoleServer};
use sluice_shared::snapshot::mcp::{McpServer, McpUpstreamAuth};
use uuid::Uuid;

/// How long opening an upstream session may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which listing of a server changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

/// What the relay tells the rest of the plane.
pub trait Listener: Send + Sync + 'static {
    /// A server said one of its listings changed.
    fn list_changed(&self, server: Uuid, kind: ListKind);
}

type Client = RunningService<RoleClient, Relay>;

struct Slot {
    fingerprint: u64,
    client: tokio::sync::Mutex<Option<Client>>,
}

/// Where a progress notification from upstream goes.
struct ProgressRoute {
    peer: Peer<RoleServer>,
    token: ProgressToken,
}

/// The pool of upstream connections.
pub struct Upstreams {
    slots: Mutex<HashMap<Uuid, Arc<Slot>>>,
    progress: Arc<Mutex<HashMap<ProgressToken, ProgressRoute>>>,
    listener: Arc<dyn Listener>,
    generation: AtomicU64,
}

/// Why an upstream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream auth mode {0} is not supported by this plane yet")]
    UnsupportedAuth(String),
    #[error("connecting timed out")]
    Timeout,
    #[error("{0}")]
    Connect(String),
}

impl Upstreams {
    pub fn new(listener: Arc<dyn Listener>) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            progress: Arc::default(),
            listener,
            generation: AtomicU64::new(0),
        }
    }

    fn slot(&self, server: &McpServer) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(server.id).or_insert_with(|| {
            Arc::new(Slot {
                fingerprint: server.fingerprint,
                client: tokio::sync::Mutex::new(None),
            })
        });
        if slot.fingerprint != server.fingerprint {
            *slot = Arc::new(Slot {
                fingerprint: server.fingerprint,
                client: tokio::sync::Mutex::new(None),
            });
        }
        slot.clone()
    }

    /// A live client of `server`, opening one when there is none.
    pub async fn peer(&self, server: &McpServer) -> Result<Peer<RoleClient>, UpstreamError> {
        if let McpUpstreamAuth::Unsupported(mode) = &server.auth {
            return Err(UpstreamError::UnsupportedAuth(mode.clone()));
        }
        let slot = self.slot(server);
        let mut client = slot.client.lock().await;
        if let Some(c) = client.as_ref()
            && !c.is_closed()
        {
            return Ok(c.peer().clone());
        }
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(server))
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        let peer = opened.peer().clone();
        if let Some(old) = client.replace(opened) {
            tokio::spawn(async move {
                let _ = old.cancel().await;
            });
        }
        tracing::info!(registry = %server.id, url = %server.url, "upstream MCP session opened");
        Ok(peer)
    }

    /// Drop the connection to `server` (its transport failed), so the next call opens
    /// a fresh one.
    pub async fn forget(&self, server: &McpServer) {
        let slot = self.slot(server);
        let old = slot.client.lock().await.take();
        if let Some(old) = old {
            let _ = old.cancel().await;
        }
    }

    async fn connect(&self, server: &McpServer) -> Result<Client, UpstreamError> {
        let relay = Relay {
            server: server.id,
            progress: self.progress.clone(),
            listener: self.listener.clone(),
        };
        self.generation.fetch_add(1, Ordering::Relaxed);
        open(server, relay).await
    }

    /// Send the upstream progress of `upstream` to `peer` under the agent's `token`,
    /// until [`Self::unroute`].
    pub fn route_progress(
        &self,
        upstream: ProgressToken,
        peer: Peer<RoleServer>,
        token: ProgressToken,
    ) {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(upstream, ProgressRoute { peer, token });
    }

    pub fn unroute(&self, upstream: &ProgressToken) {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(upstream);
    }

    /// Upstream sessions opened by this process (a restart or expiry shows here).
    pub fn sessions_opened(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

/// Open a client session to `server`: `server/discover` first, `initialize` when the
/// server is of the handshake era.
async fn open(server: &McpServer, relay: Relay) -> Result<Client, UpstreamError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url.clone());
    config.reinit_on_expired_session = true;
    config.custom_headers = server.headers.iter().cloned().collect();
    let transport = StreamableHttpClientTransport::from_config(config);
    let mode = ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::LATEST],
        legacy_version: None,
    };
    relay
        .serve_with_lifecycle(transport, mode)
        .await
        .map_err(|e| UpstreamError::Connect(e.to_string()))
}

struct Deaf;

impl Listener for Deaf {
    fn list_changed(&self, _server: Uuid, _kind: ListKind) {}
}

/// The tools `server` offers now, over a session opened for the question and closed
/// after it (admin's live view of a registry).
pub async fn live_tools(server: &McpServer) -> Result<Vec<rmcp::model::Tool>, UpstreamError> {
    if let McpUpstreamAuth::Unsupported(mode) = &server.auth {
        return Err(UpstreamError::UnsupportedAuth(mode.clone()));
    }
    let relay = Relay {
        server: server.id,
        progress: Arc::default(),
        listener: Arc::new(Deaf),
    };
    let client = tokio::time::timeout(CONNECT_TIMEOUT, open(server, relay))
        .await
        .map_err(|_| UpstreamError::Timeout)??;
    let tools = tokio::time::timeout(CONNECT_TIMEOUT, client.peer().list_all_tools()).await;
    let _ = client.cancel().await;
    match tools {
        Ok(Ok(tools)) => Ok(tools),
        Ok(Err(e)) => Err(UpstreamError::Connect(e.to_string())),
        Err(_) => Err(UpstreamError::Timeout),
    }
}

/// The client side of one upstream connection.
#[derive(Clone)]
pub struct Relay {
    server: Uuid,
    progress: Arc<Mutex<HashMap<ProgressToken, ProgressRoute>>>,
    listener: Arc<dyn Listener>,
}

impl ClientHandler for Relay {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("sluice", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let route = {
            let routes = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            routes
                .get(&params.progress_token)
                .map(|r| (r.peer.clone(), r.token.clone()))
        };
        if let Some((peer, token)) = route {
            let mut forwarded = params;
            forwarded.progress_token = token;
            if let Err(error) = peer.notify_progress(forwarded).await {
                tracing::debug!(%error, "progress could not be passed on");
            }
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.listener.list_changed(self.server, ListKind::Tools);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.listener.list_changed(self.server, ListKind::Prompts);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.listener.list_changed(self.server, ListKind::Resources);
    }
}
