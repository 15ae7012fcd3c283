//! The policy engine's request stage: each consumer's chain, by priority, before the
//! request goes upstream. `enforce` applies a policy's verdict, `observe` only records
//! what would have happened, `throttle` waits (up to a bound) instead of rejecting.
//! Every policy's outcome goes into the request's telemetry event.

mod local;

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use sluice_shared::bus::{Decision, RedisLimits};
use sluice_shared::model::PolicyMode;
use sluice_shared::snapshot::CompiledConsumer;
use sluice_shared::snapshot::policies::{CompiledPolicy, GroupBy, LimitAlgorithm, PolicyRule};
use sluice_telemetry::PolicyOutcome;
use sluice_telemetry::metrics::METRICS;
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
}

/// What a request shows the policies.
pub struct Seen<'a> {
    pub gateway_id: Uuid,
    pub consumer: &'a CompiledConsumer,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub model: Option<&'a str>,
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

    /// Run the chain; `Err` is the rejection the client gets, `verdict` what the
    /// request carries on either way.
    pub async fn pre_request(
        &self,
        seen: &Seen<'_>,
        verdict: &mut Verdict,
    ) -> Result<(), ProxyError> {
        for p in &seen.consumer.policies {
            let rejection = match &p.rule {
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
                PolicyRule::RateLimit {
                    limit,
                    window,
                    algorithm,
                    group_by,
                    fail_open,
                } => {
                    let group = match group_by {
                        GroupBy::Consumer => seen.consumer.id.to_string(),
                        GroupBy::Gateway => seen.gateway_id.to_string(),
                        GroupBy::Header(h) => seen
                            .headers
                            .get(h)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string(),
                    };
                    let key = format!("sluice:rl:{}:{group}", p.id);
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
                    if let ProxyError::RateLimited { retry_after } = &e {
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
