//! Policies compiled for the request path: each consumer's chain (the gateway's global
//! policies and its own, enabled ones only) ordered by priority, with settings parsed
//! into typed rules once, at compile time.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde_json::Value;
use uuid::Uuid;

use crate::model::{Policy, PolicyMode};

/// What a rate limit counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Consumer,
    Gateway,
    /// A header's value (requests without it share one group).
    Header(HeaderName),
}

/// Which tokens a token limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCount {
    Input,
    Output,
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAlgorithm {
    /// Exactly `limit` requests in any `window`.
    SlidingWindow,
    /// Generic cell rate: a burst of `limit`, then one per `window / limit`.
    Gcra,
}

/// A policy's settings, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyRule {
    RateLimit {
        limit: u64,
        window: Duration,
        algorithm: LimitAlgorithm,
        group_by: GroupBy,
        fail_open: bool,
    },
    RequestSize {
        max_bytes: Option<usize>,
        max_chars: Option<usize>,
        require_content_length: bool,
    },
    ModelAllowlist {
        allowed: Vec<String>,
    },
    /// Tokens or dollars per window: refused when the window's budget is spent (or
    /// would be by this prompt), settled from the provider's usage afterwards.
    TokenLimit {
        window: Duration,
        /// Tokens, or millionths of a dollar when `cost` is set.
        budget: u64,
        cost: bool,
        count: TokenCount,
        include_cached: bool,
        /// Per-model budgets (model name → budget in the same unit).
        rules: Vec<(String, u64)>,
        downgrade_model: Option<String>,
        group_by: GroupBy,
        fail_open: bool,
    },
    /// Tools a request may define: names matched with `*` wildcards; a tool matching
    /// `deny`, or missing from a non-empty `allow`, refuses the request.
    ToolAllowlist {
        allow: Vec<String>,
        deny: Vec<String>,
    },
    /// Cross-origin access: applied per gateway, from its global `cors` policies.
    Cors(Cors),
    /// A kind the proxy does not enforce yet: it is reported, never applied.
    NotEnforced,
}

/// A gateway's CORS rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Origins allowed (`*` for any).
    pub origins: Vec<String>,
    pub methods: String,
    pub headers: String,
    pub expose: String,
    pub credentials: bool,
    pub max_age: u64,
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, if allowed.
    /// With credentials the origin is echoed, as browsers refuse `*` then.
    pub fn allow(&self, origin: &str) -> Option<String> {
        if self.origins.iter().any(|o| o == origin) {
            Some(origin.to_string())
        } else if self.origins.iter().any(|o| o == "*") {
            Some(if self.credentials {
                origin.to_string()
            } else {
                "*".to_string()
            })
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub id: Uuid,
    pub kind: String,
    pub mode: PolicyMode,
    pub priority: i32,
    pub rule: PolicyRule,
}

fn num(settings: &Value, key: &str) -> Option<u64> {
    settings.get(key).and_then(Value::as_u64)
}

fn group_by(s: &Value) -> GroupBy {
    match s.get("group_by").and_then(Value::as_str) {
        Some("gateway") => GroupBy::Gateway,
        Some("header") => s
            .get("group_by_header")
            .and_then(Value::as_str)
            .and_then(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
            .map_or(GroupBy::Consumer, GroupBy::Header),
        _ => GroupBy::Consumer,
    }
}

fn rule(policy: &Policy) -> PolicyRule {
    let s = &policy.spec.settings;
    match policy.spec.slug.as_str() {
        "token_rate_limiter" => {
            let cost = s.get("max_cost_usd").is_some() && s.get("max_tokens").is_none();
            let unit = |v: &Value| -> Option<u64> {
                if cost {
                    v.get("max_cost_usd")
                        .and_then(Value::as_f64)
                        .map(|d| (d * 1_000_000.0).round() as u64)
                } else {
                    v.get("max_tokens").and_then(Value::as_u64)
                }
            };
            PolicyRule::TokenLimit {
                window: Duration::from_secs(num(s, "window").unwrap_or(60).max(1)),
                budget: unit(s).unwrap_or(u64::MAX),
                cost,
                count: match s.get("count").and_then(Value::as_str) {
                    Some("input") => TokenCount::Input,
                    Some("output") => TokenCount::Output,
                    _ => TokenCount::Total,
                },
                include_cached: s
                    .get("include_cached")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                rules: s
                    .get("rules")
                    .and_then(Value::as_array)
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|r| Some((r.get("model")?.as_str()?.to_string(), unit(r)?)))
                            .collect()
                    })
                    .unwrap_or_default(),
                downgrade_model: s
                    .get("downgrade_model")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                group_by: group_by(s),
                fail_open: s.get("fail_open").and_then(Value::as_bool).unwrap_or(true),
            }
        }
        "rate_limiter" => {
            let group_by = group_by(s);
            PolicyRule::RateLimit {
                limit: num(s, "limit").unwrap_or(1).max(1),
                window: Duration::from_secs(num(s, "window").unwrap_or(60).max(1)),
                algorithm: match s.get("algorithm").and_then(Value::as_str) {
                    Some("gcra") => LimitAlgorithm::Gcra,
                    _ => LimitAlgorithm::SlidingWindow,
                },
                group_by,
                fail_open: s.get("fail_open").and_then(Value::as_bool).unwrap_or(true),
            }
        }
        "request_size_limiter" => PolicyRule::RequestSize {
            max_bytes: num(s, "max_bytes").and_then(|n| usize::try_from(n).ok()),
            max_chars: num(s, "max_chars").and_then(|n| usize::try_from(n).ok()),
            require_content_length: s
                .get("require_content_length")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        "cors" => {
            let list = |key: &str, default: &str| {
                s.get(key)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| default.to_string())
            };
            PolicyRule::Cors(Cors {
                origins: s
                    .get("allowed_origins")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o.as_str().map(|o| o.trim_end_matches('/').to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                methods: list("allowed_methods", "GET, POST, OPTIONS"),
                headers: list(
                    "allowed_headers",
                    "authorization, content-type, x-api-key, x-ag-api-key, x-ag-gateway-slug, anthropic-version",
                ),
                expose: list(
                    "expose_headers",
                    "x-ag-trace-id, x-selected-provider, x-selected-model, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after",
                ),
                credentials: s
                    .get("allow_credentials")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                max_age: num(s, "max_age").unwrap_or(600),
            })
        }
        "tool_allowlist" => {
            let names = |key: &str| -> Vec<String> {
                s.get(key)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            PolicyRule::ToolAllowlist {
                allow: names("allow"),
                deny: names("deny"),
            }
        }
        "model_allowlist" => PolicyRule::ModelAllowlist {
            allowed: s
                .get("allowed")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        },
        _ => PolicyRule::NotEnforced,
    }
}

/// The chain of one consumer: global policies and `attached`, enabled, by priority.
pub fn chain(
    policies: &[Arc<CompiledPolicy>],
    all: &[Policy],
    attached: &[Uuid],
) -> Vec<Arc<CompiledPolicy>> {
    let mut out: Vec<Arc<CompiledPolicy>> = all
        .iter()
        .zip(policies)
        .filter(|(p, _)| p.spec.enabled && (p.global || attached.contains(&p.id)))
        .map(|(_, c)| c.clone())
        .collect();
    out.sort_by_key(|p| p.priority);
    out
}

/// Compile every policy of a document, in document order.
pub fn compile(all: &[Policy]) -> Vec<Arc<CompiledPolicy>> {
    all.iter()
        .map(|p| {
            Arc::new(CompiledPolicy {
                id: p.id,
                kind: p.spec.slug.clone(),
                mode: p.spec.mode,
                priority: p.spec.priority,
                rule: rule(p),
            })
        })
        .collect()
}

/// Whether `name` matches a pattern with `*` wildcards.
pub fn wildcard(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last) && rest.len() >= last.len()
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards() {
        assert!(wildcard("get_*", "get_weather"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("a*c*e", "abcde"));
        assert!(wildcard("exact", "exact"));
        assert!(!wildcard("exact", "exactly"));
        assert!(!wildcard("get_*", "set_weather"));
        assert!(!wildcard("*_admin", "admin"));
    }
}
