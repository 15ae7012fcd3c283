//! Which registry and model a request goes to, from the consumer's model policies.
//!
//! - `@provider/model` pins a provider, `registry_name/model` a registry;
//! - a bare `model` goes to a registry whose allow-list permits it (by weight among
//!   those that do);
//! - no model at all takes a registry's default model;
//! - anything else is `403 model_not_allowed`.
//!
//! Model names may themselves contain `/` (OpenRouter's `openai/gpt-4o`), so a prefix
//! pins a registry only when a registry of the consumer has that name.

use rand::Rng;
use sluice_shared::snapshot::{CompiledConsumer, WeightedUpstream};

use crate::error::ProxyError;

/// The decision: where, and which model name to send.
#[derive(Debug)]
pub struct Resolved<'c> {
    pub upstream: &'c WeightedUpstream,
    pub model: String,
}

fn usable(u: &WeightedUpstream) -> bool {
    u.target.as_ref().map_or(true, |t| t.enabled)
}

/// Pick one upstream by weight.
fn weighted<'c>(candidates: &[&'c WeightedUpstream]) -> Option<&'c WeightedUpstream> {
    let total: u32 = candidates.iter().map(|u| u32::from(u.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rand::rng().random_range(0..total);
    for u in candidates {
        let w = u32::from(u.weight);
        if roll < w {
            return Some(u);
        }
        roll -= w;
    }
    None
}

pub fn resolve<'c>(
    consumer: &'c CompiledConsumer,
    requested: &str,
) -> Result<Resolved<'c>, ProxyError> {
    let upstreams: Vec<&WeightedUpstream> =
        consumer.upstreams.iter().filter(|u| usable(u)).collect();
    if upstreams.is_empty() {
        return Err(ProxyError::NoUpstream);
    }
    let requested = requested.trim();
    if requested.is_empty() {
        let with_default: Vec<_> = upstreams
            .iter()
            .copied()
            .filter(|u| u.default_model.is_some())
            .collect();
        let upstream = weighted(&with_default).ok_or(ProxyError::ModelRequired)?;
        let model = upstream.default_model.clone().unwrap_or_default();
        return Ok(Resolved { upstream, model });
    }

    // A pin: `@provider/model` or `registry_name/model`.
    let pinned: Option<(Vec<&WeightedUpstream>, &str)> =
        if let Some(rest) = requested.strip_prefix('@') {
            let (provider, model) = rest
                .split_once('/')
                .ok_or_else(|| ProxyError::ModelNotAllowed(requested.to_string()))?;
            let of_provider = upstreams
                .iter()
                .copied()
                .filter(|u| {
                    u.target
                        .as_ref()
                        .is_ok_and(|t| t.provider.as_str() == provider)
                })
                .collect();
            Some((of_provider, model))
        } else if let Some((prefix, model)) = requested.split_once('/') {
            let named: Vec<_> = upstreams
                .iter()
                .copied()
                .filter(|u| &*u.registry_name == prefix)
                .collect();
            (!named.is_empty()).then_some((named, model))
        } else {
            None
        };
    let (candidates, model) = pinned.unwrap_or((upstreams, requested));
    let allowed: Vec<_> = candidates.into_iter().filter(|u| u.allows(model)).collect();
    let upstream =
        weighted(&allowed).ok_or_else(|| ProxyError::ModelNotAllowed(requested.to_string()))?;
    Ok(Resolved {
        upstream,
        model: model.to_string(),
    })
}
