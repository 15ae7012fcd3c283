//! The policy engine's request stage: each consumer's chain, by priority, before the
//! request goes upstream. `enforce` applies a policy's verdict, `observe` only records
//! what would have happened, `throttle` waits (up to a bound) instead of rejecting.
//! Every policy's outcome goes into the request's telemetry event.

mod local;

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use sluice_shared::bus::{Decision, RedisLimits};
use sluice_shared::catalog;
use sluice_shared::model::PolicyMode;
use sluice_shared::snapshot::CompiledConsumer;
use sluice_shared::snapshot::policies::{
    CompiledPolicy, GroupBy, LimitAlgorithm, PolicyRule, TokenCount, wildcard,
};
use sluice_telemetry::PolicyOutcome;
use sluice_telemetry::metrics::METRICS;
use sluice_translate::canonical::Usage;
use tracing::warn;
use uuid::Uuid;

use crate::error::ProxyError;
use local::LocalLimits;

/// The longest a throttled request waits for its turn.
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// Where rate-limit counters live: this process, or Redis for every replica.
pub struct Policies {
    local: LocalLimits,
    redis: Option<RedisLimits>,
}

/// What the chain decided and what the answer must carry.
#[derive(Default)]
pub struct Verdict {
    pub outcomes: Vec<PolicyOutcome>,
    /// Headers for the client's answer (`X-RateLimit-*`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The model to use instead of the requested one (a token limit's downgrade).
    pub model_override: Option<String>,
    /// Token budgets to charge once the answer's usage is known.
    pub settle: Vec<Settle>,
}

/// A token budget to charge after the answer.
#[derive(Debug, Clone)]
pub struct Settle {
    key: String,
    window: Duration,
    cost: bool,
    count: TokenCount,
    include_cached: bool,
}

/// What a request shows the policies.
pub struct Seen<'a> {
    pub gateway_id: Uuid,
    pub consumer: &'a CompiledConsumer,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub model: Option<&'a str>,
    /// The client's dialect, to read tools from the body.
    pub dialect: sluice_translate::Dialect,
}

/// The group a request counts in.
fn group_of(group_by: &GroupBy, seen: &Seen<'_>) -> String {
    match group_by {
        GroupBy::Consumer => seen.consumer.id.to_string(),
        GroupBy::Gateway => seen.gateway_id.to_string(),
        GroupBy::Header(h) => seen
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    }
}

fn outcome(p: &CompiledPolicy, what: &str) -> PolicyOutcome {
    PolicyOutcome {
        policy_id: p.id,
        kind: p.kind.clone(),
        outcome: what.to_string(),
    }
}

fn header(name: &'static str, value: u64) -> (HeaderName, HeaderValue) {
    (HeaderName::from_static(name), HeaderValue::from(value))
}

impl Policies {
    pub fn new(redis: Option<RedisLimits>) -> Self {
        Self {
            local: LocalLimits::default(),
            redis,
        }
    }

    async fn count(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        gcra: bool,
    ) -> Result<Decision, String> {
        match &self.redis {
            Some(redis) => redis
                .check(key, limit, window, gcra, &Uuid::now_v7().to_string())
                .await
                .map_err(|e| e.to_string()),
            None => Ok(self.local.check(key, limit, window, gcra)),
        }
    }

    /// Charge the token budgets the request passed, from the provider's usage.
    pub async fn settle(
        &self,
        settle: &[Settle],
        usage: Option<Usage>,
        provider: Option<&str>,
        model: Option<&str>,
    ) {
        let Some(u) = usage else { return };
        for s in settle {
            let input = if s.include_cached {
                u.input_tokens
            } else {
                u.input_tokens.saturating_sub(u.cached_input_tokens)
            };
            let amount = if s.cost {
                match (provider, model) {
                    (Some(p), Some(m)) => catalog::find_model(p, m).map_or(0, |price| {
                        (price.cost(u.input_tokens, u.cached_input_tokens, u.output_tokens)
                            * 1_000_000.0)
                            .round() as u64
                    }),
                    _ => 0,
                }
            } else {
                match s.count {
                    TokenCount::Input => input,
                    TokenCount::Output => u.output_tokens,
                    TokenCount::Total => input + u.output_tokens,
                }
            };
            if amount == 0 {
                continue;
            }
            match &self.redis {
                Some(redis) => {
                    if let Err(error) = redis.add(&s.key, amount, s.window).await {
                        warn!(%error, key = %s.key, "token usage could not be charged");
                    }
                }
                None => self.local.add(&s.key, amount, s.window),
            }
        }
    }

    async fn used(&self, key: &str) -> Result<(u64, Duration), String> {
        match &self.redis {
            Some(redis) => redis
                .used(key)
                .await
                .map(|(used, ms)| (used, Duration::from_millis(ms)))
                .map_err(|e| e.to_string()),
            None => Ok(self.local.used(key)),
        }
    }

    /// Run the chain; `Err` is the rejection the client gets, `verdict` what the
    /// request carries on either way.
    pub async fn pre_request(
        &self,
        seen: &Seen<'_>,
        verdict: &mut Verdict,
    ) -> Result<(), ProxyError> {
        for p in &seen.consumer.policies {
            let rejection = match &p.rule {
                PolicyRule::ToolAllowlist { allow, deny } => {
                    let tools = sluice_translate::parse_request(seen.dialect, seen.body)
                        .map(|r| r.tools.into_iter().map(|t| t.name).collect::<Vec<_>>())
                        .unwrap_or_default();
                    tools
                        .iter()
                        .find(|t| {
                            deny.iter().any(|d| wildcard(d, t))
                                || (!allow.is_empty() && !allow.iter().any(|a| wildcard(a, t)))
                        })
                        .map(|t| ProxyError::ToolNotAllowed(t.clone()))
                }
                // Applied per gateway, before authentication (see `cors`).
                PolicyRule::Cors(_) => None,
                PolicyRule::NotEnforced => {
                    verdict.outcomes.push(outcome(p, "not_enforced"));
                    continue;
                }
                PolicyRule::RequestSize {
                    max_bytes,
                    max_chars,
                    require_content_length,
                } => {
                    if *require_content_length
                        && !seen.headers.contains_key(http::header::CONTENT_LENGTH)
                    {
                        Some(ProxyError::LengthRequired)
                    } else if max_bytes.is_some_and(|m| seen.body.len() > m) {
                        Some(ProxyError::PolicyTooLarge(format!(
                            "{} bytes",
                            max_bytes.unwrap_or(0)
                        )))
                    } else if max_chars
                        .is_some_and(|m| String::from_utf8_lossy(seen.body).chars().count() > m)
                    {
                        Some(ProxyError::PolicyTooLarge(format!(
                            "{} characters",
                            max_chars.unwrap_or(0)
                        )))
                    } else {
                        None
                    }
                }
                PolicyRule::ModelAllowlist { allowed } => {
                    let model = seen.model.unwrap_or("");
                    (!allowed.iter().any(|m| m == model))
                        .then(|| ProxyError::ModelNotAllowed(model.to_string()))
                }
                PolicyRule::TokenLimit {
                    window,
                    budget,
                    cost,
                    count,
                    include_cached,
                    rules,
                    downgrade_model,
                    group_by,
                    fail_open,
                } => {
                    let model = seen.model.unwrap_or("");
                    let (scope, budget) = rules
                        .iter()
                        .find(|(m, _)| m == model)
                        .map_or(("*", *budget), |(m, b)| (m.as_str(), *b));
                    let key = format!("sluice:tl:{}:{}:{scope}", p.id, group_of(group_by, seen));
                    match self.used(&key).await {
                        Err(error) => {
                            warn!(policy = %p.id, %error, fail_open, "token limiter unavailable");
                            verdict.outcomes.push(outcome(p, "limiter_unavailable"));
                            if *fail_open {
                                continue;
                            }
                            Some(ProxyError::LimiterUnavailable)
                        }
                        Ok((used, left)) => {
                            // The prompt's own size, roughly four bytes a token, counts
                            // before the provider says what it really was.
                            let estimate = if *cost || *count == TokenCount::Output {
                                0
                            } else {
                                seen.body.len() as u64 / 4
                            };
                            verdict.headers.push((
                                HeaderName::from_static(if *cost {
                                    "x-ratelimit-limit-cost"
                                } else {
                                    "x-ratelimit-limit-tokens"
                                }),
                                HeaderValue::from(budget),
                            ));
                            verdict.headers.push((
                                HeaderName::from_static(if *cost {
                                    "x-ratelimit-remaining-cost"
                                } else {
                                    "x-ratelimit-remaining-tokens"
                                }),
                                HeaderValue::from(budget.saturating_sub(used)),
                            ));
                            verdict.settle.push(Settle {
                                key: key.clone(),
                                window: *window,
                                cost: *cost,
                                count: *count,
                                include_cached: *include_cached,
                            });
                            if used.saturating_add(estimate) < budget
                                || (used < budget && estimate == 0)
                            {
                                None
                            } else if let Some(smaller) = downgrade_model
                                .as_ref()
                                .filter(|_| p.mode == PolicyMode::Enforce)
                            {
                                verdict.model_override = Some(smaller.clone());
                                verdict.outcomes.push(outcome(p, "downgraded"));
                                continue;
                            } else {
                                Some(ProxyError::TokensExhausted {
                                    retry_after: left.as_secs_f64().ceil().max(1.0) as u64,
                                })
                            }
                        }
                    }
                }
                PolicyRule::RateLimit {
                    limit,
                    window,
                    algorithm,
                    group_by,
                    fail_open,
                } => {
                    let key = format!("sluice:rl:{}:{}", p.id, group_of(group_by, seen));
                    let gcra = *algorithm == LimitAlgorithm::Gcra;
                    let mut decision = self.count(&key, *limit, *window, gcra).await;
                    if p.mode == PolicyMode::Throttle
                        && let Ok(d) = &decision
                        && !d.allowed
                        && d.retry_after <= MAX_THROTTLE
                    {
                        tokio::time::sleep(d.retry_after).await;
                        decision = self.count(&key, *limit, *window, gcra).await;
                        verdict.outcomes.push(outcome(p, "throttled"));
                    }
                    match decision {
                        Err(error) => {
                            warn!(policy = %p.id, %error, fail_open, "rate limiter unavailable");
                            verdict.outcomes.push(outcome(p, "limiter_unavailable"));
                            if *fail_open {
                                continue;
                            }
                            Some(ProxyError::LimiterUnavailable)
                        }
                        Ok(d) => {
                            let reset = d.reset.as_secs_f64().ceil() as u64;
                            verdict
                                .headers
                                .retain(|(n, _)| !n.as_str().starts_with("x-ratelimit-"));
                            verdict.headers.push(header("x-ratelimit-limit", *limit));
                            verdict
                                .headers
                                .push(header("x-ratelimit-remaining", d.remaining));
                            verdict.headers.push(header("x-ratelimit-reset", reset));
                            (!d.allowed).then(|| ProxyError::RateLimited {
                                retry_after: d.retry_after.as_secs_f64().ceil().max(1.0) as u64,
                            })
                        }
                    }
                }
            };
            match rejection {
                None => verdict.outcomes.push(outcome(p, "continue")),
                Some(_) if p.mode == PolicyMode::Observe => {
                    verdict.outcomes.push(outcome(p, "would_reject"));
                }
                Some(e) => {
                    verdict.outcomes.push(outcome(p, "reject"));
                    if let ProxyError::RateLimited { retry_after }
                    | ProxyError::TokensExhausted { retry_after } = &e
                    {
                        METRICS.rate_limited.inc();
                        verdict.headers.push(header("retry-after", *retry_after));
                    } else {
                        METRICS.policy_rejections.inc();
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
