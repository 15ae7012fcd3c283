//! Bearer tokens for consumers whose auths are OAuth2 or OIDC: a JWT is verified
//! against its issuer's keys (a JWKS fetched and cached, or PEM keys from the auth),
//! an opaque token by the issuer's introspection endpoint. The verified claims are
//! the caller's identity for the rest of the request (`prompt_template` reads them).
//!
//! Only asymmetric algorithms are accepted: a gateway holds no shared secret, and
//! accepting `HS256` with a public key as the secret is the classic JWT downgrade.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::snapshot::BearerAuth;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tracing::debug;
use uuid::Uuid;

/// How long a fetched JWKS is used before it is fetched again.
const JWKS_TTL: Duration = Duration::from_secs(300);
/// The soonest a JWKS is fetched again for an unknown `kid` (key rotation), so a
/// stream of forged `kid`s cannot turn the proxy into a JWKS hammer.
const JWKS_REFRESH: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Who a verified token says the caller is.
#[derive(Debug, Clone)]
pub struct Caller {
    pub auth_id: Uuid,
    pub subject: Option<String>,
    pub claims: Value,
}

#[derive(Default)]
pub struct Verifier {
    http: reqwest::Client,
    jwks: Mutex<HashMap<String, (Instant, Arc<JwkSet>)>>,
}

/// Why a bearer token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// The consumer has no OAuth2 or OIDC auth to verify a token with.
    #[error("the consumer accepts no bearer tokens")]
    NotAccepted,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token lacks a required scope")]
    InsufficientScope,
    /// The issuer's keys or introspection endpoint could not be reached.
    #[error("the token cannot be verified now")]
    Unavailable,
}

fn invalid(reason: &str) -> BearerError {
    BearerError::Invalid(reason.to_string())
}

const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The issuer a JWT claims, read before verification only to pick the auth.
fn claimed_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

/// Whether the claims grant every required scope (`scope` as a space-separated
/// string, or `scp` as a list or string).
fn has_scopes(claims: &Value, required: &[String]) -> bool {
    let mut granted: Vec<&str> = Vec::new();
    for key in ["scope", "scp"] {
        match claims.get(key) {
            Some(Value::String(s)) => granted.extend(s.split_whitespace()),
            Some(Value::Array(a)) => granted.extend(a.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    required.iter().all(|r| granted.contains(&r.as_str()))
}

fn audience_ok(claims: &Value, audiences: &[String]) -> bool {
    if audiences.is_empty() {
        return true;
    }
    match claims.get("aud") {
        Some(Value::String(a)) => audiences.contains(a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| audiences.iter().any(|x| x == a)),
        _ => false,
    }
}

fn caller(auth: &BearerAuth, claims: Value) -> Result<Caller, BearerError> {
    if !has_scopes(&claims, &auth.required_scopes) {
        return Err(BearerError::InsufficientScope);
    }
    Ok(Caller {
        auth_id: auth.id,
        subject: claims
            .get(&auth.subject_claim)
            .and_then(Value::as_str)
            .map(str::to_string),
        claims,
    })
}

impl Verifier {
    /// Verify `token` against the consumer's bearer auths.
    pub async fn verify(
        &self,
        auths: &[Arc<BearerAuth>],
        token: &str,
    ) -> Result<Caller, BearerError> {
        if auths.is_empty() {
            return Err(BearerError::NotAccepted);
        }
        match jsonwebtoken::decode_header(token) {
            Ok(header) => {
                let issuer =
                    claimed_issuer(token).ok_or_else(|| invalid("the token has no issuer"))?;
                let auth = auths
                    .iter()
                    .find(|a| a.issuer == issuer)
                    .ok_or_else(|| invalid("the token's issuer is not accepted here"))?;
                let allowed = ASYMMETRIC.contains(&header.alg)
                    && (auth.algorithms.is_empty()
                        || auth
                            .algorithms
                            .iter()
                            .any(|a| a.parse::<Algorithm>().is_ok_and(|a| a == header.alg)));
                if !allowed {
                    return Err(invalid("the token's algorithm is not accepted"));
                }
                let mut validation = Validation::new(header.alg);
                validation.set_issuer(&[&auth.issuer]);
                if auth.audiences.is_empty() {
                    validation.validate_aud = false;
                } else {
                    validation.set_audience(&auth.audiences);
                }
                validation.set_required_spec_claims(&["exp", "iss"]);
                let keys = self.keys(auth, header.alg, header.kid.as_deref()).await?;
                let mut last = invalid("no key verifies the token");
                for key in keys {
                    match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                        Ok(data) => return caller(auth, data.claims),
                        Err(e) => {
                            debug!(error = %e, "token rejected");
                            last = invalid(&e.to_string());
                        }
                    }
                }
                Err(last)
            }
            Err(_) => {
                // Not a JWT: an opaque token, for an auth that can introspect.
                for auth in auths {
                    if let Some(url) = &auth.introspection_url {
                        return self.introspect(auth, url, token).await;
                    }
                }
                Err(invalid(
                    "the token is not a JWT and no auth can introspect it",
                ))
            }
        }
    }

    /// The keys that may have signed a token.
    async fn keys(
        &self,
        auth: &BearerAuth,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<DecodingKey>, BearerError> {
        let mut keys: Vec<DecodingKey> = auth
            .public_keys
            .iter()
            .filter_map(|pem| {
                let pem = pem.as_bytes();
                match alg {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem).ok(),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(pem).ok(),
                    _ => DecodingKey::from_rsa_pem(pem).ok(),
                }
            })
            .collect();
        if let Some(url) = &auth.jwks_url {
            let mut set = self.jwks(url, false).await?;
            if kid.is_some_and(|k| set.find(k).is_none()) {
                // A key the cached set does not know: the issuer may have rotated.
                set = self.jwks(url, true).await?;
            }
            let found: Vec<DecodingKey> = match kid {
                Some(k) => set
                    .find(k)
                    .into_iter()
                    .filter_map(|j| DecodingKey::from_jwk(j).ok())
                    .collect(),
                None => set
                    .keys
                    .iter()
                    .filter_map(|j| DecodingKey::from_jwk(j).ok())
                    .collect(),
            };
            keys.extend(found);
        }
        Ok(keys)
    }

    async fn jwks(&self, url: &str, refresh: bool) -> Result<Arc<JwkSet>, BearerError> {
        let cached = self.jwks.lock().ok().and_then(|c| c.get(url).cloned());
        if let Some((at, set)) = &cached {
            let age = at.elapsed();
            if age < JWKS_TTL && !(refresh && age >= JWKS_REFRESH) {
                return Ok(set.clone());
            }
        }
        let fetched = async {
            let resp = self
                .http
                .get(url)
                .timeout(FETCH_TIMEOUT)
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?;
            resp.json::<JwkSet>().await.ok()
        }
        .await;
        match fetched {
            Some(set) => {
                let set = Arc::new(set);
                if let Ok(mut c) = self.jwks.lock() {
                    c.insert(url.to_string(), (Instant::now(), set.clone()));
                }
                Ok(set)
            }
            // The issuer is unreachable: the last good set still verifies.
            None => cached.map(|(_, s)| s).ok_or(BearerError::Unavailable),
        }
    }

    async fn introspect(
        &self,
        auth: &BearerAuth,
        url: &str,
        token: &str,
    ) -> Result<Caller, BearerError> {
        let resp = self
            .http
            .post(url)
            .timeout(FETCH_TIMEOUT)
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|_| BearerError::Unavailable)?;
        if !resp.status().is_success() {
            return Err(BearerError::Unavailable);
        }
        let claims: Value = resp.json().await.map_err(|_| BearerError::Unavailable)?;
        if claims.get("active").and_then(Value::as_bool) != Some(true) {
            return Err(invalid("the token is not active"));
        }
        if claims
            .get("iss")
            .and_then(Value::as_str)
            .is_some_and(|iss| iss != auth.issuer)
        {
            return Err(invalid("the token's issuer is not accepted here"));
        }
        if !audience_ok(&claims, &auth.audiences) {
            return Err(invalid("the token is not for this audience"));
        }
        caller(auth, claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_and_audiences() {
        let claims = json!({"scope": "read write", "aud": ["a", "b"]});
        assert!(has_scopes(&claims, &["read".into()]));
        assert!(!has_scopes(&claims, &["admin".into()]));
        assert!(has_scopes(&json!({"scp": ["x"]}), &["x".into()]));
        assert!(audience_ok(&claims, &["b".into()]));
        assert!(!audience_ok(&claims, &["c".into()]));
        assert!(audience_ok(&json!({}), &[]));
    }
}
