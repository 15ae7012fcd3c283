//! An upstream target: where and how to call one registry, parsed once at compile time.

use http::{HeaderName, HeaderValue};
use uuid::Uuid;

use crate::model::{ApiKeyLocation, Provider, Registry, SecretFields, UpstreamAuth};
use crate::secrets::SecretBox;

/// The credential sluice presents to an upstream, ready to put on the request.
#[derive(Debug, Clone)]
pub enum UpstreamCredential {
    Header {
        name: HeaderName,
        value: HeaderValue,
    },
    Query {
        name: String,
        value: String,
    },
}

/// The API a target is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireApi {
    /// OpenAI Chat Completions (`/chat/completions`).
    OpenAiChat,
    /// OpenAI Responses (`/responses`): `openai` with `provider_options.api = "responses"`.
    OpenAiResponses,
    /// Anthropic Messages (`/messages`).
    AnthropicMessages,
    /// A provider whose wire format the proxy does not speak yet.
    Unsupported,
}

/// How a target's health is judged (from the registry's `health_checks`).
#[derive(Debug, Clone)]
pub struct TargetHealth {
    /// Eject after `threshold` consecutive failures of real traffic.
    pub passive: bool,
    pub threshold: u32,
    /// How long an ejected target sits out before traffic may try it again.
    pub cooldown: std::time::Duration,
    /// Active probing, when the registry asks for it.
    pub active: Option<ActiveCheck>,
}

/// An active health check: `GET base_url + path` with the headers (2xx–4xx is alive:
/// a provider answering 401 to an unauthenticated probe is up), or a TCP connect when
/// there is no path.
#[derive(Debug, Clone)]
pub struct ActiveCheck {
    pub path: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub interval: std::time::Duration,
}

impl TargetHealth {
    fn of(spec: Option<&crate::model::HealthChecks>) -> Self {
        let Some(hc) = spec else {
            return Self {
                passive: true,
                threshold: 3,
                cooldown: std::time::Duration::from_secs(10),
                active: None,
            };
        };
        let interval = std::time::Duration::from_secs(hc.interval.unwrap_or(10).max(1));
        Self {
            passive: hc.passive,
            threshold: hc.threshold.unwrap_or(3).max(1),
            cooldown: interval,
            active: hc.active.then(|| ActiveCheck {
                path: hc.path.clone(),
                headers: hc
                    .headers
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((
                            HeaderName::from_bytes(k.as_bytes()).ok()?,
                            HeaderValue::from_str(v.as_str()?).ok()?,
                        ))
                    })
                    .collect(),
                interval,
            }),
        }
    }
}

/// The Anthropic API version sent when the registry names none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// A registry as the proxy calls it.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub registry_id: Uuid,
    pub registry_name: String,
    pub provider: Provider,
    pub enabled: bool,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The `Host` header value: the host, with the port when it is not the default.
    pub authority: String,
    /// The base path of the API, without a trailing slash, e.g. `/v1`.
    pub base_path: String,
    pub credential: Option<UpstreamCredential>,
    pub wire: WireApi,
    /// Headers the provider's API needs on every request (`anthropic-version`,
    /// OpenAI's organization and project).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub health: TargetHealth,
    /// The registry's own timeouts; `None` takes the proxy's default.
    pub timeouts: TargetTimeouts,
}

/// A registry's timeouts.
#[derive(Debug, Clone, Copy, Default)]
pub struct TargetTimeouts {
    pub connect: Option<std::time::Duration>,
    pub ttfb: Option<std::time::Duration>,
    pub idle: Option<std::time::Duration>,
    pub total: Option<std::time::Duration>,
}

impl UpstreamTarget {
    /// Parse a registry into a target, opening its sealed credential, or say why it
    /// cannot be called.
    pub fn compile(registry: &Registry, secrets: Option<&SecretBox>) -> Result<Self, String> {
        let spec = &registry.spec;
        let provider = spec
            .provider
            .ok_or_else(|| "the registry names no provider".to_string())?;
        let base = spec.base_url().ok_or_else(|| {
            format!(
                "provider {} needs provider_options.base_url",
                provider.as_str()
            )
        })?;
        let url = url::Url::parse(base).map_err(|e| format!("base_url: {e}"))?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("base_url scheme {other} is not http or https")),
        };
        let host = url
            .host_str()
            .ok_or_else(|| "base_url has no host".to_string())?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_string(),
        };
        let auth = match (&spec.auth, secrets) {
            (None, _) => None,
            (Some(auth), Some(secrets)) => Some(auth.opened(secrets).map_err(|_| {
                "the registry's credential cannot be opened with this plane's SLUICE_SECRET_KEY"
                    .to_string()
            })?),
            (Some(auth), None) if auth.is_sealed() => {
                return Err(
                    "the registry's credential is sealed and this plane has no SLUICE_SECRET_KEY"
                        .into(),
                );
            }
            (Some(auth), None) => Some(auth.clone()),
        };
        let credential = auth.as_ref().map(|a| credential(a, provider)).transpose()?;
        let option = |key: &str| spec.provider_options.get(key).and_then(|v| v.as_str());
        let wire = match provider {
            Provider::Openai if option("api") == Some("responses") => WireApi::OpenAiResponses,
            Provider::Anthropic => WireApi::AnthropicMessages,
            p if p.speaks_openai_chat() => WireApi::OpenAiChat,
            _ => WireApi::Unsupported,
        };
        let mut headers = Vec::new();
        let mut header = |name: &'static str, value: &str| -> Result<(), String> {
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("provider_options: {name} is not a valid header value"))?;
            headers.push((HeaderName::from_static(name), value));
            Ok(())
        };
        match provider {
            Provider::Anthropic => header(
                "anthropic-version",
                option("anthropic_version").unwrap_or(DEFAULT_ANTHROPIC_VERSION),
            )?,
            Provider::Openai => {
                if let Some(org) = option("organization") {
                    header("openai-organization", org)?;
                }
                if let Some(project) = option("project") {
                    header("openai-project", project)?;
                }
            }
            _ => {}
        }
        Ok(Self {
            registry_id: registry.id,
            registry_name: spec.name.clone(),
            provider,
            enabled: spec.enabled,
            tls,
            host,
            port,
            authority,
            base_path: url.path().trim_end_matches('/').to_string(),
            credential,
            wire,
            headers,
            health: TargetHealth::of(spec.health_checks.as_ref()),
            timeouts: spec.timeouts.map_or_else(TargetTimeouts::default, |t| {
                let ms = |v: Option<u64>| v.map(std::time::Duration::from_millis);
                TargetTimeouts {
                    connect: ms(t.connect_ms),
                    ttfb: ms(t.ttfb_ms),
                    idle: ms(t.idle_ms),
                    total: ms(t.total_ms),
                }
            }),
        })
    }
}

/// The header a provider expects an API key in when the registry names none.
fn default_key_header(provider: Provider) -> Option<HeaderName> {
    match provider {
        Provider::Anthropic => Some(HeaderName::from_static("x-api-key")),
        Provider::Azure => Some(HeaderName::from_static("api-key")),
        Provider::Google => Some(HeaderName::from_static("x-goog-api-key")),
        _ => None,
    }
}

fn credential(auth: &UpstreamAuth, provider: Provider) -> Result<UpstreamCredential, String> {
    match auth {
        UpstreamAuth::ApiKey {
            api_key,
            header_name,
            param_name,
            param_location,
        } => match param_location {
            ApiKeyLocation::Query => Ok(UpstreamCredential::Query {
                name: param_name.clone().unwrap_or_else(|| "key".to_string()),
                value: api_key.clone(),
            }),
            ApiKeyLocation::Header => {
                let bearer = (
                    HeaderName::from_static("authorization"),
                    format!("Bearer {api_key}"),
                );
                let (name, value) = match header_name.as_deref() {
                    None => match default_key_header(provider) {
                        Some(name) => (name, api_key.clone()),
                        None => bearer,
                    },
                    Some(h) if h.eq_ignore_ascii_case("authorization") => bearer,
                    Some(h) => (
                        HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| "auth.header_name is not a header name".to_string())?,
                        api_key.clone(),
                    ),
                };
                let mut value = HeaderValue::from_str(&value)
                    .map_err(|_| "auth.api_key is not a valid header value".to_string())?;
                value.set_sensitive(true);
                Ok(UpstreamCredential::Header { name, value })
            }
        },
        // Azure's api-key header is the one token-free variant the proxy can use today.
        UpstreamAuth::Azure {
            api_key: Some(api_key),
            ..
        } => {
            let mut value = HeaderValue::from_str(api_key)
                .map_err(|_| "auth.api_key is not a valid header value".to_string())?;
            value.set_sensitive(true);
            Ok(UpstreamCredential::Header {
                name: HeaderName::from_static("api-key"),
                value,
            })
        }
        UpstreamAuth::Azure { .. }
        | UpstreamAuth::Aws { .. }
        | UpstreamAuth::Oauth2 { .. }
        | UpstreamAuth::GcpServiceAccount { .. } => {
            Err("this upstream auth type is not supported by the proxy yet".to_string())
        }
    }
}
