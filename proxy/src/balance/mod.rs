//! Choosing the upstream for each attempt: the consumer's balancing algorithm over the
//! candidates that are healthy and not yet tried, with the live state it needs
//! (in-flight counts, latency, failures) kept per registry in [`Health`].
//!
//! pingora-load-balancing is not used: its backends are resolved socket addresses
//! with selection fixed at pool build time, while a registry here is a provider host
//! behind DNS, chosen per request among the registries that allow the model, with
//! least-connections and latency needing per-request accounting it does not expose.

mod health;
mod pick;
mod probe;
mod semantic;
mod share;

pub use health::{Health, HealthView};
pub use pick::pick;
pub use probe::Prober;
pub use semantic::{Semantic, embed, prompt_of};
pub use share::share;

/// A side request to a registry (probe, embeddings) with the provider's headers and
/// the registry's credential.
pub(crate) fn authorized(
    mut req: reqwest::RequestBuilder,
    target: &sluice_shared::snapshot::UpstreamTarget,
) -> reqwest::RequestBuilder {
    use sluice_shared::snapshot::UpstreamCredential;
    for (name, value) in &target.headers {
        req = req.header(name, value);
    }
    match &target.credential {
        Some(UpstreamCredential::Header { name, value }) => req.header(name, value),
        Some(UpstreamCredential::Query { name, value }) => {
            req.query(&[(name.as_str(), value.as_str())])
        }
        None => req,
    }
}
