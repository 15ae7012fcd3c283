//! A role: a named set of registries (and later model and MCP policies) that role-based
//! consumers route through. Stored and linked now; role-based routing comes later.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::validation::Problems;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleSpec {
    #[serde(default)]
    pub name: String,
}

impl RoleSpec {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        p.require_text("name", &self.name, 200);
        p.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: Uuid,
    pub gateway_id: Uuid,
    #[serde(flatten)]
    pub spec: RoleSpec,
    #[serde(default)]
    pub registry_ids: Vec<Uuid>,
    pub created_at: String,
    pub updated_at: String,
}
