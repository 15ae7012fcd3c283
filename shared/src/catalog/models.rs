//! The models catalog: context window, output limit, prices per 1M tokens (input,
//! output, cached input) and capabilities of the current models of every provider, from
//! `shared/catalog/models.json`. Cost accounting and Anthropic's required `max_tokens`
//! read it.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub provider: String,
    pub model: String,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub input_per_1m: f64,
    pub output_per_1m: f64,
    #[serde(default)]
    pub cached_input_per_1m: Option<f64>,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Deserialize)]
struct File {
    models: Vec<ModelEntry>,
}

static MODELS: LazyLock<Vec<ModelEntry>> = LazyLock::new(|| {
    serde_json::from_str::<File>(include_str!("../../catalog/models.json"))
        .map(|f| f.models)
        .unwrap_or_default()
});

/// The shipped models catalog.
pub fn models() -> &'static [ModelEntry] {
    &MODELS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Provider;

    #[test]
    fn the_shipped_catalog_parses_and_covers_every_provider() {
        assert!(models().len() > 20);
        for provider in Provider::ALL
            .iter()
            .filter(|p| **p != Provider::OpenaiCompatible)
        {
            assert!(
                models().iter().any(|m| m.provider == provider.as_str()),
                "{} has no models",
                provider.as_str()
            );
        }
        for m in models() {
            assert!(
                m.input_per_1m >= 0.0 && m.output_per_1m >= 0.0,
                "{}",
                m.model
            );
            assert!(
                m.cached_input_per_1m.is_none_or(|c| c <= m.input_per_1m),
                "{}",
                m.model
            );
        }
    }
}
