//! Compiling one gateway's config document into the lookup structures the request path
//! uses. A document that contradicts itself (two consumers with one slug, one key digest
//! on two auths) is rejected whole and the plane keeps the last good version; a single
//! registry that cannot be called becomes an error target that answers cleanly.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use http::{HeaderName, HeaderValue};
use serde_json::Value;
use thiserror::Error;
use uuid::Uuid;

use super::policies::{self, CompiledPolicy};
use super::upstream::UpstreamTarget;
use crate::apikey::{self, KeyDigest};
use crate::document::GatewayDocument;
use crate::map::Map;
use crate::model::{FallbackTrigger, GatewayStatus, LbAlgorithm, RegistryKind};
use crate::secrets::SecretBox;

/// Why a document was rejected.
#[derive(Debug, Error)]
pub enum CompileError {
    #[error("two consumers share the slug {0}")]
    DuplicateConsumerSlug(String),
    #[error("two auths share one API key digest")]
    DuplicateKey,
}

/// A registry a consumer routes to, with its weight, or why it cannot be used.
#[derive(Debug, Clone)]
pub struct WeightedUpstream {
    pub target: Result<Arc<UpstreamTarget>, Arc<str>>,
    pub weight: u8,
    /// The registry's name, also when its target is broken (for `name/model` pins).
    pub registry_name: Arc<str>,
    /// Models the consumer may use here; empty allows any.
    pub allowed: Vec<String>,
    /// The model used when a request names none.
    pub default_model: Option<String>,
}

impl WeightedUpstream {
    /// Whether the consumer may use `model` on this registry.
    pub fn allows(&self, model: &str) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|m| m == model)
    }
}

/// How a consumer's traffic is spread over its registries.
#[derive(Debug, Clone)]
pub struct CompiledLb {
    pub algorithm: LbAlgorithm,
    /// The header whose value keys `consistent-hash` (default `x-session-id`).
    pub hash_header: HeaderName,
    /// The semantic balancer's embeddings registry and model.
    pub embedding: Option<(Arc<UpstreamTarget>, String)>,
    /// What each registry is good at, for the semantic balancer, by registry id.
    pub descriptions: HashMap<Uuid, String>,
}

/// Where a request goes once the consumer's pool is exhausted.
#[derive(Debug, Clone)]
pub struct CompiledFallback {
    /// Failures that move on to the chain; all of them when the config lists none.
    pub triggers: Vec<FallbackTrigger>,
    /// Attempts in all, pool and chain together.
    pub max_attempts: u32,
    pub max_total_latency: Option<std::time::Duration>,
    pub chain: Vec<WeightedUpstream>,
}

impl CompiledFallback {
    pub fn triggered_by(&self, trigger: FallbackTrigger) -> bool {
        self.triggers.is_empty() || self.triggers.contains(&trigger)
    }
}

/// A consumer ready for the request path.
#[derive(Debug)]
pub struct CompiledConsumer {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub active: bool,
    pub auth_ids: Vec<Uuid>,
    pub upstreams: Vec<WeightedUpstream>,
    /// `model: "pool:<alias>"` pools, from `lb_config.members`.
    pub pools: HashMap<String, Vec<WeightedUpstream>>,
    pub lb: CompiledLb,
    pub fallback: Option<CompiledFallback>,
    /// The policies run on this consumer's requests, by priority.
    pub policies: Vec<Arc<CompiledPolicy>>,
    /// The round-robin position; a new snapshot starts it again.
    pub turn: AtomicUsize,
    /// Headers added to every upstream request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The MCP servers this consumer reaches, when it reaches any.
    pub mcp: Option<Arc<super::mcp::CompiledMcp>>,
}

impl CompiledConsumer {
    /// Whether a request authenticated by `auth_id` may act as this consumer.
    pub fn accepts(&self, auth_id: Uuid) -> bool {
        self.auth_ids.contains(&auth_id)
    }
}

/// A gateway ready for the request path.
#[derive(Debug)]
pub struct CompiledGateway {
    pub id: Uuid,
    pub slug: String,
    pub domain: Option<String>,
    pub version: i64,
    pub active: bool,
    /// The gateway's telemetry exporters (`kafka`, `file`, `stdout`) and Kafka topic;
    /// empty for the process defaults.
    pub exporters: Vec<String>,
    pub kafka_topic: Option<String>,
    /// Body capture into telemetry: the cap in bytes, when the gateway turned it on.
    pub capture_bodies: Option<usize>,
    /// Cross-origin rules, from the gateway's global `cors` policy.
    pub cors: Option<policies::Cors>,
    consumers: Map<String, Arc<CompiledConsumer>>,
    keys: Map<KeyDigest, Uuid>,
    /// Enabled OAuth2 / OIDC auths, which verify bearer tokens.
    bearer: Map<Uuid, Arc<BearerAuth>>,
    /// Enabled MCP registries, or why each cannot be called.
    mcp_servers: HashMap<Uuid, Result<Arc<super::mcp::McpServer>, Arc<str>>>,
}

/// How an OAuth2 or OIDC auth verifies a bearer token: a JWT signed by one of the
/// issuer's keys (a JWKS or PEM keys), or an opaque token by introspection.
#[derive(Debug, Clone, PartialEq)]
pub struct BearerAuth {
    pub id: Uuid,
    pub issuer: String,
    /// Accepted `aud` values; any when empty.
    pub audiences: Vec<String>,
    pub jwks_url: Option<String>,
    pub public_keys: Vec<String>,
    pub introspection_url: Option<String>,
    pub required_scopes: Vec<String>,
    /// `RS256`, `ES256`, …; the asymmetric ones when empty.
    pub algorithms: Vec<String>,
    /// The claim naming the caller (`sub` by default).
    pub subject_claim: String,
    /// An OIDC auth that signs people in to the MCP authorization server, with its
    /// client secret opened.
    pub login: Option<crate::model::OidcLogin>,
}

impl BearerAuth {
    fn compile(auth: &crate::model::Auth, secrets: Option<&SecretBox>) -> Option<Self> {
        use crate::model::SecretFields;
        let opened = match secrets {
            Some(secrets) => auth.spec.opened(secrets).ok(),
            None if auth.spec.is_sealed() => None,
            None => Some(auth.spec.clone()),
        };
        if opened.is_none() {
            tracing::warn!(auth = %auth.id, "the auth's sign-in secret cannot be opened: its sign-in is off");
        }
        let login = opened
            .as_ref()
            .and_then(|s| s.oidc.as_ref())
            .and_then(|c| c.login.clone());
        let spec = &auth.spec;
        if let Some(c) = &spec.oauth2 {
            return Some(Self {
                id: auth.id,
                issuer: c.issuer.clone(),
                audiences: c.audiences.clone(),
                jwks_url: c.jwks_url.clone(),
                public_keys: Vec::new(),
                introspection_url: c.introspection_url.clone(),
                required_scopes: c.required_scopes.clone(),
                algorithms: c.allowed_algorithms.clone(),
                subject_claim: "sub".into(),
                login: None,
            });
        }
        spec.oidc.as_ref().map(|c| Self {
            id: auth.id,
            issuer: c.issuer.clone(),
            audiences: c.audiences.clone(),
            jwks_url: c.jwks_url.clone(),
            public_keys: c.public_keys.clone(),
            introspection_url: None,
            required_scopes: Vec::new(),
            algorithms: Vec::new(),
            subject_claim: c.subject_claim.clone().unwrap_or_else(|| "sub".into()),
            login,
        })
    }
}

impl CompiledGateway {
    pub fn consumer(&self, slug: &str) -> Option<&Arc<CompiledConsumer>> {
        self.consumers.get(slug)
    }

    /// The bearer-token auths among `ids` (a consumer's auths).
    pub fn bearer_auths<'a>(
        &'a self,
        ids: &'a [Uuid],
    ) -> impl Iterator<Item = &'a Arc<BearerAuth>> {
        ids.iter().filter_map(|id| self.bearer.get(id))
    }

    /// The enabled auth whose API key has this digest.
    pub fn auth_for_key(&self, digest: &KeyDigest) -> Option<Uuid> {
        self.keys.get(digest).copied()
    }

    /// An enabled MCP registry of this gateway, or why it cannot be called.
    pub fn mcp_server(&self, id: Uuid) -> Option<&Result<Arc<super::mcp::McpServer>, Arc<str>>> {
        self.mcp_servers.get(&id)
    }

    pub fn consumers(&self) -> impl Iterator<Item = &Arc<CompiledConsumer>> {
        self.consumers.values()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Compile a document; `secrets` opens the registries' sealed credentials.
    pub fn compile(
        doc: &GatewayDocument,
        secrets: Option<&SecretBox>,
    ) -> Result<Self, CompileError> {
        let names: HashMap<Uuid, Arc<str>> = doc
            .registries
            .iter()
            .map(|r| (r.id, Arc::from(r.spec.name.as_str())))
            .collect();
        let targets: HashMap<Uuid, Result<Arc<UpstreamTarget>, Arc<str>>> = doc
            .registries
            .iter()
            .filter(|r| r.spec.kind == RegistryKind::Llm)
            .map(|r| {
                let target = UpstreamTarget::compile(r, secrets)
                    .map(Arc::new)
                    .map_err(|reason| {
                        tracing::warn!(gateway = %doc.gateway.id, registry = %r.id, %reason,
                        "registry cannot be called; requests routed to it will fail");
                        Arc::from(reason.as_str())
                    });
                (r.id, target)
            })
            .collect();

        let mcp_servers = super::mcp::servers(doc, secrets);
        let mut keys = Map::with_capacity(doc.auths.len());
        for auth in doc.auths.iter().filter(|a| a.spec.enabled) {
            let Some(digest) = auth.key_hash.as_deref().and_then(apikey::parse_hex) else {
                continue;
            };
            if keys.insert(digest, auth.id).is_some() {
                return Err(CompileError::DuplicateKey);
            }
        }

        let bearer = doc
            .auths
            .iter()
            .filter(|a| a.spec.enabled)
            .filter_map(|a| BearerAuth::compile(a, secrets).map(|b| (a.id, Arc::new(b))))
            .collect();
        let compiled_policies = policies::compile(&doc.policies, &|id| {
            targets.get(&id).and_then(|t| t.as_ref().ok()).cloned()
        });
        let mut consumers = Map::with_capacity(doc.consumers.len());
        for c in &doc.consumers {
            let lb_config = c.spec.lb_config.clone().unwrap_or_default();
            // One registry as this consumer uses it: its target, weight (a balancing
            // member's weight wins over the link's) and model policy.
            let upstream = |registry_id: Uuid, link_weight: u8| {
                let policy = c
                    .spec
                    .model_policies
                    .iter()
                    .find(|p| p.registry_id == registry_id);
                let member_weight = lb_config
                    .members
                    .iter()
                    .find(|m| m.registry_id == registry_id && m.pool_alias.is_none())
                    .and_then(|m| m.weight);
                targets.get(&registry_id).map(|t| WeightedUpstream {
                    target: t.clone(),
                    weight: member_weight.unwrap_or(link_weight).max(1),
                    registry_name: names
                        .get(&registry_id)
                        .cloned()
                        .unwrap_or_else(|| Arc::from("")),
                    allowed: policy.map(|p| p.allowed.clone()).unwrap_or_default(),
                    default_model: policy.and_then(|p| p.default.clone()),
                })
            };
            let upstreams = c
                .registries
                .iter()
                .filter_map(|link| upstream(link.registry_id, link.weight))
                .collect();
            let mut pools: HashMap<String, Vec<WeightedUpstream>> = HashMap::new();
            for m in &lb_config.members {
                if let Some(alias) = &m.pool_alias
                    && let Some(mut u) = upstream(m.registry_id, m.weight.unwrap_or(1))
                {
                    u.weight = m.weight.unwrap_or(1).max(1);
                    pools.entry(alias.clone()).or_default().push(u);
                }
            }
            let lb = CompiledLb {
                algorithm: lb_config.algorithm,
                hash_header: lb_config
                    .hash_header
                    .as_deref()
                    .and_then(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok())
                    .unwrap_or(HeaderName::from_static("x-session-id")),
                embedding: lb_config.embedding_registry_id.and_then(|id| {
                    let target = targets.get(&id)?.as_ref().ok()?.clone();
                    let model = lb_config
                        .embedding_model
                        .clone()
                        .unwrap_or_else(|| "text-embedding-3-small".to_string());
                    Some((target, model))
                }),
                descriptions: lb_config
                    .members
                    .iter()
                    .filter_map(|m| Some((m.registry_id, m.description.clone()?)))
                    .collect(),
            };
            let fallback =
                c.spec
                    .fallback
                    .as_ref()
                    .filter(|f| f.enabled)
                    .map(|f| CompiledFallback {
                        triggers: f.triggers.clone(),
                        max_attempts: f.budget.max_attempts.unwrap_or(5),
                        max_total_latency: f
                            .budget
                            .max_total_latency_ms
                            .map(std::time::Duration::from_millis),
                        chain: f.chain.iter().filter_map(|id| upstream(*id, 1)).collect(),
                    });
            let headers = c
                .spec
                .headers
                .iter()
                .filter_map(|(name, value)| {
                    let Value::String(value) = value else {
                        return None;
                    };
                    Some((
                        HeaderName::from_bytes(name.as_bytes()).ok()?,
                        HeaderValue::from_str(value).ok()?,
                    ))
                })
                .collect();
            let compiled = CompiledConsumer {
                id: c.id,
                name: c.spec.name.clone(),
                slug: c.slug.clone(),
                active: c.spec.active,
                auth_ids: c.auth_ids.clone(),
                upstreams,
                pools,
                lb,
                fallback,
                policies: policies::chain(&compiled_policies, &doc.policies, &c.policy_ids),
                turn: AtomicUsize::new(0),
                headers,
                mcp: super::mcp::consumer_view(doc, c, &mcp_servers),
            };
            if consumers
                .insert(c.slug.clone(), Arc::new(compiled))
                .is_some()
            {
                return Err(CompileError::DuplicateConsumerSlug(c.slug.clone()));
            }
        }

        Ok(Self {
            id: doc.gateway.id,
            slug: doc.gateway.spec.slug.clone(),
            domain: doc.gateway.spec.domain.clone(),
            version: doc.version,
            active: doc.gateway.spec.status == GatewayStatus::Active,
            exporters: doc
                .gateway
                .spec
                .telemetry
                .iter()
                .flat_map(|t| t.exporters.iter().map(|e| e.name.clone()))
                .collect(),
            kafka_topic: doc.gateway.spec.telemetry.iter().find_map(|t| {
                t.exporters
                    .iter()
                    .find(|e| e.name == "kafka")?
                    .settings
                    .get("topic")?
                    .as_str()
                    .map(str::to_string)
            }),
            cors: compiled_policies
                .iter()
                .zip(&doc.policies)
                .filter(|(_, p)| p.global && p.spec.enabled)
                .find_map(|(c, _)| match &c.rule {
                    policies::PolicyRule::Cors(cors) => Some(cors.clone()),
                    _ => None,
                }),
            capture_bodies: doc
                .gateway
                .spec
                .telemetry
                .as_ref()
                .filter(|t| t.capture_bodies)
                .map(|t| t.body_capture_max_bytes.unwrap_or(4096).min(1024 * 1024)),
            consumers,
            keys,
            bearer,
            mcp_servers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SecretFields;
    use crate::snapshot::Snapshot;
    use serde_json::json;

    fn doc() -> GatewayDocument {
        let gw = Uuid::now_v7();
        let reg = Uuid::now_v7();
        let auth = Uuid::now_v7();
        let key_hash = apikey::hex(&apikey::digest("ag_test"));
        serde_json::from_value(json!({
            "version": 3,
            "gateway": {"id": gw, "slug": "acme", "domain": "llm.acme.test", "version": 3,
                        "created_at": "t", "updated_at": "t"},
            "registries": [
                {"id": reg, "gateway_id": gw, "name": "local", "provider": "openai_compatible",
                 "provider_options": {"base_url": "http://127.0.0.1:9000/v1/"},
                 "auth": {"type": "api_key", "api_key": "sk-up"},
                 "created_at": "t", "updated_at": "t"}
            ],
            "consumers": [
                {"id": Uuid::now_v7(), "gateway_id": gw, "slug": "app", "name": "App",
                 "registries": [{"registry_id": reg, "weight": 5}], "auth_ids": [auth],
                 "headers": {"x-team": "blue"}, "created_at": "t", "updated_at": "t"}
            ],
            "auths": [
                {"id": auth, "gateway_id": gw, "name": "k", "type": "api_key", "key_hash": key_hash,
                 "created_at": "t", "updated_at": "t"}
            ]
        }))
        .expect("document parses")
    }

    #[test]
    fn compiles_lookups_and_targets() {
        let gw = CompiledGateway::compile(&doc(), None).expect("compiles");
        let consumer = gw.consumer("app").expect("consumer by slug");
        let auth = gw.auth_for_key(&apikey::digest("ag_test")).expect("key");
        assert!(consumer.accepts(auth));
        assert!(gw.auth_for_key(&apikey::digest("ag_other")).is_none());
        let target = consumer.upstreams[0].target.as_ref().expect("target");
        assert_eq!(
            (target.host.as_str(), target.port, target.tls),
            ("127.0.0.1", 9000, false)
        );
        assert_eq!(target.base_path, "/v1");
        assert_eq!(target.authority, "127.0.0.1:9000");
        assert_eq!(consumer.upstreams[0].weight, 5);
        assert_eq!(consumer.headers.len(), 1);
    }

    #[test]
    fn host_lookup_uses_domain_then_base_domain() {
        let gw = Arc::new(CompiledGateway::compile(&doc(), None).expect("compiles"));
        let snap = Snapshot::new(1, [(gw.id, gw)].into(), Some("gw.example.com".into()));
        assert!(snap.gateway_by_host("llm.acme.test:8081").is_some());
        assert!(snap.gateway_by_host("LLM.ACME.TEST").is_some());
        assert!(snap.gateway_by_host("acme.gw.example.com").is_some());
        assert!(snap.gateway_by_host("other.gw.example.com").is_none());
        assert!(snap.gateway_by_host("acmegw.example.com").is_none());
    }

    #[test]
    fn contradictory_documents_are_rejected() {
        let mut d = doc();
        let mut twin = d.consumers[0].clone();
        twin.id = Uuid::now_v7();
        d.consumers.push(twin);
        assert!(matches!(
            CompiledGateway::compile(&d, None),
            Err(CompileError::DuplicateConsumerSlug(_))
        ));
    }

    #[test]
    fn sealed_credentials_are_opened_with_the_key_only() {
        let secrets = SecretBox::from_key(&[3; 32]);
        let mut d = doc();
        let auth = d.registries[0].spec.auth.take().expect("auth");
        d.registries[0].spec.auth = Some(auth.sealed(&secrets));
        let gw = CompiledGateway::compile(&d, Some(&secrets)).expect("compiles");
        let target = gw.consumer("app").expect("c").upstreams[0]
            .target
            .clone()
            .expect("target");
        let Some(crate::snapshot::UpstreamCredential::Header { value, .. }) = &target.credential
        else {
            panic!("header credential")
        };
        assert_eq!(value.to_str().expect("ascii"), "Bearer sk-up");
        let without = CompiledGateway::compile(&d, None).expect("compiles");
        assert!(
            without.consumer("app").expect("c").upstreams[0]
                .target
                .is_err()
        );
        let wrong = SecretBox::from_key(&[4; 32]);
        let other = CompiledGateway::compile(&d, Some(&wrong)).expect("compiles");
        assert!(
            other.consumer("app").expect("c").upstreams[0]
                .target
                .is_err()
        );
    }

    #[test]
    fn api_keys_go_in_the_header_each_provider_expects() {
        for (provider, header, value) in [
            ("anthropic", "x-api-key", "sk-up"),
            ("azure", "api-key", "sk-up"),
            ("openai_compatible", "authorization", "Bearer sk-up"),
        ] {
            let mut d = doc();
            d.registries[0].spec.provider =
                serde_json::from_value(json!(provider)).expect("provider");
            let gw = CompiledGateway::compile(&d, None).expect("compiles");
            let target = gw.consumer("app").expect("c").upstreams[0]
                .target
                .clone()
                .expect("target");
            let Some(crate::snapshot::UpstreamCredential::Header { name, value: v }) =
                &target.credential
            else {
                panic!("header credential")
            };
            assert_eq!(
                (name.as_str(), v.to_str().expect("ascii")),
                (header, value),
                "{provider}"
            );
        }
    }

    #[test]
    fn a_broken_registry_becomes_an_error_target() {
        let mut d = doc();
        d.registries[0].spec.provider_options =
            serde_json::from_value(json!({"base_url": "ftp://nowhere"})).expect("map");
        let gw = CompiledGateway::compile(&d, None).expect("compiles");
        assert!(
            gw.consumer("app").expect("consumer").upstreams[0]
                .target
                .is_err()
        );
    }
}
