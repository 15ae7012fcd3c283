//! What every plane of sluice needs and none of them owns: the domain model and its
//! validation, the per-gateway config document, the compiled [`snapshot::Snapshot`], the
//! store, the config bus, API keys and settings.
//!
//! This crate knows nothing of Pingora or axum: it is plain data, SQL and Redis, so the
//! proxy, admin and mcp planes can share it and it can be tested alone.

pub mod apikey;
pub mod bearer;
pub mod bus;
pub mod catalog;
pub mod document;
pub mod map;
pub mod model;
pub mod secrets;
pub mod settings;
pub mod snapshot;
pub mod store;
pub mod sync;
pub mod time;
