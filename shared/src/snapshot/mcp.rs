//! The MCP side of a gateway: each MCP registry as a server the MCP plane can call, and
//! each consumer's view of them (which servers, what of each, renamed how, and what an
//! unreachable one means).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde_json::Value;
use uuid::Uuid;

use super::policies::wildcard;
use crate::document::GatewayDocument;
use crate::model::toolkit::{self, ToolkitEntry};
use crate::model::{
    Consumer, FailMode, McpTarget, Registry, RegistryKind, RoutingMode, SecretFields, slugify,
};
use crate::secrets::SecretBox;

/// How sluice authenticates to an upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpUpstreamAuth {
    /// No credential, or only the registry's static headers.
    None,
    /// The registry's own token from an OAuth token endpoint (client credentials
    /// grant), fetched when needed and reused until it expires.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
        audience: Option<String>,
    },
    /// The agent's own bearer token, forwarded when its `aud` names `audience` (so a
    /// token meant for somebody else is never replayed to this server).
    Passthrough { audience: Option<String> },
    /// A token for this server in exchange for the agent's own (RFC 8693 token
    /// exchange at the registry's token endpoint), per agent, reused until it expires.
    Exchange {
        token_url: String,
        client_id: String,
        client_secret: String,
        audience: Option<String>,
        scope: Option<String>,
    },
    /// A short-lived JWT sluice signs itself for the caller (`exchange` with no
    /// `token_url`): `sub` the caller, `aud` the `audience` (default: the server's
    /// URL); servers verify it with the MCP plane's `/.well-known/jwks.json`.
    Signed { audience: Option<String> },
    /// Each user's own token at the server, obtained through a consent flow in which
    /// sluice is the OAuth client of the server's authorization server. Endpoints not
    /// given are discovered from the server; without a `client_id`, sluice registers
    /// itself (RFC 7591).
    Forwarded(ForwardedConfig),
    /// A mode this plane does not implement yet: calls fail with a clear error.
    Unsupported(String),
}

/// The `forwarded` mode's settings, all optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForwardedConfig {
    pub authorization_url: Option<String>,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
}

/// An MCP registry, ready to be called.
#[derive(Debug)]
pub struct McpServer {
    pub id: Uuid,
    pub name: String,
    /// The prefix of its tool and prompt names when they collide with another server's.
    pub code: String,
    pub url: String,
    /// Static headers, the static credential among them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub auth: McpUpstreamAuth,
    /// Changes whenever anything a live connection depends on changes, so a pooled
    /// connection made under an older config is replaced.
    pub fingerprint: u64,
}

impl McpServer {
    /// Compile an MCP registry, opening its sealed headers and credential.
    pub fn compile(registry: &Registry, secrets: Option<&SecretBox>) -> Result<Self, String> {
        let target = registry
            .spec
            .mcp_target
            .as_ref()
            .ok_or_else(|| "the registry has no mcp_target".to_string())?;
        let target: McpTarget = match secrets {
            Some(secrets) => target.opened(secrets).map_err(|_| {
                "the registry's credential cannot be opened with this plane's SLUICE_SECRET_KEY"
                    .to_string()
            })?,
            None if target.is_sealed() => {
                return Err(
                    "the registry's credential is sealed and this plane has no SLUICE_SECRET_KEY"
                        .into(),
                );
            }
            None => target.clone(),
        };
        let mut headers = Vec::new();
        for (name, value) in &target.headers {
            let value = value.as_str().unwrap_or_default();
            headers.push(header(name, value)?);
        }
        let auth = target.auth.as_ref();
        let text = |k: &str| auth.and_then(|a| a.get(k)).and_then(Value::as_str);
        let mode = text("mode").unwrap_or("none");
        let required = |k: &str| {
            text(k)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("{mode} auth needs {k}"))
        };
        let auth = match mode {
            "none" => McpUpstreamAuth::None,
            "static" => {
                headers.push(header(
                    text("header").unwrap_or("authorization"),
                    text("value").unwrap_or_default(),
                )?);
                McpUpstreamAuth::None
            }
            "client_credentials" => McpUpstreamAuth::ClientCredentials {
                token_url: required("token_url")?,
                client_id: required("client_id")?,
                client_secret: required("client_secret")?,
                scope: text("scope").map(str::to_string),
                audience: text("audience").map(str::to_string),
            },
            "exchange" if text("token_url").is_none() => McpUpstreamAuth::Signed {
                audience: text("audience").map(str::to_string),
            },
            "exchange" => McpUpstreamAuth::Exchange {
                token_url: required("token_url")?,
                client_id: required("client_id")?,
                client_secret: required("client_secret")?,
                audience: text("audience").map(str::to_string),
                scope: text("scope").map(str::to_string),
            },
            "forwarded" => McpUpstreamAuth::Forwarded(ForwardedConfig {
                authorization_url: text("authorization_url").map(str::to_string),
                token_url: text("token_url").map(str::to_string),
                client_id: text("client_id").map(str::to_string),
                client_secret: text("client_secret").map(str::to_string),
                scope: text("scope").or(text("scopes")).map(str::to_string),
            }),
            "passthrough" => McpUpstreamAuth::Passthrough {
                audience: text("audience").map(str::to_string),
            },
            other => McpUpstreamAuth::Unsupported(other.to_string()),
        };
        let code = target
            .code
            .clone()
            .filter(|c| toolkit::valid_name(c))
            .unwrap_or_else(|| slugify(&registry.spec.name).replace('-', "_"));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        target.url.hash(&mut hasher);
        for (n, v) in &headers {
            n.as_str().hash(&mut hasher);
            v.as_bytes().hash(&mut hasher);
        }
        format!("{auth:?}").hash(&mut hasher);
        Ok(Self {
            id: registry.id,
            name: registry.spec.name.clone(),
            code,
            url: target.url,
            headers,
            auth,
            fingerprint: hasher.finish(),
        })
    }
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let n = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("mcp_target: {name} is not a valid header name"))?;
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| format!("mcp_target: the value of {name} is not a valid header value"))?;
    v.set_sensitive(true);
    Ok((n, v))
}

/// What a consumer sees of one server.
#[derive(Debug, Clone)]
pub struct Selection {
    tools: Vec<String>,
    prompts: Vec<String>,
    resources: Vec<String>,
    expose_as: BTreeMap<String, String>,
}

impl Selection {
    fn new(entry: ToolkitEntry) -> Self {
        Self {
            tools: entry.tools,
            prompts: entry.prompts,
            resources: entry.resources,
            expose_as: entry.expose_as,
        }
    }

    fn matches(patterns: &[String], name: &str) -> bool {
        patterns.iter().any(|p| wildcard(p, name))
    }

    /// The name the agent sees for an upstream tool, or `None` when it is not selected.
    pub fn tool(&self, upstream: &str) -> Option<String> {
        Self::matches(&self.tools, upstream).then(|| self.alias(upstream))
    }

    /// The name the agent sees for an upstream prompt, or `None` when not selected.
    pub fn prompt(&self, upstream: &str) -> Option<String> {
        Self::matches(&self.prompts, upstream).then(|| self.alias(upstream))
    }

    /// Whether a resource (by URI, or a template by its URI template) is selected.
    pub fn resource(&self, uri: &str) -> bool {
        Self::matches(&self.resources, uri)
    }

    fn alias(&self, upstream: &str) -> String {
        self.expose_as
            .get(upstream)
            .cloned()
            .unwrap_or_else(|| upstream.to_string())
    }
}

/// One server as a consumer reaches it.
#[derive(Debug, Clone)]
pub struct McpReach {
    pub server: Result<Arc<McpServer>, Arc<str>>,
    pub select: Selection,
}

/// A consumer's MCP view.
#[derive(Debug, Clone)]
pub struct CompiledMcp {
    pub fail_mode: FailMode,
    /// In a stable order (by registry name, then id), so collisions resolve the same
    /// way on every replica.
    pub servers: Vec<McpReach>,
}

/// Compile every MCP registry of a document.
pub fn servers(
    doc: &GatewayDocument,
    secrets: Option<&SecretBox>,
) -> HashMap<Uuid, Result<Arc<McpServer>, Arc<str>>> {
    doc.registries
        .iter()
        .filter(|r| r.spec.kind == RegistryKind::Mcp && r.spec.enabled)
        .map(|r| {
            let server = McpServer::compile(r, secrets)
                .map(Arc::new)
                .map_err(|reason| {
                    tracing::warn!(gateway = %doc.gateway.id, registry = %r.id, %reason,
                    "MCP registry cannot be called");
                    Arc::from(reason.as_str())
                });
            (r.id, server)
        })
        .collect()
}

/// A consumer's MCP view, or `None` when it reaches no MCP registry.
pub fn consumer_view(
    doc: &GatewayDocument,
    consumer: &Consumer,
    servers: &HashMap<Uuid, Result<Arc<McpServer>, Arc<str>>>,
) -> Option<Arc<CompiledMcp>> {
    // The registries reached and the toolkit and fail mode that apply: the consumer's
    // own, or (role-based) its roles', merged in role order.
    let mut reached: Vec<Uuid> = Vec::new();
    let mut kit = toolkit::Toolkit::new();
    let mut fail_mode = consumer.spec.mcp.as_ref().map(|m| m.fail_mode);
    if consumer.spec.routing_mode == RoutingMode::RoleBased {
        for role in doc
            .roles
            .iter()
            .filter(|r| consumer.role_ids.contains(&r.id))
        {
            reached.extend(&role.registry_ids);
            let policies = &role.spec.mcp_policies;
            if let Some(t) = policies.get("toolkit")
                && let Ok(t) = toolkit::parse(t)
            {
                for (k, v) in t {
                    kit.entry(k).or_insert(v);
                }
            }
            if fail_mode.is_none() {
                fail_mode = match policies.get("fail_mode").and_then(Value::as_str) {
                    Some("closed") => Some(FailMode::Closed),
                    Some("open") => Some(FailMode::Open),
                    _ => None,
                };
            }
        }
    } else {
        reached.extend(consumer.registries.iter().map(|l| l.registry_id));
    }
    if let Some(own) = consumer
        .spec
        .mcp
        .as_ref()
        .and_then(|m| toolkit::parse(&m.toolkit).ok())
    {
        for (k, v) in own {
            kit.insert(k, v);
        }
    }
    let mut list: Vec<&Registry> = doc
        .registries
        .iter()
        .filter(|r| servers.contains_key(&r.id) && reached.contains(&r.id))
        .collect();
    list.sort_by(|a, b| (&a.spec.name, a.id).cmp(&(&b.spec.name, b.id)));
    list.dedup_by_key(|r| r.id);
    let servers: Vec<McpReach> = list
        .into_iter()
        .filter_map(|r| {
            let entry = if kit.is_empty() {
                ToolkitEntry::default()
            } else {
                kit.get(&r.id.to_string())
                    .or_else(|| kit.get(&r.spec.name))
                    .cloned()?
            };
            Some(McpReach {
                server: servers.get(&r.id)?.clone(),
                select: Selection::new(entry),
            })
        })
        .collect();
    if servers.is_empty() {
        return None;
    }
    Some(Arc::new(CompiledMcp {
        fail_mode: fail_mode.unwrap_or_default(),
        servers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_filters_and_renames() {
        let s = Selection::new(
            serde_json::from_value(serde_json::json!({
                "tools": ["get_*", "echo"], "prompts": [], "expose_as": {"echo": "say"}
            }))
            .expect("entry"),
        );
        assert_eq!(s.tool("get_weather").as_deref(), Some("get_weather"));
        assert_eq!(s.tool("echo").as_deref(), Some("say"));
        assert_eq!(s.tool("delete_all"), None);
        assert_eq!(s.prompt("greet"), None);
        assert!(s.resource("file:///x"));
    }
}
