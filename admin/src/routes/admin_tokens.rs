//! `/v1/admin-tokens` (root token only): scoped tokens bound to one gateway. The token is
//! in the create response only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sluice_shared::model::Problems;
use sluice_shared::store::AdminToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::created;
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, StrictJson};
use crate::routes::catalogs::Items;
use crate::scope::valid_scope;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
}

/// A scoped token to create.
#[derive(Deserialize, ToSchema)]
struct NewToken {
    name: String,
    /// The one gateway it reaches.
    gateway_id: Uuid,
    /// `<resource>:read` or `<resource>:write` (`write` includes `read`); resources:
    /// `gateways`, `registries`, `consumers`, `auths`, `policies`, `roles`.
    scopes: Vec<String>,
}

/// A created token.
#[derive(Serialize, ToSchema)]
struct CreatedToken {
    #[serde(flatten)]
    token: AdminToken,
    /// The token itself (`sls_…`), shown this once.
    #[serde(rename = "token")]
    secret: String,
}

/// Create a scoped token (admin token only). The token is in this answer only.
#[utoipa::path(post, path = "/v1/admin-tokens", tag = "admin-tokens", operation_id = "create_admin_token",
    request_body = NewToken,
    responses((status = 201, description = "The token", body = CreatedToken)))]
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
    Ok(created(CreatedToken { token, secret }))
}

/// List scoped tokens (never the tokens themselves).
#[utoipa::path(get, path = "/v1/admin-tokens", tag = "admin-tokens", operation_id = "list_admin_tokens",
    responses((status = 200, description = "Every scoped token", body = Items<AdminToken>)))]
async fn list(State(state): State<AdminState>) -> Result<Json<Items<AdminToken>>, ApiError> {
    Ok(Json(Items {
        items: state.store.admin_tokens().await?,
    }))
}

/// Revoke a scoped token.
#[utoipa::path(delete, path = "/v1/admin-tokens/{token_id}", tag = "admin-tokens", operation_id = "delete_admin_token",
    params(("token_id" = Uuid, Path)),
    responses((status = 204, description = "Revoked")))]
async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_admin_token(ids[0]).await?;
    Ok(StatusCode::NO_CONTENT)
}
