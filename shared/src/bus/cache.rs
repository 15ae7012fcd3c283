//! The answer cache's shared half in Redis: answers under their key with a TTL, and
//! each semantic cache's vectors as a numbered log that every replica replays into its
//! own in-process index. One script call per operation.

use std::time::Duration;

use fred::prelude::*;

use super::BusError;

/// Append an entry to a log: number it, keep the newest `ARGV[2]`.
const APPEND: &str = r#"
local n = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], n, ARGV[1])
local max = tonumber(ARGV[2])
if n > max then redis.call('HDEL', KEYS[2], n - max) end
return n
"#;

/// The entries after `ARGV[1]` (at most `ARGV[2]` of them), after the log's head.
const READ: &str = r#"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local from = tonumber(ARGV[1]) + 1
local max = tonumber(ARGV[2])
if from < n - max + 1 then from = n - max + 1 end
local out = {tostring(n)}
for i = from, n do
  local e = redis.call('HGET', KEYS[2], i)
  if e then table.insert(out, e) end
end
return out
"#;

/// The Redis side of the answer cache; shares the limiter's connection.
#[derive(Clone)]
pub struct RedisCache {
    pub(super) client: Client,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").finish_non_exhaustive()
    }
}

impl RedisCache {
    pub async fn get(&self, key: &str) -> Result<Option<String>, BusError> {
        Ok(self.client.get(key).await?)
    }

    pub async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), BusError> {
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let _: () = self
            .client
            .set(key, value, Some(Expiration::PX(ms)), None, false)
            .await?;
        Ok(())
    }

    /// Read and delete in one step: a value taken once is gone for everyone.
    pub async fn take(&self, key: &str) -> Result<Option<String>, BusError> {
        Ok(self.client.getdel(key).await?)
    }

    pub async fn delete(&self, key: &str) -> Result<(), BusError> {
        let _: i64 = self.client.del(key).await?;
        Ok(())
    }

    /// Append to the log under `log`, keeping its newest `keep` entries.
    pub async fn append(&self, log: &str, entry: &str, keep: usize) -> Result<u64, BusError> {
        Ok(self
            .client
            .eval(
                APPEND,
                vec![format!("{log}:seq"), format!("{log}:entries")],
                vec![entry.to_string(), keep.to_string()],
            )
            .await?)
    }

    /// The log's entries after number `after` (at most the newest `keep`), and the
    /// number of its newest entry.
    pub async fn read(
        &self,
        log: &str,
        after: u64,
        keep: usize,
    ) -> Result<(u64, Vec<String>), BusError> {
        let mut out: Vec<String> = self
            .client
            .eval(
                READ,
                vec![format!("{log}:seq"), format!("{log}:entries")],
                vec![after.to_string(), keep.to_string()],
            )
            .await?;
        if out.is_empty() {
            return Ok((after, Vec::new()));
        }
        let head = out.remove(0).parse().unwrap_or(after);
        Ok((head, out))
    }
}
