//! `/v1/gateways/{gateway_id}/auths`: consumer credentials. An API key's plaintext is in
//! the create and rotate responses only (`key`); reads show `key_prefix`/`key_suffix`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use sluice_shared::model::{Auth, AuthSpec, SecretFields};
use sluice_shared::secrets::SecretBox;
use sluice_shared::store::{NewAuth, Paged};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson};
use crate::openapi::PageParams;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(rotate))
}

/// A created or rotated auth.
#[derive(Debug, Serialize, ToSchema)]
struct AuthWithKey {
    #[serde(flatten)]
    auth: Auth,
    /// An `api_key` auth's new key (`ag_…`), shown this once: sluice keeps only its digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// An auth as responses show it: never the key digest, secrets masked.
fn view(secrets: &SecretBox, mut auth: Auth) -> Auth {
    auth.key_hash = None;
    auth.spec = opened(secrets, &auth.spec).masked();
    auth
}

/// The stored spec with its secrets opened (a value stored before sealing existed
/// opens as itself).
fn opened(secrets: &SecretBox, spec: &AuthSpec) -> AuthSpec {
    spec.opened(secrets).unwrap_or_else(|_| spec.clone())
}

/// A created or rotated auth, with its plaintext key this once.
fn with_key(secrets: &SecretBox, new: NewAuth) -> AuthWithKey {
    AuthWithKey {
        auth: view(secrets, new.auth),
        key: new.api_key,
    }
}

/// Create an auth. An `api_key` auth's key is in this answer only.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/auths", tag = "auths", operation_id = "create_auth",
    params(("gateway_id" = Uuid, Path)), request_body = AuthSpec,
    responses((status = 201, description = "The new auth, with its key", body = AuthWithKey),
        (status = 409, description = "`already_exists`: the name is taken", body = crate::openapi::ErrorBody)))]
async fn create(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(spec): StrictJson<AuthSpec>,
) -> Result<impl IntoResponse, ApiError> {
    spec.validate()?;
    let new = state
        .store
        .create_auth(ids[0], &spec.sealed(&state.secrets))
        .await?;
    state.publish(ids[0]).await;
    Ok(created(with_key(&state.secrets, new)))
}

/// List auths.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/auths", tag = "auths", operation_id = "list_auths",
    params(("gateway_id" = Uuid, Path), PageParams),
    responses((status = 200, description = "A page of auths (keys as prefix and suffix only)", body = Paged<Auth>)))]
async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<Auth>>, ApiError> {
    state.store.gateway(ids[0]).await?;
    let mut page = state.store.list_auths(ids[0], query.page).await?;
    page.items = page
        .items
        .into_iter()
        .map(|a| view(&state.secrets, a))
        .collect();
    Ok(Json(page))
}

/// Read an auth.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/auths/{auth_id}", tag = "auths", operation_id = "get_auth",
    params(("gateway_id" = Uuid, Path), ("auth_id" = Uuid, Path)),
    responses((status = 200, description = "The auth", body = Auth)))]
async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Auth>, ApiError> {
    Ok(Json(view(
        &state.secrets,
        state.store.auth(ids[0], ids[1]).await?,
    )))
}

/// Change the fields the body names; the type cannot change.
#[utoipa::path(put, path = "/v1/gateways/{gateway_id}/auths/{auth_id}", tag = "auths", operation_id = "update_auth",
    params(("gateway_id" = Uuid, Path), ("auth_id" = Uuid, Path)),
    request_body(content = AuthSpec, description = "any subset of the auth's fields"),
    responses((status = 200, description = "The changed auth", body = Auth),
        (status = 409, description = "`already_exists`: the name is taken", body = crate::openapi::ErrorBody)))]
async fn update(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(body): StrictJson<Value>,
) -> Result<Json<Auth>, ApiError> {
    let stored = state.store.auth(ids[0], ids[1]).await?;
    let mut spec: AuthSpec = merge(&stored.spec, body)?;
    spec.keep_masked_secrets(&opened(&state.secrets, &stored.spec));
    spec.validate()?;
    if spec.kind != stored.spec.kind {
        let mut p = sluice_shared::model::Problems::default();
        p.add("type", "cannot change; create a new auth instead");
        return Err(p.into());
    }
    let auth = state
        .store
        .update_auth(ids[0], ids[1], &spec.sealed(&state.secrets))
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(view(&state.secrets, auth)))
}

/// Issue a new key for an `api_key` auth; the old one stops working.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/auths/{auth_id}/rotate", tag = "auths",
    operation_id = "rotate_auth", params(("gateway_id" = Uuid, Path), ("auth_id" = Uuid, Path)),
    responses((status = 200, description = "The auth, with its new key", body = AuthWithKey)))]
async fn rotate(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<AuthWithKey>, ApiError> {
    let new = state.store.rotate_auth(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(Json(with_key(&state.secrets, new)))
}

/// Delete an auth; it is detached from its consumers.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/auths/{auth_id}", tag = "auths", operation_id = "delete_auth",
    params(("gateway_id" = Uuid, Path), ("auth_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted")))]
async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_auth(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}
