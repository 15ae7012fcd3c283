//! How sluice authenticates to an upstream provider: a static key, Azure, AWS, OAuth2
//! client credentials, or a GCP service account. Every variant names its secret fields
//! once ([`UpstreamAuth::secrets_mut`]); masking for responses, sealing for storage,
//! opening in a plane and keeping a stored secret when its masked form is echoed back
//! all work through that one list, so a new variant cannot forget a secret.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::secret_fields::SecretFields;
use super::validation::Problems;
use crate::secrets::is_sealed;

/// Where an API key goes on the upstream request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    #[default]
    Header,
    Query,
}

/// How sluice authenticates to the upstream. Unknown fields are refused here (serde
/// cannot report them from inside a tagged enum otherwise), so a misspelt credential
/// field is an error, not a silently ignored one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpstreamAuth {
    /// A static key. In a header (default `Authorization: Bearer <key>`; any other header
    /// carries the bare key) or in a query parameter.
    ApiKey {
        api_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        param_name: Option<String>,
        #[serde(default)]
        param_location: ApiKeyLocation,
    },
    /// Azure OpenAI: an API key, an Entra ID app (client id, secret, tenant), or the
    /// managed identity of the host.
    Azure {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String>,
        #[serde(default)]
        use_managed_identity: bool,
    },
    /// AWS SigV4 (Bedrock): static keys, optionally assuming a role.
    Aws {
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_key_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_access_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_arn: Option<String>,
    },
    /// OAuth2 client credentials against a token endpoint.
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
    /// A GCP service account key (Vertex AI), as its JSON document.
    GcpServiceAccount { json: String },
}

impl SecretFields for UpstreamAuth {
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        match self {
            Self::ApiKey { api_key, .. } => vec![api_key],
            Self::Azure {
                api_key,
                client_secret,
                ..
            } => [api_key.as_mut(), client_secret.as_mut()]
                .into_iter()
                .flatten()
                .collect(),
            Self::Aws {
                secret_access_key,
                session_token,
                ..
            } => [secret_access_key.as_mut(), session_token.as_mut()]
                .into_iter()
                .flatten()
                .collect(),
            Self::Oauth2 { client_secret, .. } => vec![client_secret],
            Self::GcpServiceAccount { json } => vec![json],
        }
    }

    fn same_shape(&self, stored: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(stored)
    }
}

impl UpstreamAuth {
    /// Check the fields of this auth, reporting under `auth.…`.
    pub fn validate(&self, p: &mut Problems) {
        let empty = |s: &str| s.trim().is_empty();
        match self {
            Self::ApiKey {
                api_key,
                header_name,
                param_name,
                param_location,
            } => {
                if empty(api_key) {
                    p.add("auth.api_key", "must not be empty");
                }
                if let Some(h) = header_name
                    && http::HeaderName::from_bytes(h.as_bytes()).is_err()
                {
                    p.add("auth.header_name", "must be a valid HTTP header name");
                }
                if *param_location == ApiKeyLocation::Query
                    && param_name.as_deref().is_none_or(empty)
                {
                    p.add(
                        "auth.param_name",
                        "is required when param_location is query",
                    );
                }
            }
            Self::Azure {
                api_key,
                client_id,
                client_secret,
                tenant_id,
                use_managed_identity,
                ..
            } => {
                let app = [client_id, client_secret, tenant_id]
                    .iter()
                    .filter(|f| f.is_some())
                    .count();
                let ways = usize::from(api_key.is_some())
                    + usize::from(app > 0)
                    + usize::from(*use_managed_identity);
                if ways != 1 {
                    p.add("auth", "azure needs exactly one of api_key, client_id+client_secret+tenant_id, use_managed_identity");
                } else if app > 0 && app < 3 {
                    p.add(
                        "auth",
                        "an Entra ID app needs client_id, client_secret and tenant_id",
                    );
                }
            }
            Self::Aws {
                region,
                access_key_id,
                secret_access_key,
                ..
            } => {
                if empty(region) {
                    p.add("auth.region", "must not be empty");
                }
                if access_key_id.is_some() != secret_access_key.is_some() {
                    p.add(
                        "auth.secret_access_key",
                        "access_key_id and secret_access_key go together",
                    );
                }
            }
            Self::Oauth2 {
                token_url,
                client_id,
                client_secret,
                ..
            } => {
                if !url::Url::parse(token_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
                {
                    p.add("auth.token_url", "must be an absolute http or https URL");
                }
                if empty(client_id) {
                    p.add("auth.client_id", "must not be empty");
                }
                if empty(client_secret) {
                    p.add("auth.client_secret", "must not be empty");
                }
            }
            Self::GcpServiceAccount { json } => {
                // A sealed document cannot be inspected; it was checked when it was written.
                if !is_sealed(json) {
                    let parsed: Option<serde_json::Value> = serde_json::from_str(json).ok();
                    let ok = parsed.as_ref().is_some_and(|v| {
                        v.get("type").and_then(|t| t.as_str()) == Some("service_account")
                            && v.get("private_key").is_some()
                            && v.get("client_email").is_some()
                    });
                    if !ok {
                        p.add(
                            "auth.json",
                            "must be a service account key (type, client_email, private_key)",
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::mask_secret;
    use crate::secrets::SecretBox;
    use serde_json::json;

    fn auth(v: serde_json::Value) -> UpstreamAuth {
        serde_json::from_value(v).expect("auth parses")
    }

    #[test]
    fn every_secret_is_masked_sealed_and_opened() {
        let sb = SecretBox::from_key(&[1; 32]);
        let all = [
            auth(json!({"type": "api_key", "api_key": "sk-live-1234567890abcdef"})),
            auth(
                json!({"type": "azure", "client_id": "c", "client_secret": "azure-secret-value", "tenant_id": "t"}),
            ),
            auth(
                json!({"type": "aws", "region": "us-east-1", "access_key_id": "AKIA", "secret_access_key": "aws-secret-value", "session_token": "aws-session-token"}),
            ),
            auth(
                json!({"type": "oauth2", "token_url": "https://id/token", "client_id": "c", "client_secret": "oauth-secret-value"}),
            ),
            auth(
                json!({"type": "gcp_service_account", "json": "{\"type\":\"service_account\",\"private_key\":\"pk\",\"client_email\":\"e\"}"}),
            ),
        ];
        for a in all {
            let text = serde_json::to_string(&a).expect("json");
            let masked = serde_json::to_string(&a.masked()).expect("json");
            let sealed = a.sealed(&sb);
            let sealed_text = serde_json::to_string(&sealed).expect("json");
            for secret in a.clone().secrets_mut() {
                // As it appears inside serialized JSON (the GCP document is escaped).
                let quoted = serde_json::to_string(secret.as_str()).expect("json");
                let secret = &quoted[1..quoted.len() - 1];
                assert!(text.contains(secret));
                assert!(!masked.contains(secret), "masked shows {secret}");
                assert!(!sealed_text.contains(secret), "sealed shows {secret}");
            }
            assert!(sealed.is_sealed());
            assert_eq!(sealed.opened(&sb).expect("opens"), a);
            let mut echoed = a.masked();
            echoed.keep_masked_secrets(&a);
            assert_eq!(echoed, a);
            let mut p = Problems::default();
            a.validate(&mut p);
            assert!(p.is_empty(), "{p:?}");
        }
        assert_eq!(mask_secret("abc"), "****");
    }

    #[test]
    fn invalid_auths_are_reported() {
        let cases = [
            json!({"type": "azure", "api_key": "k", "use_managed_identity": true}),
            json!({"type": "azure", "client_id": "c"}),
            json!({"type": "aws", "region": "", "access_key_id": "a"}),
            json!({"type": "oauth2", "token_url": "nope", "client_id": "", "client_secret": "s"}),
            json!({"type": "gcp_service_account", "json": "{}"}),
            json!({"type": "api_key", "api_key": "k", "param_location": "query"}),
        ];
        for case in cases {
            let mut p = Problems::default();
            auth(case.clone()).validate(&mut p);
            assert!(!p.is_empty(), "{case} must be refused");
        }
    }
}
