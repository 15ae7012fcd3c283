//! Which registries may serve a request and under which model name, from the
//! consumer's model policies.
//!
//! - `@provider/model` pins a provider, `registry_name/model` a registry;
//! - `pool:<alias>` names a balancing pool of `lb_config.members`;
//! - a bare `model` may go to every registry whose allow-list permits it;
//! - no model at all takes each registry's default model;
//! - anything else is `403 model_not_allowed`.
//!
//! Model names may themselves contain `/` (OpenRouter's `openai/gpt-4o`), so a prefix
//! pins a registry only when a registry of the consumer has that name. Which candidate
//! serves is the balancer's choice ([`crate::balance`]).

use sluice_shared::snapshot::{CompiledConsumer, WeightedUpstream};

use crate::error::ProxyError;

/// The model a route asks for.
#[derive(Debug, Clone, Copy)]
enum ModelChoice<'a> {
    Named(&'a str),
    /// Each registry's default (or first allowed) model.
    Default,
}

/// The candidates of a request and the model name each is sent. Names are borrowed
/// from the request and the config, not copied: a request made three copies of its
/// model's name here.
#[derive(Debug)]
pub struct Route<'a> {
    pub candidates: Vec<&'a WeightedUpstream>,
    choice: ModelChoice<'a>,
    /// The model as the client named it, for fallbacks.
    requested: &'a str,
}

fn default_of(u: &WeightedUpstream) -> Option<&str> {
    u.default_model
        .as_deref()
        .or_else(|| u.allowed.first().map(String::as_str))
}

impl<'a> Route<'a> {
    /// The model name to send to `upstream`.
    pub fn model_for(&self, upstream: &'a WeightedUpstream) -> &'a str {
        match self.choice {
            ModelChoice::Named(m) => m,
            ModelChoice::Default => default_of(upstream).unwrap_or_default(),
        }
    }

    /// The model name to send to a fallback registry: the requested one where it is
    /// allowed, else the registry's default (a fallback to another provider needs
    /// another model).
    pub fn fallback_model(&self, upstream: &'a WeightedUpstream) -> &'a str {
        let requested = match self.choice {
            ModelChoice::Named(m) => m,
            ModelChoice::Default => self.requested,
        };
        if !requested.is_empty() && upstream.allows(requested) {
            return requested;
        }
        default_of(upstream).unwrap_or(requested)
    }
}

fn usable(u: &WeightedUpstream) -> bool {
    u.target.as_ref().map_or(true, |t| t.enabled)
}

pub fn resolve<'a>(
    consumer: &'a CompiledConsumer,
    requested: &'a str,
) -> Result<Route<'a>, ProxyError> {
    let requested = requested.trim();
    let route = |candidates: Vec<&'a WeightedUpstream>, choice| Route {
        candidates,
        choice,
        requested,
    };
    if let Some(alias) = requested.strip_prefix("pool:") {
        let pool = consumer
            .pools
            .get(alias)
            .ok_or_else(|| ProxyError::ModelNotAllowed(requested.to_string()))?;
        let members: Vec<_> = pool
            .iter()
            .filter(|u| usable(u) && default_of(u).is_some())
            .collect();
        if members.is_empty() {
            return Err(ProxyError::ModelRequired);
        }
        return Ok(route(members, ModelChoice::Default));
    }
    let upstreams: Vec<&WeightedUpstream> =
        consumer.upstreams.iter().filter(|u| usable(u)).collect();
    if upstreams.is_empty() {
        return Err(ProxyError::NoUpstream);
    }
    if requested.is_empty() {
        let with_default: Vec<_> = upstreams
            .into_iter()
            .filter(|u| u.default_model.is_some())
            .collect();
        if with_default.is_empty() {
            return Err(ProxyError::ModelRequired);
        }
        return Ok(route(with_default, ModelChoice::Default));
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
    if allowed.is_empty() {
        return Err(ProxyError::ModelNotAllowed(requested.to_string()));
    }
    Ok(route(allowed, ModelChoice::Named(model)))
}

/// The model a request's policies judge (allow-lists, per-model token budgets, the
/// cache): the name its providers will be sent, a pin's prefix taken off and a missing
/// model read as the default, where every candidate agrees on it; the name as
/// requested otherwise, and where it does not resolve (routing then refuses it). Judged
/// by the requested spelling, `@openai/gpt-4o` or `my-registry/gpt-4o` escaped a
/// budget set for `gpt-4o`.
pub fn judged<'a>(consumer: &'a CompiledConsumer, requested: &'a str) -> &'a str {
    // A bare name is sent as it is written: only a pin, a pool or no name at all need
    // the candidates (whose list costs about 670 instructions a request).
    let bare = requested.trim();
    if !bare.is_empty() && !bare.contains('/') && !bare.starts_with("pool:") {
        return bare;
    }
    let Ok(route) = resolve(consumer, requested) else {
        return requested;
    };
    let mut names = route.candidates.iter().map(|u| route.model_for(u));
    match names.next() {
        Some(first) if !first.is_empty() && names.all(|n| n == first) => first,
        _ => requested,
    }
}
