//! The counting policies: `rate_limiter` (requests per window) and
//! `token_rate_limiter` (tokens or dollars per window, settled from usage).

use std::time::Duration;

use http::HeaderName;
use sluice_shared::catalog;
use sluice_shared::model::PolicyMode;
use sluice_shared::snapshot::CompiledConsumer;
use sluice_shared::snapshot::policies::{CompiledPolicy, GroupBy, LimitAlgorithm, TokenCount};
use sluice_telemetry::metrics::METRICS;
use tracing::warn;
use uuid::Uuid;

use super::{Policies, Seen, Settle, Step, Verdict, header, outcome};
use crate::error::ProxyError;
use crate::headers;
use crate::route::Api;
use crate::session::Fields;

/// The longest a throttled request waits for its turn.
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// A counter's key: `sluice:{kind}:{policy}:{group}`, the group being what the request
/// counts in. Built by hand: every request with a limit builds one, and `format!` with
/// the ids' `Display` showed in the request path's profile (`loadtest/instructions.py`).
fn counter_key(kind: &str, policy: Uuid, group_by: &GroupBy, seen: Group<'_>) -> String {
    let mut key = String::with_capacity(96);
    key.push_str("sluice:");
    key.push_str(kind);
    key.push(':');
    let mut id = Uuid::encode_buffer();
    key.push_str(policy.hyphenated().encode_lower(&mut id));
    key.push(':');
    match group_by {
        GroupBy::Consumer => key.push_str(seen.consumer.hyphenated().encode_lower(&mut id)),
        GroupBy::Gateway => key.push_str(seen.gateway.hyphenated().encode_lower(&mut id)),
        GroupBy::Header(h) => key.push_str(seen.headers.text(h.as_str()).unwrap_or("")),
    }
    key
}

/// A provider and model the request could be served as that the models catalog has
/// no price for. A dollar budget charges each answer its catalog price, so such a
/// request would cost it nothing: it is refused instead, naming what to price, rather
/// than let a budget that never fills. Every registry that could serve the model is
/// checked, since the balancer picks among them after the policies.
fn unpriced(consumer: &CompiledConsumer, model: &str) -> Option<String> {
    let route = crate::models::resolve(consumer, model).ok()?;
    route.candidates.iter().find_map(|u| {
        let provider = u.target.as_ref().ok()?.provider.as_str();
        let model = route.model_for(u);
        catalog::find_model(provider, model)
            .is_none()
            .then(|| format!("model {model:?} at provider {provider}"))
    })
}

/// What a request's group is read from.
#[derive(Clone, Copy)]
struct Group<'a> {
    consumer: Uuid,
    gateway: Uuid,
    headers: &'a Fields,
}

impl<'a> From<&Seen<'a>> for Group<'a> {
    fn from(seen: &Seen<'a>) -> Self {
        Self {
            consumer: seen.consumer.id,
            gateway: seen.gateway_id,
            headers: seen.headers,
        }
    }
}

/// A rate limit's settings.
pub struct RateLimit<'a> {
    pub limit: u64,
    pub window: Duration,
    pub algorithm: LimitAlgorithm,
    pub group_by: &'a GroupBy,
    pub fail_open: bool,
}

/// A token limit's settings.
pub struct TokenLimit<'a> {
    pub window: Duration,
    pub budget: u64,
    pub cost: bool,
    pub count: TokenCount,
    pub include_cached: bool,
    pub rules: &'a [(String, u64)],
    pub downgrade_model: Option<&'a String>,
    pub group_by: &'a GroupBy,
    pub fail_open: bool,
}

impl Policies {
    pub(super) async fn rate_limit(
        &self,
        p: &CompiledPolicy,
        r: RateLimit<'_>,
        seen: &Seen<'_>,
        out: &mut Verdict,
    ) -> Step {
        let key = counter_key("rl", p.id, r.group_by, seen.into());
        let gcra = r.algorithm == LimitAlgorithm::Gcra;
        let mut decision = self.count(&key, r.limit, r.window, gcra).await;
        if p.mode == PolicyMode::Throttle
            && let Ok(d) = &decision
            && !d.allowed
            && d.retry_after <= MAX_THROTTLE
        {
            tokio::time::sleep(d.retry_after).await;
            decision = self.count(&key, r.limit, r.window, gcra).await;
            out.outcomes.push(outcome(p, "throttled"));
        }
        match decision {
            Err(error) => {
                warn!(policy = %p.id, %error, r.fail_open, "rate limiter unavailable");
                out.outcomes.push(outcome(p, "limiter_unavailable"));
                METRICS.policy_errors.inc();
                if r.fail_open {
                    Step::Pass
                } else {
                    Step::Reject(ProxyError::LimiterUnavailable)
                }
            }
            Ok(d) => {
                let reset = d.reset.as_secs_f64().ceil() as u64;
                out.headers.push(header("x-ratelimit-limit", r.limit));
                out.headers
                    .push(header("x-ratelimit-remaining", d.remaining));
                out.headers.push(header("x-ratelimit-reset", reset));
                if d.allowed {
                    Step::Pass
                } else {
                    Step::Reject(ProxyError::RateLimited {
                        retry_after: d.retry_after.as_secs_f64().ceil().max(1.0) as u64,
                    })
                }
            }
        }
    }

    pub(super) async fn token_limit(
        &self,
        p: &CompiledPolicy,
        t: TokenLimit<'_>,
        seen: &Seen<'_>,
        out: &mut Verdict,
    ) -> Step {
        // Counting a prompt's tokens generates none: Anthropic does not charge for
        // it, and clients such as Claude Code call it often.
        if seen.api == Api::CountTokens {
            return Step::Pass;
        }
        let model = seen.model.unwrap_or("");
        if t.cost
            && let Some(unpriced) = unpriced(seen.consumer, model)
        {
            warn!(policy = %p.id, %unpriced, "a dollar budget cannot price the request");
            return Step::Reject(ProxyError::PriceUnknown(unpriced));
        }
        let (scope, budget) = t
            .rules
            .iter()
            .find(|(m, _)| m == model)
            .map_or(("*", t.budget), |(m, b)| (m.as_str(), *b));
        let mut key = counter_key("tl", p.id, t.group_by, seen.into());
        key.push(':');
        key.push_str(scope);
        // The prompt's own size, roughly four bytes a token, is reserved at admission
        // (one atomic step, so concurrent requests on any replica cannot overrun the
        // budget) and trued up from the provider's usage afterwards.
        let estimate = if t.cost || t.count == TokenCount::Output {
            0
        } else {
            seen.body.len() as u64 / 4
        };
        let (admitted, used, left) = match self.reserve(&key, estimate, budget, t.window).await {
            Err(error) => {
                warn!(policy = %p.id, %error, t.fail_open, "token limiter unavailable");
                out.outcomes.push(outcome(p, "limiter_unavailable"));
                METRICS.policy_errors.inc();
                return if t.fail_open {
                    Step::Pass
                } else {
                    Step::Reject(ProxyError::LimiterUnavailable)
                };
            }
            Ok(v) => v,
        };
        let (limit_name, remaining_name) = if t.cost {
            ("x-ratelimit-limit-cost", "x-ratelimit-remaining-cost")
        } else {
            ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens")
        };
        out.headers
            .push((HeaderName::from_static(limit_name), headers::number(budget)));
        out.headers.push((
            HeaderName::from_static(remaining_name),
            headers::number(budget.saturating_sub(used)),
        ));
        out.settle.push(Settle {
            key,
            window: t.window,
            cost: t.cost,
            count: t.count,
            include_cached: t.include_cached,
            reserved: if admitted { estimate } else { 0 },
        });
        if admitted {
            Step::Pass
        } else if let Some(smaller) = t.downgrade_model {
            Step::Downgrade(smaller.clone())
        } else {
            Step::Reject(ProxyError::TokensExhausted {
                retry_after: left.as_secs_f64().ceil().max(1.0) as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_keys_name_the_policy_and_the_group() {
        let headers = Fields::from_pairs(&[("X-Team", "blue")]);
        let seen = Group {
            consumer: Uuid::from_u128(2),
            gateway: Uuid::from_u128(3),
            headers: &headers,
        };
        let policy = Uuid::from_u128(1);
        assert_eq!(
            counter_key("rl", policy, &GroupBy::Consumer, seen),
            format!("sluice:rl:{policy}:{}", seen.consumer)
        );
        assert_eq!(
            counter_key("tl", policy, &GroupBy::Gateway, seen),
            format!("sluice:tl:{policy}:{}", seen.gateway)
        );
        let team = GroupBy::Header(HeaderName::from_static("x-team"));
        assert_eq!(
            counter_key("rl", policy, &team, seen),
            format!("sluice:rl:{policy}:blue")
        );
        let none = GroupBy::Header(HeaderName::from_static("x-none"));
        assert_eq!(
            counter_key("rl", policy, &none, seen),
            format!("sluice:rl:{policy}:")
        );
    }
}
