//! Well-known MCP servers an operator can start a registry from, from
//! `shared/catalog/mcp-servers.json`.

use std::sync::LazyLock;

use serde_json::Value;

static SERVERS: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str::<Value>(include_str!("../../catalog/mcp-servers.json"))
        .ok()
        .and_then(|v| v.get("servers").cloned())
        .unwrap_or(Value::Array(Vec::new()))
});

/// The pre-seeded MCP servers.
pub fn mcp_servers() -> &'static Value {
    &SERVERS
}
