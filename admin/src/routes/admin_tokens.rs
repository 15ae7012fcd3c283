//! `/v1/admin-tokens` (root token only): scoped tokens bound to one gateway. The token is
//! in the create response only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_shared::model::Problems;
use uuid::Uuid;

use super::created;
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, StrictJson};
use crate::scope::valid_scope;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/v1/admin-tokens", get(list).post(create))
        .route("/v1/admin-tokens/{token_id}", delete(remove))
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
    gateway_id: Uuid,
    scopes: Vec<String>,
}

async fn create(
    State(state): State<AdminState>,
    StrictJson(req): StrictJson<NewToken>,
) -> Result<impl IntoResponse, ApiError> {
    let mut p = Problems::default();
    p.require_text("name", &req.name, 200);
    if req.scopes.is_empty() {
        p.add("scopes", "must name at least one scope");
    }
    for (i, scope) in req.scopes.iter().enumerate() {
        if !valid_scope(scope) {
            p.add(
                format!("scopes[{i}]"),
                "must be <resource>:read or <resource>:write",
            );
        }
    }
    p.into_result()?;
    let (token, secret) = state
        .store
        .create_admin_token(&req.name, req.gateway_id, &req.scopes)
        .await?;
    let mut body = serde_json::to_value(token).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut body {
        fields.insert("token".into(), json!(secret));
    }
    Ok(created(body))
}

async fn list(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"items": state.store.admin_tokens().await?})))
}

async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_admin_token(ids[0]).await?;
    Ok(StatusCode::NO_CONTENT)
}
