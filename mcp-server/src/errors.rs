//! The JSON-RPC errors the MCP plane answers with. Each reason has a stable code in the
//! range JSON-RPC leaves to servers, and a `data.reason` an agent can branch on.
//!
//! | code | reason |
//! |---|---|
//! | -32001 | `policy_blocked`: a policy refused the call (tool denied, not in the toolkit) |
//! | -32002 | `not_found`: no such tool, prompt or resource for this consumer (the code MCP itself uses for an unknown resource) |
//! | -32004 | `rate_limited`: a rate limit is spent (`data.retry_after_secs`) |
//! | -32005 | `upstream_unavailable`: the MCP server behind the tool cannot be reached |
//! | -32042 | `consent_required`: the user must connect their account at a `forwarded` server; MCP's "URL elicitation required" error, whose `data.elicitations[0].url` is the consent link |

use rmcp::model::{ErrorCode, ErrorData};
use serde_json::json;

pub const POLICY_BLOCKED: i32 = -32001;
pub const NOT_FOUND: i32 = -32002;
pub const RATE_LIMITED: i32 = -32004;
pub const UPSTREAM_UNAVAILABLE: i32 = -32005;
/// MCP's own code for "URL elicitation required" (2025-11-25), which clients know to
/// show as a link to open.
pub const CONSENT_REQUIRED: i32 = -32042;

fn error(code: i32, reason: &str, message: String, mut data: serde_json::Value) -> ErrorData {
    if let Some(map) = data.as_object_mut() {
        map.insert("reason".into(), reason.into());
    }
    ErrorData::new(ErrorCode(code), message, Some(data))
}

pub fn policy_blocked(message: impl Into<String>) -> ErrorData {
    error(POLICY_BLOCKED, "policy_blocked", message.into(), json!({}))
}

pub fn not_found(what: &str, name: &str) -> ErrorData {
    error(
        NOT_FOUND,
        "not_found",
        format!("no {what} named {name} is available to this consumer"),
        json!({"name": name}),
    )
}

pub fn rate_limited(retry_after_secs: u64) -> ErrorData {
    error(
        RATE_LIMITED,
        "rate_limited",
        format!("rate limit exceeded; retry in {retry_after_secs} s"),
        json!({"retry_after_secs": retry_after_secs}),
    )
}

pub fn upstream_unavailable(registry: &str, detail: &str) -> ErrorData {
    error(
        UPSTREAM_UNAVAILABLE,
        "upstream_unavailable",
        format!("the MCP server {registry} is unavailable: {detail}"),
        json!({"registry": registry}),
    )
}

/// The user must open `url` to connect their account at `registry` before the call
/// can go through.
pub fn consent_required(registry: &str, url: &str) -> ErrorData {
    let message = format!("connect your account at {registry} to use it: open the link");
    error(
        CONSENT_REQUIRED,
        "consent_required",
        message.clone(),
        json!({
            "registry": registry,
            "connect_url": url,
            "elicitations": [{
                "mode": "url",
                "elicitationId": format!("connect-{registry}"),
                "url": url,
                "message": message,
            }],
        }),
    )
}

/// The stable reason of an error this plane made, for metrics and telemetry.
pub fn reason(error: &ErrorData) -> &'static str {
    match error.code.0 {
        POLICY_BLOCKED => "policy_blocked",
        NOT_FOUND => "not_found",
        RATE_LIMITED => "rate_limited",
        UPSTREAM_UNAVAILABLE => "upstream_unavailable",
        CONSENT_REQUIRED => "consent_required",
        _ => "upstream_error",
    }
}
