//! The policy engine's request stage: each consumer's chain, by priority, before the
//! request goes upstream. `enforce` applies a policy's verdict, `observe` only records
//! what would have happened, `throttle` waits (up to a bound) instead of rejecting.
//! Every policy's outcome goes into the request's telemetry event.
//!
//! Adjacent policies marked `parallel` run concurrently (their checks are independent
//! round trips: Redis counters, a moderation call); a policy that rewrites the body
//! is never part of such a group, so two rewrites never race. Outcomes are applied
//! in priority order whichever finished first.

mod limits;
mod moderation;
pub mod respond;
mod transform;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use sluice_shared::bus::{Decision, LocalLimits, RedisLimits};
use sluice_shared::catalog;
use sluice_shared::model::PolicyMode;
use sluice_shared::snapshot::CompiledConsumer;
use sluice_shared::snapshot::policies::{CompiledPolicy, PolicyRule, TokenCount, wildcard};
use sluice_telemetry::PolicyOutcome;
use sluice_telemetry::metrics::METRICS;
use sluice_translate::Dialect;
use sluice_translate::canonical::Usage;
use tokio::task::JoinHandle;
use tracing::warn;
use uuid::Uuid;

use crate::cache::{AnswerCache, Hit};
use crate::error::ProxyError;
use crate::headers;
use crate::route::Api;
use crate::session::Fields;
use limits::{RateLimit, TokenLimit};
pub use respond::ResponseStage;

/// Where rate-limit counters live (this process, or Redis for every replica), the
/// answer cache, and the client for policies that call out.
pub struct Policies {
    local: LocalLimits,
    redis: Option<RedisLimits>,
    pub cache: AnswerCache,
    http: reqwest::Client,
}

/// An outcome still being decided (an observe-mode call running beside the request).
#[derive(Debug)]
pub struct Pending {
    pub policy_id: Uuid,
    pub kind: sluice_telemetry::Label,
    pub outcome: JoinHandle<String>,
}

/// What the chain decided and what the answer must carry.
#[derive(Default)]
pub struct Verdict {
    pub outcomes: Vec<PolicyOutcome>,
    /// Headers for the client's answer (`X-RateLimit-*`, `X-Cache-Status`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The model to use instead of the requested one (a token limit's downgrade).
    pub model_override: Option<String>,
    /// Token budgets to charge once the answer's usage is known.
    pub settle: Vec<Settle>,
    /// The request body, when a policy rewrote it.
    pub body: Option<Bytes>,
    /// What the answer goes through.
    pub respond: ResponseStage,
    /// A cached answer to give instead of calling upstream.
    pub cached: Option<Hit>,
    pub pending: Vec<Pending>,
}

/// A token budget to charge after the answer.
#[derive(Debug, Clone)]
pub struct Settle {
    key: String,
    window: Duration,
    cost: bool,
    count: TokenCount,
    include_cached: bool,
    /// What admission reserved, to be trued up.
    reserved: u64,
}

/// What a request shows the policies.
pub struct Seen<'a> {
    pub gateway_id: Uuid,
    pub gateway_slug: &'a str,
    pub consumer: &'a CompiledConsumer,
    pub headers: &'a Fields,
    /// The body as the chain has made it so far.
    pub body: Bytes,
    pub model: Option<&'a str>,
    /// The client's dialect, to read and rewrite the body.
    pub dialect: Dialect,
    /// The API called. Only chat requests (completions, messages, responses) are
    /// looked into by the body-aware policies.
    pub api: Api,
    /// The verified claims of a bearer-token caller.
    pub claims: Option<&'a serde_json::Value>,
}

/// What one policy decided.
enum Step {
    Pass,
    Reject(ProxyError),
    /// The body, rewritten.
    Rewrite(Bytes),
    /// Answer from the cache.
    Respond(Hit),
    /// Use this (smaller) model instead.
    Downgrade(String),
}

fn outcome(p: &CompiledPolicy, what: &'static str) -> PolicyOutcome {
    PolicyOutcome {
        policy_id: p.id,
        kind: p.kind.clone(),
        outcome: what.into(),
    }
}

fn header(name: &'static str, value: u64) -> (HeaderName, HeaderValue) {
    (HeaderName::from_static(name), headers::number(value))
}

/// Move `from`'s items to the end of `into`; into an empty list by taking `from`'s
/// whole, without a new allocation (`append` would make one). The usual lone policy's
/// outcome and headers pass through two such lists on their way to the request.
pub(crate) fn join<T>(into: &mut Vec<T>, from: &mut Vec<T>) {
    if into.is_empty() {
        std::mem::swap(into, from);
    } else {
        into.append(from);
    }
}

/// A template variable: `header.<name>`, `claim.<path>` (dots for nested claims, of a
/// verified bearer token only), `consumer.name|slug`, `gateway.slug`.
fn variable(seen: &Seen<'_>, name: &str) -> Option<String> {
    if let Some(path) = name.strip_prefix("claim.") {
        let mut v = seen.claims?;
        for key in path.split('.') {
            v = v.get(key)?;
        }
        return Some(match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    if let Some(h) = name.strip_prefix("header.") {
        return seen
            .headers
            .text(&h.to_ascii_lowercase())
            .map(str::to_string);
    }
    match name {
        "consumer.name" => Some(seen.consumer.name.clone()),
        "consumer.slug" => Some(seen.consumer.slug.clone()),
        "gateway.slug" => Some(seen.gateway_slug.to_string()),
        _ => None,
    }
}

impl Policies {
    pub fn new(redis: Option<RedisLimits>) -> Self {
        Self {
            local: LocalLimits::default(),
            cache: AnswerCache::new(redis.as_ref().map(RedisLimits::cache)),
            redis,
            http: reqwest::Client::new(),
        }
    }

    /// Run the chain; `Err` is the rejection the client gets, `verdict` what the
    /// request carries on either way.
    pub async fn pre_request(
        &self,
        seen: &mut Seen<'_>,
        verdict: &mut Verdict,
    ) -> Result<(), ProxyError> {
        let chain = &seen.consumer.policies;
        let mut i = 0;
        while i < chain.len() {
            let groupable = |p: &CompiledPolicy| p.parallel && !p.rewrites_request();
            let mut end = i + 1;
            if groupable(&chain[i]) {
                while end < chain.len() && groupable(&chain[end]) {
                    end += 1;
                }
            }
            let group = &chain[i..end];
            if let [p] = group {
                // Alone (the usual case): no list of one result.
                let mut out = Verdict::default();
                let step = self.check(p, seen, &mut out).await;
                self.apply(p, step, out, seen, verdict)?;
                if verdict.cached.is_some() {
                    return Ok(());
                }
            } else {
                let seen_now: &Seen<'_> = seen;
                let results = futures::future::join_all(group.iter().map(|p| async move {
                    let mut out = Verdict::default();
                    let step = self.check(p, seen_now, &mut out).await;
                    (step, out)
                }))
                .await;
                for (p, (step, out)) in group.iter().zip(results) {
                    self.apply(p, step, out, seen, verdict)?;
                    if verdict.cached.is_some() {
                        return Ok(());
                    }
                }
            }
            i = end;
        }
        Ok(())
    }

    /// Fold one policy's decision into the request's verdict.
    fn apply(
        &self,
        p: &CompiledPolicy,
        step: Step,
        mut out: Verdict,
        seen: &mut Seen<'_>,
        verdict: &mut Verdict,
    ) -> Result<(), ProxyError> {
        let observe = p.mode == PolicyMode::Observe;
        let said = !out.outcomes.is_empty();
        if out.headers.iter().any(|(n, _)| n == "x-ratelimit-limit") {
            // The last request limit in the chain speaks for the request.
            verdict
                .headers
                .retain(|(n, _)| !n.as_str().starts_with("x-ratelimit-"));
        }
        join(&mut verdict.outcomes, &mut out.outcomes);
        join(&mut verdict.headers, &mut out.headers);
        join(&mut verdict.settle, &mut out.settle);
        join(&mut verdict.pending, &mut out.pending);
        if !observe {
            verdict.respond.masks.append(&mut out.respond.masks);
            if out.respond.store.is_some() {
                verdict.respond.store = out.respond.store;
            }
        }
        let push = |v: &mut Verdict, what: &'static str| {
            if !said {
                v.outcomes.push(outcome(p, what));
            }
        };
        match step {
            Step::Pass => push(verdict, "continue"),
            Step::Rewrite(_) if observe => push(verdict, "would_rewrite"),
            Step::Rewrite(body) => {
                push(verdict, "modified");
                seen.body = body.clone();
                verdict.body = Some(body);
            }
            Step::Respond(_) if observe => push(verdict, "would_respond"),
            Step::Respond(hit) => {
                push(verdict, "respond");
                verdict.cached = Some(hit);
            }
            Step::Downgrade(_) if observe => push(verdict, "would_downgrade"),
            Step::Downgrade(model) => {
                push(verdict, "downgraded");
                verdict.model_override = Some(model);
            }
            Step::Reject(_) if observe => push(verdict, "would_reject"),
            Step::Reject(e) => {
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
        Ok(())
    }

    /// Decide one policy; what the answer carries goes into `out`.
    async fn check(&self, p: &CompiledPolicy, seen: &Seen<'_>, out: &mut Verdict) -> Step {
        let reject = |e: ProxyError| Step::Reject(e);
        match &p.rule {
            PolicyRule::ToolAllowlist { allow, deny } => {
                // Read on their own and failing closed: a body the canonical parse
                // refuses still reaches a same-dialect provider whole.
                let tools = match sluice_translate::tool_names(seen.dialect, &seen.body) {
                    Ok(tools) => tools,
                    Err(e) => return reject(e.into()),
                };
                tools
                    .iter()
                    .find(|t| {
                        deny.iter().any(|d| wildcard(d, t))
                            || (!allow.is_empty() && !allow.iter().any(|a| wildcard(a, t)))
                    })
                    .map_or(Step::Pass, |t| {
                        reject(ProxyError::ToolNotAllowed(t.clone()))
                    })
            }
            // Applied per gateway, before authentication (see `cors`).
            PolicyRule::Cors(_) => Step::Pass,
            PolicyRule::NotEnforced => {
                out.outcomes.push(outcome(p, "not_enforced"));
                Step::Pass
            }
            PolicyRule::RequestSize {
                max_bytes,
                max_chars,
                require_content_length,
            } => {
                if *require_content_length && !seen.headers.contains("content-length") {
                    reject(ProxyError::LengthRequired)
                } else if let Some(m) = max_bytes.filter(|m| seen.body.len() > *m) {
                    reject(ProxyError::PolicyTooLarge(format!("{m} bytes")))
                } else if let Some(m) =
                    max_chars.filter(|m| String::from_utf8_lossy(&seen.body).chars().count() > *m)
                {
                    reject(ProxyError::PolicyTooLarge(format!("{m} characters")))
                } else {
                    Step::Pass
                }
            }
            PolicyRule::ModelAllowlist { allowed } => {
                let model = seen.model.unwrap_or("");
                if allowed.iter().any(|m| m == model) {
                    Step::Pass
                } else {
                    reject(ProxyError::ModelNotAllowed(model.to_string()))
                }
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
                let t = TokenLimit {
                    window: *window,
                    budget: *budget,
                    cost: *cost,
                    count: *count,
                    include_cached: *include_cached,
                    rules,
                    downgrade_model: downgrade_model.as_ref(),
                    group_by,
                    fail_open: *fail_open,
                };
                self.token_limit(p, t, seen, out).await
            }
            // A limit scoped to MCP tools does not count LLM requests.
            PolicyRule::RateLimit { tools, .. } if !tools.is_empty() => Step::Pass,
            PolicyRule::RateLimit {
                limit,
                window,
                algorithm,
                group_by,
                fail_open,
                ..
            } => {
                let r = RateLimit {
                    limit: *limit,
                    window: *window,
                    algorithm: *algorithm,
                    group_by,
                    fail_open: *fail_open,
                };
                self.rate_limit(p, r, seen, out).await
            }
            PolicyRule::ToolInjection { tools } if seen.api.is_chat() => {
                match transform::inject_tools(seen.dialect, &seen.body, tools) {
                    Ok(body) => Step::Rewrite(body),
                    Err(e) => reject(e),
                }
            }
            PolicyRule::PromptTemplate(t) if seen.api.is_chat() => {
                let chosen = seen
                    .headers
                    .text(t.template_header.as_str())
                    .and_then(|name| t.templates.get(name));
                let Some(text) = chosen.or(t.system.as_ref()) else {
                    return Step::Pass;
                };
                let text = transform::render(text, |name| variable(seen, name));
                match transform::inject_prompt(seen.dialect, &seen.body, &text, t.position) {
                    Ok(body) => Step::Rewrite(body),
                    Err(e) => reject(e),
                }
            }
            PolicyRule::Mask {
                masker,
                request,
                response,
                block,
            } if seen.api.is_chat() => {
                if *response {
                    out.respond.masks.push(masker.clone());
                }
                if !*request {
                    Step::Pass
                } else if *block {
                    if masker.detects(&transform::request_text(&seen.body)) {
                        reject(ProxyError::SensitiveData)
                    } else {
                        Step::Pass
                    }
                } else {
                    match transform::mask_request(&seen.body, masker) {
                        Ok(Some(body)) => Step::Rewrite(body),
                        Ok(None) => Step::Pass,
                        Err(e) => reject(e),
                    }
                }
            }
            // Boxed: the cache's lookup (Redis, embeddings) is a future over 6 KiB.
            PolicyRule::Cache(rule) if seen.api.is_chat() => {
                Box::pin(self.cached(p, rule, seen, out)).await
            }
            PolicyRule::Moderation(rule) if seen.api.is_chat() => {
                let text = transform::request_text(&seen.body);
                if p.mode == PolicyMode::Observe {
                    let (http, rule) = (self.http.clone(), Arc::clone(rule));
                    out.pending.push(Pending {
                        policy_id: p.id,
                        kind: p.kind.clone(),
                        outcome: tokio::spawn(async move {
                            match moderation::moderate(&http, &rule, &text).await {
                                Ok(Some(_)) => "would_reject".to_string(),
                                Ok(None) => "continue".to_string(),
                                Err(_) => "moderation_unavailable".to_string(),
                            }
                        }),
                    });
                    out.outcomes.push(outcome(p, "pending"));
                    return Step::Pass;
                }
                match moderation::moderate(&self.http, rule, &text).await {
                    Ok(None) => Step::Pass,
                    Ok(Some(categories)) => reject(ProxyError::ContentFlagged(categories)),
                    Err(error) => {
                        warn!(policy = %p.id, %error, rule.fail_open, "moderation unavailable");
                        out.outcomes.push(outcome(p, "moderation_unavailable"));
                        METRICS.policy_errors.inc();
                        if rule.fail_open {
                            Step::Pass
                        } else {
                            reject(ProxyError::ModerationUnavailable)
                        }
                    }
                }
            }
            // Body-aware kinds on requests that are not chats (embeddings, counts).
            PolicyRule::ToolInjection { .. }
            | PolicyRule::PromptTemplate(_)
            | PolicyRule::Mask { .. }
            | PolicyRule::Cache(_)
            | PolicyRule::Moderation(_) => {
                out.outcomes.push(outcome(p, "skipped"));
                Step::Pass
            }
        }
    }

    /// `semantic_cache`: a hit answers the request; a miss leaves a ticket to store
    /// the answer under.
    async fn cached(
        &self,
        p: &CompiledPolicy,
        rule: &sluice_shared::snapshot::policies::CacheRule,
        seen: &Seen<'_>,
        out: &mut Verdict,
    ) -> Step {
        let status = |s: crate::cache::Status| {
            (
                HeaderName::from_static("x-cache-status"),
                HeaderValue::from_static(s.as_str()),
            )
        };
        let bypass = seen.headers.contains(rule.bypass_header.as_str())
            || seen
                .headers
                .text("cache-control")
                .is_some_and(|v| v.contains("no-cache") || v.contains("no-store"));
        // Not cached: a request the canonical model cannot read, or whose answer it
        // cannot hold.
        let parsed = sluice_translate::parse_request(seen.dialect, &seen.body)
            .ok()
            .filter(|r| r.demands.is_none());
        let whole = serde_json::from_slice::<serde_json::Value>(&seen.body).ok();
        let (false, Some(req), Some(whole)) = (bypass, parsed, whole) else {
            out.headers.push(status(crate::cache::Status::Bypass));
            out.outcomes.push(outcome(p, "bypass"));
            return Step::Pass;
        };
        let mut req = req;
        if let Some(model) = seen.model {
            req.model = model.to_string();
        }
        match self
            .cache
            .lookup(
                rule,
                p.id,
                seen.consumer.id,
                &req,
                &crate::cache::uncarried(seen.dialect, &whole),
            )
            .await
        {
            Ok(hit) => {
                METRICS.cache_hits.inc();
                out.headers.push(status(crate::cache::Status::Hit));
                if let Some(sim) = hit.similarity {
                    out.headers.push((
                        HeaderName::from_static("x-cache-similarity"),
                        crate::service::header_value(&format!("{sim:.4}")),
                    ));
                }
                Step::Respond(hit)
            }
            Err(ticket) => {
                let s = if ticket.is_some() {
                    METRICS.cache_misses.inc();
                    crate::cache::Status::Miss
                } else {
                    crate::cache::Status::Bypass
                };
                out.headers.push(status(s));
                out.respond.store = ticket;
                Step::Pass
            }
        }
    }

    async fn count(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        gcra: bool,
    ) -> Result<Decision, String> {
        sluice_shared::bus::count_request(
            self.redis.as_ref(),
            &self.local,
            key,
            limit,
            window,
            gcra,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Charge the token budgets the request passed, from the provider's usage, less
    /// what was reserved at admission. Without usage, an answered request keeps its
    /// reservation and a failed one gets it back.
    pub async fn settle(
        &self,
        settle: &[Settle],
        usage: Option<Usage>,
        answered: bool,
        provider: Option<&str>,
        model: Option<&str>,
    ) {
        for s in settle {
            let amount = match usage {
                None if answered => s.reserved,
                None => 0,
                Some(u) if s.cost => match (provider, model) {
                    (Some(p), Some(m)) => catalog::find_model(p, m).map_or(0, |price| {
                        (price.cost(u.input_tokens, u.cached_input_tokens, u.output_tokens)
                            * 1_000_000.0)
                            .round() as u64
                    }),
                    _ => 0,
                },
                Some(u) => {
                    let input = if s.include_cached {
                        u.input_tokens
                    } else {
                        u.input_tokens.saturating_sub(u.cached_input_tokens)
                    };
                    match s.count {
                        TokenCount::Input => input,
                        TokenCount::Output => u.output_tokens,
                        TokenCount::Total => input + u.output_tokens,
                    }
                }
            };
            let delta = i64::try_from(amount).unwrap_or(i64::MAX)
                - i64::try_from(s.reserved).unwrap_or(i64::MAX);
            if delta == 0 {
                continue;
            }
            match &self.redis {
                Some(redis) => {
                    if let Err(error) = redis.add(&s.key, delta, s.window).await {
                        warn!(%error, key = %s.key, "token usage could not be charged");
                    }
                }
                None => self.local.add(&s.key, delta, s.window),
            }
        }
    }

    /// Admit `estimate` against `budget` and reserve it: admitted, used before, and
    /// what is left of the window.
    async fn reserve(
        &self,
        key: &str,
        estimate: u64,
        budget: u64,
        window: Duration,
    ) -> Result<(bool, u64, Duration), String> {
        match &self.redis {
            // Boxed, as `count_request` boxes its Redis call: a future over 5 KiB.
            Some(redis) => Box::pin(redis.reserve(key, estimate, budget, window))
                .await
                .map(|(ok, used, ms)| (ok, used, Duration::from_millis(ms)))
                .map_err(|e| e.to_string()),
            None => Ok(self.local.reserve(key, estimate, budget, window)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_lists_keep_their_order() {
        let mut into = Vec::new();
        let mut from = vec![1, 2];
        join(&mut into, &mut from);
        assert_eq!((into.as_slice(), from.as_slice()), (&[1, 2][..], &[][..]));
        let mut more = vec![3];
        join(&mut into, &mut more);
        assert_eq!(
            (into.as_slice(), more.as_slice()),
            (&[1, 2, 3][..], &[][..])
        );
    }
}
