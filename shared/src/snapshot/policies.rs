//! Policies compiled for the request path: each consumer's chain (the gateway's global
//! policies and its own, enabled ones only) ordered by priority, with settings parsed
//! into typed rules once, at compile time.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::mask::Masker;
use super::upstream::UpstreamTarget;
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
#[derive(Debug, Clone)]
pub enum PolicyRule {
    RateLimit {
        limit: u64,
        window: Duration,
        algorithm: LimitAlgorithm,
        group_by: GroupBy,
        fail_open: bool,
        /// MCP tools this limit counts, each tool in its own window (`*` wildcards);
        /// empty: every request. A limit scoped to tools counts only MCP tool calls.
        tools: Vec<String>,
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
    /// Tools the gateway adds to every request; one of the same name is replaced.
    ToolInjection {
        tools: Vec<InjectedTool>,
    },
    /// A system prompt (or a named template) put into every request.
    PromptTemplate(Arc<PromptTemplate>),
    /// Patterns and personal data masked in requests, answers or both.
    Mask {
        masker: Arc<Masker>,
        request: bool,
        response: bool,
        /// Refuse a request with a match instead of masking it.
        block: bool,
    },
    /// Answers cached by request, exactly or by meaning.
    Cache(Arc<CacheRule>),
    /// An external moderation call on the prompt.
    Moderation(Arc<ModerationRule>),
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

/// A tool `tool_injection` adds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InjectedTool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "empty_object")]
    pub parameters: Value,
}

fn empty_object() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// Where an injected system prompt goes relative to the client's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PromptPosition {
    #[default]
    Prepend,
    Append,
    Replace,
}

/// `prompt_template` settings: the default system text, named templates a request may
/// pick by header, and where the text goes. Text may hold `{{header.<name>}}`,
/// `{{claim.<path>}}` (a verified bearer token's claims), `{{consumer.name}}`,
/// `{{consumer.slug}}` and `{{gateway.slug}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptTemplate {
    pub system: Option<String>,
    pub templates: std::collections::BTreeMap<String, String>,
    pub template_header: HeaderName,
    pub position: PromptPosition,
}

/// `semantic_cache` settings, resolved.
#[derive(Debug, Clone)]
pub struct CacheRule {
    /// Exact (hash of the normalized request), else by meaning.
    pub exact: bool,
    pub ttl: Duration,
    /// Least cosine similarity of a semantic hit.
    pub threshold: f64,
    /// One cache for the gateway, else one per consumer.
    pub global: bool,
    /// The embeddings registry and model of semantic mode.
    pub embedding: Option<(Arc<UpstreamTarget>, String)>,
    pub skip_with_tools: bool,
    pub bypass_header: HeaderName,
    pub max_entries: usize,
}

/// `openai_moderation` settings, resolved.
#[derive(Debug, Clone)]
pub struct ModerationRule {
    pub url: String,
    pub model: String,
    /// The registry whose credential the call carries.
    pub credential: Option<Arc<UpstreamTarget>>,
    pub timeout: Duration,
    pub fail_open: bool,
    /// Categories that count; any flagged category when empty.
    pub categories: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub id: Uuid,
    /// The kind's slug: the catalog's own text for a kind it has (every request's
    /// telemetry names it, and then copies nothing).
    pub kind: std::borrow::Cow<'static, str>,
    pub mode: PolicyMode,
    pub priority: i32,
    /// May run concurrently with adjacent parallel policies.
    pub parallel: bool,
    pub rule: PolicyRule,
}

impl CompiledPolicy {
    /// Whether the policy rewrites the request body (and so never runs concurrently
    /// with another that does).
    pub fn rewrites_request(&self) -> bool {
        match &self.rule {
            PolicyRule::ToolInjection { .. } | PolicyRule::PromptTemplate(_) => true,
            PolicyRule::Mask { request, block, .. } => *request && !*block,
            _ => false,
        }
    }
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

/// Resolves a registry id to a callable target.
pub type Targets<'a> = dyn Fn(Uuid) -> Option<Arc<UpstreamTarget>> + 'a;

fn text(s: &Value, key: &str) -> Option<String> {
    s.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A list of strings in the settings (empty when absent).
fn strings(s: &Value, key: &str) -> Vec<String> {
    s.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn flag(s: &Value, key: &str, default: bool) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn header_name(s: &Value, key: &str, default: &'static str) -> HeaderName {
    s.get(key)
        .and_then(Value::as_str)
        .and_then(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
        .unwrap_or(HeaderName::from_static(default))
}

fn rule(policy: &Policy, targets: &Targets<'_>) -> PolicyRule {
    let s = &policy.spec.settings;
    let registry = |key: &str| {
        s.get(key)
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<Uuid>().ok())
            .and_then(targets)
    };
    match policy.spec.slug.as_str() {
        "tool_injection" => PolicyRule::ToolInjection {
            tools: s
                .get("tools")
                .cloned()
                .and_then(|t| serde_json::from_value(t).ok())
                .unwrap_or_default(),
        },
        "prompt_template" => PolicyRule::PromptTemplate(Arc::new(PromptTemplate {
            system: text(s, "system"),
            templates: s
                .get("templates")
                .and_then(Value::as_object)
                .map(|t| {
                    t.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            template_header: header_name(s, "template_header", "x-ag-prompt-template"),
            position: s
                .get("position")
                .cloned()
                .and_then(|p| serde_json::from_value(p).ok())
                .unwrap_or_default(),
        })),
        "regex_replace" => {
            let patterns: Vec<(String, Option<String>)> = s
                .get("patterns")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| Some((text(p, "pattern")?, text(p, "replacement"))))
                        .collect()
                })
                .unwrap_or_default();
            let detectors = strings(s, "detectors");
            let max = num(s, "max_match_length").unwrap_or(256);
            match Masker::compile(&patterns, &detectors, usize::try_from(max).unwrap_or(256)) {
                Ok(masker) => {
                    // `apply_to` wins; else the stages say where the policy runs.
                    let stages = &policy.spec.stages;
                    let (request, response) = match s.get("apply_to").and_then(Value::as_str) {
                        Some("request") => (true, false),
                        Some("response") => (false, true),
                        Some(_) => (true, true),
                        None => (
                            stages
                                .iter()
                                .any(|st| st.as_str().starts_with("pre_request")),
                            stages.iter().any(|st| st.as_str().ends_with("_response")),
                        ),
                    };
                    PolicyRule::Mask {
                        masker,
                        request,
                        response,
                        block: s.get("action").and_then(Value::as_str) == Some("block"),
                    }
                }
                Err(reason) => {
                    tracing::warn!(policy = %policy.id, %reason, "masking patterns do not compile");
                    PolicyRule::NotEnforced
                }
            }
        }
        "semantic_cache" => {
            let exact = s.get("mode").and_then(Value::as_str) != Some("semantic");
            let embedding = registry("embedding_registry_id").map(|t| {
                let model = text(s, "embedding_model")
                    .unwrap_or_else(|| "text-embedding-3-small".to_string());
                (t, model)
            });
            if !exact && embedding.is_none() {
                tracing::warn!(policy = %policy.id, "semantic cache without a callable embeddings registry");
                return PolicyRule::NotEnforced;
            }
            PolicyRule::Cache(Arc::new(CacheRule {
                exact,
                ttl: Duration::from_secs(num(s, "ttl").unwrap_or(3600).max(1)),
                threshold: s.get("threshold").and_then(Value::as_f64).unwrap_or(0.95),
                global: s.get("scope").and_then(Value::as_str) == Some("global"),
                embedding,
                skip_with_tools: flag(s, "skip_with_tools", true),
                bypass_header: header_name(s, "bypass_header", "x-ag-cache-bypass"),
                max_entries: usize::try_from(num(s, "max_entries").unwrap_or(10_000))
                    .unwrap_or(10_000)
                    .max(1),
            }))
        }
        "openai_moderation" => PolicyRule::Moderation(Arc::new(ModerationRule {
            url: text(s, "url").unwrap_or_default(),
            model: text(s, "model").unwrap_or_else(|| "omni-moderation-latest".to_string()),
            credential: registry("registry_id"),
            timeout: Duration::from_millis(num(s, "timeout_ms").unwrap_or(2000).max(1)),
            fail_open: flag(s, "fail_open", true),
            categories: strings(s, "categories"),
        })),
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
                tools: strings(s, "tools"),
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
        "tool_allowlist" => PolicyRule::ToolAllowlist {
            allow: strings(s, "allow"),
            deny: strings(s, "deny"),
        },
        "model_allowlist" => PolicyRule::ModelAllowlist {
            allowed: strings(s, "allowed"),
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

/// Compile every policy of a document, in document order; `targets` resolves the
/// registries some kinds call (embeddings, moderation credentials).
pub fn compile(all: &[Policy], targets: &Targets<'_>) -> Vec<Arc<CompiledPolicy>> {
    all.iter()
        .map(|p| {
            Arc::new(CompiledPolicy {
                id: p.id,
                kind: crate::catalog::policy_kind(&p.spec.slug)
                    .map_or_else(|| p.spec.slug.clone().into(), |k| k.slug.into()),
                mode: p.spec.mode,
                priority: p.spec.priority,
                parallel: p.spec.parallel,
                rule: rule(p, targets),
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
    use super::{Policy, compile, wildcard};

    /// A kind the catalog has is named by the catalog's own text, which telemetry then
    /// carries without a copy; any other slug is kept as it came.
    #[test]
    fn a_catalog_kind_is_named_by_the_catalogs_text() {
        let policy = |slug: &str| -> Policy {
            serde_json::from_value(serde_json::json!({
                "id": uuid::Uuid::nil(), "gateway_id": uuid::Uuid::nil(), "slug": slug,
                "settings": {"max_bytes": 10},
                "created_at": "", "updated_at": "",
            }))
            .expect("policy")
        };
        let compiled = compile(
            &[policy("request_size_limiter"), policy("no_such_kind")],
            &|_| None,
        );
        assert!(matches!(
            compiled[0].kind,
            std::borrow::Cow::Borrowed("request_size_limiter")
        ));
        assert!(matches!(
            &compiled[1].kind,
            std::borrow::Cow::Owned(k) if k == "no_such_kind"
        ));
    }

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
