//! What an agent sees: the tools, prompts and resources of every server its consumer
//! reaches, filtered and renamed by the toolkit, with collisions resolved.
//!
//! Upstream listings are cached per server for [`TTL`] and dropped early when the
//! server says a list changed, so a `tools/call` costs no listing round trip. Servers
//! are asked in parallel; one that cannot be reached is left out (`fail_mode: open`,
//! logged and counted) or fails the request (`closed`).
//!
//! **Collisions.** When two servers expose the same tool (or prompt) name, every one
//! of them is renamed `{code}__{name}`, where `code` is the registry's
//! `mcp_target.code` (or its name, slugified). Neither wins by order, so the names an
//! agent sees do not depend on which server answered first or on registry order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rmcp::model::{ErrorData, Prompt, Resource, ResourceTemplate, Tool};
use rmcp::service::ServiceError;
use sluice_shared::model::FailMode;
use sluice_shared::snapshot::mcp::{CompiledMcp, McpServer, Selection};
use sluice_telemetry::metrics::METRICS;
use uuid::Uuid;

use crate::errors;
use crate::upstream::{Agent, ListKind, UpstreamError, Upstreams};

/// How long an upstream listing is trusted without a `list_changed`.
pub const TTL: Duration = Duration::from_secs(60);

/// Separator between a registry's code and a colliding name.
pub const PREFIX_SEPARATOR: &str = "__";

/// One upstream listing.
#[derive(Clone)]
enum Listing {
    Tools(Arc<Vec<Tool>>),
    Prompts(Arc<Vec<Prompt>>),
    Resources(Arc<(Vec<Resource>, Vec<ResourceTemplate>)>),
}

struct Cached {
    fingerprint: u64,
    at: Instant,
    listing: Listing,
}

/// An item as the agent sees it, and where it really lives.
#[derive(Clone)]
pub struct Exposed<T> {
    pub name: String,
    pub server: Arc<McpServer>,
    pub upstream: String,
    pub item: T,
}

/// Why a server could not be listed or called.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Broken(String),
}

impl FetchError {
    /// Whether the connection itself failed (so it should be reopened), rather than
    /// the server refusing a request.
    pub fn transport_failed(&self) -> bool {
        matches!(
            self,
            Self::Service(
                ServiceError::TransportClosed
                    | ServiceError::TransportSend(_)
                    | ServiceError::Timeout { .. }
            )
        )
    }

    /// The JSON-RPC error the agent gets.
    pub fn into_error(self, server: &str) -> ErrorData {
        match self {
            Self::Service(ServiceError::McpError(e)) => e,
            Self::Upstream(UpstreamError::ConsentRequired(url)) => {
                errors::consent_required(server, &url)
            }
            other => errors::upstream_unavailable(server, &other.to_string()),
        }
    }
}

/// The listings of the servers that answered, and the errors of those left out.
#[derive(Default)]
struct Gathered<'m> {
    found: Vec<(Arc<McpServer>, &'m Selection, Listing)>,
    gaps: Vec<ErrorData>,
}

/// The listing cache and the aggregation over it.
#[derive(Default)]
pub struct Catalog {
    cache: Mutex<HashMap<(Uuid, ListKind), Cached>>,
}

impl Catalog {
    pub fn invalidate(&self, server: Uuid, kind: ListKind) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(server, kind));
    }

    /// Drop a listing fetched more than `age` ago.
    pub fn invalidate_older(&self, server: Uuid, kind: ListKind, age: Duration) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache
            .get(&(server, kind))
            .is_some_and(|c| c.at.elapsed() > age)
        {
            cache.remove(&(server, kind));
        }
    }

    fn cached(&self, server: &McpServer, kind: ListKind) -> Option<Listing> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&(server.id, kind))
            .filter(|c| c.fingerprint == server.fingerprint && c.at.elapsed() < TTL)
            .map(|c| c.listing.clone())
    }

    async fn listing(
        &self,
        upstreams: &Upstreams,
        server: &McpServer,
        agent: Agent<'_>,
        kind: ListKind,
    ) -> Result<Listing, FetchError> {
        if let Some(listing) = self.cached(server, kind) {
            return Ok(listing);
        }
        let listing = match fetch(upstreams, server, agent, kind).await {
            Ok(l) => l,
            Err(e) if e.transport_failed() => {
                // The connection died (the server restarted, say): reopen once.
                upstreams.forget(server, agent).await;
                fetch(upstreams, server, agent, kind).await?
            }
            Err(e) => return Err(e),
        };
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
            (server.id, kind),
            Cached {
                fingerprint: server.fingerprint,
                at: Instant::now(),
                listing: listing.clone(),
            },
        );
        Ok(listing)
    }

    /// Every server's listing of `kind`, in the consumer's server order; unreachable
    /// servers are skipped or fail the whole request, as the fail mode says.
    async fn gather<'m>(
        &self,
        upstreams: &Upstreams,
        mcp: &'m CompiledMcp,
        agent: Agent<'_>,
        kind: ListKind,
    ) -> Result<Gathered<'m>, ErrorData> {
        let fetches = mcp.servers.iter().map(|reach| async move {
            let server = match &reach.server {
                Ok(s) => s.clone(),
                Err(reason) => return Err((None, FetchError::Broken(reason.to_string()))),
            };
            match self.listing(upstreams, &server, agent, kind).await {
                Ok(l) => Ok((server, &reach.select, l)),
                Err(e) => Err((Some(server), e)),
            }
        });
        let mut out = Gathered::default();
        for result in join_all(fetches).await {
            match result {
                Ok(found) => out.found.push(found),
                Err((server, error)) => {
                    let name = server.as_ref().map_or("?", |s| s.name.as_str());
                    let id = server
                        .as_ref()
                        .map(|s| s.id.to_string())
                        .unwrap_or_default();
                    let reason = error.to_string();
                    let answer = match error {
                        FetchError::Upstream(UpstreamError::ConsentRequired(_)) => {
                            error.into_error(name)
                        }
                        _ => errors::upstream_unavailable(name, &reason),
                    };
                    if mcp.fail_mode == FailMode::Closed {
                        return Err(answer);
                    }
                    tracing::warn!(registry = %id, name, %reason,
                        "MCP server unreachable; left out (fail_mode open)");
                    METRICS.mcp_upstream_skipped.with_label_values(&[&id]).inc();
                    out.gaps.push(answer);
                }
            }
        }
        Ok(out)
    }

    /// The tools the consumer sees.
    pub async fn tools(
        &self,
        upstreams: &Upstreams,
        mcp: &CompiledMcp,
        agent: Agent<'_>,
    ) -> Result<Vec<Exposed<Tool>>, ErrorData> {
        Ok(self.tools_with_gaps(upstreams, mcp, agent).await?.0)
    }

    /// The tools the consumer sees, and why each server left out (`fail_mode: open`)
    /// is missing: a call to a tool that is not there may be a call to one of theirs.
    pub async fn tools_with_gaps(
        &self,
        upstreams: &Upstreams,
        mcp: &CompiledMcp,
        agent: Agent<'_>,
    ) -> Result<(Vec<Exposed<Tool>>, Vec<ErrorData>), ErrorData> {
        let mut out = Vec::new();
        let gathered = self.gather(upstreams, mcp, agent, ListKind::Tools).await?;
        for (server, select, listing) in gathered.found {
            let Listing::Tools(tools) = listing else {
                continue;
            };
            for tool in tools.iter() {
                if let Some(name) = select.tool(&tool.name) {
                    out.push(Exposed {
                        name,
                        server: server.clone(),
                        upstream: tool.name.to_string(),
                        item: tool.clone(),
                    });
                }
            }
        }
        resolve_collisions(&mut out);
        for e in &mut out {
            e.item.name = e.name.clone().into();
        }
        Ok((out, gathered.gaps))
    }

    /// The prompts the consumer sees.
    pub async fn prompts(
        &self,
        upstreams: &Upstreams,
        mcp: &CompiledMcp,
        agent: Agent<'_>,
    ) -> Result<Vec<Exposed<Prompt>>, ErrorData> {
        let mut out = Vec::new();
        for (server, select, listing) in self
            .gather(upstreams, mcp, agent, ListKind::Prompts)
            .await?
            .found
        {
            let Listing::Prompts(prompts) = listing else {
                continue;
            };
            for prompt in prompts.iter() {
                if let Some(name) = select.prompt(&prompt.name) {
                    out.push(Exposed {
                        name,
                        server: server.clone(),
                        upstream: prompt.name.clone(),
                        item: prompt.clone(),
                    });
                }
            }
        }
        resolve_collisions(&mut out);
        for e in &mut out {
            e.item.name = e.name.clone();
        }
        Ok(out)
    }

    /// The resources and resource templates the consumer sees. URIs are not renamed:
    /// when two servers list one URI, the first server in order serves it.
    pub async fn resources(
        &self,
        upstreams: &Upstreams,
        mcp: &CompiledMcp,
        agent: Agent<'_>,
    ) -> Result<(Vec<Exposed<Resource>>, Vec<Exposed<ResourceTemplate>>), ErrorData> {
        let mut resources: Vec<Exposed<Resource>> = Vec::new();
        let mut templates = Vec::new();
        for (server, select, listing) in self
            .gather(upstreams, mcp, agent, ListKind::Resources)
            .await?
            .found
        {
            let Listing::Resources(both) = listing else {
                continue;
            };
            for r in both.0.iter().filter(|r| select.resource(&r.uri)) {
                if resources.iter().all(|e| e.name != r.uri) {
                    resources.push(Exposed {
                        name: r.uri.clone(),
                        server: server.clone(),
                        upstream: r.uri.clone(),
                        item: r.clone(),
                    });
                }
            }
            for t in both.1.iter().filter(|t| select.resource(&t.uri_template)) {
                templates.push(Exposed {
                    name: t.uri_template.clone(),
                    server: server.clone(),
                    upstream: t.uri_template.clone(),
                    item: t.clone(),
                });
            }
        }
        Ok((resources, templates))
    }
}

async fn fetch(
    upstreams: &Upstreams,
    server: &McpServer,
    agent: Agent<'_>,
    kind: ListKind,
) -> Result<Listing, FetchError> {
    let peer = upstreams.peer(server, agent).await?;
    let caps = peer.peer_info().map(|i| i.capabilities.clone());
    let has = |k: ListKind| {
        caps.as_ref().is_none_or(|c| match k {
            ListKind::Tools => c.tools.is_some(),
            ListKind::Prompts => c.prompts.is_some(),
            ListKind::Resources => c.resources.is_some(),
        })
    };
    Ok(match kind {
        ListKind::Tools if has(kind) => Listing::Tools(Arc::new(peer.list_all_tools().await?)),
        ListKind::Tools => Listing::Tools(Arc::default()),
        ListKind::Prompts if has(kind) => {
            Listing::Prompts(Arc::new(peer.list_all_prompts().await?))
        }
        ListKind::Prompts => Listing::Prompts(Arc::default()),
        ListKind::Resources if has(kind) => {
            let resources = peer.list_all_resources().await?;
            // Templates are optional even for servers with resources.
            let templates = peer.list_all_resource_templates().await.unwrap_or_default();
            Listing::Resources(Arc::new((resources, templates)))
        }
        ListKind::Resources => Listing::Resources(Arc::default()),
    })
}

/// Rename every item whose name another server also exposes to `{code}__{name}`.
pub fn resolve_collisions<T>(items: &mut [Exposed<T>]) {
    let mut servers_by_name: HashMap<String, Vec<Uuid>> = HashMap::new();
    for e in items.iter() {
        let ids = servers_by_name.entry(e.name.clone()).or_default();
        if !ids.contains(&e.server.id) {
            ids.push(e.server.id);
        }
    }
    for e in items.iter_mut() {
        if servers_by_name
            .get(&e.name)
            .is_some_and(|ids| ids.len() > 1)
        {
            e.name = format!("{}{PREFIX_SEPARATOR}{}", e.server.code, e.name);
        }
    }
}

/// Whether a resource URI falls under a URI template: its text before the first
/// variable is a prefix of the URI.
pub fn template_covers(template: &str, uri: &str) -> bool {
    let fixed = template.split('{').next().unwrap_or(template);
    !fixed.is_empty() && uri.starts_with(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_shared::snapshot::mcp::McpUpstreamAuth;

    fn server(code: &str) -> Arc<McpServer> {
        Arc::new(McpServer {
            id: Uuid::now_v7(),
            name: code.into(),
            code: code.into(),
            url: "http://x".into(),
            headers: Vec::new(),
            auth: McpUpstreamAuth::None,
            fingerprint: 0,
        })
    }

    fn exposed(name: &str, server: &Arc<McpServer>) -> Exposed<()> {
        Exposed {
            name: name.into(),
            server: server.clone(),
            upstream: name.into(),
            item: (),
        }
    }

    #[test]
    fn colliding_names_are_all_prefixed_and_others_kept() {
        let (a, b) = (server("alpha"), server("beta"));
        let mut items = vec![
            exposed("search", &a),
            exposed("echo", &a),
            exposed("search", &b),
            exposed("add", &b),
        ];
        resolve_collisions(&mut items);
        let names: Vec<_> = items.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["alpha__search", "echo", "beta__search", "add"]);
        // The upstream name is what gets called.
        assert_eq!(items[2].upstream, "search");
    }

    #[test]
    fn templates_cover_by_fixed_prefix() {
        assert!(template_covers("greeting://{name}", "greeting://ada"));
        assert!(!template_covers("greeting://{name}", "file:///etc"));
        assert!(!template_covers("{any}", "x"));
    }
}
