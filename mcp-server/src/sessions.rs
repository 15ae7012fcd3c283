//! Agent sessions shared by every MCP replica. The SDK transport keeps a session's
//! live state in the process that opened it; what it needs to take the session over
//! elsewhere (the client's `initialize` parameters) goes to Redis here, so a request
//! that a load balancer sends to another replica resumes the session there instead
//! of failing with 404. Sessions idle for [`IDLE`] are forgotten.

use std::time::Duration;

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use sluice_shared::bus::RedisCache;

/// How long a session survives without a request.
pub const IDLE: Duration = Duration::from_secs(24 * 3600);

/// The Redis-backed session store.
pub struct RedisSessions {
    redis: RedisCache,
}

impl RedisSessions {
    pub fn new(redis: RedisCache) -> Self {
        Self { redis }
    }

    fn key(session_id: &str) -> String {
        format!("sluice:mcp:session:{session_id}")
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(text) = self.redis.get(&Self::key(session_id)).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_str(&text)?))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let text = serde_json::to_string(state)?;
        self.redis.set(&Self::key(session_id), &text, IDLE).await?;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.redis.delete(&Self::key(session_id)).await?;
        Ok(())
    }
}
