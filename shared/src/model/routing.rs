//! Routing settings shared by consumers and roles: which models of which registry may be
//! used, and which is the default.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::Problems;

/// The models a consumer or role may use on one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelPolicy {
    pub registry_id: Uuid,
    /// Allowed model names; empty allows any.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// The model used when a request names none; must be allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// Check a list of model policies, reporting under `field[i]`.
pub fn validate_model_policies(field: &str, policies: &[ModelPolicy], p: &mut Problems) {
    for (i, policy) in policies.iter().enumerate() {
        if policy.allowed.iter().any(|m| m.trim().is_empty()) {
            p.add(
                format!("{field}[{i}].allowed"),
                "model names must not be empty",
            );
        }
        if let Some(default) = &policy.default
            && !policy.allowed.is_empty()
            && !policy.allowed.contains(default)
        {
            p.add(
                format!("{field}[{i}].default"),
                "must be one of the allowed models",
            );
        }
        if policies[..i]
            .iter()
            .any(|other| other.registry_id == policy.registry_id)
        {
            p.add(
                format!("{field}[{i}].registry_id"),
                "appears more than once",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_must_be_allowed() {
        let id = Uuid::now_v7();
        let mut p = Problems::default();
        let ok = ModelPolicy {
            registry_id: id,
            allowed: vec!["a".into()],
            default: Some("a".into()),
        };
        let bad = ModelPolicy {
            registry_id: Uuid::now_v7(),
            allowed: vec!["a".into()],
            default: Some("b".into()),
        };
        validate_model_policies("model_policies", std::slice::from_ref(&ok), &mut p);
        assert!(p.is_empty());
        validate_model_policies("model_policies", &[ok.clone(), bad, ok], &mut p);
        let fields: Vec<_> = p.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            ["model_policies[1].default", "model_policies[2].registry_id"]
        );
    }
}

/// How a consumer's or role's traffic is spread over its registries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LbAlgorithm {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    Random,
    LeastConnections,
    /// Peak-EWMA with power-of-two choices on observed upstream latency.
    Latency,
    /// On a header or session id, so a conversation stays on one backend.
    ConsistentHash,
    /// By embedding similarity of the prompt to each member's description.
    Semantic,
}

/// A member of a balancing pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LbMember {
    pub registry_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
    /// Members with the same alias form the pool `model: "pool:<alias>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_alias: Option<String>,
    /// What this member is good at, for the semantic balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LbConfig {
    #[serde(default)]
    pub algorithm: LbAlgorithm,
    #[serde(default)]
    pub members: Vec<LbMember>,
    /// Header whose value keys `consistent-hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_header: Option<String>,
    /// Embeddings registry of the `semantic` balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_registry_id: Option<Uuid>,
    /// Embeddings model of the `semantic` balancer (default `text-embedding-3-small`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_model: Option<String>,
}

/// What makes a request fall back to the next registry of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FallbackTrigger {
    #[serde(rename = "http_5xx")]
    Http5xx,
    #[serde(rename = "http_429")]
    Http429,
    Timeout,
    ProviderError,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FallbackBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_latency_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Fallback {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub triggers: Vec<FallbackTrigger>,
    #[serde(default)]
    pub budget: FallbackBudget,
    /// Registries tried in order once the pool is exhausted.
    #[serde(default)]
    pub chain: Vec<Uuid>,
}

/// What an MCP consumer or role does when an upstream MCP server is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Skip the unreachable server.
    #[default]
    Open,
    /// Fail the call.
    Closed,
}

/// The MCP tools, prompts and resources a consumer or role may use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpAccess {
    /// Per registry: which tools (with `*` wildcards) and how they are exposed.
    #[serde(default)]
    pub toolkit: serde_json::Value,
    #[serde(default)]
    pub fail_mode: FailMode,
}

/// Check the routing fields a consumer or role carries.
pub fn validate_routing(lb: Option<&LbConfig>, fallback: Option<&Fallback>, p: &mut Problems) {
    if let Some(lb) = lb {
        for (i, m) in lb.members.iter().enumerate() {
            if m.weight.is_some_and(|w| !(1..=100).contains(&w)) {
                p.add(
                    format!("lb_config.members[{i}].weight"),
                    "must be between 1 and 100",
                );
            }
            if m.pool_alias.as_deref().is_some_and(|a| a.trim().is_empty()) {
                p.add(
                    format!("lb_config.members[{i}].pool_alias"),
                    "must not be empty",
                );
            }
        }
        if lb.algorithm == LbAlgorithm::Semantic && lb.embedding_registry_id.is_none() {
            p.add(
                "lb_config.embedding_registry_id",
                "is required by the semantic algorithm",
            );
        }
        if let Some(h) = &lb.hash_header
            && http::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            p.add("lb_config.hash_header", "must be a valid HTTP header name");
        }
    }
    if let Some(fb) = fallback {
        if fb
            .budget
            .max_attempts
            .is_some_and(|n| !(1..=20).contains(&n))
        {
            p.add("fallback.budget.max_attempts", "must be between 1 and 20");
        }
        if fb.enabled && fb.chain.is_empty() {
            p.add(
                "fallback.chain",
                "must name at least one registry when fallback is enabled",
            );
        }
    }
}
