//! The providers catalog: each provider family with its wire format, default base URL,
//! the upstream auth types it takes and the JSON schema of its `provider_options`.

use serde::Serialize;
use serde_json::{Value, json};

use crate::model::Provider;

/// One provider family of the catalog.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderEntry {
    #[schema(value_type = String)]
    pub id: &'static str,
    #[schema(value_type = String)]
    pub wire_format: &'static str,
    #[schema(value_type = Option<String>)]
    pub default_base_url: Option<&'static str>,
    #[schema(value_type = Vec<String>)]
    pub auth_types: &'static [&'static str],
    /// Whether the proxy routes to it yet.
    pub routable: bool,
    /// The JSON Schema a registry's `provider_options` must match.
    pub options_schema: Value,
}

fn auth_types(p: Provider) -> &'static [&'static str] {
    match p {
        Provider::Azure => &["azure", "api_key"],
        Provider::Bedrock => &["aws"],
        Provider::Vertex => &["gcp_service_account", "oauth2"],
        Provider::Google => &["api_key"],
        _ => &["api_key"],
    }
}

fn options_schema(p: Provider) -> Value {
    let base_url =
        json!({"type": "string", "description": "API base URL including its version segment"});
    match p {
        Provider::OpenaiCompatible => json!({"type": "object", "required": ["base_url"],
            "properties": {"base_url": base_url}}),
        Provider::Openai => json!({"type": "object", "properties": {"base_url": base_url,
            "api": {"type": "string", "enum": ["chat", "responses"]},
            "organization": {"type": "string"}, "project": {"type": "string"}}}),
        Provider::Anthropic => json!({"type": "object", "properties": {"base_url": base_url,
            "anthropic_version": {"type": "string"}}}),
        Provider::Azure => json!({"type": "object", "properties": {"base_url": base_url,
            "deployment": {"type": "string"}, "api_version": {"type": "string"}}}),
        Provider::Bedrock => json!({"type": "object", "properties": {"region": {"type": "string"},
            "base_url": base_url}}),
        Provider::Vertex => json!({"type": "object", "properties": {"project": {"type": "string"},
            "location": {"type": "string"}, "base_url": base_url}}),
        _ => json!({"type": "object", "properties": {"base_url": base_url}}),
    }
}

/// Every provider family.
pub fn providers() -> Vec<ProviderEntry> {
    Provider::ALL
        .iter()
        .map(|&p| ProviderEntry {
            id: p.as_str(),
            wire_format: p.wire_format(),
            default_base_url: p.default_base_url(),
            auth_types: auth_types(p),
            routable: p.routable(),
            options_schema: options_schema(p),
        })
        .collect()
}
