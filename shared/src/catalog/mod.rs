//! Read-only catalogs the admin API serves and the planes consult: provider families,
//! models with their prices, policy kinds with their settings schemas, and well-known
//! MCP servers. Models and MCP servers ship as data files in the repository.

mod mcp_servers;
mod models;
mod policies;
mod providers;
mod schema;

pub use mcp_servers::{McpServerEntry, mcp_servers};
pub use models::{ModelEntry, find as find_model, models, replace_models};
pub use policies::{PolicyKind, policy_kind, policy_kinds};
pub use providers::{ProviderEntry, providers};
pub use schema::validate as validate_schema;
