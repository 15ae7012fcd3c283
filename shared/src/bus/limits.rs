//! Rate-limit counters in Redis, shared by every proxy replica: one script call per
//! decision, so the check and the count are one atomic step and replicas never admit
//! more than the limit between them. Time comes from Redis (`TIME`), not from the
//! replicas' clocks.

use std::time::Duration;

use fred::prelude::*;

use super::BusError;

/// A limiter's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u64,
    /// How long until a request would be admitted (0 when allowed).
    pub retry_after: Duration,
    /// How long until the window has fully recovered.
    pub reset: Duration,
}

/// Sliding window log: at most `limit` admissions in any `window`.
const SLIDING: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, limit - count - 1, 0, tonumber(oldest[2]) + window - now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = tonumber(oldest[2]) + window - now
return {0, 0, wait, wait}
"#;

/// Limits above this are counted in slices rather than logged one admission each, so a
/// key's memory stays bounded whatever the limit (see `SLICED`).
pub const EXACT_LOG_MAX: u64 = 4096;

/// Sliding window in 64 slices: the admissions of the slices still in the window are
/// summed. A window may admit up to one slice's worth above the limit.
const SLICED: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local slice = math.max(1, math.floor(window / 64))
local n = math.floor(now / slice)
local fields = redis.call('HGETALL', KEYS[1])
local count = 0
local oldest = n
for i = 1, #fields, 2 do
  local idx = tonumber(fields[i])
  if idx + 64 <= n then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    count = count + tonumber(fields[i + 1])
    if idx < oldest then oldest = idx end
  end
end
local wait = (oldest + 64 - n) * slice
if count < limit then
  redis.call('HINCRBY', KEYS[1], n, 1)
  redis.call('PEXPIRE', KEYS[1], window + slice)
  return {1, limit - count - 1, 0, wait}
end
return {0, 0, wait, wait}
"#;

/// GCRA: a burst of `limit`, then one admission per `window / limit`.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat + interval - window
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(window))
local remaining = math.floor((window - (new_tat - now)) / interval)
return {1, remaining, 0, math.ceil(new_tat - now)}
"#;

/// Token budgets: admit and reserve a request's estimate in one step.
const RESERVE: &str = r#"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local est = tonumber(ARGV[1])
local budget = tonumber(ARGV[2])
local ok = 0
if used < budget and used + est <= budget then
  ok = 1
  if est > 0 then
    redis.call('INCRBY', KEYS[1], est)
    if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
  end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = 0 end
return {ok, used, ttl}
"#;

#[derive(Clone)]
pub struct RedisLimits {
    client: Client,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits").finish_non_exhaustive()
    }
}

impl RedisLimits {
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let config = Config::from_url(url)?;
        let timeout = Duration::from_millis(500);
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = timeout;
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
        let client = builder.build()?;
        client.init().await?;
        Ok(Self { client })
    }

    /// The answer cache on the same connection.
    pub fn cache(&self) -> super::RedisCache {
        super::RedisCache {
            client: self.client.clone(),
        }
    }

    /// Admit a request of `estimate` against `budget` and reserve it, atomically:
    /// whether it was admitted, what was used before, and the milliseconds left of
    /// the window. Replicas reserving at once can never admit past the budget.
    pub async fn reserve(
        &self,
        key: &str,
        estimate: u64,
        budget: u64,
        window: Duration,
    ) -> Result<(bool, u64, u64), BusError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let out: Vec<i64> = self
            .client
            .eval(
                RESERVE,
                vec![key.to_string()],
                vec![
                    estimate.to_string(),
                    budget.to_string(),
                    window_ms.to_string(),
                ],
            )
            .await?;
        let at = |i: usize| u64::try_from(out.get(i).copied().unwrap_or(0)).unwrap_or(0);
        Ok((at(0) == 1, at(1), at(2)))
    }

    /// Add `amount` (negative to give back part of a reservation) to `key`, whose
    /// window starts with its first addition.
    pub async fn add(&self, key: &str, amount: i64, window: Duration) -> Result<(), BusError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let _: i64 = self
            .client
            .eval(
                "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return v",
                vec![key.to_string()],
                vec![amount.to_string(), window_ms.to_string()],
            )
            .await?;
        Ok(())
    }

    /// Count one request against `key`.
    pub async fn check(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        gcra: bool,
        member: &str,
    ) -> Result<Decision, BusError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        // Each algorithm keeps its own key: a limit changed across the threshold must
        // not find the other's data type.
        let (script, key) = if gcra {
            (GCRA, key.to_string())
        } else if limit > EXACT_LOG_MAX {
            (SLICED, format!("{key}:sliced"))
        } else {
            (SLIDING, key.to_string())
        };
        let out: Vec<i64> = self
            .client
            .eval(
                script,
                vec![key],
                vec![window_ms.to_string(), limit.to_string(), member.to_string()],
            )
            .await?;
        let at = |i: usize| u64::try_from(out.get(i).copied().unwrap_or(0)).unwrap_or(0);
        Ok(Decision {
            allowed: at(0) == 1,
            remaining: at(1),
            retry_after: Duration::from_millis(at(2)),
            reset: Duration::from_millis(at(3)),
        })
    }
}

/// Count one request against `key`: in Redis when there is one, so the limit holds
/// across replicas, otherwise in this process.
pub async fn count_request(
    redis: Option<&RedisLimits>,
    local: &super::LocalLimits,
    key: &str,
    limit: u64,
    window: Duration,
    gcra: bool,
) -> Result<Decision, BusError> {
    match redis {
        Some(redis) => {
            let member = uuid::Uuid::now_v7().to_string();
            // Boxed: the Redis client's future is over 5 KiB, and every caller's future
            // would otherwise carry (and copy) that room on the local path too.
            Box::pin(redis.check(key, limit, window, gcra, &member)).await
        }
        None => Ok(local.check(key, limit, window, gcra)),
    }
}
