//! Telemetry: one event per proxied request, sent off the request path.
//!
//! A request only puts its event on a bounded queue (never waiting); a background task
//! writes events to the sinks the event's gateway asks for: Kafka (keyed by gateway
//! id), a JSON-lines file (the embedded default) or stdout. A full queue or a broker
//! that is down drops events and counts them; nothing ever blocks or fails a request.

mod event;
mod kafka;
mod line;
pub mod metrics;
mod pipeline;

pub use event::{
    Attempt, ConsumerRef, EventModel, GatewayRef, Label, Latency, McpCall, PolicyOutcome,
    SCHEMA_VERSION, TelemetryEvent, TokenUsage,
};
pub use pipeline::{Sink, Telemetry, TelemetryConfig, TelemetryStats};
