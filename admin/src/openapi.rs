//! The admin API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the model types' schemas, and served at `GET /openapi.json` with a
//! self-contained reference page at `GET /docs`. The router is built from the same
//! annotations (utoipa-axum), so a route cannot exist without its documentation.
//!
//! What every operation shares (the bearer scheme, the error body, the error statuses
//! that any authenticated route or any route with a body or a path id can answer) is
//! added here once, by [`CommonResponses`], instead of on each handler.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use sluice_shared::model::Problem;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Document, PathItem, Ref, RefOr, Response, ResponseBuilder,
};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_json`, `invalid_uuid`, `invalid_query`, `unauthorized`,
    /// `forbidden`, `not_found`, `already_exists`, `has_dependents`,
    /// `unsupported_media_type`, `body_too_large`, `validation_failed`,
    /// `internal_error`, …
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// With `validation_failed`: every problem, by field path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Problem>,
}

/// The paging parameters of every list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // only its shape is read, by the document
pub struct PageParams {
    /// Page number, from 1 (default 1).
    page: Option<u32>,
    /// Page size, 1 to 200 (default 50).
    size: Option<u32>,
}

/// Paths that answer without the admin token.
pub const OPEN_PATHS: [&str; 5] = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sluice admin API",
        description = "REST API over sluice's config store. Every write is validated, committed, \
            and published to the config bus, so the proxy and MCP planes apply it without a restart. \
            Every route but the probes, metrics and this documentation needs `Authorization: Bearer <token>`: \
            the admin token, or a scoped token bound to one gateway.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "gateways", description = "Tenants of the data plane: each has its consumers, registries, auths, policies and roles."),
        (name = "registries", description = "Upstreams: LLM provider accounts and MCP servers, with their credentials (sealed at rest, masked on read)."),
        (name = "consumers", description = "The applications and agents that call the proxy, and their links to registries, auths, policies and roles."),
        (name = "auths", description = "Consumer credentials: API keys (shown once), OAuth2 and OIDC bearer tokens, mTLS."),
        (name = "policies", description = "Filters on the request path: limits, allow-lists, rewrites, caches, moderation."),
        (name = "roles", description = "Reusable model and MCP access for role-based consumers."),
        (name = "catalogs", description = "Read-only: providers, models with prices, policy kinds, MCP servers."),
        (name = "admin-tokens", description = "Scoped admin tokens (admin token only)."),
        (name = "operations", description = "Probes, metrics and this documentation."),
    ),
)]
pub struct ApiDoc;

/// Adds what every operation shares: the bearer scheme (and `security: []` on the open
/// paths), the error answers each kind of route can give, and descriptions of the id
/// path parameters.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (`SLUICE_ADMIN_TOKEN`, or `admin-token` in the data dir), \
                         or a scoped token (`sls_…`)",
                    ))
                    .build(),
            ),
        );
        doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "admin_token",
            Vec::<String>::new(),
        )]);
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            for op in operations(item) {
                complete(op, open);
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn error(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn complete(op: &mut Operation, open: bool) {
    let has_body = op.request_body.is_some();
    let params = op.parameters.get_or_insert_with(Vec::new);
    for p in params.iter_mut() {
        describe_param(p);
    }
    let has_id = params
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Path && p.name.ends_with("_id"));
    let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
    let responses = &mut op.responses.responses;
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| error(description));
    };
    if open {
        op.security = Some(Vec::new());
    } else {
        add("401", "`unauthorized`: no token, or not a valid one");
        add(
            "403",
            "`forbidden`: a scoped token outside its gateway or scopes",
        );
        add("500", "`internal_error`: details are in the admin log");
    }
    if has_id || has_query {
        add(
            "400",
            "`invalid_uuid` (a path id) or `invalid_query` (a query parameter)",
        );
    }
    if has_id {
        add("404", "`not_found`: no such object in this gateway");
    }
    if has_body {
        add("400", "`invalid_json`, or `invalid_uuid` / `invalid_query`");
        add("413", "`body_too_large`: over 1 MiB");
        add(
            "415",
            "`unsupported_media_type`: the body is not `application/json`",
        );
        add(
            "422",
            "`validation_failed`: every problem with its field path; unknown fields are named",
        );
    }
}

fn describe_param(p: &mut Parameter) {
    if p.parameter_in != ParameterIn::Path || p.description.is_some() {
        return;
    }
    let what = p.name.trim_end_matches("_id").replace('_', " ");
    p.description = Some(format!("The {what}'s id"));
}

/// The whole document: the routes' own, completed by [`CommonResponses`] (which must
/// run after the routes are merged in, so it is applied here and not as a modifier of
/// [`ApiDoc`], whose modifiers see no paths yet).
pub fn document() -> Document {
    let (_, mut doc) = crate::routes::router().split_for_parts();
    CommonResponses.modify(&mut doc);
    doc
}

/// The document as served, built once.
pub static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| document().to_pretty_json().unwrap_or_default());

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

/// `GET /docs`: the API reference, rendered in the browser from `/openapi.json` by a
/// page with no external assets (the admin may run where nothing can be downloaded).
#[utoipa::path(get, path = "/docs", tag = "operations", operation_id = "docs",
    responses((status = 200, description = "The API reference page", content_type = "text/html")))]
pub async fn docs() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        include_str!("docs.html"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::from_str(&DOCUMENT).unwrap_or(Value::Null)
    }

    #[test]
    fn is_openapi_3_1_with_unique_operation_ids() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = HashSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let id = op["operationId"].as_str().unwrap_or_default().to_string();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                assert!(ids.insert(id.clone()), "operationId {id} is used twice");
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            }
        }
        assert!(ids.len() >= 50, "{} operations", ids.len());
    }

    #[test]
    fn open_paths_need_no_token_and_the_rest_answer_401() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let open = op["security"].as_array().is_some_and(Vec::is_empty);
                assert_eq!(open, OPEN_PATHS.contains(&path.as_str()), "{method} {path}");
                assert_eq!(
                    op["responses"].get("401").is_none(),
                    open,
                    "{method} {path}"
                );
            }
        }
    }

    #[test]
    fn writes_answer_422_and_path_ids_answer_404() {
        let doc = document();
        let create = &doc["paths"]["/v1/gateways/{gateway_id}/consumers"]["post"];
        assert!(create["responses"]["422"].is_object());
        assert!(create["responses"]["404"].is_object());
        assert_eq!(
            create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ConsumerSpec"
        );
        let list = &doc["paths"]["/v1/gateways"]["get"];
        assert!(list["responses"]["422"].is_null());
    }
}
