//! An auth: a credential a consumer presents to the proxy. For API keys only the
//! SHA-256 digest is stored ([`crate::apikey`]); `key_prefix` and `key_suffix` let an
//! operator recognise a key without being able to use it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::validation::Problems;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    #[default]
    ApiKey,
}

/// The fields an operator writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthSpec {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: AuthKind,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

impl AuthSpec {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        p.require_text("name", &self.name, 200);
        p.into_result()
    }
}

/// A stored auth. `key_hash` travels to the proxy in the config document and is never
/// part of an API response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    pub id: Uuid,
    pub gateway_id: Uuid,
    #[serde(flatten)]
    pub spec: AuthSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_suffix: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}
