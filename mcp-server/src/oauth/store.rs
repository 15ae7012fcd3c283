//! Where the authorization server keeps clients, codes and tokens: Redis when the
//! plane has one, so every replica honours what another issued, otherwise this
//! process. Codes and tokens are stored under the SHA-256 of their value, so a read of
//! the store does not yield a usable credential.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sluice_shared::bus::RedisCache;

/// A fresh secret: 32 random bytes, base64url.
pub fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url(SHA-256(text)): the PKCE S256 transform, and how secrets are keyed.
pub fn s256(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}

pub enum Store {
    Redis(RedisCache),
    Memory(Mutex<HashMap<String, (Instant, String)>>),
}

const PREFIX: &str = "sluice:oauth:";

impl Store {
    pub fn new(redis: Option<RedisCache>) -> Self {
        match redis {
            Some(r) => Self::Redis(r),
            None => Self::Memory(Mutex::default()),
        }
    }

    pub async fn put<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), String> {
        let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
        let key = format!("{PREFIX}{key}");
        match self {
            Self::Redis(r) => r.set(&key, &text, ttl).await.map_err(|e| e.to_string()),
            Self::Memory(m) => {
                let mut map = m.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if map.len() > 100_000 {
                    map.retain(|_, (deadline, _)| *deadline > now);
                }
                map.insert(key, (now + ttl, text));
                Ok(())
            }
        }
    }

    async fn read<T: DeserializeOwned>(&self, key: &str, take: bool) -> Result<Option<T>, String> {
        let key = format!("{PREFIX}{key}");
        let text = match self {
            Self::Redis(r) if take => r.take(&key).await.map_err(|e| e.to_string())?,
            Self::Redis(r) => r.get(&key).await.map_err(|e| e.to_string())?,
            Self::Memory(m) => {
                let mut map = m.lock().unwrap_or_else(|p| p.into_inner());
                let found = if take {
                    map.remove(&key)
                } else {
                    map.get(&key).cloned()
                };
                found
                    .filter(|(deadline, _)| *deadline > Instant::now())
                    .map(|(_, text)| text)
            }
        };
        text.map(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .transpose()
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        self.read(key, false).await
    }

    /// Read and delete at once: what is taken (a code, a refresh token) is used once.
    pub async fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        self.read(key, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn taken_values_are_gone_and_expired_ones_never_read() {
        let store = Store::new(None);
        store
            .put("a", &1u32, Duration::from_secs(60))
            .await
            .expect("put");
        assert_eq!(store.get::<u32>("a").await.expect("get"), Some(1));
        assert_eq!(store.take::<u32>("a").await.expect("take"), Some(1));
        assert_eq!(store.take::<u32>("a").await.expect("take"), None);
        store.put("b", &2u32, Duration::ZERO).await.expect("put");
        assert_eq!(store.get::<u32>("b").await.expect("get"), None);
    }

    #[test]
    fn s256_is_unpadded_base64url_of_sha256() {
        // SHA-256("abc") is ba7816bf…15ad, whose base64url has both '-' and '_'.
        assert_eq!(s256("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }
}
