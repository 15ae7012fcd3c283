//! The admin API's error body, `{"error": code, "message": …, "details"?: [{field,
//! problem}]}`, and the mapping of every store error to a status and code. Internal
//! failures are logged with their cause and answered without it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_shared::model::{Problem, Problems};
use sluice_shared::store::StoreError;
use tracing::error;

/// An error answer of the admin API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Problem>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[Problem]>::is_empty")]
    details: &'a [Problem],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn invalid_uuid(what: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_uuid",
            format!("{what} is not a valid UUID"),
        )
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn validation(problems: Problems) -> Self {
        Self {
            details: problems.0,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "the request body is not valid",
            )
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; see the admin logs",
        )
    }
}

impl From<Problems> for ApiError {
    fn from(problems: Problems) -> Self {
        Self::validation(problems)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(message) => {
                Self::new(StatusCode::CONFLICT, "already_exists", message)
            }
            StoreError::HasDependents { .. } => Self::new(
                StatusCode::CONFLICT,
                "has_dependents",
                format!("{err}; detach it first or delete with ?force=true"),
            ),
            other => {
                error!(error = %other, "store failure");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code,
            message: &self.message,
            details: &self.details,
        };
        (self.status, Json(body)).into_response()
    }
}
