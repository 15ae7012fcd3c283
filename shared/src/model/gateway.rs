//! A gateway: the tenant boundary. Every other object belongs to exactly one gateway,
//! and the proxy finds it by `X-AG-Gateway-Slug`, by its own `domain`, or by
//! `{slug}.{GATEWAY_BASE_DOMAIN}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::validation::{Problems, is_slug};

/// Whether a gateway serves traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GatewayStatus {
    #[default]
    Active,
    Inactive,
}

/// A telemetry sink of the gateway's events (`kafka`, `file`, `stdout`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TelemetryExporter {
    pub name: String,
    #[serde(default)]
    pub settings: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub exporters: Vec<TelemetryExporter>,
    /// Put request bodies, and complete (non-streamed) answers, in telemetry events, cut
    /// to `body_capture_max_bytes` (default 4096). Off unless turned on: bodies hold
    /// prompts and completions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capture_bodies: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_capture_max_bytes: Option<usize>,
}

/// Where a conversation's session id comes from, for sticky routing and telemetry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_param_name: Option<String>,
}

/// What the gateway's tenant is entitled to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Entitlements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_per_min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_per_month: Option<u64>,
}

/// The fields an operator writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GatewaySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default)]
    pub status: GatewayStatus,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetryConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_config: Option<SessionConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlements: Option<Entitlements>,
}

impl GatewaySpec {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        if !is_slug(&self.slug) {
            p.add(
                "slug",
                "must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            );
        }
        if let Some(domain) = &self.domain {
            let ok = !domain.is_empty()
                && domain.len() <= 253
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                p.add("domain", "must be a host name");
            }
        }
        if let Some(name) = &self.name {
            p.require_text("name", name, 200);
        }
        if let Some(telemetry) = &self.telemetry {
            for (i, e) in telemetry.exporters.iter().enumerate() {
                if !matches!(e.name.as_str(), "kafka" | "file" | "stdout") {
                    p.add(
                        format!("telemetry.exporters[{i}].name"),
                        "must be kafka, file or stdout",
                    );
                }
            }
        }
        if let Some(session) = &self.session_config
            && session.enabled
            && session.header_name.is_none()
            && session.body_param_name.is_none()
        {
            p.add(
                "session_config",
                "an enabled session needs header_name or body_param_name",
            );
        }
        p.into_result()
    }
}

/// A stored gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Gateway {
    pub id: Uuid,
    #[serde(flatten)]
    pub spec: GatewaySpec,
    /// Config version of everything under this gateway; it grows with every change.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}
