//! An auth: a credential a consumer presents to the proxy. API keys are minted by sluice
//! and only their SHA-256 digest is stored ([`crate::apikey`]); `key_prefix` and
//! `key_suffix` let an operator recognise a key without being able to use it. OAuth2,
//! OIDC and mTLS auths carry how to verify a token or a client certificate.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::secret_fields::SecretFields;
use super::validation::Problems;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    #[default]
    ApiKey,
    Oauth2,
    Oidc,
    Mtls,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Oauth2 => "oauth2",
            Self::Oidc => "oidc",
            Self::Mtls => "mtls",
        }
    }
}

/// Verifying OAuth2 bearer tokens: JWTs against a JWKS, or opaque tokens by introspection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OAuth2Config {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_url: Option<String>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default)]
    pub allowed_algorithms: Vec<String>,
}

/// Verifying OIDC ID tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OidcConfig {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// PEM public keys, instead of a JWKS.
    #[serde(default)]
    pub public_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_claim: Option<String>,
    /// Lets people sign in to sluice's MCP authorization server with this IdP
    /// (OpenID Connect authorization code flow) instead of an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<OidcLogin>,
}

/// sluice as a client of an OpenID provider, for signing people in.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcLogin {
    pub client_id: String,
    /// Sealed at rest, masked in answers; none for a public client (PKCE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Default `["openid"]`; `openid` is always asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Default: from the issuer's `/.well-known/openid-configuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
}

/// Verifying client certificates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MtlsConfig {
    /// PEM CA bundle the client certificate must chain to.
    pub ca_cert: String,
    #[serde(default)]
    pub allowed_common_names: Vec<String>,
    #[serde(default)]
    pub allowed_dns_names: Vec<String>,
    /// SHA-256 fingerprints (hex) of allowed certificates.
    #[serde(default)]
    pub allowed_fingerprints: Vec<String>,
}

/// The fields an operator writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthSpec {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: AuthKind,
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Config>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsConfig>,
}

fn enabled() -> bool {
    true
}

fn check_url(p: &mut Problems, field: &str, url: Option<&str>) {
    if let Some(url) = url
        && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        p.add(field, "must be an absolute http or https URL");
    }
}

impl std::fmt::Debug for OidcLogin {
    /// Never the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLogin")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "****"),
            )
            .field("scopes", &self.scopes)
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .finish()
    }
}

impl SecretFields for AuthSpec {
    /// The OIDC sign-in client's secret.
    fn secrets_mut(&mut self) -> Vec<&mut String> {
        self.oidc
            .iter_mut()
            .filter_map(|c| c.login.as_mut())
            .filter_map(|l| l.client_secret.as_mut())
            .collect()
    }

    fn same_shape(&self, stored: &Self) -> bool {
        let (mut a, mut b) = (self.clone(), stored.clone());
        a.secrets_mut().len() == b.secrets_mut().len()
    }
}

impl AuthSpec {
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        p.require_text("name", &self.name, 200);
        let configs = [
            ("oauth2", self.oauth2.is_some(), AuthKind::Oauth2),
            ("oidc", self.oidc.is_some(), AuthKind::Oidc),
            ("mtls", self.mtls.is_some(), AuthKind::Mtls),
        ];
        for (field, present, kind) in configs {
            if present && self.kind != kind {
                p.add(field, format!("only goes with type {field}"));
            }
            if !present && self.kind == kind {
                p.add(field, format!("is required for type {field}"));
            }
        }
        if let Some(c) = &self.oauth2 {
            check_url(&mut p, "oauth2.issuer", Some(&c.issuer));
            check_url(&mut p, "oauth2.jwks_url", c.jwks_url.as_deref());
            check_url(
                &mut p,
                "oauth2.introspection_url",
                c.introspection_url.as_deref(),
            );
            if c.jwks_url.is_none() && c.introspection_url.is_none() {
                p.add("oauth2", "needs jwks_url or introspection_url");
            }
            const ALGS: [&str; 9] = [
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
            ];
            for (i, alg) in c.allowed_algorithms.iter().enumerate() {
                if !ALGS.contains(&alg.as_str()) {
                    p.add(
                        format!("oauth2.allowed_algorithms[{i}]"),
                        format!("must be one of {}", ALGS.join(", ")),
                    );
                }
            }
        }
        if let Some(c) = &self.oidc {
            check_url(&mut p, "oidc.issuer", Some(&c.issuer));
            check_url(&mut p, "oidc.jwks_url", c.jwks_url.as_deref());
            if c.jwks_url.is_none() && c.public_keys.is_empty() {
                p.add("oidc", "needs jwks_url or public_keys");
            }
            for (i, key) in c.public_keys.iter().enumerate() {
                if !key.contains("-----BEGIN") {
                    p.add(format!("oidc.public_keys[{i}]"), "must be a PEM public key");
                }
            }
            if let Some(login) = &c.login {
                p.require_text("oidc.login.client_id", &login.client_id, 500);
                check_url(
                    &mut p,
                    "oidc.login.authorization_url",
                    login.authorization_url.as_deref(),
                );
                check_url(&mut p, "oidc.login.token_url", login.token_url.as_deref());
            }
        }
        if let Some(c) = &self.mtls {
            if !c.ca_cert.contains("-----BEGIN CERTIFICATE-----") {
                p.add("mtls.ca_cert", "must be a PEM certificate bundle");
            }
            for (i, fp) in c.allowed_fingerprints.iter().enumerate() {
                let hex = fp.replace(':', "");
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    p.add(
                        format!("mtls.allowed_fingerprints[{i}]"),
                        "must be a SHA-256 fingerprint in hex",
                    );
                }
            }
        }
        p.into_result()
    }
}

/// A stored auth. `key_hash` travels to the proxy in the config document and is never
/// part of an API response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Auth {
    pub id: Uuid,
    pub gateway_id: Uuid,
    #[serde(flatten)]
    pub spec: AuthSpec,
    /// Never shown by the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub key_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_suffix: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}
