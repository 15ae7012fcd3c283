//! Routing settings shared by consumers and roles: which models of which registry may be
//! used, and which is the default.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::validation::Problems;

/// The models a consumer or role may use on one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPolicy {
    pub registry_id: Uuid,
    /// Allowed model names; empty allows any.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// The model used when a request names none; must be allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// Check a list of model policies, reporting under `field[i]`.
pub fn validate_model_policies(field: &str, policies: &[ModelPolicy], p: &mut Problems) {
    for (i, policy) in policies.iter().enumerate() {
        if policy.allowed.iter().any(|m| m.trim().is_empty()) {
            p.add(
                format!("{field}[{i}].allowed"),
                "model names must not be empty",
            );
        }
        if let Some(default) = &policy.default
            && !policy.allowed.is_empty()
            && !policy.allowed.contains(default)
        {
            p.add(
                format!("{field}[{i}].default"),
                "must be one of the allowed models",
            );
        }
        if policies[..i]
            .iter()
            .any(|other| other.registry_id == policy.registry_id)
        {
            p.add(
                format!("{field}[{i}].registry_id"),
                "appears more than once",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_must_be_allowed() {
        let id = Uuid::now_v7();
        let mut p = Problems::default();
        let ok = ModelPolicy {
            registry_id: id,
            allowed: vec!["a".into()],
            default: Some("a".into()),
        };
        let bad = ModelPolicy {
            registry_id: Uuid::now_v7(),
            allowed: vec!["a".into()],
            default: Some("b".into()),
        };
        validate_model_policies("model_policies", std::slice::from_ref(&ok), &mut p);
        assert!(p.is_empty());
        validate_model_policies("model_policies", &[ok.clone(), bad, ok], &mut p);
        let fields: Vec<_> = p.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            ["model_policies[1].default", "model_policies[2].registry_id"]
        );
    }
}
