//! The MCP server agents talk to: one handler per agent session (or per request, in
//! the stateless era), answering from the aggregated catalog and forwarding calls to
//! the upstream server that owns the tool, prompt or resource.
//!
//! The caller was authenticated on the HTTP request before the SDK's transport saw it
//! and travels in the request's extensions. A session is bound to the consumer that
//! opened it: its id presented on another consumer's path is refused.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, ErrorData, Extensions,
    GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ResultType, ServerCapabilities, ServerConfig, ServerResult, SubscriptionFilter,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, ServiceError,
    SubscriptionContext, SubscriptionSink,
};
use rmcp::{RoleServer, ServerHandler};
use sluice_telemetry::metrics::METRICS;
use sluice_telemetry::{
    ConsumerRef, GatewayRef, Latency, McpCall, PolicyOutcome, Telemetry, TelemetryEvent,
};
use uuid::Uuid;

use crate::access::Caller;
use crate::catalog::{Catalog, Exposed, FetchError, template_covers};
use crate::errors;
use crate::governance::{Limits, tool_blocked};
use crate::upstream::{Agent, ListKind, Listener, Upstreams};

/// How old a tool listing must be before a call to an unknown name refreshes it.
const REFRESH_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// An agent that hears about list changes: a handshake-era session, or a
/// stateless-era `subscriptions/listen` stream (2026-07-28 has no standing stream;
/// an agent asks for changes with a long-lived request instead).
struct Downstream {
    to: Audience,
    servers: Vec<Uuid>,
}

#[derive(Clone)]
enum Audience {
    Session(Peer<RoleServer>),
    Subscription { id: u64, sink: SubscriptionSink },
}

impl Audience {
    fn alive(&self) -> bool {
        match self {
            Self::Session(peer) => !peer.is_transport_closed(),
            // Removed by `listen` when the stream ends.
            Self::Subscription { .. } => true,
        }
    }

    async fn tell(&self, kind: ListKind) -> Result<(), String> {
        match self {
            Self::Session(peer) => match kind {
                ListKind::Tools => peer.notify_tool_list_changed().await,
                ListKind::Prompts => peer.notify_prompt_list_changed().await,
                ListKind::Resources => peer.notify_resource_list_changed().await,
            }
            .map_err(|e| e.to_string()),
            // A kind the agent did not ask for is refused by the sink, and that is fine.
            Self::Subscription { sink, .. } => match kind {
                ListKind::Tools => sink.notify_tool_list_changed().await,
                ListKind::Prompts => sink.notify_prompt_list_changed().await,
                ListKind::Resources => sink.notify_resource_list_changed().await,
            }
            .map_err(|e| e.to_string()),
        }
    }
}

/// Passes upstream `list_changed` on: drops the cached listing and tells the agents
/// whose consumers reach that server.
#[derive(Default)]
pub struct Notifier {
    pub catalog: Catalog,
    sessions: Mutex<Vec<Downstream>>,
    next_subscription: std::sync::atomic::AtomicU64,
}

impl Notifier {
    fn add(&self, to: Audience, servers: Vec<Uuid>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        // Ended sessions are dropped here too, so the list stays as long as the live ones.
        sessions.retain(|s| s.to.alive());
        sessions.push(Downstream { to, servers });
    }

    fn remove_subscription(&self, gone: u64) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| !matches!(s.to, Audience::Subscription { id, .. } if id == gone));
    }
}

impl Listener for Notifier {
    fn list_changed(&self, server: Uuid, kind: ListKind) {
        self.catalog.invalidate(server, kind);
        let audience: Vec<Audience> = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.retain(|s| s.to.alive());
            sessions
                .iter()
                .filter(|s| s.servers.contains(&server))
                .map(|s| s.to.clone())
                .collect()
        };
        tokio::spawn(async move {
            for to in audience {
                if let Err(error) = to.tell(kind).await {
                    tracing::debug!(%error, "list_changed could not be passed on");
                }
            }
        });
    }
}

/// Everything the handlers share.
pub struct Plane {
    pub upstreams: Upstreams,
    pub notifier: Arc<Notifier>,
    pub limits: Limits,
    pub telemetry: Telemetry,
}

impl Plane {
    fn catalog(&self) -> &Catalog {
        &self.notifier.catalog
    }
}

/// One agent session's handler.
#[derive(Clone)]
pub struct Gateway {
    plane: Arc<Plane>,
    bound: Arc<OnceLock<Uuid>>,
}

/// What one forwarded call was, for its telemetry event.
struct Record<'a> {
    method: &'static str,
    name: &'a str,
    target: Option<&'a Exposed<()>>,
    outcomes: Vec<PolicyOutcome>,
    tool_error: bool,
}

impl Gateway {
    pub fn new(plane: Arc<Plane>) -> Self {
        Self {
            plane,
            bound: Arc::default(),
        }
    }

    /// The authenticated caller of this request, checked against the session's owner.
    fn caller(&self, extensions: &Extensions) -> Result<Caller, ErrorData> {
        let caller = extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the request carries no caller", None))?;
        let owner = *self.bound.get_or_init(|| caller.consumer.id);
        if owner != caller.consumer.id {
            return Err(ErrorData::invalid_request(
                "this session belongs to another consumer",
                None,
            ));
        }
        Ok(caller)
    }

    /// Emit the telemetry event and metrics of one call.
    fn record(
        &self,
        caller: &Caller,
        rec: Record<'_>,
        error: Option<&ErrorData>,
        started: Instant,
    ) {
        let elapsed = started.elapsed();
        let registry = rec.target.map(|e| e.server.clone());
        let registry_id = registry
            .as_ref()
            .map(|s| s.id.to_string())
            .unwrap_or_default();
        let outcome = match error {
            None if rec.tool_error => "tool_error",
            None => "success",
            Some(e) => errors::reason(e),
        };
        METRICS
            .mcp_calls
            .with_label_values(&[
                &caller.gateway.slug,
                &caller.consumer.slug,
                &registry_id,
                rec.method,
                rec.name,
                outcome,
            ])
            .inc();
        METRICS
            .mcp_duration
            .with_label_values(&[&registry_id, rec.method])
            .observe(elapsed.as_secs_f64());
        let mut event = TelemetryEvent::new(Uuid::now_v7().simple().to_string());
        event.kind = "mcp".into();
        event.dialect = "mcp".into();
        event.endpoint = Some(rec.method.into());
        event.gateway = GatewayRef {
            id: Some(caller.gateway.id),
            slug: Some(caller.gateway.slug.clone()),
        };
        event.consumer = ConsumerRef {
            id: Some(caller.consumer.id),
            name: Some(caller.consumer.name.clone()),
        };
        event.registry_id = registry.as_ref().map(|s| s.id);
        event.status = match (error, outcome) {
            (None, _) => 200,
            (Some(_), "rate_limited") => 429,
            (Some(_), "policy_blocked") => 403,
            (Some(_), "not_found") => 404,
            (Some(_), "upstream_unavailable") => 502,
            (Some(_), _) => 500,
        };
        event.outcome = match outcome {
            "success" | "tool_error" => "success",
            "policy_blocked" | "not_found" | "rate_limited" => "client_error",
            _ => "upstream_error",
        }
        .into();
        event.error = error.map(|e| errors::reason(e).into());
        event.latency = Latency {
            total_ms: elapsed.as_secs_f64() * 1000.0,
            ..Latency::default()
        };
        event.policies = rec.outcomes;
        event.mcp = Some(McpCall {
            method: rec.method.into(),
            name: rec.name.into(),
            upstream_name: rec.target.map(|e| e.upstream.clone()),
            registry_name: registry.as_ref().map(|s| s.name.clone()),
            tool_error: rec.tool_error,
        });
        event.client_ip = caller.client_ip.clone();
        event.user_agent = caller.user_agent.clone();
        event.exporters = caller.gateway.exporters.clone();
        event.kafka_topic = caller.gateway.kafka_topic.clone();
        tracing::info!(gateway = %caller.gateway.slug, consumer = %caller.consumer.slug,
            method = rec.method, name = rec.name, registry = %registry_id, outcome,
            ms = elapsed.as_millis() as u64, "mcp call");
        self.plane.telemetry.emit(event);
    }

    /// Find a tool, refreshing the listings once when it is not there (it may be new).
    async fn find_tool(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Exposed<rmcp::model::Tool>, ErrorData> {
        let mut gaps = Vec::new();
        for attempt in 0..2 {
            let tools;
            (tools, gaps) = self
                .plane
                .catalog()
                .tools_with_gaps(&self.plane.upstreams, &caller.mcp, caller.agent())
                .await?;
            if let Some(t) = tools.into_iter().find(|t| t.name == name) {
                return Ok(t);
            }
            if attempt == 0 {
                // Listings fetched in the last seconds are trusted, so calls to names
                // that do not exist cannot make every upstream list again and again.
                for reach in &caller.mcp.servers {
                    if let Ok(s) = &reach.server {
                        self.plane
                            .catalog()
                            .invalidate_older(s.id, ListKind::Tools, REFRESH_AFTER);
                    }
                }
            }
        }
        // Not there, but a server was left out: the tool may be one of its, so the
        // agent hears why that server is missing (a consent to give, an outage)
        // rather than that no such tool exists.
        match gaps.into_iter().next() {
            Some(gap) => Err(gap),
            None => Err(errors::not_found("tool", name)),
        }
    }

    async fn forward_tool(
        &self,
        tool: &Exposed<rmcp::model::Tool>,
        agent: Agent<'_>,
        request: &CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let server = &tool.server;
        let mut params = request.clone();
        params.name = tool.upstream.clone().into();
        params.meta = None;
        let mut retried = false;
        loop {
            let peer = self
                .plane
                .upstreams
                .peer(server, agent)
                .await
                .map_err(|e| FetchError::from(e).into_error(&server.name))?;
            let sent = peer
                .send_cancellable_request(
                    ClientRequest::CallToolRequest(CallToolRequest::new(params.clone())),
                    PeerRequestOptions::no_options(),
                )
                .await;
            let mut handle = match sent {
                Ok(h) => h,
                Err(ServiceError::TransportClosed) if !retried => {
                    retried = true;
                    self.plane.upstreams.forget(server, agent).await;
                    continue;
                }
                Err(e) => return Err(FetchError::from(e).into_error(&server.name)),
            };
            let routed = ctx.meta.get_progress_token().map(|token| {
                let upstream = handle.progress_token.clone();
                self.plane
                    .upstreams
                    .route_progress(upstream.clone(), ctx.peer.clone(), token);
                upstream
            });
            let answer = tokio::select! {
                answer = &mut handle.rx => Some(answer),
                _ = ctx.ct.cancelled() => None,
            };
            if let Some(token) = &routed {
                self.plane.upstreams.unroute(token);
            }
            let answer = match answer {
                None => {
                    // The agent cancelled: so does sluice, upstream.
                    let _ = handle.cancel(Some("cancelled by the client".into())).await;
                    return Err(ErrorData::internal_error("the request was cancelled", None));
                }
                Some(Err(_)) => {
                    // The connection died with the call in flight. The server may have
                    // run the tool, so the call is not repeated; the next one reconnects.
                    self.plane.upstreams.forget(server, agent).await;
                    Err(ServiceError::TransportClosed)
                }
                Some(Ok(answer)) => answer,
            };
            return match answer {
                Ok(ServerResult::CallToolResult(mut r)) => {
                    // A handshake-era upstream leaves out the result type that
                    // stateless-era agents require; the SDK drops it again for older ones.
                    r.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(CallToolResponse::Complete(r))
                }
                Ok(ServerResult::InputRequiredResult(r)) => Ok(CallToolResponse::InputRequired(r)),
                Ok(ServerResult::CreateTaskResult(r)) => Ok(CallToolResponse::Task(r)),
                Ok(_) => Err(errors::upstream_unavailable(
                    &server.name,
                    "answered a tool call with another result type",
                )),
                Err(e) => Err(FetchError::from(e).into_error(&server.name)),
            };
        }
    }
}

/// The servers a caller's consumer reaches.
fn reached(caller: &Caller) -> Vec<Uuid> {
    caller
        .mcp
        .servers
        .iter()
        .filter_map(|r| r.server.as_ref().ok().map(|s| s.id))
        .collect()
}

/// An exposed item without its payload, for the telemetry record.
fn bare<T>(e: &Exposed<T>) -> Exposed<()> {
    Exposed {
        name: e.name.clone(),
        server: e.server.clone(),
        upstream: e.upstream.clone(),
        item: (),
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .build();
        InitializeResult::new(capabilities)
            .with_server_info(Implementation::new("sluice", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "sluice aggregates the MCP servers this consumer may use; colliding names are prefixed with their server's code and '__'.",
            )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        // The session belongs to the consumer that opens it. A session restored on
        // another replica replays this with the current request's caller.
        self.caller(&context.extensions)?;
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let Ok(caller) = self.caller(&context.extensions) else {
            return;
        };
        self.plane
            .notifier
            .add(Audience::Session(context.peer), reached(&caller));
    }

    /// The list changes a stateless-era agent may listen for: those of tools, prompts
    /// and resources (resource updates are not relayed).
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = requested.tools_list_changed;
        accepted.prompts_list_changed = requested.prompts_list_changed;
        accepted.resources_list_changed = requested.resources_list_changed;
        Some(accepted)
    }

    /// A stateless-era agent's `subscriptions/listen`: told of the list changes of
    /// the servers its consumer reaches until it ends the request.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let caller = self.caller(&context.request_context().extensions)?;
        let notifier = &self.plane.notifier;
        let id = notifier
            .next_subscription
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sink = context.sink().clone();
        notifier.add(Audience::Subscription { id, sink }, reached(&caller));
        context.cancelled().await;
        notifier.remove_subscription(id);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let tools = self
            .plane
            .catalog()
            .tools(&self.plane.upstreams, &caller.mcp, caller.agent())
            .await?;
        let visible = tools
            .into_iter()
            .filter(|t| {
                tool_blocked(&caller, &[&t.name, &t.upstream])
                    .is_none_or(|p| p.mode == sluice_shared::model::PolicyMode::Observe)
            })
            .map(|t| t.item)
            .collect();
        Ok(ListToolsResult::with_all_items(visible))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let caller = self.caller(&context.extensions)?;
        let name = request.name.to_string();
        let mut outcomes = Vec::new();
        let mut target = None;
        let result = async {
            let tool = self.find_tool(&caller, &name).await?;
            target = Some(bare(&tool));
            let upstream = tool.upstream.clone();
            self.plane
                .limits
                .admit(&caller, Some(&[&name, &upstream]), &mut outcomes)
                .await?;
            self.forward_tool(&tool, caller.agent(), &request, &context)
                .await
        }
        .await;
        let tool_error =
            matches!(&result, Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true));
        let rec = Record {
            method: "tools/call",
            name: &name,
            target: target.as_ref(),
            outcomes,
            tool_error,
        };
        self.record(&caller, rec, result.as_ref().err(), started);
        result
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let prompts = self
            .plane
            .catalog()
            .prompts(&self.plane.upstreams, &caller.mcp, caller.agent())
            .await?;
        Ok(ListPromptsResult::with_all_items(
            prompts.into_iter().map(|p| p.item).collect(),
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let started = Instant::now();
        let caller = self.caller(&context.extensions)?;
        let mut outcomes = Vec::new();
        let mut target = None;
        let result = async {
            let prompts = self
                .plane
                .catalog()
                .prompts(&self.plane.upstreams, &caller.mcp, caller.agent())
                .await?;
            let prompt = prompts
                .into_iter()
                .find(|p| p.name == request.name)
                .ok_or_else(|| errors::not_found("prompt", &request.name))?;
            target = Some(bare(&prompt));
            self.plane
                .limits
                .admit(&caller, None, &mut outcomes)
                .await?;
            let mut params = request.clone();
            params.name = prompt.upstream.clone();
            params.meta = None;
            let peer = self
                .plane
                .upstreams
                .peer(&prompt.server, caller.agent())
                .await
                .map_err(|e| FetchError::from(e).into_error(&prompt.server.name))?;
            let mut answer = peer
                .get_prompt_once(params)
                .await
                .map_err(|e| FetchError::from(e).into_error(&prompt.server.name))?;
            if let GetPromptResponse::Complete(r) = &mut answer {
                r.result_type.get_or_insert(ResultType::COMPLETE);
            }
            Ok(answer)
        }
        .await;
        let rec = Record {
            method: "prompts/get",
            name: &request.name,
            target: target.as_ref(),
            outcomes,
            tool_error: false,
        };
        self.record(&caller, rec, result.as_ref().err(), started);
        result
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let (resources, _) = self
            .plane
            .catalog()
            .resources(&self.plane.upstreams, &caller.mcp, caller.agent())
            .await?;
        Ok(ListResourcesResult::with_all_items(
            resources.into_iter().map(|r| r.item).collect(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let caller = self.caller(&context.extensions)?;
        let (_, templates) = self
            .plane
            .catalog()
            .resources(&self.plane.upstreams, &caller.mcp, caller.agent())
            .await?;
        Ok(ListResourceTemplatesResult::with_all_items(
            templates.into_iter().map(|t| t.item).collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let started = Instant::now();
        let caller = self.caller(&context.extensions)?;
        let mut outcomes = Vec::new();
        let mut target = None;
        let result = async {
            let (resources, templates) = self
                .plane
                .catalog()
                .resources(&self.plane.upstreams, &caller.mcp, caller.agent())
                .await?;
            let owner = resources
                .iter()
                .find(|r| r.name == request.uri)
                .map(bare)
                .or_else(|| {
                    templates
                        .iter()
                        .find(|t| template_covers(&t.name, &request.uri))
                        .map(bare)
                })
                .ok_or_else(|| errors::not_found("resource", &request.uri))?;
            let server = owner.server.clone();
            target = Some(owner);
            self.plane
                .limits
                .admit(&caller, None, &mut outcomes)
                .await?;
            let mut params = request.clone();
            params.meta = None;
            let peer = self
                .plane
                .upstreams
                .peer(&server, caller.agent())
                .await
                .map_err(|e| FetchError::from(e).into_error(&server.name))?;
            let mut answer = peer
                .read_resource_once(params)
                .await
                .map_err(|e| FetchError::from(e).into_error(&server.name))?;
            if let ReadResourceResponse::Complete(r) = &mut answer {
                r.result_type.get_or_insert(ResultType::COMPLETE);
            }
            Ok(answer)
        }
        .await;
        let rec = Record {
            method: "resources/read",
            name: &request.uri,
            target: target.as_ref(),
            outcomes,
            tool_error: false,
        };
        self.record(&caller, rec, result.as_ref().err(), started);
        result
    }
}
