//! A role: a named set of registries with model and MCP policies, which role-based
//! consumers route through. Stored, linked and published here; role-based routing
//! arrives with the routing work.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::routing::{ModelPolicy, validate_model_policies};
use super::validation::Problems;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoleSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub model_policies: Vec<ModelPolicy>,
    /// `{toolkit, fail_mode}` for MCP consumers of this role.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub mcp_policies: Value,
    /// `{match: any|all, claims: [{path, op, values}]}`: which OIDC identities get this role.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub oidc_mapping: Value,
}

impl RoleSpec {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        p.require_text("name", &self.name, 200);
        validate_model_policies("model_policies", &self.model_policies, &mut p);
        for (field, value) in [
            ("mcp_policies", &self.mcp_policies),
            ("oidc_mapping", &self.oidc_mapping),
        ] {
            if !(value.is_null() || value.is_object()) {
                p.add(field, "must be an object");
            }
        }
        if let Some(toolkit) = self.mcp_policies.get("toolkit") {
            super::toolkit::validate("mcp_policies.toolkit", toolkit, &mut p);
        }
        if let Some(mode) = self.mcp_policies.get("fail_mode")
            && !matches!(mode.as_str(), Some("open" | "closed"))
        {
            p.add("mcp_policies.fail_mode", "must be open or closed");
        }
        p.into_result()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
