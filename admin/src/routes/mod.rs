//! The admin API's routes, one module per resource.

mod admin_tokens;
mod auths;
pub(crate) mod catalogs;
mod consumers;
mod gateways;
mod health;
mod policies;
mod registries;
mod roles;
mod test_connection;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::error::ApiError;
use crate::extract::from_value_strict;
use crate::openapi::{__path_docs, __path_openapi_json, ApiDoc, docs, openapi_json};

/// Every route with its documentation: the router and the OpenAPI document are two
/// views of this one value (`split_for_parts`).
pub fn router() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::routes())
        .merge(gateways::routes())
        .merge(registries::routes())
        .merge(consumers::routes())
        .merge(auths::routes())
        .merge(policies::routes())
        .merge(roles::routes())
        .merge(catalogs::routes())
        .merge(admin_tokens::routes())
        .merge(test_connection::routes())
        .routes(routes!(openapi_json))
        .routes(routes!(docs))
}

/// Apply a PUT body to a stored spec: the fields it names replace the stored ones, the
/// others stay. Unknown fields are rejected as on create.
fn merge<T: Serialize + DeserializeOwned>(stored: &T, body: Value) -> Result<T, ApiError> {
    let Value::Object(changes) = body else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
        ));
    };
    let mut merged = serde_json::to_value(stored).map_err(|_| ApiError::internal())?;
    if let Value::Object(fields) = &mut merged {
        fields.extend(changes);
    }
    from_value_strict(merged)
}

fn created<T: Serialize>(body: T) -> impl IntoResponse {
    (StatusCode::CREATED, axum::Json(body))
}
