//! A consumer: an application that calls the gateway, addressed by its slug in the proxy
//! path (`/{consumer_slug}/v1/…`), authenticated by the auths attached to it and routed
//! to the registries attached to it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::routing::{
    Fallback, LbConfig, McpAccess, ModelPolicy, validate_model_policies, validate_routing,
};
use super::validation::Problems;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ConsumerKind {
    #[default]
    #[serde(rename = "LLM", alias = "llm")]
    Llm,
    #[serde(rename = "MCP", alias = "mcp")]
    Mcp,
    #[serde(rename = "A2A", alias = "a2a")]
    A2a,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMode {
    #[default]
    Inline,
    RoleBased,
}

/// The fields an operator writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConsumerSpec {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: ConsumerKind,
    #[serde(default)]
    pub routing_mode: RoutingMode,
    #[serde(default = "active")]
    pub active: bool,
    /// Headers added to every upstream request of this consumer.
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_config: Option<LbConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_policies: Vec<ModelPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpAccess>,
}

fn active() -> bool {
    true
}

impl ConsumerSpec {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        p.require_text("name", &self.name, 200);
        validate_model_policies("model_policies", &self.model_policies, &mut p);
        validate_routing(self.lb_config.as_ref(), self.fallback.as_ref(), &mut p);
        if let Some(mcp) = &self.mcp {
            super::toolkit::validate("mcp.toolkit", &mcp.toolkit, &mut p);
        }
        if self.routing_mode == RoutingMode::RoleBased {
            // A role-based consumer routes through its roles; inline routing would be ignored.
            for (field, inline) in [
                ("lb_config", self.lb_config.is_some()),
                ("fallback", self.fallback.is_some()),
                ("model_policies", !self.model_policies.is_empty()),
            ] {
                if inline {
                    p.add(
                        field,
                        "is not allowed on a role_based consumer; set it on its roles",
                    );
                }
            }
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                p.add(format!("headers.{name}"), "is not a valid HTTP header name");
            }
            match value {
                Value::String(v) if http::HeaderValue::from_str(v).is_ok() => {}
                _ => p.add(
                    format!("headers.{name}"),
                    "must be a valid header value string",
                ),
            }
        }
        p.into_result()
    }
}

/// A registry attached to a consumer, with its balancing weight (1..=100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistryLink {
    pub registry_id: Uuid,
    pub weight: u8,
}

/// A stored consumer with its links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Consumer {
    pub id: Uuid,
    pub gateway_id: Uuid,
    pub slug: String,
    #[serde(flatten)]
    pub spec: ConsumerSpec,
    #[serde(default)]
    pub registries: Vec<RegistryLink>,
    #[serde(default)]
    pub auth_ids: Vec<Uuid>,
    #[serde(default)]
    pub policy_ids: Vec<Uuid>,
    #[serde(default)]
    pub role_ids: Vec<Uuid>,
    pub created_at: String,
    pub updated_at: String,
}
