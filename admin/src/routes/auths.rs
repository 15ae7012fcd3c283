//! `/v1/gateways/{gateway_id}/auths`: consumer credentials. An API key's plaintext is in
//! the create and rotate responses only (`key`); reads show `key_prefix`/`key_suffix`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_shared::model::{Auth, AuthSpec};
use sluice_shared::store::{NewAuth, Paged};

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/v1/gateways/{gateway_id}/auths", get(list).post(create))
        .route(
            "/v1/gateways/{gateway_id}/auths/{auth_id}",
            get(read).put(update).delete(remove),
        )
        .route(
            "/v1/gateways/{gateway_id}/auths/{auth_id}/rotate",
            post(rotate),
        )
}

/// An auth as responses show it: never the key digest.
fn view(mut auth: Auth) -> Auth {
    auth.key_hash = None;
    auth
}

/// A created or rotated auth, with its plaintext key this once.
fn with_key(new: NewAuth) -> Value {
    let mut value = serde_json::to_value(view(new.auth)).unwrap_or(Value::Null);
    if let (Value::Object(fields), Some(key)) = (&mut value, new.api_key) {
        fields.insert("key".into(), json!(key));
    }
    value
}

async fn create(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(spec): StrictJson<AuthSpec>,
) -> Result<impl IntoResponse, ApiError> {
    spec.validate()?;
    let new = state.store.create_auth(ids[0], &spec).await?;
    state.publish(ids[0]).await;
    Ok(created(with_key(new)))
}

async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<Auth>>, ApiError> {
    state.store.gateway(ids[0]).await?;
    let mut page = state.store.list_auths(ids[0], query.page).await?;
    page.items = page.items.into_iter().map(view).collect();
    Ok(Json(page))
}

async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Auth>, ApiError> {
    Ok(Json(view(state.store.auth(ids[0], ids[1]).await?)))
}

async fn update(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(body): StrictJson<Value>,
) -> Result<Json<Auth>, ApiError> {
    let stored = state.store.auth(ids[0], ids[1]).await?;
    let spec: AuthSpec = merge(&stored.spec, body)?;
    spec.validate()?;
    if spec.kind != stored.spec.kind {
        let mut p = sluice_shared::model::Problems::default();
        p.add("type", "cannot change; create a new auth instead");
        return Err(p.into());
    }
    let auth = state.store.update_auth(ids[0], ids[1], &spec).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(auth)))
}

async fn rotate(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Value>, ApiError> {
    let new = state.store.rotate_auth(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(Json(with_key(new)))
}

async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_auth(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}
