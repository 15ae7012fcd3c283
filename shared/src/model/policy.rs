//! A policy: a kind (`slug`) and its settings, run on the traffic of the consumers it is
//! attached to, or of every consumer of its gateway when it is global. The engine that
//! runs policies arrives with the policies work; here they are stored, validated,
//! linked and published.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::Problems;

/// Where in a request's life a policy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyStage {
    PreRequest,
    PostRequest,
    PreResponse,
    PostResponse,
}

impl PolicyStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreRequest => "pre_request",
            Self::PostRequest => "post_request",
            Self::PreResponse => "pre_response",
            Self::PostResponse => "post_response",
        }
    }
}

/// What a policy does with its verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// Block or change traffic.
    #[default]
    Enforce,
    /// Record what would have happened; never block.
    Observe,
    /// Delay instead of reject, where the kind supports it.
    Throttle,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicySpec {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The policy kind, e.g. `rate_limiter`.
    #[serde(default)]
    pub slug: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Lower runs first.
    #[serde(default)]
    pub priority: i32,
    /// May run concurrently with adjacent parallel policies.
    #[serde(default)]
    pub parallel: bool,
    #[serde(default = "default_stages")]
    pub stages: Vec<PolicyStage>,
    #[serde(default)]
    pub mode: PolicyMode,
    #[serde(default)]
    pub settings: Value,
}

/// Each of a `regex_replace` policy's patterns must compile, and must not match the
/// empty string.
fn masks_compile(settings: &Value, p: &mut Problems) {
    let patterns = settings.get("patterns").and_then(Value::as_array);
    for (i, pattern) in patterns.into_iter().flatten().enumerate() {
        let Some(text) = pattern.get("pattern").and_then(Value::as_str) else {
            continue;
        };
        let field = format!("settings.patterns[{i}].pattern");
        if let Err(e) = crate::snapshot::mask::Masker::compile(&[(text.to_string(), None)], &[], 1)
        {
            p.add(field, format!("is not usable: {e}"));
        }
    }
    let none = patterns.is_none_or(|a| a.is_empty())
        && settings
            .get("detectors")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
    if none {
        p.add("settings", "needs at least one pattern or detector");
    }
}

fn enabled() -> bool {
    true
}

fn default_stages() -> Vec<PolicyStage> {
    vec![PolicyStage::PreRequest]
}

impl PolicySpec {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        p.require_text("name", &self.name, 200);
        match crate::catalog::policy_kind(&self.slug) {
            None => {
                let kinds: Vec<_> = crate::catalog::policy_kinds()
                    .iter()
                    .map(|k| k.slug)
                    .collect();
                p.add("slug", format!("must be one of: {}", kinds.join(", ")));
            }
            Some(kind) => {
                let settings = if self.settings.is_null() {
                    serde_json::json!({})
                } else {
                    self.settings.clone()
                };
                crate::catalog::validate_schema(
                    &kind.settings_schema,
                    &settings,
                    "settings",
                    &mut p,
                );
                if kind.slug == "regex_replace" {
                    masks_compile(&settings, &mut p);
                }
                if self.mode == PolicyMode::Throttle && !kind.supports_throttle {
                    p.add(
                        "mode",
                        format!("{} cannot throttle; use enforce or observe", kind.slug),
                    );
                }
                for (i, stage) in self.stages.iter().enumerate() {
                    if !kind.stages.contains(&stage.as_str()) {
                        p.add(
                            format!("stages[{i}]"),
                            format!("{} runs in {}", kind.slug, kind.stages.join(", ")),
                        );
                    }
                }
            }
        }
        if self.stages.is_empty() {
            p.add("stages", "must name at least one stage");
        }
        p.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    pub id: Uuid,
    pub gateway_id: Uuid,
    #[serde(flatten)]
    pub spec: PolicySpec,
    /// Applies to every consumer of the gateway.
    #[serde(default)]
    pub global: bool,
    pub created_at: String,
    pub updated_at: String,
}
