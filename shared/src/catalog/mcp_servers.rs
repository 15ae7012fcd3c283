//! Well-known MCP servers an operator can start a registry from, from
//! `shared/catalog/mcp-servers.json`.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// One pre-seeded MCP server: what a registry's `mcp_target` would start from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerEntry {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The streamable-HTTP endpoint.
    pub url: String,
    pub transport: String,
    /// The `mcp_target.auth` it needs, e.g. `{"mode": "forwarded"}`.
    pub auth: Map<String, Value>,
    /// Where the server is documented.
    pub docs: String,
}

#[derive(Deserialize)]
struct File {
    servers: Vec<McpServerEntry>,
}

static SERVERS: LazyLock<Vec<McpServerEntry>> = LazyLock::new(|| {
    serde_json::from_str::<File>(include_str!("../../catalog/mcp-servers.json"))
        .map(|f| f.servers)
        .unwrap_or_default()
});

/// The pre-seeded MCP servers.
pub fn mcp_servers() -> &'static [McpServerEntry] {
    &SERVERS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses() {
        assert!(mcp_servers().len() >= 5);
        assert!(mcp_servers().iter().all(|s| s.url.starts_with("https://")));
    }
}
