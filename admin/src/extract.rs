//! Request extractors that answer in the admin API's error shape: a JSON body with every
//! unknown field rejected by its path, UUID path segments, and paging parameters.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sluice_shared::model::Problems;
use sluice_shared::store::PageRequest;
use uuid::Uuid;

use crate::error::ApiError;

/// Largest admin request body; config objects are small.
const MAX_BODY: usize = 1024 * 1024;

/// A JSON body parsed strictly: malformed JSON is 400, a field of the wrong type or an
/// unknown field is 422 with the field's path.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type_ok = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !content_type_ok {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body too large or unreadable",
            )
        })?;
        if bytes.len() > MAX_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body too large",
            ));
        }
        parse_strict(&bytes).map(StrictJson)
    }
}

/// Parse `bytes` as `T`, rejecting unknown fields with their paths.
pub fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("malformed JSON: {e}"),
        )
    })?;
    from_value_strict(value)
}

/// Deserialize a JSON value as `T`, rejecting unknown fields with their paths.
pub fn from_value_strict<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    let value_for_errors = value.clone();
    let mut unknown = Problems::default();
    let parsed: Result<T, _> = serde_ignored::deserialize(value, |path| {
        unknown.add(path.to_string(), "unknown field");
    });
    match parsed {
        Ok(v) if unknown.is_empty() => Ok(v),
        Ok(_) => Err(ApiError::validation(unknown)),
        Err(_) => {
            // Parse again with path tracking to say which field is wrong.
            let mut p = Problems::default();
            match serde_path_to_error::deserialize::<_, T>(value_for_errors) {
                Err(e) => {
                    let path = e.path().to_string();
                    let field = if path == "." {
                        "body".to_string()
                    } else {
                        path
                    };
                    p.add(field, e.into_inner().to_string());
                }
                Ok(_) => p.add("body", "does not match the expected shape"),
            }
            Err(ApiError::validation(p))
        }
    }
}

/// Path parameters that must all be UUIDs, in order.
#[derive(Debug)]
pub struct Ids(pub Vec<Uuid>);

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid_query("bad path parameters"))?;
        params
            .into_iter()
            .map(|(name, value)| Uuid::parse_str(&value).map_err(|_| ApiError::invalid_uuid(&name)))
            .collect::<Result<_, _>>()
            .map(Ids)
    }
}

/// Query parameters: paging (`page` from 1, `size` 1..=200, default 50) and filters.
#[derive(Debug)]
pub struct ListQuery {
    pub page: PageRequest,
    pub params: HashMap<String, String>,
}

impl ListQuery {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::invalid_query(format!(
                "{name} must be true or false"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::invalid_query("malformed query string"))?;
        let number = |name: &str, default: u32| -> Result<u32, ApiError> {
            params.get(name).map_or(Ok(default), |v| {
                v.parse::<u32>().map_err(|_| {
                    ApiError::invalid_query(format!("{name} must be a positive integer"))
                })
            })
        };
        let page = number("page", 1)?;
        let size = number("size", 50)?;
        if page == 0 {
            return Err(ApiError::invalid_query("page starts at 1"));
        }
        if !(1..=200).contains(&size) {
            return Err(ApiError::invalid_query("size must be between 1 and 200"));
        }
        Ok(Self {
            page: PageRequest { page, size },
            params,
        })
    }
}
