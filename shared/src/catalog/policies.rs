//! The policies catalog: every policy kind with the stages it runs in, whether it can
//! throttle, and the JSON schema its `settings` must match. The admin API validates a
//! policy's settings against it and answers 422 with the field path.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{Value, json};

/// One policy kind of the catalog.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PolicyKind {
    #[schema(value_type = String)]
    pub slug: &'static str,
    #[schema(value_type = String)]
    pub description: &'static str,
    #[schema(value_type = Vec<String>)]
    pub stages: &'static [&'static str],
    pub supports_throttle: bool,
    /// The JSON Schema a policy's `settings` must match.
    pub settings_schema: Value,
    /// Whether the proxy applies this kind yet; the others are stored, validated and
    /// reported as `not_enforced` in telemetry.
    pub enforced: bool,
}

fn window() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": 2_592_000, "description": "window length in seconds"})
}

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

static KINDS: LazyLock<Vec<PolicyKind>> = LazyLock::new(|| {
    let pre = &["pre_request"][..];
    vec![
        PolicyKind {
            slug: "rate_limiter",
            enforced: true,
            description: "Requests per window per consumer, gateway or header value; exact across replicas through Redis. With `tools`, MCP calls of each matching tool are counted in a window of their own.",
            stages: pre,
            supports_throttle: true,
            settings_schema: json!({"type": "object", "additionalProperties": false, "required": ["limit", "window"],
                "properties": {
                    "limit": {"type": "integer", "minimum": 1},
                    "window": window(),
                    "algorithm": {"type": "string", "enum": ["sliding_window", "gcra"]},
                    "group_by": {"type": "string", "enum": ["consumer", "gateway", "header"]},
                    "group_by_header": {"type": "string"},
                    "fail_open": {"type": "boolean"},
                    "tools": strings()}}),
        },
        PolicyKind {
            slug: "token_rate_limiter",
            enforced: true,
            description: "Tokens or US dollars per window, per model rules, pre-checked on the prompt and settled from usage.",
            stages: &["pre_request", "post_response"],
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "required": ["window"],
                "properties": {
                    "window": window(),
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "max_cost_usd": {"type": "number", "minimum": 0},
                    "count": {"type": "string", "enum": ["input", "output", "total"]},
                    "include_cached": {"type": "boolean"},
                    "rules": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                        "required": ["model"], "properties": {
                            "model": {"type": "string"},
                            "max_tokens": {"type": "integer", "minimum": 1},
                            "max_cost_usd": {"type": "number", "minimum": 0}}}},
                    "downgrade_model": {"type": "string"},
                    "group_by": {"type": "string", "enum": ["consumer", "gateway", "header"]},
                    "group_by_header": {"type": "string"},
                    "fail_open": {"type": "boolean"}}}),
        },
        PolicyKind {
            slug: "request_size_limiter",
            enforced: true,
            description: "Largest request body in bytes and characters.",
            stages: pre,
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "max_bytes": {"type": "integer", "minimum": 1},
                "max_chars": {"type": "integer", "minimum": 1},
                "require_content_length": {"type": "boolean"}}}),
        },
        PolicyKind {
            slug: "model_allowlist",
            enforced: true,
            description: "Models a consumer may request.",
            stages: pre,
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "required": ["allowed"],
                "properties": {"allowed": strings()}}),
        },
        PolicyKind {
            slug: "tool_allowlist",
            enforced: true,
            description: "Tools a request may define or call, allowed or denied by name (with * wildcards).",
            stages: pre,
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false,
                "properties": {"allow": strings(), "deny": strings()}}),
        },
        PolicyKind {
            slug: "tool_injection",
            enforced: true,
            description: "Tools the gateway adds to every request.",
            stages: pre,
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "required": ["tools"],
                "properties": {"tools": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["name"], "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 64},
                        "description": {"type": "string"},
                        "parameters": {"type": "object"}}}}}}),
        },
        PolicyKind {
            slug: "prompt_template",
            enforced: true,
            description: "System prompts or named templates injected into requests, with variables from headers and JWT claims.",
            stages: pre,
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "system": {"type": "string"},
                "position": {"type": "string", "enum": ["prepend", "append", "replace"]},
                "templates": {"type": "object", "additionalProperties": {"type": "string"}},
                "template_header": {"type": "string"}}}),
        },
        PolicyKind {
            slug: "regex_replace",
            enforced: true,
            description: "Masking of patterns and built-in PII detectors in requests and responses, streams included.",
            stages: &["pre_request", "pre_response"],
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "patterns": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["pattern"], "properties": {
                        "pattern": {"type": "string"}, "replacement": {"type": "string"}}}},
                "detectors": {"type": "array", "items": {"type": "string",
                    "enum": ["email", "phone", "credit_card", "iban", "api_key"]}},
                "apply_to": {"type": "string", "enum": ["request", "response", "both"]},
                "action": {"type": "string", "enum": ["mask", "block"]},
                "max_match_length": {"type": "integer", "minimum": 1, "maximum": 65536}}}),
        },
        PolicyKind {
            slug: "cors",
            enforced: true,
            description: "Cross-origin access; preflight answered by the proxy.",
            stages: pre,
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "required": ["allowed_origins"],
                "properties": {
                    "allowed_origins": strings(), "allowed_methods": strings(), "allowed_headers": strings(),
                    "expose_headers": strings(), "allow_credentials": {"type": "boolean"},
                    "max_age": {"type": "integer", "minimum": 0}}}),
        },
        PolicyKind {
            slug: "semantic_cache",
            enforced: true,
            description: "Exact or embedding-similarity cache of answers, streams replayed as streams.",
            stages: &["pre_request", "post_response"],
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "mode": {"type": "string", "enum": ["exact", "semantic"]},
                "ttl": {"type": "integer", "minimum": 1},
                "threshold": {"type": "number", "minimum": 0, "maximum": 1},
                "scope": {"type": "string", "enum": ["consumer", "global"]},
                "embedding_registry_id": {"type": "string"},
                "embedding_model": {"type": "string"},
                "skip_with_tools": {"type": "boolean"},
                "bypass_header": {"type": "string"},
                "max_entries": {"type": "integer", "minimum": 1}}}),
        },
        PolicyKind {
            slug: "openai_moderation",
            enforced: true,
            description: "An external moderation call that records its verdict without blocking other requests.",
            stages: &["pre_request", "post_response"],
            supports_throttle: false,
            settings_schema: json!({"type": "object", "additionalProperties": false, "required": ["url"],
                "properties": {
                    "url": {"type": "string"}, "registry_id": {"type": "string"}, "model": {"type": "string"},
                    "timeout_ms": {"type": "integer", "minimum": 1}, "fail_open": {"type": "boolean"},
                    "categories": strings()}}),
        },
    ]
});

/// Every policy kind.
pub fn policy_kinds() -> &'static [PolicyKind] {
    &KINDS
}

/// The kind with this slug.
pub fn policy_kind(slug: &str) -> Option<&'static PolicyKind> {
    KINDS.iter().find(|k| k.slug == slug)
}
