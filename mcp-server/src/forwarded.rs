//! The `forwarded` upstream auth mode: each user's own OAuth token at the MCP server
//! (GitHub, Linear, Notion, … act as the person, not as the gateway), obtained through
//! a consent flow that sluice runs as an OAuth client of the server's authorization
//! server, and kept sealed.
//!
//! 1. A call reaches a forwarded server for a user with no token. The agent gets the
//!    MCP "URL elicitation required" error (-32042) whose URL is
//!    `{mcp plane}/oauth/connect?ticket=…`. The ticket is sealed with the plane's
//!    secret key (AES-256-GCM): it names the gateway, consumer, registry and user and
//!    expires in 10 minutes, so it needs no store and any replica can take it.
//! 2. `GET /oauth/connect` finds the server's authorization server (the registry's
//!    `authorization_url` / `token_url`, else RFC 9728 protected-resource metadata and
//!    RFC 8414 server metadata), registers sluice as a client when the registry names
//!    no `client_id` (RFC 7591; kept per registry and callback URL), and redirects the
//!    user there with PKCE (S256), `state` and `resource` (RFC 8707).
//! 3. `GET /oauth/callback` exchanges the code and stores the tokens under the
//!    registry and the user, sealed, in the plane's store (Redis across replicas).
//! 4. Calls carry the user's access token; it is refreshed with the refresh token a
//!    minute before it expires. A refused refresh starts the consent flow again.
//!
//! Who "the user" is: the API key (auth) the agent signed in with, directly or through
//! sluice's authorization server, or a trusted issuer's subject. A user's token never
//! serves another user: sessions to the server are per token.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_shared::secrets::{SecretBox, is_sealed};
use sluice_shared::snapshot::mcp::{McpServer, McpUpstreamAuth};
use sluice_shared::sync::SnapshotHandle;
use uuid::Uuid;

use crate::oauth::{Store, escape, s256, secret};

/// How long a consent link works.
const TICKET_TTL: Duration = Duration::from_secs(600);
/// How long a started consent may take to come back.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// How long tokens are kept without a refresh token's own lifetime to go by.
const TOKENS_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// When a token that lives `lifetime` seconds from `now` is refreshed: a minute before
/// it expires, or halfway through when it lives less than two.
fn renew_at(now: u64, lifetime: u64) -> u64 {
    now + lifetime - lifetime.min(120) / 2
}

/// Who a consent is for and where it goes back to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ticket {
    gateway_id: Uuid,
    consumer_id: Uuid,
    registry_id: Uuid,
    user: String,
    /// Where the agent reached this plane: the callback is under it.
    base_url: String,
    /// Unix seconds.
    expires: u64,
}

/// A consent on its way through the server's authorization server.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    ticket: Ticket,
    verifier: String,
    redirect_uri: String,
    client: ClientRegistration,
    token_endpoint: String,
}

/// sluice as a client of an authorization server.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ClientRegistration {
    client_id: String,
    client_secret: Option<String>,
}

/// A user's tokens at one server, stored sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
    /// When to refresh, in Unix seconds; none when the server gave no lifetime.
    renew_at: Option<u64>,
    token_endpoint: String,
    client: ClientRegistration,
    resource: String,
}

/// The endpoints of a server's authorization server.
#[derive(Debug, Clone)]
struct Endpoints {
    authorization: String,
    token: String,
    registration: Option<String>,
}

/// Why a consent link cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ForwardedError {
    #[error("{0}")]
    Unusable(String),
}

/// The consent flow and the token store of forwarded servers.
pub struct Forwarded {
    store: Arc<Store>,
    secrets: Option<SecretBox>,
    http: reqwest::Client,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn tokens_key(registry: Uuid, user: &str) -> String {
    format!("forwarded:{registry}:{}", s256(user))
}

impl Forwarded {
    pub fn new(store: Arc<Store>, secrets: Option<SecretBox>) -> Self {
        Self {
            store,
            secrets,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }

    fn secrets(&self) -> Result<&SecretBox, ForwardedError> {
        self.secrets.as_ref().ok_or_else(|| {
            ForwardedError::Unusable(
                "forwarded tokens are sealed with SLUICE_SECRET_KEY, and this plane has none"
                    .into(),
            )
        })
    }

    /// The consent link for `user` at `server`.
    pub fn consent_url(
        &self,
        server: &McpServer,
        gateway_id: Uuid,
        consumer_id: Uuid,
        user: &str,
        base_url: &str,
    ) -> Result<String, ForwardedError> {
        let ticket = Ticket {
            gateway_id,
            consumer_id,
            registry_id: server.id,
            user: user.to_string(),
            base_url: base_url.to_string(),
            expires: now() + TICKET_TTL.as_secs(),
        };
        let text =
            serde_json::to_string(&ticket).map_err(|e| ForwardedError::Unusable(e.to_string()))?;
        let sealed = self.secrets()?.seal(&text);
        let mut url = url::Url::parse(&format!("{base_url}/oauth/connect"))
            .map_err(|e| ForwardedError::Unusable(e.to_string()))?;
        url.query_pairs_mut().append_pair("ticket", &sealed);
        Ok(url.into())
    }

    /// `user`'s access token at `server`, refreshed when near expiry; `None` when the
    /// user has not connected or the refresh was refused.
    pub async fn token(&self, server: &McpServer, user: &str) -> Result<Option<String>, String> {
        let key = tokens_key(server.id, user);
        let Some(sealed) = self.store.get::<String>(&key).await? else {
            return Ok(None);
        };
        let secrets = self
            .secrets
            .as_ref()
            .ok_or_else(|| "no SLUICE_SECRET_KEY".to_string())?;
        let tokens: Tokens = secrets
            .open(&sealed)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or_else(|| "stored tokens cannot be opened with this key".to_string())?;
        let fresh = tokens.renew_at.is_none_or(|at| now() < at);
        if fresh {
            return Ok(Some(tokens.access_token));
        }
        let Some(refresh) = &tokens.refresh_token else {
            return Ok(None);
        };
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", tokens.client.client_id.as_str()),
            ("resource", tokens.resource.as_str()),
        ];
        if let Some(secret) = &tokens.client.client_secret {
            form.push(("client_secret", secret));
        }
        match self.token_request(&tokens.token_endpoint, &form).await {
            Ok(answer) => {
                let renewed = Tokens {
                    refresh_token: answer.refresh_token.or(tokens.refresh_token.clone()),
                    access_token: answer.access_token,
                    renew_at: answer.expires_in.map(|s| renew_at(now(), s)),
                    ..tokens
                };
                self.save(server.id, user, &renewed).await?;
                tracing::info!(registry = %server.id, "forwarded token refreshed");
                Ok(Some(renewed.access_token))
            }
            Err(error) => {
                tracing::info!(registry = %server.id, %error, "forwarded token refresh refused; consent again");
                let _ = self.store.take::<String>(&key).await;
                Ok(None)
            }
        }
    }

    async fn save(&self, registry: Uuid, user: &str, tokens: &Tokens) -> Result<(), String> {
        let secrets = self
            .secrets
            .as_ref()
            .ok_or_else(|| "no SLUICE_SECRET_KEY".to_string())?;
        let text = serde_json::to_string(tokens).map_err(|e| e.to_string())?;
        self.store
            .put(
                &tokens_key(registry, user),
                &secrets.seal(&text),
                TOKENS_TTL,
            )
            .await
    }

    async fn token_request(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenAnswer, String> {
        let response = self
            .http
            .post(endpoint)
            .header(header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "status {status}: {}",
                body["error"].as_str().unwrap_or("no error code")
            ));
        }
        serde_json::from_value(body).map_err(|e| format!("not a token answer: {e}"))
    }

    async fn json(&self, url: &str) -> Option<Value> {
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// The server's authorization server: configured, or discovered from the server.
    async fn endpoints(&self, server: &McpServer) -> Result<Endpoints, String> {
        let McpUpstreamAuth::Forwarded(config) = &server.auth else {
            return Err("the registry is not a forwarded one".into());
        };
        if let (Some(authorization), Some(token)) = (&config.authorization_url, &config.token_url) {
            return Ok(Endpoints {
                authorization: authorization.clone(),
                token: token.clone(),
                registration: None,
            });
        }
        let resource = url::Url::parse(&server.url).map_err(|e| e.to_string())?;
        let origin = resource.origin().ascii_serialization();
        let path = resource.path().trim_end_matches('/');
        // RFC 9728: the resource's metadata names its authorization server.
        let mut issuer = None;
        for candidate in [
            format!("{origin}/.well-known/oauth-protected-resource{path}"),
            format!("{origin}/.well-known/oauth-protected-resource"),
        ] {
            if let Some(meta) = self.json(&candidate).await
                && let Some(first) = meta["authorization_servers"][0].as_str()
            {
                issuer = Some(first.to_string());
                break;
            }
        }
        let issuer = issuer.unwrap_or(origin);
        let issuer_url = url::Url::parse(&issuer).map_err(|e| e.to_string())?;
        let issuer_origin = issuer_url.origin().ascii_serialization();
        let issuer_path = issuer_url.path().trim_end_matches('/');
        // RFC 8414, then OpenID Connect discovery.
        for candidate in [
            format!("{issuer_origin}/.well-known/oauth-authorization-server{issuer_path}"),
            format!("{issuer_origin}/.well-known/openid-configuration{issuer_path}"),
            format!("{issuer_origin}{issuer_path}/.well-known/openid-configuration"),
        ] {
            if let Some(meta) = self.json(&candidate).await
                && let (Some(a), Some(t)) = (
                    meta["authorization_endpoint"].as_str(),
                    meta["token_endpoint"].as_str(),
                )
            {
                return Ok(Endpoints {
                    authorization: config.authorization_url.clone().unwrap_or(a.to_string()),
                    token: config.token_url.clone().unwrap_or(t.to_string()),
                    registration: meta["registration_endpoint"].as_str().map(str::to_string),
                });
            }
        }
        Err(format!(
            "no authorization server metadata found for {issuer}"
        ))
    }

    /// sluice's client at the authorization server: configured, registered before
    /// (for this callback), or registered now.
    async fn client(
        &self,
        server: &McpServer,
        endpoints: &Endpoints,
        redirect_uri: &str,
    ) -> Result<ClientRegistration, String> {
        let McpUpstreamAuth::Forwarded(config) = &server.auth else {
            return Err("the registry is not a forwarded one".into());
        };
        if let Some(id) = &config.client_id {
            return Ok(ClientRegistration {
                client_id: id.clone(),
                client_secret: config.client_secret.clone(),
            });
        }
        let key = format!(
            "forwarded-client:{}:{}",
            server.id,
            s256(&format!("{}|{redirect_uri}", endpoints.token))
        );
        if let Some(known) = self.store.get::<ClientRegistration>(&key).await? {
            return Ok(known);
        }
        let registration = endpoints.registration.as_deref().ok_or(
            "the authorization server has no registration endpoint: set client_id on the registry",
        )?;
        let mut body = serde_json::json!({
            "client_name": "sluice gateway",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        });
        if let Some(scope) = &config.scope {
            body["scope"] = Value::from(scope.as_str());
        }
        let response = self
            .http
            .post(registration)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "client registration answered {}",
                response.status()
            ));
        }
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        let client = ClientRegistration {
            client_id: answer["client_id"]
                .as_str()
                .ok_or("client registration returned no client_id")?
                .to_string(),
            client_secret: answer["client_secret"].as_str().map(str::to_string),
        };
        self.store
            .put(&key, &client, Duration::from_secs(365 * 24 * 3600))
            .await?;
        Ok(client)
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

// === the consent endpoints ===

#[derive(Clone)]
struct Flow {
    forwarded: Arc<Forwarded>,
    snapshots: SnapshotHandle,
}

/// `GET /oauth/connect` and `GET /oauth/callback`.
pub fn routes(forwarded: Arc<Forwarded>, snapshots: SnapshotHandle) -> Router {
    Router::new()
        .route("/oauth/connect", get(connect))
        .route("/oauth/callback", get(callback))
        .with_state(Flow {
            forwarded,
            snapshots,
        })
}

/// A page for the person in the browser; the details are in the log.
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sluice: {}</title></head>\
         <body><h1>{}</h1><p>{}</p></body></html>",
        escape(title),
        escape(title),
        escape(text)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

#[derive(Deserialize)]
struct ConnectQuery {
    ticket: Option<String>,
}

/// The server a ticket names, if the consumer still reaches it.
fn server_of(snapshots: &SnapshotHandle, ticket: &Ticket) -> Option<Arc<McpServer>> {
    let snapshot = snapshots.load();
    let gateway = snapshot.gateways().get(&ticket.gateway_id)?;
    let consumer = gateway
        .consumers()
        .find(|c| c.id == ticket.consumer_id)
        .filter(|c| c.active)?;
    consumer
        .mcp
        .as_ref()?
        .servers
        .iter()
        .filter_map(|reach| reach.server.as_ref().ok())
        .find(|s| s.id == ticket.registry_id)
        .cloned()
}

async fn connect(State(flow): State<Flow>, Query(q): Query<ConnectQuery>) -> Response {
    let invalid = || {
        page(
            StatusCode::BAD_REQUEST,
            "This link does not work",
            "It is malformed or expired. Ask your agent for a new one.",
        )
    };
    // Only a sealed ticket is taken: an unsealed one would be the caller's own words.
    let Some(sealed) = q.ticket.filter(|t| is_sealed(t)) else {
        return invalid();
    };
    let Ok(secrets) = flow.forwarded.secrets() else {
        return invalid();
    };
    let Some(ticket) = secrets
        .open(&sealed)
        .ok()
        .and_then(|t| serde_json::from_str::<Ticket>(&t).ok())
        .filter(|t| t.expires > now())
    else {
        return invalid();
    };
    let Some(server) = server_of(&flow.snapshots, &ticket) else {
        return page(
            StatusCode::NOT_FOUND,
            "Not available",
            "This MCP server is no longer available to you.",
        );
    };
    let redirect_uri = format!("{}/oauth/callback", ticket.base_url);
    let started = async {
        let endpoints = flow.forwarded.endpoints(&server).await?;
        let client = flow
            .forwarded
            .client(&server, &endpoints, &redirect_uri)
            .await?;
        let state = secret();
        let verifier = secret();
        let mut to = url::Url::parse(&endpoints.authorization).map_err(|e| e.to_string())?;
        {
            let mut q = to.query_pairs_mut();
            q.append_pair("response_type", "code");
            q.append_pair("client_id", &client.client_id);
            q.append_pair("redirect_uri", &redirect_uri);
            q.append_pair("code_challenge", &s256(&verifier));
            q.append_pair("code_challenge_method", "S256");
            q.append_pair("state", &state);
            q.append_pair("resource", &server.url);
            if let McpUpstreamAuth::Forwarded(config) = &server.auth
                && let Some(scope) = &config.scope
            {
                q.append_pair("scope", scope);
            }
        }
        let pending = Pending {
            ticket: ticket.clone(),
            verifier,
            redirect_uri: redirect_uri.clone(),
            client,
            token_endpoint: endpoints.token,
        };
        flow.forwarded
            .store
            .put(&format!("forwarded-state:{state}"), &pending, PENDING_TTL)
            .await?;
        Ok::<_, String>(to)
    };
    match started.await {
        Ok(to) => {
            tracing::info!(registry = %server.id, "forwarded consent started");
            Redirect::to(to.as_str()).into_response()
        }
        Err(error) => {
            tracing::warn!(registry = %server.id, %error, "forwarded consent cannot start");
            page(
                StatusCode::BAD_GATEWAY,
                "Cannot connect now",
                &format!(
                    "The authorization server of {} cannot be used.",
                    server.name
                ),
            )
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(State(flow): State<Flow>, Query(q): Query<CallbackQuery>) -> Response {
    let Some(state) = q.state else {
        return page(
            StatusCode::BAD_REQUEST,
            "Missing state",
            "Start again from your agent.",
        );
    };
    let pending: Option<Pending> = flow
        .forwarded
        .store
        .take(&format!("forwarded-state:{state}"))
        .await
        .unwrap_or_default();
    let Some(pending) = pending else {
        return page(
            StatusCode::BAD_REQUEST,
            "This consent is unknown or used",
            "Start again from your agent.",
        );
    };
    if let Some(error) = q.error {
        tracing::info!(registry = %pending.ticket.registry_id, %error, "forwarded consent declined");
        return page(
            StatusCode::FORBIDDEN,
            "Not connected",
            "The authorization server did not grant access.",
        );
    }
    let Some(code) = q.code else {
        return page(
            StatusCode::BAD_REQUEST,
            "Missing code",
            "Start again from your agent.",
        );
    };
    let Some(server) = server_of(&flow.snapshots, &pending.ticket) else {
        return page(
            StatusCode::NOT_FOUND,
            "Not available",
            "This MCP server is no longer available to you.",
        );
    };
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", pending.redirect_uri.as_str()),
        ("code_verifier", pending.verifier.as_str()),
        ("client_id", pending.client.client_id.as_str()),
        ("resource", server.url.as_str()),
    ];
    if let Some(secret) = &pending.client.client_secret {
        form.push(("client_secret", secret));
    }
    let answer = match flow
        .forwarded
        .token_request(&pending.token_endpoint, &form)
        .await
    {
        Ok(a) => a,
        Err(error) => {
            tracing::warn!(registry = %server.id, %error, "forwarded code exchange failed");
            return page(
                StatusCode::BAD_GATEWAY,
                "Not connected",
                "The authorization server refused the code.",
            );
        }
    };
    let tokens = Tokens {
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
        renew_at: answer.expires_in.map(|s| renew_at(now(), s)),
        token_endpoint: pending.token_endpoint,
        client: pending.client,
        resource: server.url.clone(),
    };
    if let Err(error) = flow
        .forwarded
        .save(server.id, &pending.ticket.user, &tokens)
        .await
    {
        tracing::warn!(registry = %server.id, %error, "forwarded tokens cannot be stored");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not connected",
            "The tokens cannot be stored now; try again.",
        );
    }
    tracing::info!(registry = %server.id, "forwarded account connected");
    page(
        StatusCode::OK,
        "Connected",
        &format!(
            "Your account at {} is connected. You can return to your agent.",
            server.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_a_minute_early_or_halfway() {
        assert_eq!(renew_at(1000, 3600), 1000 + 3540);
        assert_eq!(renew_at(1000, 4), 1002);
        assert_eq!(renew_at(1000, 0), 1000);
    }

    #[test]
    fn tokens_are_keyed_by_registry_and_a_digest_of_the_user() {
        let id = Uuid::nil();
        let key = tokens_key(id, "key:abc");
        assert!(key.starts_with("forwarded:00000000-0000-0000-0000-000000000000:"));
        assert!(!key.contains("key:abc"));
        assert_ne!(key, tokens_key(id, "key:abd"));
    }
}
