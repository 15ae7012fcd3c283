//! `POST /v1/gateways/{gateway_id}/registries/test-connection`: can sluice reach this
//! provider with these credentials? Takes a saved registry (`{"registry_id"}`) or an
//! unsaved one (`{"provider", "provider_options", "auth"}`), calls the provider's cheapest
//! authenticated endpoint (its model list), and says which stage failed:
//! `connectivity` (no connection or no answer), `authentication` (401/403), `provider`
//! (any other answer), or `unsupported` (no probe for this provider yet).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_shared::model::{Provider, Registry, RegistryKind, RegistrySpec, UpstreamAuth};
use sluice_shared::snapshot::{UpstreamCredential, UpstreamTarget};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, StrictJson};

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(test))
}

/// A saved registry by id, or an unsaved one by its provider, options and credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TestConnectionRequest)]
struct Request {
    #[serde(default)]
    registry_id: Option<Uuid>,
    #[serde(default)]
    provider: Option<Provider>,
    #[serde(default)]
    provider_options: Map<String, Value>,
    #[serde(default)]
    auth: Option<UpstreamAuth>,
}

/// How far the probe got.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TestConnectionOutcome)]
struct Outcome {
    ok: bool,
    /// `connectivity`, `authentication`, `provider` or `unsupported`.
    #[schema(value_type = String)]
    stage: &'static str,
    #[schema(value_type = Option<String>)]
    provider: Option<&'static str>,
    status_code: Option<u16>,
    latency_ms: Option<u64>,
    message: String,
}

fn unsupported(provider: Option<Provider>, message: String) -> Outcome {
    Outcome {
        ok: false,
        stage: "unsupported",
        provider: provider.map(Provider::as_str),
        status_code: None,
        latency_ms: None,
        message,
    }
}

/// Can sluice reach this provider with these credentials? Calls its model list.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/registries/test-connection", tag = "registries",
    operation_id = "test_registry_connection", params(("gateway_id" = Uuid, Path)),
    request_body = Request,
    responses((status = 200, description = "The outcome; `ok: false` names the failed stage", body = Outcome)))]
async fn test(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(req): StrictJson<Request>,
) -> Result<Json<Outcome>, ApiError> {
    let registry = match req.registry_id {
        Some(id) => state.store.registry(ids[0], id).await?,
        None => {
            let spec = RegistrySpec {
                name: "test-connection".into(),
                kind: RegistryKind::Llm,
                enabled: true,
                description: None,
                provider: req.provider,
                provider_options: req.provider_options,
                auth: req.auth,
                health_checks: None,
                timeouts: None,
                mcp_target: None,
            };
            spec.validate()?;
            Registry {
                id: Uuid::nil(),
                gateway_id: ids[0],
                spec,
                created_at: String::new(),
                updated_at: String::new(),
            }
        }
    };
    let provider = registry.spec.provider;
    let target = match UpstreamTarget::compile(&registry, Some(&state.secrets)) {
        Ok(t) => t,
        Err(reason) => return Ok(Json(unsupported(provider, reason))),
    };
    Ok(Json(probe(&target).await))
}

/// Call the provider's model list with the target's credential.
async fn probe(target: &UpstreamTarget) -> Outcome {
    let provider = target.provider;
    let anthropic = provider == Provider::Anthropic;
    if !(provider.speaks_openai_chat() || anthropic) {
        return unsupported(
            Some(provider),
            format!("no connection test for {} yet", provider.as_str()),
        );
    }
    let scheme = if target.tls { "https" } else { "http" };
    let mut url = format!("{scheme}://{}{}/models", target.authority, target.base_path);
    let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return unsupported(Some(provider), format!("cannot build an HTTP client: {e}")),
    };
    let mut request = client.get(&url);
    match &target.credential {
        Some(UpstreamCredential::Header { name, value }) => {
            request = request.header(name.clone(), value.clone())
        }
        Some(UpstreamCredential::Query { name, value }) => {
            url.push_str(&format!("?{}={}", enc(name), enc(value)));
            request = client.get(&url);
        }
        None => {}
    }
    if anthropic {
        request = request.header("anthropic-version", "2023-06-01");
    }
    let started = Instant::now();
    let outcome = |ok, stage, status: Option<u16>, message: String| Outcome {
        ok,
        stage,
        provider: Some(provider.as_str()),
        status_code: status,
        latency_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
        message,
    };
    match request.send().await {
        Err(e) if e.is_timeout() => outcome(
            false,
            "connectivity",
            None,
            "the provider did not answer in time".into(),
        ),
        Err(_) => outcome(
            false,
            "connectivity",
            None,
            format!("cannot connect to {}", target.authority),
        ),
        Ok(resp) => {
            let status = resp.status().as_u16();
            match status {
                200..=299 => outcome(
                    true,
                    "provider",
                    Some(status),
                    "connected and authenticated".into(),
                ),
                401 | 403 => outcome(
                    false,
                    "authentication",
                    Some(status),
                    "the provider refused the credentials".into(),
                ),
                _ => outcome(
                    false,
                    "provider",
                    Some(status),
                    format!("the provider answered {status}"),
                ),
            }
        }
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
