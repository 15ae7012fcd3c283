//! Admin authentication: every route but the probes needs `Authorization: Bearer
//! <token>`. The token comes from `SLUICE_ADMIN_TOKEN`, or in the embedded default from
//! `admin-token` in the data dir (created with mode 0600 on first start). It is compared
//! in constant time, so response timing says nothing about how much of a guess matched.

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sluice_shared::secrets::write_private;
use subtle::ConstantTimeEq;

use crate::AdminState;
use crate::error::ApiError;
use crate::scope;

/// Paths that answer without a token: liveness and readiness probes, metrics for the
/// scraper (admin listens on loopback by default), and the API's documentation.
use crate::openapi::OPEN_PATHS;

/// The admin token in force, and whether it was generated just now (so the caller can
/// show it once).
pub fn load_or_create_token(
    env_token: Option<&str>,
    data_dir: &Path,
) -> std::io::Result<(String, bool)> {
    if let Some(token) = env_token.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((token.to_string(), false));
    }
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => Ok((token.trim().to_string(), false)),
        Ok(_) => Err(std::io::Error::other(format!(
            "{} is empty",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            rand::rng().fill_bytes(&mut raw);
            let token = format!("sla_{}", URL_SAFE_NO_PAD.encode(raw));
            write_private(&path, token.as_bytes())?;
            Ok((token, true))
        }
        Err(e) => Err(e),
    }
}

/// The middleware that checks the bearer token.
pub async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().as_bytes());
    let Some(presented) = presented else {
        return unauthorized();
    };
    if bool::from(presented.ct_eq(state.token.as_bytes())) {
        return next.run(request).await;
    }
    // A scoped token: found by its digest, then checked against what the request needs.
    let Ok(text) = std::str::from_utf8(presented) else {
        return unauthorized();
    };
    match state.store.admin_token_by_secret(text).await {
        Ok(Some(token)) => {
            let need = scope::need(request.method(), request.uri().path());
            if scope::allows(&token, &need) {
                next.run(request).await
            } else {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this token's scopes do not cover this request",
                )
                .into_response()
            }
        }
        Ok(None) => unauthorized(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "send the admin token as Authorization: Bearer <token>",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
