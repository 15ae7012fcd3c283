//! The answer cache behind `semantic_cache` policies.
//!
//! A request is normalized into the canonical model (dialect, `stream` and `user`
//! removed), so the same question asked through the OpenAI or the Anthropic dialect,
//! streamed or not, finds one entry, and a cached answer is replayed in whatever
//! dialect and shape the client asked for.
//!
//! - Exact mode: the key is the SHA-256 of the normalized request and of what the
//!   canonical model does not carry ([`key`]); a request asking for an answer the
//!   canonical one cannot hold is not cached.
//! - Semantic mode: the last user turn is embedded through the policy's embeddings
//!   registry; an entry hits when everything else in the request is identical (its
//!   *partition*) and the cosine similarity is at least the threshold. Vectors live in
//!   an in-process [`hnsw::Hnsw`] index per policy and scope.
//!
//! Answers live in this process in the embedded default, and in Redis (with a TTL)
//! when the proxy has one; then each semantic cache's vectors are also a log in Redis
//! that every replica replays into its own index, so an answer cached by one replica
//! is a hit on all of them.

pub mod hnsw;
mod key;

pub use key::uncarried;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_shared::bus::RedisCache;
use sluice_shared::snapshot::policies::CacheRule;
use sluice_translate::canonical::{Request, Response};
use tracing::{debug, warn};
use uuid::Uuid;

use hnsw::{Hnsw, normalize};

/// Neighbours looked at per semantic lookup.
const NEIGHBOURS: usize = 8;

/// How a lookup went, for `X-Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Hit,
    Miss,
    /// The request asked to skip the cache, or is of a kind it does not serve.
    Bypass,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
        }
    }
}

/// A hit: the answer and, for a semantic hit, the similarity.
#[derive(Debug, Clone)]
pub struct Hit {
    pub answer: Arc<Response>,
    pub similarity: Option<f32>,
}

/// What to store once the answer is known.
#[derive(Debug, Clone)]
pub struct Ticket {
    namespace: String,
    key: String,
    partition: String,
    vector: Option<Vec<f32>>,
    ttl: Duration,
    max_entries: usize,
}

/// One vector of a semantic cache, as kept in the index and the Redis log.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "p")]
    partition: String,
    #[serde(rename = "k")]
    key: String,
    /// Expiry, Unix milliseconds.
    #[serde(rename = "e")]
    expires: u64,
    #[serde(rename = "v")]
    vector: Vec<f32>,
}

/// A semantic cache's index: the graph plus what each node stands for.
#[derive(Default)]
struct Index {
    graph: Hnsw,
    entries: Vec<Entry>,
    /// The newest Redis log entry replayed.
    synced: u64,
}

/// One namespace's answers in this process, oldest first for eviction.
#[derive(Default)]
struct Answers {
    by_key: HashMap<String, (u64, Arc<Response>)>,
    order: VecDeque<String>,
}

#[derive(Default)]
pub struct AnswerCache {
    answers: Mutex<HashMap<String, Answers>>,
    indexes: Mutex<HashMap<String, Index>>,
    redis: Option<RedisCache>,
    http: reqwest::Client,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn digest(v: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let hash = Sha256::digest(&bytes);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request as the cache sees it: no dialect, no stream flag, no end-user id.
fn normalized(req: &Request) -> Request {
    let mut r = req.clone();
    r.stream = false;
    r.user = None;
    r
}

/// The text a semantic cache compares: the last user turn, and where it is.
fn last_user_text(req: &Request) -> Option<(usize, String)> {
    req.last_user()
        .map(|(i, m)| (i, m.text()))
        .filter(|(_, t)| !t.trim().is_empty())
}

impl AnswerCache {
    pub fn new(redis: Option<RedisCache>) -> Self {
        Self {
            redis,
            ..Self::default()
        }
    }

    /// Look a request up. `Err` is a bypass; `Ok` a hit, or a miss with the ticket to
    /// store its answer under.
    pub async fn lookup(
        &self,
        rule: &CacheRule,
        policy: Uuid,
        scope: Uuid,
        req: &Request,
        uncarried: &BTreeMap<&str, &Value>,
    ) -> Result<Hit, Option<Ticket>> {
        if rule.skip_with_tools && !req.tools.is_empty() {
            return Err(None);
        }
        let namespace = format!(
            "sluice:sc:{policy}:{}",
            if rule.global { Uuid::nil() } else { scope }
        );
        let norm = normalized(req);
        let key = format!("{namespace}:{}", digest(&(&norm, uncarried)));
        if let Some(answer) = self.answer(&namespace, &key).await {
            return Ok(Hit {
                answer,
                similarity: rule.embedding.as_ref().map(|_| 1.0),
            });
        }
        let mut ticket = Ticket {
            namespace: namespace.clone(),
            key,
            partition: String::new(),
            vector: None,
            ttl: rule.ttl,
            max_entries: rule.max_entries,
        };
        if rule.exact {
            return Err(Some(ticket));
        }
        let (Some((target, model)), Some((at, text))) = (&rule.embedding, last_user_text(&norm))
        else {
            return Err(Some(ticket));
        };
        let mut rest = norm.clone();
        rest.messages.remove(at);
        ticket.partition = digest(&(&rest, uncarried));
        let Some(vector) = crate::balance::embed(&self.http, target, model, &[text.as_str()])
            .await
            .and_then(|mut v| v.pop())
        else {
            debug!("the cache's embeddings call failed; treating as a miss");
            return Err(Some(ticket));
        };
        let vector = normalize(&vector.iter().map(|x| *x as f32).collect::<Vec<_>>());
        self.sync(&namespace, rule.max_entries).await;
        let candidates: Vec<(String, f32)> = {
            let indexes = self.indexes.lock().map_err(|_| None::<Ticket>)?;
            let now = now_ms();
            indexes
                .get(&namespace)
                .map(|index| {
                    index
                        .graph
                        .search(&vector, NEIGHBOURS)
                        .into_iter()
                        .filter_map(|(id, sim)| {
                            let e = &index.entries[id];
                            (e.partition == ticket.partition
                                && e.expires > now
                                && f64::from(sim) >= rule.threshold)
                                .then(|| (e.key.clone(), sim))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for (key, sim) in candidates {
            if let Some(answer) = self.answer(&namespace, &key).await {
                return Ok(Hit {
                    answer,
                    similarity: Some(sim),
                });
            }
        }
        ticket.vector = Some(vector);
        Err(Some(ticket))
    }

    /// An answer by key, if cached and fresh.
    async fn answer(&self, namespace: &str, key: &str) -> Option<Arc<Response>> {
        if let Some(redis) = &self.redis {
            return match redis.get(key).await {
                Ok(Some(text)) => serde_json::from_str(&text).ok().map(Arc::new),
                Ok(None) => None,
                Err(error) => {
                    warn!(%error, "answer cache unavailable; treating as a miss");
                    None
                }
            };
        }
        let answers = self.answers.lock().ok()?;
        let (expires, answer) = answers.get(namespace)?.by_key.get(key)?;
        (*expires > now_ms()).then(|| answer.clone())
    }

    /// Store a complete answer under its ticket.
    pub async fn store(&self, ticket: Ticket, answer: Response) {
        let expires = now_ms() + u64::try_from(ticket.ttl.as_millis()).unwrap_or(u64::MAX);
        let entry = ticket.vector.map(|vector| Entry {
            partition: ticket.partition,
            key: ticket.key.clone(),
            expires,
            vector,
        });
        if let Some(redis) = &self.redis {
            let Ok(text) = serde_json::to_string(&answer) else {
                return;
            };
            if let Err(error) = redis.set(&ticket.key, &text, ticket.ttl).await {
                warn!(%error, "answer could not be cached");
                return;
            }
            if let Some(entry) = entry
                && let Ok(line) = serde_json::to_string(&entry)
                && let Err(error) = redis
                    .append(&ticket.namespace, &line, ticket.max_entries)
                    .await
            {
                warn!(%error, "cache vector could not be shared");
            }
            return;
        }
        if let Ok(mut answers) = self.answers.lock() {
            let ns = answers.entry(ticket.namespace.clone()).or_default();
            if ns
                .by_key
                .insert(ticket.key.clone(), (expires, Arc::new(answer)))
                .is_none()
            {
                ns.order.push_back(ticket.key);
            }
            while ns.order.len() > ticket.max_entries {
                if let Some(old) = ns.order.pop_front() {
                    ns.by_key.remove(&old);
                }
            }
        }
        if let Some(entry) = entry {
            self.index(&ticket.namespace, vec![entry], ticket.max_entries);
        }
    }

    /// Replay a namespace's Redis log into the local index.
    async fn sync(&self, namespace: &str, keep: usize) {
        let Some(redis) = &self.redis else { return };
        let after = self
            .indexes
            .lock()
            .ok()
            .and_then(|i| i.get(namespace).map(|x| x.synced))
            .unwrap_or(0);
        match redis.read(namespace, after, keep).await {
            Ok((head, lines)) => {
                let entries: Vec<Entry> = lines
                    .iter()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                self.index(namespace, entries, keep);
                if let Ok(mut indexes) = self.indexes.lock() {
                    indexes.entry(namespace.to_string()).or_default().synced = head;
                }
            }
            Err(error) => warn!(%error, "cache vectors could not be read"),
        }
    }

    /// Add entries to a namespace's index, rebuilding it from the live newest entries
    /// once it holds twice its bound.
    fn index(&self, namespace: &str, entries: Vec<Entry>, keep: usize) {
        let Ok(mut indexes) = self.indexes.lock() else {
            return;
        };
        let index = indexes.entry(namespace.to_string()).or_default();
        for e in entries {
            index.graph.insert(e.vector.clone());
            index.entries.push(e);
        }
        if index.entries.len() > keep.saturating_mul(2) {
            let now = now_ms();
            let live: Vec<Entry> = index
                .entries
                .drain(..)
                .filter(|e| e.expires > now)
                .collect();
            let skip = live.len().saturating_sub(keep);
            index.graph = Hnsw::default();
            for e in live.into_iter().skip(skip) {
                index.graph.insert(e.vector.clone());
                index.entries.push(e);
            }
        }
    }
}
