//! A registry: one upstream the gateway can send traffic to, an LLM provider account or
//! an MCP server, with the credentials sluice uses to call it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::secret_fields::SecretFields;
use super::upstream_auth::UpstreamAuth;
use super::validation::Problems;

/// What a registry serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum RegistryKind {
    #[default]
    #[serde(rename = "LLM", alias = "llm")]
    Llm,
    #[serde(rename = "MCP", alias = "mcp")]
    Mcp,
}

/// The provider family of an LLM registry. It decides the default base URL, the wire
/// format and how credentials are presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Openai,
    OpenaiCompatible,
    Anthropic,
    Azure,
    Bedrock,
    Google,
    Vertex,
    Groq,
    Mistral,
    Deepseek,
    Xai,
    Cerebras,
    Openrouter,
}

impl Provider {
    /// Every provider family, in catalog order.
    pub const ALL: [Provider; 13] = [
        Self::Openai,
        Self::OpenaiCompatible,
        Self::Anthropic,
        Self::Azure,
        Self::Bedrock,
        Self::Google,
        Self::Vertex,
        Self::Groq,
        Self::Mistral,
        Self::Deepseek,
        Self::Xai,
        Self::Cerebras,
        Self::Openrouter,
    ];

    /// The wire format the provider's API speaks.
    pub fn wire_format(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic_messages",
            Self::Bedrock => "bedrock_converse",
            Self::Google | Self::Vertex => "gemini",
            _ => "openai_chat",
        }
    }

    /// The provider's public API base, including its version segment, or `None` when the
    /// registry must say where the server is (`provider_options.base_url`).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com/v1"),
            Self::Groq => Some("https://api.groq.com/openai/v1"),
            Self::Mistral => Some("https://api.mistral.ai/v1"),
            Self::Deepseek => Some("https://api.deepseek.com/v1"),
            Self::Xai => Some("https://api.x.ai/v1"),
            Self::Cerebras => Some("https://api.cerebras.ai/v1"),
            Self::Openrouter => Some("https://openrouter.ai/api/v1"),
            Self::Google => Some("https://generativelanguage.googleapis.com/v1beta"),
            Self::OpenaiCompatible | Self::Azure | Self::Bedrock | Self::Vertex => None,
        }
    }

    /// Whether the proxy can route to this provider yet (Chat Completions family or
    /// Anthropic Messages).
    pub fn routable(self) -> bool {
        self.speaks_openai_chat() || self == Self::Anthropic
    }

    /// Whether the proxy can route to this provider yet. The others are accepted and
    /// stored, and answer a clear error until their wire format lands.
    pub fn speaks_openai_chat(self) -> bool {
        matches!(
            self,
            Self::Openai
                | Self::OpenaiCompatible
                | Self::Groq
                | Self::Mistral
                | Self::Deepseek
                | Self::Xai
                | Self::Cerebras
                | Self::Openrouter
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::OpenaiCompatible => "openai_compatible",
            Self::Anthropic => "anthropic",
            Self::Azure => "azure",
            Self::Bedrock => "bedrock",
            Self::Google => "google",
            Self::Vertex => "vertex",
            Self::Groq => "groq",
            Self::Mistral => "mistral",
            Self::Deepseek => "deepseek",
            Self::Xai => "xai",
            Self::Cerebras => "cerebras",
            Self::Openrouter => "openrouter",
        }
    }
}

/// Upstream timeouts of a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Establishing the connection (TLS included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// From the request sent to the response header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<u64>,
    /// Between two chunks of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
    /// The whole exchange of a non-streaming request; streams are bounded by the idle
    /// timeout only, so a long answer is never cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
}

/// How a registry's health is watched. Absent fields take provider-appropriate defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthChecks {
    /// Eject the backend after consecutive failures of real traffic.
    #[serde(default = "enabled")]
    pub passive: bool,
    /// Probe the backend on `interval` (HTTP `path`, or TCP without one).
    #[serde(default = "enabled")]
    pub active: bool,
    /// Path of the active check; unset: TCP connect only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// Consecutive failures that make the backend unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Seconds between active checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

/// The MCP server behind an MCP registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct McpTarget {
    /// Short code used to prefix colliding tool names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub url: String,
    #[serde(default = "streamable_http")]
    pub transport: String,
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// `{mode: none|static|passthrough|exchange|forwarded|client_credentials, …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Map<String, Value>>,
}

/// Auth fields of an MCP target that hold secrets.
const MCP_SECRET_KEYS: [&str; 5] = ["value", "token", "client_secret", "api_key", "password"];

impl SecretFields for McpTarget {
    /// Every static header value (they carry tokens) and the auth's secret fields.
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        let headers = self.headers.values_mut();
        let auth = self
            .auth
            .iter_mut()
            .flat_map(|a| a.iter_mut())
            .filter(|(k, _)| MCP_SECRET_KEYS.contains(&k.as_str()))
            .map(|(_, v)| v);
        headers
            .chain(auth)
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn same_shape(&self, stored: &Self) -> bool {
        let keys = |t: &Self| -> Vec<String> {
            let auth = t.auth.iter().flat_map(|a| a.keys().cloned());
            t.headers.keys().cloned().chain(auth).collect()
        };
        keys(self) == keys(stored)
    }
}

fn streamable_http() -> String {
    "streamable-http".into()
}

const MCP_AUTH_MODES: [&str; 6] = [
    "none",
    "static",
    "passthrough",
    "exchange",
    "forwarded",
    "client_credentials",
];

/// The fields an operator writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistrySpec {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: RegistryKind,
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Required for LLM registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    #[serde(default)]
    pub provider_options: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<UpstreamAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<HealthChecks>,
    /// Upstream timeouts; unset ones take the proxy's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// Required for MCP registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_target: Option<McpTarget>,
}

fn enabled() -> bool {
    true
}

impl RegistrySpec {
    /// The spec with every secret (upstream auth, MCP target headers and auth) sealed.
    pub fn sealed(&self, secrets: &crate::secrets::SecretBox) -> Self {
        let mut out = self.clone();
        out.auth = self.auth.as_ref().map(|a| a.sealed(secrets));
        out.mcp_target = self.mcp_target.as_ref().map(|t| t.sealed(secrets));
        out
    }

    /// The spec as responses show it: secrets opened only to be masked.
    pub fn masked(&self, secrets: &crate::secrets::SecretBox) -> Self {
        let mut out = self.clone();
        out.auth = self
            .auth
            .as_ref()
            .map(|a| a.opened(secrets).unwrap_or_else(|_| a.clone()).masked());
        out.mcp_target = self
            .mcp_target
            .as_ref()
            .map(|t| t.opened(secrets).unwrap_or_else(|_| t.clone()).masked());
        out
    }

    /// Keep each stored secret whose masked form this (updated) spec echoes back.
    pub fn keep_masked_secrets(&mut self, stored: &Self, secrets: &crate::secrets::SecretBox) {
        if let (Some(new), Some(old)) = (self.auth.as_mut(), stored.auth.as_ref())
            && let Ok(old) = old.opened(secrets)
        {
            new.keep_masked_secrets(&old);
        }
        if let (Some(new), Some(old)) = (self.mcp_target.as_mut(), stored.mcp_target.as_ref())
            && let Ok(old) = old.opened(secrets)
        {
            new.keep_masked_secrets(&old);
        }
    }

    /// `provider_options.base_url`, or the provider's default.
    pub fn base_url(&self) -> Option<&str> {
        match self.provider_options.get("base_url") {
            Some(Value::String(url)) => Some(url.as_str()),
            _ => self.provider?.default_base_url(),
        }
    }

    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        p.require_text("name", &self.name, 200);
        match (self.kind, self.provider, &self.mcp_target) {
            (RegistryKind::Llm, None, _) => p.add("provider", "is required for LLM registries"),
            (RegistryKind::Mcp, _, None) => p.add("mcp_target", "is required for MCP registries"),
            (RegistryKind::Mcp, _, Some(target)) => validate_mcp_target(target, &mut p),
            _ => {}
        }
        if let Some(t) = &self.timeouts {
            for (field, value) in [
                ("timeouts.connect_ms", t.connect_ms),
                ("timeouts.ttfb_ms", t.ttfb_ms),
                ("timeouts.idle_ms", t.idle_ms),
                ("timeouts.total_ms", t.total_ms),
            ] {
                if value.is_some_and(|v| !(1..=3_600_000).contains(&v)) {
                    p.add(field, "must be between 1 and 3600000 milliseconds");
                }
            }
        }
        if let Some(hc) = &self.health_checks {
            if hc
                .path
                .as_deref()
                .is_some_and(|path| !path.starts_with('/'))
            {
                p.add("health_checks.path", "must start with /");
            }
            if hc.threshold == Some(0) {
                p.add("health_checks.threshold", "must be at least 1");
            }
            if hc.interval == Some(0) {
                p.add("health_checks.interval", "must be at least 1 second");
            }
        }
        match self.provider_options.get("base_url") {
            Some(Value::String(url)) => match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => p.add(
                    "provider_options.base_url",
                    "must be an absolute http or https URL",
                ),
            },
            Some(_) => p.add("provider_options.base_url", "must be a string"),
            None if self.kind == RegistryKind::Llm
                && let Some(provider) = self.provider
                && provider.default_base_url().is_none() =>
            {
                p.add(
                    "provider_options.base_url",
                    format!("is required for provider {}", provider.as_str()),
                );
            }
            None => {}
        }
        if let Some(auth) = &self.auth {
            auth.validate(&mut p);
        }
        p.into_result()
    }
}

fn validate_mcp_target(target: &McpTarget, p: &mut Problems) {
    match url::Url::parse(&target.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => p.add("mcp_target.url", "must be an absolute http or https URL"),
    }
    if target.transport != "streamable-http" {
        p.add("mcp_target.transport", "must be streamable-http");
    }
    if let Some(auth) = &target.auth {
        let mode = auth.get("mode").and_then(Value::as_str).unwrap_or("none");
        if !MCP_AUTH_MODES.contains(&mode) {
            p.add(
                "mcp_target.auth.mode",
                format!("must be one of: {}", MCP_AUTH_MODES.join(", ")),
            );
        }
        // `exchange` without a token endpoint is a token sluice signs itself.
        let own_endpoint =
            mode == "client_credentials" || (mode == "exchange" && auth.get("token_url").is_some());
        if own_endpoint {
            for key in ["token_url", "client_id", "client_secret"] {
                if auth
                    .get(key)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    p.add(
                        format!("mcp_target.auth.{key}"),
                        format!("is required by {mode} auth"),
                    );
                }
            }
        }
        if mode == "forwarded" {
            for key in ["authorization_url", "token_url"] {
                if let Some(v) = auth.get(key)
                    && !v
                        .as_str()
                        .and_then(|u| url::Url::parse(u).ok())
                        .is_some_and(|u| matches!(u.scheme(), "http" | "https"))
                {
                    p.add(
                        format!("mcp_target.auth.{key}"),
                        "must be an absolute http or https URL",
                    );
                }
            }
            if auth.get("client_secret").is_some() && auth.get("client_id").is_none() {
                p.add(
                    "mcp_target.auth.client_id",
                    "is required with a client_secret",
                );
            }
        }
        if mode == "static" {
            let text = |k: &str| auth.get(k).and_then(Value::as_str).unwrap_or("");
            // `header` defaults to Authorization.
            if auth.get("header").is_some()
                && http::HeaderName::from_bytes(text("header").as_bytes()).is_err()
            {
                p.add("mcp_target.auth.header", "must be a valid HTTP header name");
            }
            if text("value").is_empty() {
                p.add("mcp_target.auth.value", "is required by static auth");
            }
        }
    }
}

/// A stored registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Registry {
    pub id: Uuid,
    pub gateway_id: Uuid,
    #[serde(flatten)]
    pub spec: RegistrySpec,
    pub created_at: String,
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> RegistrySpec {
        serde_json::from_value(v).expect("spec parses")
    }

    #[test]
    fn openai_compatible_needs_a_base_url() {
        let s = spec(json!({"name": "local", "provider": "openai_compatible"}));
        let err = s.validate().expect_err("base_url missing");
        assert_eq!(err.0[0].field, "provider_options.base_url");
        let s = spec(json!({"name": "local", "provider": "openai_compatible",
            "provider_options": {"base_url": "ftp://x"}}));
        assert!(s.validate().is_err());
        let s = spec(json!({"name": "local", "provider": "openai_compatible",
            "provider_options": {"base_url": "http://127.0.0.1:9/v1"}}));
        assert!(s.validate().is_ok());
        assert_eq!(s.base_url(), Some("http://127.0.0.1:9/v1"));
    }
}
