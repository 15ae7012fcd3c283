//! Sending a request upstream with retries and fallback.
//!
//! Attempts go to the consumer's candidates, chosen by its balancer, each registry at
//! most once. A connect failure, a timeout, a 5xx or a 429 moves on to the next
//! candidate while nothing has reached the client; once the pool is exhausted, the
//! fallback chain takes over if the failure is one of its triggers, with the request
//! translated to each fallback's dialect. The budget bounds the attempts and the total
//! time. The last attempt's answer, error status included, is what the client gets, in
//! its own dialect.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use sluice_shared::model::{FallbackTrigger, LbAlgorithm};
use sluice_shared::snapshot::{CompiledConsumer, WeightedUpstream};
use sluice_telemetry::{Attempt, TelemetryEvent};
use tracing::{debug, warn};

use crate::balance;
use crate::error::ProxyError;
use crate::exchange::{self, Answer, AnswerError, Outbound, Timing};
use crate::headers;
use crate::models::Route;
use crate::plan;
use crate::policy::ResponseStage;
use crate::route::Api;
use crate::service::{RequestCtx, SluiceProxy, TRACE_HEADER, header_value};
use crate::session::{Fields, Session};
use sluice_translate::peek::Peek;

/// Attempts when the consumer sets no fallback budget.
const DEFAULT_ATTEMPTS: u32 = 3;

/// How one attempt ended.
enum Tried {
    /// The client has its answer.
    Answered,
    /// Nothing reached the client; another registry may be tried.
    Failed {
        error: ProxyError,
        trigger: FallbackTrigger,
    },
    /// Nothing reached the client, and no other registry would do better.
    Fatal(ProxyError),
}

/// The telemetry name of a failure.
fn trigger_name(t: FallbackTrigger) -> &'static str {
    match t {
        FallbackTrigger::Http5xx => "http_5xx",
        FallbackTrigger::Http429 => "http_429",
        FallbackTrigger::Timeout => "timeout",
        FallbackTrigger::ProviderError => "provider_error",
    }
}

fn trigger_of(e: &ProxyError) -> FallbackTrigger {
    match e {
        ProxyError::UpstreamTimeout => FallbackTrigger::Timeout,
        _ => FallbackTrigger::ProviderError,
    }
}

/// The `x-ag-attempts` value; the usual counts need no allocation.
fn attempts(n: u32) -> HeaderValue {
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match SMALL.get(n as usize) {
        Some(digit) => HeaderValue::from_static(digit),
        None => headers::number(n.into()),
    }
}

/// Whether a registry was already tried: by id, or by identity for a broken one.
fn same(a: &WeightedUpstream, b: &WeightedUpstream) -> bool {
    match (&a.target, &b.target) {
        (Ok(x), Ok(y)) => x.registry_id == y.registry_id,
        _ => std::ptr::eq(a, b),
    }
}

/// What the request is, for every attempt.
pub struct Request<'a> {
    pub consumer: &'a CompiledConsumer,
    pub api: Api,
    pub body: Bytes,
    pub peek: &'a Peek,
    pub client_headers: &'a Fields,
    /// What the answer goes through (masking, caching).
    pub stage: &'a ResponseStage,
}

impl SluiceProxy {
    pub(crate) async fn forward(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        req: Request<'_>,
        route: Route<'_>,
    ) -> Result<(), ProxyError> {
        let started = Instant::now();
        let consumer = req.consumer;
        let fallback = consumer.fallback.as_ref();
        let max_attempts = fallback.map_or(DEFAULT_ATTEMPTS, |f| f.max_attempts).max(1);
        let deadline = fallback
            .and_then(|f| f.max_total_latency)
            .map(|d| started + d);
        let hash_key = req
            .client_headers
            .get(consumer.lb.hash_header.as_str())
            .map(<[u8]>::to_vec);
        // The semantic balancer's first choice, made once per request.
        let mut semantic = None;
        if consumer.lb.algorithm == LbAlgorithm::Semantic
            && let Ok(parsed) = sluice_translate::parse_request(req.api.dialect(), &req.body)
        {
            let prompt = balance::prompt_of(&parsed);
            semantic = self
                .semantic
                .choose(&consumer.lb, &route.candidates, &prompt)
                .await;
        }
        let mut tried: Vec<&WeightedUpstream> = Vec::new();
        let mut last: Option<(ProxyError, FallbackTrigger)> = None;

        for attempt in 1..=max_attempts {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let untried = |list: &[&WeightedUpstream], tried: &[&WeightedUpstream]| -> usize {
                list.iter()
                    .filter(|u| !tried.iter().any(|t| same(u, t)))
                    .count()
            };
            // The first attempt, nearly every request's only one, picks among all
            // the candidates without copying them.
            let pool: Cow<'_, [&WeightedUpstream]> = if tried.is_empty() {
                Cow::Borrowed(&route.candidates)
            } else {
                route
                    .candidates
                    .iter()
                    .copied()
                    .filter(|u| !tried.iter().any(|t| same(u, t)))
                    .collect()
            };
            let preferred = semantic.take().filter(|u| {
                pool.iter().any(|p| same(p, u))
                    && u.target
                        .as_ref()
                        .is_ok_and(|t| !self.health.is_ejected(&self.health.backend(t.registry_id)))
            });
            let picked = match preferred {
                Some(u) => Some((u, false)),
                None => balance::pick(
                    &consumer.lb,
                    &consumer.turn,
                    &pool,
                    &self.health,
                    hash_key.as_deref(),
                ),
            };
            let (upstream, model, in_chain) = match picked {
                Some((u, _forced)) => (u, route.model_for(u), false),
                None => {
                    // The pool is exhausted: the fallback chain, if the failure is one
                    // of its triggers.
                    let Some(f) = fallback else { break };
                    if !last.as_ref().is_some_and(|(_, t)| f.triggered_by(*t)) {
                        break;
                    }
                    let Some(u) = f.chain.iter().find(|u| !tried.iter().any(|t| same(u, t))) else {
                        break;
                    };
                    (u, route.fallback_model(u), true)
                }
            };
            tried.push(upstream);
            ctx.attempts = attempt;
            // May a failure of this attempt still be retried elsewhere?
            let pool_left = untried(&route.candidates, &tried) > 0;
            let chain: Vec<&WeightedUpstream> = fallback
                .map(|f| f.chain.iter().collect())
                .unwrap_or_default();
            let chain_left = untried(&chain, &tried) > 0;
            let within_budget = attempt < max_attempts
                && deadline.is_none_or(|d| Instant::now() + Duration::from_millis(1) < d);
            let can_retry = |t: FallbackTrigger| {
                within_budget
                    && ((pool_left && !in_chain)
                        || (chain_left && fallback.is_some_and(|f| f.triggered_by(t))))
            };
            let began = Instant::now();
            let tried_now = self
                .attempt(session, ctx, &req, upstream, model, &can_retry)
                .await;
            let spent = began.elapsed();
            ctx.upstream_time += spent;
            let target = upstream.target.as_ref().ok();
            let (status, error_class) = match &tried_now {
                Tried::Answered => (Some(ctx.status), None),
                Tried::Failed { error, trigger } => (
                    match error {
                        ProxyError::AllAttemptsFailed(s) => Some(*s),
                        _ => None,
                    },
                    Some(trigger_name(*trigger)),
                ),
                Tried::Fatal(_) => (None, Some("gateway")),
            };
            ctx.attempt_log.push(Attempt {
                registry_id: target.map(|t| t.registry_id),
                provider: target.map(|t| t.provider.as_str().into()),
                status,
                latency_ms: spent.as_secs_f64() * 1000.0,
                error_class: error_class.map(Into::into),
            });
            if in_chain {
                ctx.fallbacks += 1;
            }
            match tried_now {
                Tried::Answered => return Ok(()),
                Tried::Fatal(e) => return Err(e),
                Tried::Failed { error, trigger } => {
                    debug!(attempt, error = %error, ?trigger, "attempt failed; trying elsewhere");
                    last = Some((error, trigger));
                }
            }
        }
        let (error, _) = last.unwrap_or((ProxyError::NoUpstream, FallbackTrigger::ProviderError));
        warn!(attempts = ctx.attempts, error = %error, "every attempt failed");
        Err(error)
    }

    async fn attempt(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        req: &Request<'_>,
        upstream: &WeightedUpstream,
        model: &str,
        can_retry: &(dyn Fn(FallbackTrigger) -> bool + Sync),
    ) -> Tried {
        let target = match &upstream.target {
            Ok(t) => t,
            Err(reason) => {
                return Tried::Failed {
                    error: ProxyError::UpstreamMisconfigured(reason.to_string()),
                    trigger: FallbackTrigger::ProviderError,
                };
            }
        };
        ctx.registry = Some(target.registry_id);
        ctx.model = Some(model.to_string());
        ctx.provider = Some(target.provider.as_str());
        let canonical = req.stage.is_active();
        let plan = match plan::plan(
            req.api,
            target,
            req.body.clone(),
            req.peek,
            model,
            canonical,
        ) {
            Ok(plan) => plan,
            // A provider family the proxy cannot call yet: another registry may do.
            Err(e @ ProxyError::ProviderUnsupported(_)) => {
                return Tried::Failed {
                    error: e,
                    trigger: FallbackTrigger::ProviderError,
                };
            }
            Err(e) => return Tried::Fatal(e),
        };
        ctx.translated = matches!(plan.answer, Answer::Translate { .. });
        let peer = match self.resolver.peer(target, self.limits.timeouts).await {
            Ok(peer) => peer,
            Err(error) => {
                return Tried::Failed {
                    trigger: trigger_of(&error),
                    error,
                };
            }
        };
        let backend = self.health.backend(target.registry_id);
        // Held until the answer is complete, streams included.
        let _in_flight = self.health.start(&backend);
        let outbound = Outbound {
            target,
            consumer_headers: &req.consumer.headers,
            client_headers: req.client_headers,
            body: plan.body,
            api_path: plan.api_path,
        };
        let ttfb = target.timeouts.ttfb.unwrap_or(self.limits.timeouts.read);
        // A non-streaming exchange is bounded as a whole; a stream only between chunks.
        let deadline = target
            .timeouts
            .total
            .filter(|_| !req.peek.stream)
            .map(|t| std::time::Instant::now() + t);
        let timing = Timing {
            idle: target.timeouts.idle.unwrap_or(self.limits.timeouts.read),
            deadline,
        };
        let sending = exchange::send_request(&self.connector, &peer, &outbound, ttfb);
        let sent = match deadline {
            Some(at) => tokio::time::timeout_at(at.into(), sending)
                .await
                .unwrap_or(Err(ProxyError::UpstreamTimeout)),
            None => sending.await,
        };
        let sent = match sent {
            Ok(sent) => sent,
            Err(error) => {
                self.health.failure(&backend, &target.health, true);
                return Tried::Failed {
                    trigger: trigger_of(&error),
                    error,
                };
            }
        };
        let trigger = match sent.status {
            429 => Some(FallbackTrigger::Http429),
            500..=599 => Some(FallbackTrigger::Http5xx),
            _ => None,
        };
        match trigger {
            Some(trigger) => {
                self.health.failure(&backend, &target.health, true);
                if let Some(wait) = sent.retry_after {
                    // Honour Retry-After: the registry sits out that long.
                    self.health.eject(&backend, wait);
                }
                if can_retry(trigger) {
                    let status = sent.status;
                    sent.release();
                    return Tried::Failed {
                        error: ProxyError::AllAttemptsFailed(status),
                        trigger,
                    };
                }
            }
            None => self.health.success(&backend, sent.header_latency),
        }
        // The request's own headers (rate limits, CORS) are lent to the answer and
        // given back after it, not cloned (a clone of a value made from a number
        // allocates); the gateway's four follow them, for this attempt only.
        let mut response_headers = std::mem::take(&mut ctx.extra_headers);
        let own = response_headers.len();
        response_headers.extend([
            (
                HeaderName::from_static(TRACE_HEADER),
                header_value(&ctx.trace_id),
            ),
            (
                HeaderName::from_static("x-selected-provider"),
                HeaderValue::from_static(target.provider.as_str()),
            ),
            (
                HeaderName::from_static("x-selected-model"),
                header_value(model),
            ),
            (
                HeaderName::from_static("x-ag-attempts"),
                attempts(ctx.attempts),
            ),
        ]);
        let mut filter = canonical.then(|| req.stage.filter());
        let answered = exchange::answer(
            sent,
            &response_headers,
            plan.answer,
            timing,
            session,
            filter.as_mut(),
        )
        .await;
        response_headers.truncate(own);
        ctx.extra_headers = response_headers;
        match answered {
            Ok(relayed) => {
                if relayed.status == 200
                    && !relayed.broken
                    && let Some(ticket) = &req.stage.store
                    && let Some(answer) = filter.and_then(crate::policy::respond::Filter::recorded)
                {
                    // Boxed: 6 KiB of future that only cached answers need.
                    Box::pin(self.policies.cache.store(ticket.clone(), answer)).await;
                }
                ctx.status = relayed.status;
                ctx.upstream_bytes = relayed.bytes;
                ctx.ttfb = relayed.ttfb;
                ctx.broken = relayed.broken;
                ctx.usage = relayed.usage;
                if let (Some(max), Some(body)) = (ctx.capture, &relayed.body) {
                    ctx.response_body = Some(TelemetryEvent::capture(body, max));
                }
                Tried::Answered
            }
            Err(AnswerError::BeforeFirstByte(error)) => {
                self.health.failure(&backend, &target.health, true);
                let trigger = trigger_of(&error);
                if can_retry(trigger) {
                    Tried::Failed { error, trigger }
                } else {
                    Tried::Fatal(error)
                }
            }
            Err(AnswerError::Other(e)) => Tried::Fatal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_counts_read_as_numbers() {
        for n in [0, 1, 9, 10, 123, u32::MAX] {
            assert_eq!(attempts(n), n.to_string().as_str());
        }
    }
}
