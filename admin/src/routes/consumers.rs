//! `/v1/gateways/{gateway_id}/consumers`: the applications that call the proxy, and their
//! links to registries (with a weight) and auths.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_shared::model::{Consumer, ConsumerSpec, Problems};
use sluice_shared::store::{ConsumerFilter, Paged};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson, parse_strict};
use crate::openapi::PageParams;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(attach_registry, detach_registry))
        .routes(routes!(attach_auth, detach_auth))
        .routes(routes!(attach_policy, detach_policy))
        .routes(routes!(attach_role, detach_role))
}

/// A consumer as responses show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerView {
    id: Uuid,
    gateway_id: Uuid,
    /// Made from the name, unique in the gateway: the `/{consumer_slug}/…` of proxy paths.
    slug: String,
    #[serde(flatten)]
    spec: ConsumerSpec,
    /// The registries it may use (inline routing).
    registry_ids: Vec<Uuid>,
    /// Each attached registry's balancing weight, by registry id.
    registry_weights: std::collections::BTreeMap<Uuid, u8>,
    auth_ids: Vec<Uuid>,
    policy_ids: Vec<Uuid>,
    role_ids: Vec<Uuid>,
    created_at: String,
    updated_at: String,
}

fn view(consumer: Consumer) -> ConsumerView {
    ConsumerView {
        id: consumer.id,
        gateway_id: consumer.gateway_id,
        slug: consumer.slug,
        spec: consumer.spec,
        registry_ids: consumer.registries.iter().map(|l| l.registry_id).collect(),
        registry_weights: consumer
            .registries
            .iter()
            .map(|l| (l.registry_id, l.weight))
            .collect(),
        auth_ids: consumer.auth_ids,
        policy_ids: consumer.policy_ids,
        role_ids: consumer.role_ids,
        created_at: consumer.created_at,
        updated_at: consumer.updated_at,
    }
}

/// Create a consumer; its slug is made from its name.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/consumers", tag = "consumers",
    operation_id = "create_consumer", params(("gateway_id" = Uuid, Path)),
    request_body = ConsumerSpec,
    responses((status = 201, description = "The new consumer", body = ConsumerView),
        (status = 409, description = "`already_exists`: the name's slug is taken", body = crate::openapi::ErrorBody)))]
async fn create(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(spec): StrictJson<ConsumerSpec>,
) -> Result<impl IntoResponse, ApiError> {
    spec.validate()?;
    let consumer = state.store.create_consumer(ids[0], &spec).await?;
    state.publish(ids[0]).await;
    Ok(created(view(consumer)))
}

/// List consumers, filtered.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/consumers", tag = "consumers",
    operation_id = "list_consumers",
    params(("gateway_id" = Uuid, Path),
        ("search" = Option<String>, Query, description = "a part of the name or slug"),
        ("type" = Option<String>, Query, description = "`LLM`, `MCP` or `A2A`"),
        ("active" = Option<bool>, Query, description = "only active or inactive consumers"),
        ("auth_id" = Option<Uuid>, Query, description = "only the consumers this auth is attached to"),
        PageParams),
    responses((status = 200, description = "A page of consumers", body = Paged<ConsumerView>)))]
async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<ConsumerView>>, ApiError> {
    state.store.gateway(ids[0]).await?;
    let kind = match query.get("type") {
        None => None,
        Some(t) if ["LLM", "MCP", "A2A"].contains(&t.to_ascii_uppercase().as_str()) => {
            Some(t.to_ascii_uppercase())
        }
        Some(_) => return Err(ApiError::invalid_query("type must be LLM, MCP or A2A")),
    };
    let active = match query.get("active") {
        None => None,
        Some(_) => Some(query.flag("active")?),
    };
    let auth_id = query
        .get("auth_id")
        .map(|v| uuid::Uuid::parse_str(v).map_err(|_| ApiError::invalid_uuid("auth_id")))
        .transpose()?;
    let filter = ConsumerFilter {
        search: query.get("search").map(str::to_string),
        kind,
        active,
        auth_id,
    };
    let page = state
        .store
        .list_consumers(ids[0], &filter, query.page)
        .await?;
    Ok(Json(Paged {
        items: page.items.into_iter().map(view).collect(),
        page: page.page,
        size: page.size,
        total: page.total,
    }))
}

/// Read a consumer.
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}", tag = "consumers", operation_id = "get_consumer",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path)),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn read(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<ConsumerView>, ApiError> {
    Ok(Json(view(state.store.consumer(ids[0], ids[1]).await?)))
}

/// Change the fields the body names; the others keep their values.
#[utoipa::path(put, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}", tag = "consumers", operation_id = "update_consumer",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path)),
    request_body(content = ConsumerSpec, description = "any subset of the consumer's fields"),
    responses((status = 200, description = "The changed consumer", body = ConsumerView),
        (status = 409, description = "`already_exists`: the name's slug is taken", body = crate::openapi::ErrorBody)))]
async fn update(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(body): StrictJson<Value>,
) -> Result<Json<ConsumerView>, ApiError> {
    let stored = state.store.consumer(ids[0], ids[1]).await?;
    let spec: ConsumerSpec = merge(&stored.spec, body)?;
    spec.validate()?;
    let consumer = state.store.update_consumer(ids[0], ids[1], &spec).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

/// Delete a consumer.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}", tag = "consumers", operation_id = "delete_consumer",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path)),
    responses((status = 204, description = "Deleted")))]
async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_consumer(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The optional body of attaching a registry.
#[derive(Deserialize, ToSchema)]
struct Weight {
    /// The registry's balancing weight, 1 to 100 (default 1).
    #[serde(default = "one")]
    weight: i64,
}

fn one() -> i64 {
    1
}

/// Attach a registry; the optional body `{"weight": 1..100}` sets its balancing weight.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}/registries/{registry_id}",
    tag = "consumers", operation_id = "attach_consumer_registry",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path), ("registry_id" = Uuid, Path)),
    request_body(content = Option<Weight>, description = "optional"),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn attach_registry(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    body: Bytes,
) -> Result<Json<ConsumerView>, ApiError> {
    let weight = if body.iter().all(u8::is_ascii_whitespace) {
        1
    } else {
        parse_strict::<Weight>(&body)?.weight
    };
    let Ok(weight @ 1..=100) = u8::try_from(weight) else {
        let mut p = Problems::default();
        p.add("weight", "must be between 1 and 100");
        return Err(p.into());
    };
    let consumer = state
        .store
        .attach_registry(ids[0], ids[1], ids[2], weight)
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

/// Detach a registry.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}/registries/{registry_id}",
    tag = "consumers", operation_id = "detach_consumer_registry",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path), ("registry_id" = Uuid, Path)),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn detach_registry(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<ConsumerView>, ApiError> {
    let consumer = state.store.detach_registry(ids[0], ids[1], ids[2]).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

/// Attach an auth: its credentials open this consumer.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}/auths/{auth_id}",
    tag = "consumers", operation_id = "attach_consumer_auth",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path), ("auth_id" = Uuid, Path)),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn attach_auth(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<ConsumerView>, ApiError> {
    let consumer = state.store.attach_auth(ids[0], ids[1], ids[2]).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

/// Detach an auth.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}/auths/{auth_id}",
    tag = "consumers", operation_id = "detach_consumer_auth",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path), ("auth_id" = Uuid, Path)),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn detach_auth(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<ConsumerView>, ApiError> {
    let consumer = state.store.detach_auth(ids[0], ids[1], ids[2]).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

/// Attach a policy: it runs on this consumer's requests.
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}/policies/{policy_id}",
    tag = "consumers", operation_id = "attach_consumer_policy",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path), ("policy_id" = Uuid, Path)),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn attach_policy(state: State<AdminState>, ids: Ids) -> Result<Json<ConsumerView>, ApiError> {
    link(state, ids, "policies", true).await
}

/// Detach a policy.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}/policies/{policy_id}",
    tag = "consumers", operation_id = "detach_consumer_policy",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path), ("policy_id" = Uuid, Path)),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn detach_policy(state: State<AdminState>, ids: Ids) -> Result<Json<ConsumerView>, ApiError> {
    link(state, ids, "policies", false).await
}

/// Attach a role (role-based consumers route by their roles).
#[utoipa::path(post, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}/roles/{role_id}",
    tag = "consumers", operation_id = "attach_consumer_role",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path), ("role_id" = Uuid, Path)),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn attach_role(state: State<AdminState>, ids: Ids) -> Result<Json<ConsumerView>, ApiError> {
    link(state, ids, "roles", true).await
}

/// Detach a role.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}/consumers/{consumer_id}/roles/{role_id}",
    tag = "consumers", operation_id = "detach_consumer_role",
    params(("gateway_id" = Uuid, Path), ("consumer_id" = Uuid, Path), ("role_id" = Uuid, Path)),
    responses((status = 200, description = "The consumer", body = ConsumerView)))]
async fn detach_role(state: State<AdminState>, ids: Ids) -> Result<Json<ConsumerView>, ApiError> {
    link(state, ids, "roles", false).await
}

/// Attach or detach a policy or role.
async fn link(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    other: &'static str,
    attach: bool,
) -> Result<Json<ConsumerView>, ApiError> {
    let consumer = state
        .store
        .link_consumer(ids[0], ids[1], other, ids[2], attach)
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}
