//! The proxy plane: sluice's data path for LLM traffic, on Pingora.
//!
//! Pingora gives the HTTP server and the TLS connector; sluice speaks HTTP/1.1 to
//! providers itself and keeps their idle connections ([`upstream`]). The request path
//! itself is [`service::SluiceProxy`]: it pins the current config snapshot, resolves the
//! gateway and consumer, authenticates, reads and checks the body, picks an upstream
//! and runs the exchange with it ([`exchange`]), streaming the answer back chunk by
//! chunk. Nothing on this path touches the database or the config bus.

mod accept;
mod balance;
mod body;
mod bound;
mod cache;
mod connect;
mod cors;
mod error;
mod exchange;
mod fields;
mod forward;
mod h1;
mod head;
mod headers;
mod identity;
mod listing;
#[cfg(test)]
mod mangle;
mod models;
mod peer;
mod plan;
mod policy;
mod relay;
mod report;
mod route;
mod series;
mod server;
mod service;
mod session;
mod socket;
mod upstream;

pub use balance::{Health, HealthView, share as share_health};
pub use server::{ProxyOptions, ProxyServer};
pub use service::SluiceProxy;
