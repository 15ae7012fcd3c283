//! The domain model: the six objects an operator configures, as the admin API accepts
//! them (`…Spec`) and as the store and config documents carry them (with ids and
//! timestamps). Validation lives next to each object and reports every problem with its
//! field path, so the admin API can answer 422 with all of them at once.

mod auth;
mod consumer;
mod gateway;
mod policy;
mod registry;
mod role;
mod routing;
mod secret_fields;
pub mod toolkit;
mod upstream_auth;
mod validation;

pub use auth::{Auth, AuthKind, AuthSpec, OidcLogin};
pub use consumer::{Consumer, ConsumerKind, ConsumerSpec, RegistryLink, RoutingMode};
pub use gateway::{Gateway, GatewaySpec, GatewayStatus};
pub use policy::{Policy, PolicyMode, PolicySpec, PolicyStage};
pub use registry::{
    HealthChecks, McpTarget, Provider, Registry, RegistryKind, RegistrySpec, Timeouts,
};
pub use role::{Role, RoleSpec};
pub use routing::{
    FailMode, Fallback, FallbackBudget, FallbackTrigger, LbAlgorithm, LbConfig, LbMember,
    McpAccess, ModelPolicy, validate_model_policies, validate_routing,
};
pub use secret_fields::{SecretFields, mask_secret};
pub use upstream_auth::{ApiKeyLocation, UpstreamAuth};
pub use validation::{Problem, Problems, is_slug, slugify};
