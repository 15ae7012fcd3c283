//! A policy: a kind (`slug`) and its settings, run on the traffic of the consumers it is
//! attached to. Stored and published now so consumers can link to policies; the engine
//! that runs them arrives with the policies work.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::validation::Problems;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    #[serde(default)]
    pub name: String,
    /// The policy kind, e.g. `rate_limiter`.
    #[serde(default)]
    pub slug: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub settings: Value,
}

fn enabled() -> bool {
    true
}

impl PolicySpec {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        p.require_text("name", &self.name, 200);
        p.require_text("slug", &self.slug, 100);
        p.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub id: Uuid,
    pub gateway_id: Uuid,
    #[serde(flatten)]
    pub spec: PolicySpec,
    pub created_at: String,
    pub updated_at: String,
}
