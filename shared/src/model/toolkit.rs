//! A toolkit: what an MCP consumer (or role) sees of each MCP registry it reaches.
//!
//! ```json
//! {"<registry id or name>": {"tools": ["search_*"], "prompts": ["*"], "resources": ["*"],
//!                            "expose_as": {"search_web": "web_search"}}}
//! ```
//!
//! An absent or empty toolkit exposes everything of every MCP registry the consumer
//! reaches; a toolkit that names registries exposes only those, and of each only what
//! its lists match (`*` wildcards; an absent list means `["*"]`). `expose_as` renames a
//! tool or prompt as the agent sees it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::validation::Problems;

/// The selection for one registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolkitEntry {
    #[serde(default = "everything")]
    pub tools: Vec<String>,
    #[serde(default = "everything")]
    pub prompts: Vec<String>,
    #[serde(default = "everything")]
    pub resources: Vec<String>,
    /// Upstream tool or prompt name → the name the agent sees.
    #[serde(default)]
    pub expose_as: BTreeMap<String, String>,
}

impl Default for ToolkitEntry {
    fn default() -> Self {
        Self {
            tools: everything(),
            prompts: everything(),
            resources: everything(),
            expose_as: BTreeMap::new(),
        }
    }
}

fn everything() -> Vec<String> {
    vec!["*".into()]
}

/// A parsed toolkit, keyed by registry id or name as written.
pub type Toolkit = BTreeMap<String, ToolkitEntry>;

/// Parse a toolkit value; null and `{}` are the empty toolkit.
pub fn parse(value: &Value) -> Result<Toolkit, String> {
    if value.is_null() {
        return Ok(Toolkit::new());
    }
    serde_json::from_value(value.clone()).map_err(|e| e.to_string())
}

/// Whether `name` is a valid MCP tool or prompt name: 1 to 128 of `A-Z a-z 0-9 _ - .`.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Check a toolkit as an operator wrote it, reporting under `field`.
pub fn validate(field: &str, value: &Value, p: &mut Problems) {
    let toolkit = match parse(value) {
        Ok(t) => t,
        Err(e) => {
            p.add(
                field,
                format!("must map registry ids to {{tools, prompts, resources, expose_as}}: {e}"),
            );
            return;
        }
    };
    for (registry, entry) in &toolkit {
        for (alias_of, alias) in &entry.expose_as {
            if !valid_name(alias) {
                p.add(
                    format!("{field}.{registry}.expose_as.{alias_of}"),
                    "must be 1 to 128 of A-Z, a-z, 0-9, '_', '-', '.'",
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for alias in entry.expose_as.values() {
            if !seen.insert(alias) {
                p.add(
                    format!("{field}.{registry}.expose_as"),
                    format!("exposes two names as {alias}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_lists_mean_everything() {
        let t = parse(&json!({"r1": {"tools": ["a*"]}})).expect("parses");
        assert_eq!(t["r1"].tools, vec!["a*"]);
        assert_eq!(t["r1"].prompts, vec!["*"]);
        assert!(parse(&Value::Null).expect("null").is_empty());
    }

    #[test]
    fn bad_aliases_and_shapes_are_reported() {
        let mut p = Problems::default();
        validate(
            "mcp.toolkit",
            &json!({"r1": {"expose_as": {"a": "has space", "b": "x", "c": "x"}}}),
            &mut p,
        );
        let fields: Vec<_> = p.0.iter().map(|x| x.field.as_str()).collect();
        assert!(fields.contains(&"mcp.toolkit.r1.expose_as.a"), "{fields:?}");
        assert!(fields.contains(&"mcp.toolkit.r1.expose_as"), "{fields:?}");
        let mut p = Problems::default();
        validate("mcp.toolkit", &json!({"r1": {"tool": ["x"]}}), &mut p);
        assert_eq!(p.0.len(), 1);
        let mut p = Problems::default();
        validate("mcp.toolkit", &json!(["x"]), &mut p);
        assert_eq!(p.0.len(), 1);
    }
}
