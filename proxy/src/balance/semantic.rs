//! The semantic balancer: embed the prompt through the consumer's embeddings registry
//! and send it to the member whose description is most similar. Descriptions are
//! embedded once per text and cached; the prompt costs one embeddings call per
//! request. Any failure (no descriptions, the embeddings call fails or times out)
//! returns `None` and the caller balances round robin instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_shared::snapshot::{CompiledLb, UpstreamTarget, WeightedUpstream};
use sluice_translate::canonical::Request;
use tracing::debug;

/// How long the embeddings call may take before the request goes round robin.
const EMBED_TIMEOUT: Duration = Duration::from_secs(2);
/// Cached description vectors at most; the cache is cleared when full.
const CACHE_LIMIT: usize = 4096;

/// Description vectors by (model, text).
type VectorCache = HashMap<(String, String), Arc<Vec<f64>>>;

#[derive(Default)]
pub struct Semantic {
    client: reqwest::Client,
    cache: Mutex<VectorCache>,
}

/// The text the semantic balancer routes on: the last user turn's text.
pub fn prompt_of(req: &Request) -> String {
    req.last_user().map(|(_, m)| m.text()).unwrap_or_default()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let n = norm(a) * norm(b);
    if n == 0.0 { 0.0 } else { dot / n }
}

pub async fn embed(
    client: &reqwest::Client,
    target: &UpstreamTarget,
    model: &str,
    inputs: &[&str],
) -> Option<Vec<Vec<f64>>> {
    let scheme = if target.tls { "https" } else { "http" };
    let url = format!(
        "{scheme}://{}{}/embeddings",
        target.authority, target.base_path
    );
    let req = client
        .post(url)
        .timeout(EMBED_TIMEOUT)
        .json(&json!({"model": model, "input": inputs}));
    let resp = super::authorized(req, target)
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?;
    let body: Value = resp.json().await.ok()?;
    let mut data: Vec<(usize, Vec<f64>)> = body["data"]
        .as_array()?
        .iter()
        .map(|d| {
            let index = usize::try_from(d["index"].as_u64()?).ok()?;
            let v = d["embedding"]
                .as_array()?
                .iter()
                .map(Value::as_f64)
                .collect::<Option<Vec<_>>>()?;
            Some((index, v))
        })
        .collect::<Option<_>>()?;
    data.sort_by_key(|(i, _)| *i);
    (data.len() == inputs.len()).then(|| data.into_iter().map(|(_, v)| v).collect())
}

impl Semantic {
    /// The candidate most similar to `prompt`, among those with a description.
    pub async fn choose<'c>(
        &self,
        lb: &CompiledLb,
        candidates: &[&'c WeightedUpstream],
        prompt: &str,
    ) -> Option<&'c WeightedUpstream> {
        let (target, model) = lb.embedding.as_ref()?;
        let described: Vec<(&WeightedUpstream, &str)> = candidates
            .iter()
            .filter_map(|u| {
                let id = u.target.as_ref().ok()?.registry_id;
                Some((*u, lb.descriptions.get(&id)?.as_str()))
            })
            .collect();
        if described.is_empty() || prompt.trim().is_empty() {
            return None;
        }
        let key = |text: &str| (model.clone(), text.to_string());
        let missing: Vec<&str> = {
            let cache = self.cache.lock().ok()?;
            let mut m: Vec<&str> = described
                .iter()
                .map(|(_, d)| *d)
                .filter(|d| !cache.contains_key(&key(d)))
                .collect();
            m.dedup();
            m
        };
        let mut inputs = vec![prompt];
        inputs.extend(&missing);
        let vectors = embed(&self.client, target, model, &inputs).await;
        let Some(mut vectors) = vectors else {
            debug!("embeddings call failed; balancing round robin");
            return None;
        };
        let prompt_vector = vectors.remove(0);
        {
            let mut cache = self.cache.lock().ok()?;
            if cache.len() + missing.len() > CACHE_LIMIT {
                cache.clear();
            }
            for (text, v) in missing.iter().zip(vectors) {
                cache.insert(key(text), Arc::new(v));
            }
        }
        let cache = self.cache.lock().ok()?;
        described
            .iter()
            .filter_map(|(u, d)| Some((*u, cosine(&prompt_vector, cache.get(&key(d))?))))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(u, _)| u)
    }
}
