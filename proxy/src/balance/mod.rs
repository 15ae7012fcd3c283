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
mod share;

pub use health::Health;
pub use pick::pick;
pub use probe::Prober;
pub use share::share;
