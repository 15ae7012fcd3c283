//! The consumer's policies, applied to MCP traffic:
//!
//! - `tool_allowlist` hides denied tools from `tools/list` and refuses calls to them
//!   (`policy_blocked`); a pattern matches the name the agent sees or the upstream's.
//! - `rate_limiter` counts every MCP call (tool calls, prompt gets, resource reads) of
//!   its group; with `tools`, it counts only calls of matching tools, each tool in a
//!   window of its own. Counted in Redis when there is one, so limits hold across
//!   replicas; `throttle` mode waits for a turn instead of refusing.
//!
//! In `observe` mode a policy only records what it would have done.

use std::time::Duration;

use rmcp::model::ErrorData;
use sluice_shared::bus::{Decision, LocalLimits, RedisLimits, count_request};
use sluice_shared::model::PolicyMode;
use sluice_shared::snapshot::policies::{CompiledPolicy, GroupBy, LimitAlgorithm, PolicyRule};
use sluice_telemetry::PolicyOutcome;
use sluice_telemetry::metrics::METRICS;

use crate::access::Caller;
use crate::errors;

/// The longest a throttled call waits for its turn.
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// Where rate limits are counted.
pub struct Limits {
    pub redis: Option<RedisLimits>,
    pub local: LocalLimits,
}

fn matches_any(patterns: &[String], names: &[&str]) -> bool {
    patterns.iter().any(|p| {
        names
            .iter()
            .any(|n| sluice_shared::snapshot::policies::wildcard(p, n))
    })
}

/// Whether the consumer's allowlists let it see and call a tool, checked against the
/// name the agent sees and the upstream's name. `None` when allowed; otherwise the
/// blocking policy, and whether it only observes.
pub fn tool_blocked<'c>(caller: &'c Caller, names: &[&str]) -> Option<&'c CompiledPolicy> {
    caller.consumer.policies.iter().find_map(|p| match &p.rule {
        PolicyRule::ToolAllowlist { allow, deny }
            if matches_any(deny, names) || (!allow.is_empty() && !matches_any(allow, names)) =>
        {
            Some(p.as_ref())
        }
        _ => None,
    })
}

fn outcome(p: &CompiledPolicy, what: &str) -> PolicyOutcome {
    let prefix = if p.mode == PolicyMode::Observe {
        "would_"
    } else {
        ""
    };
    PolicyOutcome {
        policy_id: p.id,
        kind: p.kind.clone(),
        outcome: format!("{prefix}{what}").into(),
    }
}

impl Limits {
    async fn count(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        gcra: bool,
    ) -> Result<Decision, String> {
        count_request(self.redis.as_ref(), &self.local, key, limit, window, gcra)
            .await
            .map_err(|e| e.to_string())
    }

    /// Admit one MCP call (`tool` for tool calls) or refuse it; every policy that
    /// acted is recorded in `outcomes`.
    pub async fn admit(
        &self,
        caller: &Caller,
        tool: Option<&[&str]>,
        outcomes: &mut Vec<PolicyOutcome>,
    ) -> Result<(), ErrorData> {
        if let Some(names) = tool
            && let Some(p) = tool_blocked(caller, names)
        {
            outcomes.push(outcome(p, "reject"));
            if p.mode != PolicyMode::Observe {
                METRICS.policy_rejections.inc();
                return Err(errors::policy_blocked(format!(
                    "the tool {} is not allowed for this consumer",
                    names[0]
                )));
            }
        }
        for p in &caller.consumer.policies {
            let PolicyRule::RateLimit {
                limit,
                window,
                algorithm,
                group_by,
                fail_open,
                tools,
            } = &p.rule
            else {
                continue;
            };
            let scope = if tools.is_empty() {
                String::new()
            } else {
                match tool {
                    Some(names) if matches_any(tools, names) => format!(":tool:{}", names[0]),
                    _ => continue,
                }
            };
            let group = match group_by {
                GroupBy::Gateway => caller.gateway.id.to_string(),
                // A header group has no header on the MCP plane's calls: the consumer's.
                GroupBy::Consumer | GroupBy::Header(_) => caller.consumer.id.to_string(),
            };
            let key = format!("sluice:rl:{}:{group}{scope}", p.id);
            let gcra = *algorithm == LimitAlgorithm::Gcra;
            let mut decision = self.count(&key, *limit, *window, gcra).await;
            if p.mode == PolicyMode::Throttle
                && let Ok(d) = &decision
                && !d.allowed
                && d.retry_after <= MAX_THROTTLE
            {
                tokio::time::sleep(d.retry_after).await;
                decision = self.count(&key, *limit, *window, gcra).await;
                outcomes.push(outcome(p, "throttled"));
            }
            match decision {
                Err(error) => {
                    tracing::warn!(policy = %p.id, %error, fail_open, "rate limiter unavailable");
                    METRICS.policy_errors.inc();
                    outcomes.push(outcome(p, "limiter_unavailable"));
                    if !fail_open {
                        return Err(errors::rate_limited(1));
                    }
                }
                Ok(d) if !d.allowed => {
                    outcomes.push(outcome(p, "reject"));
                    if p.mode != PolicyMode::Observe {
                        METRICS.rate_limited.inc();
                        return Err(errors::rate_limited(d.retry_after.as_secs().max(1)));
                    }
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }
}
