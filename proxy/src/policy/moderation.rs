//! `openai_moderation`: the prompt goes to a moderation endpoint in OpenAI's shape
//! (`POST {"model","input"}` → `results[].flagged/categories`). In `enforce` mode the
//! request waits for the verdict; in `observe` mode the call runs beside the request
//! and only its verdict is recorded, so a slow moderation service delays nothing.

use serde_json::{Value, json};
use sluice_shared::snapshot::policies::ModerationRule;

/// The verdict: `Ok(Some(categories))` when flagged, `Ok(None)` when clean.
pub async fn moderate(
    http: &reqwest::Client,
    rule: &ModerationRule,
    text: &str,
) -> Result<Option<String>, String> {
    let mut req = http
        .post(&rule.url)
        .timeout(rule.timeout)
        .json(&json!({"model": rule.model, "input": text}));
    if let Some(target) = &rule.credential {
        req = crate::balance::authorized(req, target);
    }
    let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
    if !resp.status().is_success() {
        return Err(format!("moderation answered {}", resp.status().as_u16()));
    }
    let body: Value = resp.json().await.map_err(|e| e.without_url().to_string())?;
    let results = body["results"]
        .as_array()
        .ok_or("moderation answer has no results")?;
    let mut flagged: Vec<String> = Vec::new();
    for r in results {
        if r["flagged"].as_bool() != Some(true) {
            continue;
        }
        for (category, on) in r["categories"].as_object().into_iter().flatten() {
            if on.as_bool() == Some(true)
                && (rule.categories.is_empty() || rule.categories.contains(category))
                && !flagged.contains(category)
            {
                flagged.push(category.clone());
            }
        }
    }
    Ok((!flagged.is_empty()).then(|| flagged.join(",")))
}
