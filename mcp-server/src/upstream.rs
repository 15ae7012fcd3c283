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
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam, ProgressToken,
    ProtocolVersion, ServerNotification, SubscriptionFilter,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, Peer, RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, RoleServer};
use sluice_shared::snapshot::mcp::{McpServer, McpUpstreamAuth};
use uuid::Uuid;

use crate::forwarded::Forwarded;
use crate::signing::Signer;

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

/// How long a connection made for one agent's identity (passthrough) is kept unused.
const IDLE: Duration = Duration::from_secs(600);

struct Slot {
    fingerprint: u64,
    client: tokio::sync::Mutex<Option<Client>>,
    used: Mutex<Instant>,
}

impl Slot {
    fn new(fingerprint: u64) -> Arc<Self> {
        Arc::new(Self {
            fingerprint,
            client: tokio::sync::Mutex::new(None),
            used: Mutex::new(Instant::now()),
        })
    }
}

/// What an upstream may need to know of the agent behind a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Agent<'a> {
    /// A trusted issuer's token the agent presented (`passthrough`, `exchange`).
    pub token: Option<&'a str>,
    /// Who the agent acts for, stable across sessions (`forwarded` keeps each user's
    /// tokens under it).
    pub user: Option<&'a str>,
    /// The subject of the token the agent presented, if any.
    pub subject: Option<&'a str>,
    /// Where a consent link sends the user back: the agent's gateway and consumer,
    /// and the base URL it reached this plane at.
    pub gateway_id: Uuid,
    pub consumer_id: Uuid,
    pub base_url: &'a str,
}

/// Who the upstream sees, and the headers that say so.
struct Identity {
    /// Empty for the registry's own identity, else a digest of the agent's token.
    key: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Where a progress notification from upstream goes.
struct ProgressRoute {
    peer: Peer<RoleServer>,
    token: ProgressToken,
}

/// The pool of upstream connections.
pub struct Upstreams {
    slots: Mutex<HashMap<(Uuid, String), Arc<Slot>>>,
    /// Tokens sluice obtained, by registry and (for exchanged ones) the digest of the
    /// agent's token: the token and when to fetch anew.
    tokens: tokio::sync::Mutex<HashMap<(Uuid, String), (Instant, String)>>,
    http: reqwest::Client,
    swept: Mutex<Instant>,
    progress: Arc<Mutex<HashMap<ProgressToken, ProgressRoute>>>,
    listener: Arc<dyn Listener>,
    generation: AtomicU64,
    forwarded: Arc<Forwarded>,
    signer: Option<Arc<Signer>>,
}

/// Why an upstream could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream auth mode {0} is not supported by this plane yet")]
    UnsupportedAuth(String),
    #[error("{0}")]
    Credential(String),
    #[error("connecting timed out")]
    Timeout,
    #[error("{0}")]
    Connect(String),
    /// The user must connect their account first (`forwarded`); the consent link,
    /// which is for the caller only and so is not in the message (messages are logged).
    #[error("the user has not connected an account at this server yet")]
    ConsentRequired(String),
}

impl Upstreams {
    pub fn new(
        listener: Arc<dyn Listener>,
        forwarded: Arc<Forwarded>,
        signer: Option<Arc<Signer>>,
    ) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            tokens: tokio::sync::Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(CONNECT_TIMEOUT)
                .build()
                .unwrap_or_default(),
            swept: Mutex::new(Instant::now()),
            progress: Arc::default(),
            listener,
            generation: AtomicU64::new(0),
            forwarded,
            signer,
        }
    }

    fn slot(&self, server: &McpServer, identity: &str) -> Arc<Slot> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        {
            // Connections of agents gone quiet are closed, at most once a minute.
            let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
            if now.duration_since(*swept) > Duration::from_secs(60) {
                *swept = now;
                slots.retain(|(_, who), slot| {
                    who.is_empty()
                        || now.duration_since(*slot.used.lock().unwrap_or_else(|p| p.into_inner()))
                            < IDLE
                });
            }
        }
        let slot = slots
            .entry((server.id, identity.to_string()))
            .or_insert_with(|| Slot::new(server.fingerprint));
        if slot.fingerprint != server.fingerprint {
            *slot = Slot::new(server.fingerprint);
        }
        *slot.used.lock().unwrap_or_else(|p| p.into_inner()) = now;
        slot.clone()
    }

    /// Who `server` sees for `agent`, and the headers that carry it.
    async fn identity(
        &self,
        server: &McpServer,
        agent: Agent<'_>,
    ) -> Result<Identity, UpstreamError> {
        let caller_token = agent.token;
        let mut headers = server.headers.clone();
        let key = match &server.auth {
            McpUpstreamAuth::None => String::new(),
            McpUpstreamAuth::Unsupported(mode) => {
                return Err(UpstreamError::UnsupportedAuth(mode.clone()));
            }
            McpUpstreamAuth::Exchange { .. } => {
                let subject = caller_token.ok_or_else(|| {
                    UpstreamError::Credential(
                        "this server takes a token exchanged for the caller's own (exchange), and the caller presented none".into(),
                    )
                })?;
                let token = self.obtained_token(server, Some(subject)).await?;
                headers.push(bearer(&token)?);
                format!("ex:{}", crate::oauth::s256(subject))
            }
            McpUpstreamAuth::ClientCredentials { .. } => {
                let token = self.obtained_token(server, None).await?;
                headers.push(bearer(&token)?);
                // A new token makes a new session: the old one ends with its token.
                format!("cc:{}", crate::oauth::s256(&token))
            }
            McpUpstreamAuth::Signed { audience } => {
                let token = self
                    .signed_token(server, audience.as_deref(), agent)
                    .await?;
                headers.push(bearer(&token)?);
                format!("sg:{}", crate::oauth::s256(&token))
            }
            McpUpstreamAuth::Forwarded(_) => {
                let user = agent.user.ok_or_else(|| {
                    UpstreamError::Credential(
                        "this server acts as each user (forwarded), and the caller is no known user".into(),
                    )
                })?;
                let token = self.forwarded.token(server, user).await.map_err(|e| {
                    UpstreamError::Credential(format!("the user's tokens cannot be read: {e}"))
                })?;
                let Some(token) = token else {
                    let url = self
                        .forwarded
                        .consent_url(
                            server,
                            agent.gateway_id,
                            agent.consumer_id,
                            user,
                            agent.base_url,
                        )
                        .map_err(|e| UpstreamError::Credential(e.to_string()))?;
                    return Err(UpstreamError::ConsentRequired(url));
                };
                headers.push(bearer(&token)?);
                // A refreshed token makes a new session, as with client credentials.
                format!("fw:{}", crate::oauth::s256(&token))
            }
            McpUpstreamAuth::Passthrough { audience } => {
                let token = caller_token.ok_or_else(|| {
                    UpstreamError::Credential(
                        "this server takes the caller's own token (passthrough), and the caller presented none".into(),
                    )
                })?;
                if let Some(audience) = audience
                    && !audience_names(token, audience)
                {
                    return Err(UpstreamError::Credential(format!(
                        "the caller's token is not meant for {audience} (its aud does not name it)"
                    )));
                }
                headers.push(bearer(token)?);
                format!("pt:{}", crate::oauth::s256(token))
            }
        };
        Ok(Identity { key, headers })
    }

    /// A token from the registry's token endpoint: its own (client credentials), or
    /// one in exchange for the agent's `subject` token (RFC 8693). Reused until a
    /// minute before it expires.
    async fn obtained_token(
        &self,
        server: &McpServer,
        subject: Option<&str>,
    ) -> Result<String, UpstreamError> {
        let (token_url, client_id, client_secret, scope, audience) = match &server.auth {
            McpUpstreamAuth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            }
            | McpUpstreamAuth::Exchange {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            } => (token_url, client_id, client_secret, scope, audience),
            _ => {
                return Err(UpstreamError::Credential(
                    "the registry obtains no tokens".into(),
                ));
            }
        };
        let key = (
            server.id,
            subject.map(crate::oauth::s256).unwrap_or_default(),
        );
        {
            let tokens = self.tokens.lock().await;
            if let Some((renew, token)) = tokens.get(&key)
                && Instant::now() < *renew
            {
                return Ok(token.clone());
            }
        }
        // The lock is not held across the token endpoint's answer: a slow endpoint
        // delays only the callers that need a new token (two may fetch at once).
        let mut form = match subject {
            None => vec![("grant_type", "client_credentials")],
            Some(subject) => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ],
        };
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = audience {
            form.push(("audience", audience));
        }
        let failed =
            |e: String| UpstreamError::Credential(format!("the token endpoint failed: {e}"));
        let response = self
            .http
            .post(token_url)
            .basic_auth(client_id, Some(client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("status {}", response.status())));
        }
        let body: serde_json::Value = response.json().await.map_err(|e| failed(e.to_string()))?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| failed("no access_token in the answer".into()))?
            .to_string();
        let lifetime = body["expires_in"].as_u64().unwrap_or(300);
        let renew = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1));
        let mut tokens = self.tokens.lock().await;
        if tokens.len() > 10_000 {
            let now = Instant::now();
            tokens.retain(|_, (renew, _)| *renew > now);
        }
        tokens.insert(key, (renew, token.clone()));
        Ok(token)
    }

    /// A token sluice signs for `agent` at `server`, reused until a minute before it
    /// expires (so the upstream session lasts as long).
    async fn signed_token(
        &self,
        server: &McpServer,
        audience: Option<&str>,
        agent: Agent<'_>,
    ) -> Result<String, UpstreamError> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            UpstreamError::Credential(
                "signing tokens needs SLUICE_SECRET_KEY, and this plane has none".into(),
            )
        })?;
        let user = agent.user.ok_or_else(|| {
            UpstreamError::Credential("the caller is no known user to vouch for".into())
        })?;
        let key = (server.id, format!("sg:{}", crate::oauth::s256(user)));
        let mut tokens = self.tokens.lock().await;
        if let Some((renew, token)) = tokens.get(&key)
            && Instant::now() < *renew
        {
            return Ok(token.clone());
        }
        let token = signer.sign(serde_json::json!({
            "iss": agent.base_url,
            "sub": user,
            "aud": audience.unwrap_or(&server.url),
            "gateway_id": agent.gateway_id,
            "consumer_id": agent.consumer_id,
            "caller_subject": agent.subject,
        }));
        let renew =
            Instant::now() + Duration::from_secs(crate::signing::TOKEN_SECONDS.saturating_sub(60));
        tokens.insert(key, (renew, token.clone()));
        Ok(token)
    }

    /// A live client of `server` for `agent`, opening one when there is none.
    pub async fn peer(
        &self,
        server: &McpServer,
        agent: Agent<'_>,
    ) -> Result<Peer<RoleClient>, UpstreamError> {
        let identity = self.identity(server, agent).await?;
        let slot = self.slot(server, &identity.key);
        let mut client = slot.client.lock().await;
        if let Some(c) = client.as_ref()
            && !c.is_closed()
        {
            return Ok(c.peer().clone());
        }
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(server, identity.headers))
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        let peer = opened.peer().clone();
        self.watch(server.id, peer.clone());
        if let Some(old) = client.replace(opened) {
            tokio::spawn(async move {
                let _ = old.cancel().await;
            });
        }
        tracing::info!(registry = %server.id, url = %server.url, "upstream MCP session opened");
        Ok(peer)
    }

    /// Listen for a stateless-era server's list changes (`subscriptions/listen`, its
    /// only way to tell them) for as long as the session lives. A handshake-era
    /// server refuses the request, and its notifications come to [`Relay`] instead.
    fn watch(&self, server: Uuid, peer: Peer<RoleClient>) {
        let listener = self.listener.clone();
        tokio::spawn(async move {
            let filter = SubscriptionFilter::builder()
                .tools_list_changed()
                .prompts_list_changed()
                .resources_list_changed()
                .build();
            let mut subscription = match peer.listen(filter).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::debug!(registry = %server, %error, "upstream takes no subscriptions/listen");
                    return;
                }
            };
            tracing::debug!(registry = %server, "listening for upstream list changes");
            while let Ok(Some(notification)) = subscription.next().await {
                let kind = match notification {
                    ServerNotification::ToolListChangedNotification(_) => ListKind::Tools,
                    ServerNotification::PromptListChangedNotification(_) => ListKind::Prompts,
                    ServerNotification::ResourceListChangedNotification(_) => ListKind::Resources,
                    _ => continue,
                };
                listener.list_changed(server, kind);
            }
        });
    }

    /// Drop the connection to `server` (its transport failed), so the next call opens
    /// a fresh one.
    pub async fn forget(&self, server: &McpServer, agent: Agent<'_>) {
        let Ok(identity) = self.identity(server, agent).await else {
            return;
        };
        let slot = self.slot(server, &identity.key);
        let old = slot.client.lock().await.take();
        if let Some(old) = old {
            let _ = old.cancel().await;
        }
    }

    async fn connect(
        &self,
        server: &McpServer,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Client, UpstreamError> {
        let relay = Relay {
            server: server.id,
            progress: self.progress.clone(),
            listener: self.listener.clone(),
        };
        self.generation.fetch_add(1, Ordering::Relaxed);
        open(server, headers, relay).await
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
async fn open(
    server: &McpServer,
    headers: Vec<(HeaderName, HeaderValue)>,
    relay: Relay,
) -> Result<Client, UpstreamError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url.clone());
    config.reinit_on_expired_session = true;
    config.custom_headers = headers.into_iter().collect();
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

/// `Authorization: Bearer {token}`, kept out of logs.
fn bearer(token: &str) -> Result<(HeaderName, HeaderValue), UpstreamError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| UpstreamError::Credential("the token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok((http::header::AUTHORIZATION, value))
}

/// Whether a JWT's `aud` (a string or a list) names `audience`. The token was
/// verified when the agent presented it; this only reads its claims.
fn audience_names(token: &str, audience: &str) -> bool {
    use base64::Engine;
    let Some(payload) = token.split('.').nth(1) else {
        return false;
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return false;
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    match &claims["aud"] {
        serde_json::Value::String(a) => a == audience,
        serde_json::Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

struct Deaf;

impl Listener for Deaf {
    fn list_changed(&self, _server: Uuid, _kind: ListKind) {}
}

/// The tools `server` offers now, over a session opened for the question and closed
/// after it (admin's live view of a registry).
pub async fn live_tools(server: &McpServer) -> Result<Vec<rmcp::model::Tool>, UpstreamError> {
    if let McpUpstreamAuth::Passthrough { .. }
    | McpUpstreamAuth::Exchange { .. }
    | McpUpstreamAuth::Signed { .. }
    | McpUpstreamAuth::Forwarded(_) = &server.auth
    {
        return Err(UpstreamError::Credential(
            "this server takes a token of each caller's (passthrough, exchange or forwarded): admin has none to list it with".into(),
        ));
    }
    let forwarded = Forwarded::new(Arc::new(crate::oauth::Store::new(None)), None);
    let upstreams = Upstreams::new(Arc::new(Deaf), Arc::new(forwarded), None);
    let identity = upstreams.identity(server, Agent::default()).await?;
    let relay = Relay {
        server: server.id,
        progress: Arc::default(),
        listener: Arc::new(Deaf),
    };
    let client = tokio::time::timeout(CONNECT_TIMEOUT, open(server, identity.headers, relay))
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
