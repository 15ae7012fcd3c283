//! The models catalog: context window, output limit, prices per 1M tokens (input,
//! output, cached input) and capabilities of the current models of every provider, from
//! `shared/catalog/models.json`, or from a URL when one is configured (providers change
//! prices and ship models more often than sluice is released). Cost accounting and
//! Anthropic's required `max_tokens` read it.

use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// One model of the catalog; prices are US dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

static MODELS: LazyLock<ArcSwap<Vec<ModelEntry>>> = LazyLock::new(|| {
    let shipped = serde_json::from_str::<File>(include_str!("../../catalog/models.json"))
        .map(|f| f.models)
        .unwrap_or_default();
    ArcSwap::from_pointee(shipped)
});

/// The models catalog in force: the shipped one, or the last good synced one.
pub fn models() -> Arc<Vec<ModelEntry>> {
    MODELS.load_full()
}

/// Replace the catalog with a document of the shipped file's shape. A document that does
/// not parse, lists no model, or has a negative price is refused and the catalog in
/// force stays. Returns how many models are now listed.
pub fn replace_models(json: &str) -> Result<usize, String> {
    let file: File =
        serde_json::from_str(json).map_err(|e| format!("not a models catalog: {e}"))?;
    if file.models.is_empty() {
        return Err("the catalog lists no model".into());
    }
    if let Some(bad) = file.models.iter().find(|m| {
        m.input_per_1m < 0.0
            || m.output_per_1m < 0.0
            || m.cached_input_per_1m.is_some_and(|c| c < 0.0)
    }) {
        return Err(format!("{} has a negative price", bad.model));
    }
    let count = file.models.len();
    MODELS.store(Arc::new(file.models));
    Ok(count)
}

/// The catalog's entry for a provider's model: the exact name, else the longest
/// catalog name the model starts with followed by `-` (dated snapshots such as
/// `claude-sonnet-4-5-20250929`).
pub fn find(provider: &str, model: &str) -> Option<ModelEntry> {
    models()
        .iter()
        .filter(|m| m.provider == provider)
        .filter(|m| {
            model == m.model
                || model
                    .strip_prefix(m.model.as_str())
                    .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|m| m.model.len())
        .cloned()
}

impl ModelEntry {
    /// The price of a request in USD: input not read from cache at the input price,
    /// cache reads at the cached price (the input price when the provider has none),
    /// output at the output price.
    pub fn cost(&self, input: u64, cached: u64, output: u64) -> f64 {
        let fresh = input.saturating_sub(cached) as f64;
        let cached_price = self.cached_input_per_1m.unwrap_or(self.input_per_1m);
        (fresh * self.input_per_1m
            + cached as f64 * cached_price
            + output as f64 * self.output_per_1m)
            / 1_000_000.0
    }
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
        for m in models().iter() {
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

    #[test]
    fn a_bad_synced_catalog_is_refused() {
        assert!(replace_models("nope").is_err());
        assert!(replace_models(r#"{"models": []}"#).is_err());
        let negative = r#"{"models": [{"provider": "openai", "model": "m", "context_window": 1,
            "max_output_tokens": 1, "input_per_1m": -1, "output_per_1m": 1}]}"#;
        assert!(replace_models(negative).is_err());
        assert!(models().len() > 20, "the shipped catalog stays");
    }
}
