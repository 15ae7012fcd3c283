//! Signing in to sluice's authorization server through the consumer's OpenID provider
//! instead of with an API key: an `oidc` auth attached to the consumer with a `login`
//! client shows as "Sign in with …" on the sign-in page. sluice then runs the OpenID
//! Connect authorization code flow (PKCE S256, `state`, `nonce`) with that provider,
//! verifies the ID token with the auth's own keys (issuer, signature, expiry, the
//! auth's audiences) and checks that it was issued to sluice's client and for this
//! sign-in (`aud`, `nonce`). The person is then the provider's subject: the code sluice
//! issues carries it, so `forwarded` servers and sluice-signed tokens see
//! `sub:{auth id}:{subject}`, as for a caller presenting that provider's own token.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_shared::snapshot::{BearerAuth, CompiledConsumer, CompiledGateway};
use uuid::Uuid;

use super::{AuthorizeParams, OAuth, OAuthError, gateway_of, grant_code, issuer, s256, secret};

/// How long a person may take at the provider.
const PENDING_TTL: Duration = Duration::from_secs(600);

/// A sign-in on its way through the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    params: AuthorizeParams,
    consumer_id: Uuid,
    auth_id: Uuid,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    token_endpoint: String,
}

/// The provider's endpoints: configured, else from its discovery document.
async fn endpoints(http: &reqwest::Client, auth: &BearerAuth) -> Result<(String, String), String> {
    let login = auth.login.as_ref().ok_or("no sign-in client")?;
    if let (Some(a), Some(t)) = (&login.authorization_url, &login.token_url) {
        return Ok((a.clone(), t.clone()));
    }
    let url = format!(
        "{}/.well-known/openid-configuration",
        auth.issuer.trim_end_matches('/')
    );
    let doc: Value = http
        .get(&url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .error_for_status()
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let field = |k: &str| doc[k].as_str().map(str::to_string);
    Ok((
        login
            .authorization_url
            .clone()
            .or(field("authorization_endpoint"))
            .ok_or("no authorization_endpoint")?,
        login
            .token_url
            .clone()
            .or(field("token_endpoint"))
            .ok_or("no token_endpoint")?,
    ))
}

/// The sign-in providers of a consumer: its OIDC auths with a `login` client.
pub fn providers(gateway: &CompiledGateway, consumer: &CompiledConsumer) -> Vec<Arc<BearerAuth>> {
    gateway
        .bearer_auths(&consumer.auth_ids)
        .filter(|a| a.login.is_some())
        .cloned()
        .collect()
}

/// Send the person to the provider `idp` names.
pub async fn start(
    oauth: &OAuth,
    headers: &HeaderMap,
    gateway: &CompiledGateway,
    consumer: &CompiledConsumer,
    p: &AuthorizeParams,
    idp: &str,
) -> Result<Response, OAuthError> {
    let auth = providers(gateway, consumer)
        .into_iter()
        .find(|a| a.id.to_string() == idp)
        .ok_or_else(|| OAuthError::bad("invalid_request", "no such sign-in provider"))?;
    let Some(login) = &auth.login else {
        return Err(OAuthError::bad(
            "invalid_request",
            "no such sign-in provider",
        ));
    };
    let (authorization, token_endpoint) = endpoints(&oauth.http, &auth).await.map_err(|e| {
        tracing::warn!(auth = %auth.id, error = %e, "the OpenID provider cannot be discovered");
        OAuthError::new(
            StatusCode::BAD_GATEWAY,
            "temporarily_unavailable",
            "the sign-in provider cannot be reached",
        )
    })?;
    let (state, nonce, verifier) = (secret(), secret(), secret());
    let redirect_uri = format!("{}/idp/callback", issuer(headers, &gateway.slug));
    let mut scopes: Vec<&str> = vec!["openid"];
    scopes.extend(
        login
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "openid"),
    );
    let mut to = url::Url::parse(&authorization)
        .map_err(|_| OAuthError::bad("invalid_request", "the provider's URL is not valid"))?;
    to.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &login.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &s256(&verifier))
        .append_pair("code_challenge_method", "S256");
    let pending = Pending {
        params: p.clone(),
        consumer_id: consumer.id,
        auth_id: auth.id,
        nonce,
        verifier,
        redirect_uri,
        token_endpoint,
    };
    oauth
        .store
        .put(&format!("idp:{state}"), &pending, PENDING_TTL)
        .await
        .map_err(OAuthError::server)?;
    Ok(Redirect::to(to.as_str()).into_response())
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Whether a JWT's `aud` (a string or a list) names `client_id`.
fn names(aud: &Value, client_id: &str) -> bool {
    match aud {
        Value::String(a) => a == client_id,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    }
}

/// `GET /oauth/{gateway}/idp/callback`: the provider's answer.
pub async fn callback(
    State(oauth): State<Arc<OAuth>>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Result<Response, OAuthError> {
    let gateway = gateway_of(&oauth, &gateway)?;
    let state = q
        .state
        .ok_or_else(|| OAuthError::bad("invalid_request", "state is missing"))?;
    let pending: Pending = oauth
        .store
        .take(&format!("idp:{state}"))
        .await
        .map_err(OAuthError::server)?
        .ok_or_else(|| OAuthError::bad("invalid_request", "this sign-in is unknown or used"))?;
    if let Some(error) = q.error {
        tracing::info!(%error, "the OpenID provider declined the sign-in");
        return Err(OAuthError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "the sign-in provider did not sign you in",
        ));
    }
    let code = q
        .code
        .ok_or_else(|| OAuthError::bad("invalid_request", "code is missing"))?;
    let consumer = gateway
        .consumers()
        .find(|c| c.id == pending.consumer_id && c.active)
        .cloned()
        .ok_or_else(|| OAuthError::bad("invalid_target", "the consumer is gone"))?;
    let auth = providers(&gateway, &consumer)
        .into_iter()
        .find(|a| a.id == pending.auth_id)
        .ok_or_else(|| OAuthError::bad("invalid_request", "the sign-in provider is gone"))?;
    let Some(login) = &auth.login else {
        return Err(OAuthError::bad(
            "invalid_request",
            "the sign-in provider is gone",
        ));
    };
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", pending.redirect_uri.as_str()),
        ("client_id", login.client_id.as_str()),
        ("code_verifier", pending.verifier.as_str()),
    ];
    if let Some(secret) = &login.client_secret {
        form.push(("client_secret", secret));
    }
    let unavailable = |e: String| {
        tracing::warn!(auth = %auth.id, error = %e, "the OpenID provider's token endpoint failed");
        OAuthError::new(
            StatusCode::BAD_GATEWAY,
            "temporarily_unavailable",
            "the sign-in provider did not answer as expected",
        )
    };
    let answer: Value = oauth
        .http
        .post(&pending.token_endpoint)
        .form(&form)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .error_for_status()
        .map_err(|e| unavailable(e.to_string()))?
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let id_token = answer["id_token"]
        .as_str()
        .ok_or_else(|| unavailable("no id_token in the answer".into()))?;
    let refused = |why: &str| {
        tracing::warn!(auth = %auth.id, why, "an ID token was refused");
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "access_denied",
            "the sign-in provider's answer could not be verified",
        )
    };
    let verified = oauth
        .verifier
        .verify(std::slice::from_ref(&auth), id_token)
        .await
        .map_err(|e| refused(&e.to_string()))?;
    if !names(&verified.claims["aud"], &login.client_id) {
        return Err(refused("its aud does not name sluice's client"));
    }
    if verified.claims["nonce"].as_str() != Some(pending.nonce.as_str()) {
        return Err(refused("its nonce is not this sign-in's"));
    }
    let subject = verified
        .subject
        .ok_or_else(|| refused("it names no subject"))?;
    tracing::info!(gateway = %gateway.slug, consumer = %consumer.slug, auth = %auth.id,
        "signed in through the OpenID provider");
    grant_code(
        &oauth,
        &headers,
        &gateway,
        &consumer,
        &pending.params,
        auth.id,
        Some(subject),
    )
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_audience_must_name_the_client() {
        assert!(names(&json!("sluice"), "sluice"));
        assert!(names(&json!(["x", "sluice"]), "sluice"));
        assert!(!names(&json!("other"), "sluice"));
        assert!(!names(&json!(null), "sluice"));
    }
}
