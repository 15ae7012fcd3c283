//! sluice's own OAuth 2.1 authorization server for the MCP endpoint, as the MCP
//! authorization specification asks of a server:
//!
//! - `GET /.well-known/oauth-protected-resource/{consumer}/mcp?gateway={slug}` (RFC
//!   9728) names this server as the endpoint's authorization server; a `401` from the
//!   endpoint points there in `WWW-Authenticate: Bearer resource_metadata=…`.
//! - Each gateway is an issuer of its own, `{base}/oauth/{gateway_slug}`, so the OAuth
//!   requests of a client (which carry none of its MCP headers) still name their
//!   gateway: metadata at `/.well-known/oauth-authorization-server/oauth/{slug}` (RFC
//!   8414), and under it:
//! - `POST …/register`: dynamic client registration (RFC 7591). Public clients get no
//!   secret; clients that ask for `client_secret_post` or `client_secret_basic` get one.
//! - `GET|POST …/authorize`: the authorization code grant with PKCE (S256 only). The
//!   user signs in with one of the API keys of the consumer that `resource` (RFC 8707)
//!   names, so a token is worth exactly what that key is worth, or through one of the
//!   consumer's OpenID providers ([`idp`], `…/idp/callback`).
//! - `POST …/token`: the code for tokens, and refresh with rotation (a refresh token
//!   is used once).
//!
//! Tokens are opaque and short-lived (access: an hour; refresh: 30 days), kept in the
//! plane's store (Redis across replicas) under their SHA-256, bound to the gateway,
//! the consumer and the resource.

mod idp;
mod page;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_shared::apikey;
use sluice_shared::bearer::Verifier;
use sluice_shared::bus::RedisCache;
use sluice_shared::snapshot::{CompiledConsumer, CompiledGateway};
use sluice_shared::sync::SnapshotHandle;
use uuid::Uuid;

pub use page::escape;
use page::form;
pub use store::{Store, s256, secret};

use crate::access;

const ACCESS_TTL: Duration = Duration::from_secs(3600);
const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const CODE_TTL: Duration = Duration::from_secs(120);
/// Registered clients are kept for a year after registration.
const CLIENT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
pub const SCOPE: &str = "mcp";

/// The authorization server's state.
pub struct OAuth {
    pub snapshots: SnapshotHandle,
    pub store: Arc<Store>,
    /// Verifies the ID tokens of the OpenID providers people sign in with.
    pub verifier: Arc<Verifier>,
    http: reqwest::Client,
}

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Client {
    gateway_id: Uuid,
    redirect_uris: Vec<String>,
    secret_hash: Option<String>,
    client_name: Option<String>,
}

/// What a code or token grants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    pub gateway_id: Uuid,
    pub consumer_id: Uuid,
    pub resource: String,
    /// The auth the user signed in with: an API key, or an OpenID provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_id: Option<Uuid>,
    /// The provider's subject, when the user signed in through one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Codes only: where the code was sent and the PKCE challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code_challenge: Option<String>,
}

/// `{scheme}://{host}` as the caller reached this plane.
pub fn base_url(headers: &HeaderMap) -> String {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let proto = text("x-forwarded-proto").unwrap_or("http");
    let host = text("x-forwarded-host")
        .or_else(|| text(header::HOST.as_str()))
        .unwrap_or("localhost");
    format!("{proto}://{host}")
}

/// Where the metadata of `/{consumer}/mcp` of `gateway` is.
pub fn resource_metadata_url(headers: &HeaderMap, gateway: &str, consumer: &str) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/{consumer}/mcp?gateway={gateway}",
        base_url(headers)
    )
}

/// The issuer of a gateway.
fn issuer(headers: &HeaderMap, gateway: &str) -> String {
    format!("{}/oauth/{gateway}", base_url(headers))
}

impl OAuth {
    pub fn new(
        snapshots: SnapshotHandle,
        redis: Option<RedisCache>,
        verifier: Arc<Verifier>,
    ) -> Self {
        Self {
            snapshots,
            store: Arc::new(Store::new(redis)),
            verifier,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The grant behind an access token presented to the MCP endpoint.
    pub async fn access(&self, token: &str) -> Option<Grant> {
        match self.store.get(&format!("access:{}", s256(token))).await {
            Ok(grant) => grant,
            Err(error) => {
                tracing::warn!(%error, "the token store cannot be read");
                None
            }
        }
    }

    async fn issue(&self, grant: &Grant) -> Result<Value, OAuthError> {
        let access = secret();
        let refresh = secret();
        let mut stored = grant.clone();
        stored.redirect_uri = None;
        stored.code_challenge = None;
        self.store
            .put(&format!("access:{}", s256(&access)), &stored, ACCESS_TTL)
            .await
            .map_err(OAuthError::server)?;
        self.store
            .put(&format!("refresh:{}", s256(&refresh)), &stored, REFRESH_TTL)
            .await
            .map_err(OAuthError::server)?;
        Ok(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TTL.as_secs(),
            "refresh_token": refresh,
            "scope": SCOPE,
        }))
    }
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    fn bad(error: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }

    fn server(detail: String) -> Self {
        tracing::warn!(%detail, "authorization server store failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the token store is unavailable",
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.error, "error_description": self.description}));
        (self.status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
    }
}

/// The routes of the authorization server.
pub fn routes(oauth: Arc<OAuth>) -> Router {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource/{consumer}/mcp",
            get(protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server/oauth/{gateway}",
            get(authorization_server),
        )
        .route(
            "/oauth/{gateway}/.well-known/oauth-authorization-server",
            get(authorization_server),
        )
        .route("/oauth/{gateway}/register", post(register))
        .route(
            "/oauth/{gateway}/authorize",
            get(authorize_page).post(authorize),
        )
        .route("/oauth/{gateway}/token", post(token))
        .route("/oauth/{gateway}/idp/callback", get(idp::callback))
        .with_state(oauth)
}

/// The gateway an OAuth path names.
fn gateway_of(oauth: &OAuth, slug: &str) -> Result<Arc<CompiledGateway>, OAuthError> {
    oauth
        .snapshots
        .load()
        .gateway_by_slug(slug)
        .filter(|g| g.active)
        .cloned()
        .ok_or_else(|| OAuthError::new(StatusCode::NOT_FOUND, "invalid_request", "no such gateway"))
}

/// The MCP consumer a resource URL (`…/{consumer}/mcp`) names.
fn consumer_of(
    gateway: &CompiledGateway,
    resource: &str,
) -> Result<Arc<CompiledConsumer>, OAuthError> {
    let url = url::Url::parse(resource)
        .map_err(|_| OAuthError::bad("invalid_target", "resource is not a URL"))?;
    let slug = url
        .path()
        .strip_suffix("/mcp")
        .and_then(|p| p.strip_prefix('/'))
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| OAuthError::bad("invalid_target", "resource is not an MCP endpoint"))?;
    gateway
        .consumer(slug)
        .filter(|c| c.active && c.mcp.is_some())
        .cloned()
        .ok_or_else(|| OAuthError::bad("invalid_target", "no MCP consumer at this resource"))
}

#[derive(Deserialize)]
struct GatewayQuery {
    gateway: Option<String>,
}

async fn protected_resource(
    State(oauth): State<Arc<OAuth>>,
    Path(consumer): Path<String>,
    Query(q): Query<GatewayQuery>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthError> {
    // The gateway: the query (what a 401 points to), else the endpoint's own rule.
    let gateway = match q.gateway {
        Some(slug) => gateway_of(&oauth, &slug)?,
        None => {
            let snapshot = oauth.snapshots.load();
            access::gateway(&snapshot, &headers)
                .map(Arc::clone)
                .map_err(|r| {
                    OAuthError::new(StatusCode::NOT_FOUND, "invalid_request", r.to_string())
                })?
        }
    };
    let base = base_url(&headers);
    let resource = format!("{base}/{consumer}/mcp");
    let found = consumer_of(&gateway, &resource)
        .map_err(|e| OAuthError::new(StatusCode::NOT_FOUND, "invalid_target", e.description))?;
    Ok(Json(json!({
        "resource": resource,
        "authorization_servers": [issuer(&headers, &gateway.slug)],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": found.name,
    })))
}

async fn authorization_server(
    State(oauth): State<Arc<OAuth>>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthError> {
    let gateway = gateway_of(&oauth, &gateway)?;
    let base = issuer(&headers, &gateway.slug);
    Ok(Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "scopes_supported": [SCOPE],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "authorization_response_iss_parameter_supported": true,
    })))
}

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Vec<String>,
}

/// Redirect URIs OAuth 2.1 allows: HTTPS, or HTTP on a loopback host (native apps);
/// custom schemes of native apps too, but never `javascript:` or `data:`.
fn acceptable_redirect(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    if url.fragment().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => true,
        "http" => matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        "javascript" | "data" | "file" | "vbscript" => false,
        _ => true,
    }
}

async fn register(
    State(oauth): State<Arc<OAuth>>,
    Path(gateway): Path<String>,
    Json(req): Json<Registration>,
) -> Result<Response, OAuthError> {
    let gateway = gateway_of(&oauth, &gateway)?;
    if req.redirect_uris.is_empty() || !req.redirect_uris.iter().all(|u| acceptable_redirect(u)) {
        return Err(OAuthError::bad(
            "invalid_redirect_uri",
            "redirect_uris must be https URLs or http on a loopback host",
        ));
    }
    if req
        .grant_types
        .iter()
        .any(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(OAuthError::bad(
            "invalid_client_metadata",
            "grant_types may be authorization_code and refresh_token",
        ));
    }
    let method = req
        .token_endpoint_auth_method
        .unwrap_or_else(|| "client_secret_basic".into());
    let client_secret = match method.as_str() {
        "none" => None,
        "client_secret_post" | "client_secret_basic" => Some(secret()),
        _ => {
            return Err(OAuthError::bad(
                "invalid_client_metadata",
                "token_endpoint_auth_method must be none, client_secret_post or client_secret_basic",
            ));
        }
    };
    let client_id = format!("sluice-{}", Uuid::now_v7().simple());
    let client = Client {
        gateway_id: gateway.id,
        redirect_uris: req.redirect_uris.clone(),
        secret_hash: client_secret.as_deref().map(s256),
        client_name: req.client_name.clone(),
    };
    oauth
        .store
        .put(&format!("client:{client_id}"), &client, CLIENT_TTL)
        .await
        .map_err(OAuthError::server)?;
    tracing::info!(gateway = %gateway.slug, %client_id, "OAuth client registered");
    let mut body = json!({
        "client_id": client_id,
        "client_id_issued_at": chrono_now(),
        "redirect_uris": req.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "scope": SCOPE,
    });
    if let Some(name) = req.client_name {
        body["client_name"] = json!(name);
    }
    if let Some(secret) = client_secret {
        body["client_secret"] = json!(secret);
        body["client_secret_expires_at"] = json!(0);
    }
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The parameters of an authorization request, and the API key on the sign-in form.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct AuthorizeParams {
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
    state: Option<String>,
    #[serde(default)]
    resource: String,
    scope: Option<String>,
    #[serde(default, skip_serializing)]
    api_key: Option<String>,
    /// The OpenID provider (auth id) the user chose to sign in with instead.
    #[serde(default, skip_serializing)]
    idp: Option<String>,
}

/// What an authorization request is checked against before the user sees a form.
/// Errors about the client or its redirect URI are shown, never redirected (RFC 6749
/// §4.1.2.1): the redirect URI is not trusted yet.
async fn check_authorize(
    oauth: &OAuth,
    gateway: &str,
    p: &AuthorizeParams,
) -> Result<(Arc<CompiledGateway>, Arc<CompiledConsumer>), OAuthError> {
    let gateway = gateway_of(oauth, gateway)?;
    let client: Client = oauth
        .store
        .get(&format!("client:{}", p.client_id))
        .await
        .map_err(OAuthError::server)?
        .filter(|c: &Client| c.gateway_id == gateway.id)
        .ok_or_else(|| OAuthError::bad("invalid_client", "unknown client_id"))?;
    if !client.redirect_uris.contains(&p.redirect_uri) {
        return Err(OAuthError::bad(
            "invalid_request",
            "redirect_uri is not one the client registered",
        ));
    }
    if p.response_type != "code" {
        return Err(OAuthError::bad(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    if p.code_challenge.len() < 43 || p.code_challenge_method != "S256" {
        return Err(OAuthError::bad(
            "invalid_request",
            "PKCE is required: code_challenge with code_challenge_method S256",
        ));
    }
    let consumer = consumer_of(&gateway, &p.resource)?;
    Ok((gateway, consumer))
}

async fn authorize_page(
    State(oauth): State<Arc<OAuth>>,
    Path(gateway): Path<String>,
    Query(p): Query<AuthorizeParams>,
) -> Result<Response, OAuthError> {
    let (gateway, consumer) = check_authorize(&oauth, &gateway, &p).await?;
    let mut response = form(&p, &gateway, &consumer, None).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().unwrap_or_else(|_| unreachable!()),
    );
    Ok(response)
}

async fn authorize(
    State(oauth): State<Arc<OAuth>>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
    Form(p): Form<AuthorizeParams>,
) -> Result<Response, OAuthError> {
    let (gateway, consumer) = check_authorize(&oauth, &gateway, &p).await?;
    if let Some(idp) = &p.idp {
        return idp::start(&oauth, &headers, &gateway, &consumer, &p, idp).await;
    }
    let auth_id = p
        .api_key
        .as_deref()
        .map(str::trim)
        .and_then(|k| gateway.auth_for_key(&apikey::digest(k)))
        .filter(|auth| consumer.accepts(*auth));
    let Some(auth_id) = auth_id else {
        let page = form(
            &p,
            &gateway,
            &consumer,
            Some("That API key does not belong to this consumer."),
        );
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    grant_code(&oauth, &headers, &gateway, &consumer, &p, auth_id, None).await
}

/// The user is signed in (with `auth_id`, as `subject` of a provider if through one):
/// issue the code and send it to the client.
async fn grant_code(
    oauth: &OAuth,
    headers: &HeaderMap,
    gateway: &CompiledGateway,
    consumer: &CompiledConsumer,
    p: &AuthorizeParams,
    auth_id: Uuid,
    subject: Option<String>,
) -> Result<Response, OAuthError> {
    let code = secret();
    let grant = Grant {
        client_id: p.client_id.clone(),
        gateway_id: gateway.id,
        consumer_id: consumer.id,
        resource: p.resource.clone(),
        auth_id: Some(auth_id),
        subject,
        redirect_uri: Some(p.redirect_uri.clone()),
        code_challenge: Some(p.code_challenge.clone()),
    };
    oauth
        .store
        .put(&format!("code:{}", s256(&code)), &grant, CODE_TTL)
        .await
        .map_err(OAuthError::server)?;
    let mut to = url::Url::parse(&p.redirect_uri)
        .map_err(|_| OAuthError::bad("invalid_request", "redirect_uri"))?;
    {
        let mut q = to.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(state) = &p.state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &issuer(headers, &gateway.slug));
    }
    tracing::info!(gateway = %gateway.slug, consumer = %consumer.slug, client_id = %p.client_id,
        "OAuth authorization granted");
    Ok(Redirect::to(to.as_str()).into_response())
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    resource: Option<String>,
}

/// The client a token request authenticates as: `client_secret_basic`, or the form's
/// `client_id` (and `client_secret` for confidential clients).
async fn token_client(
    oauth: &OAuth,
    gateway: Uuid,
    headers: &HeaderMap,
    req: &TokenRequest,
) -> Result<String, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (id, presented) = match (basic, &req.client_id) {
        (Some((id, secret)), _) => (id, Some(secret)),
        (None, Some(id)) => (id.clone(), req.client_secret.clone()),
        (None, None) => {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "no client",
            ));
        }
    };
    let client: Client = oauth
        .store
        .get(&format!("client:{id}"))
        .await
        .map_err(OAuthError::server)?
        .filter(|c: &Client| c.gateway_id == gateway)
        .ok_or_else(|| {
            OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client")
        })?;
    if let Some(hash) = &client.secret_hash
        && presented.as_deref().map(s256).as_ref() != Some(hash)
    {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ));
    }
    Ok(id)
}

async fn token(
    State(oauth): State<Arc<OAuth>>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
    Form(req): Form<TokenRequest>,
) -> Result<Response, OAuthError> {
    let gateway = gateway_of(&oauth, &gateway)?;
    let client_id = token_client(&oauth, gateway.id, &headers, &req).await?;
    let invalid = |what: &str| OAuthError::bad("invalid_grant", what.to_string());
    let grant = match req.grant_type.as_str() {
        "authorization_code" => {
            let code = req
                .code
                .as_deref()
                .ok_or_else(|| invalid("code is missing"))?;
            let grant: Grant = oauth
                .store
                .take(&format!("code:{}", s256(code)))
                .await
                .map_err(OAuthError::server)?
                .ok_or_else(|| invalid("the code is unknown, used or expired"))?;
            if grant.client_id != client_id {
                return Err(invalid("the code was issued to another client"));
            }
            if grant.redirect_uri != req.redirect_uri {
                return Err(invalid(
                    "redirect_uri does not match the authorization request",
                ));
            }
            let verifier = req
                .code_verifier
                .as_deref()
                .ok_or_else(|| invalid("code_verifier is missing"))?;
            if grant.code_challenge.as_deref() != Some(s256(verifier).as_str()) {
                return Err(invalid("code_verifier does not match the code challenge"));
            }
            grant
        }
        "refresh_token" => {
            let refresh = req
                .refresh_token
                .as_deref()
                .ok_or_else(|| invalid("refresh_token is missing"))?;
            let grant: Grant = oauth
                .store
                .take(&format!("refresh:{}", s256(refresh)))
                .await
                .map_err(OAuthError::server)?
                .ok_or_else(|| invalid("the refresh token is unknown, used or expired"))?;
            if grant.client_id != client_id {
                return Err(invalid("the refresh token was issued to another client"));
            }
            grant
        }
        _ => {
            return Err(OAuthError::bad(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            ));
        }
    };
    if let Some(resource) = &req.resource
        && resource.trim_end_matches('/') != grant.resource.trim_end_matches('/')
    {
        return Err(OAuthError::bad(
            "invalid_target",
            "resource does not match the grant",
        ));
    }
    let body = oauth.issue(&grant).await?;
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_must_be_https_or_loopback() {
        assert!(acceptable_redirect("https://app.example/cb"));
        assert!(acceptable_redirect("http://127.0.0.1:5173/cb"));
        assert!(acceptable_redirect("http://localhost/cb"));
        assert!(acceptable_redirect("com.example.app:/cb"));
        assert!(!acceptable_redirect("http://evil.example/cb"));
        assert!(!acceptable_redirect("javascript:alert(1)"));
        assert!(!acceptable_redirect("https://app.example/cb#frag"));
        assert!(!acceptable_redirect("not a url"));
    }
}
