//! `/v1/gateways/{gateway_id}/consumers`: the applications that call the proxy, and their
//! links to registries (with a weight) and auths.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_shared::model::{Consumer, ConsumerSpec, Problems};
use sluice_shared::store::{ConsumerFilter, Paged};

use super::{created, merge};
use crate::AdminState;
use crate::error::ApiError;
use crate::extract::{Ids, ListQuery, StrictJson, parse_strict};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route(
            "/v1/gateways/{gateway_id}/consumers",
            get(list).post(create),
        )
        .route(
            "/v1/gateways/{gateway_id}/consumers/{consumer_id}",
            get(read).put(update).delete(remove),
        )
        .route(
            "/v1/gateways/{gateway_id}/consumers/{consumer_id}/registries/{registry_id}",
            post(attach_registry).delete(detach_registry),
        )
        .route(
            "/v1/gateways/{gateway_id}/consumers/{consumer_id}/auths/{auth_id}",
            post(attach_auth).delete(detach_auth),
        )
        .route(
            "/v1/gateways/{gateway_id}/consumers/{consumer_id}/policies/{policy_id}",
            post(|s, i| link(s, i, "policies", true)).delete(|s, i| link(s, i, "policies", false)),
        )
        .route(
            "/v1/gateways/{gateway_id}/consumers/{consumer_id}/roles/{role_id}",
            post(|s, i| link(s, i, "roles", true)).delete(|s, i| link(s, i, "roles", false)),
        )
}

/// A consumer as responses show it: its fields, plus `registry_ids`, `registry_weights`
/// (id → weight), `auth_ids`, `policy_ids` and `role_ids`.
fn view(consumer: Consumer) -> Value {
    let registry_ids: Vec<_> = consumer.registries.iter().map(|l| l.registry_id).collect();
    let weights: Map<String, Value> = consumer
        .registries
        .iter()
        .map(|l| (l.registry_id.to_string(), json!(l.weight)))
        .collect();
    let mut value = serde_json::to_value(&consumer).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.remove("registries");
        fields.insert("registry_ids".into(), json!(registry_ids));
        fields.insert("registry_weights".into(), Value::Object(weights));
    }
    value
}

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

async fn list(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    query: ListQuery,
) -> Result<Json<Paged<Value>>, ApiError> {
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

async fn read(State(state): State<AdminState>, Ids(ids): Ids) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(state.store.consumer(ids[0], ids[1]).await?)))
}

async fn update(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    StrictJson(body): StrictJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let stored = state.store.consumer(ids[0], ids[1]).await?;
    let spec: ConsumerSpec = merge(&stored.spec, body)?;
    spec.validate()?;
    let consumer = state.store.update_consumer(ids[0], ids[1], &spec).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

async fn remove(State(state): State<AdminState>, Ids(ids): Ids) -> Result<StatusCode, ApiError> {
    state.store.delete_consumer(ids[0], ids[1]).await?;
    state.publish(ids[0]).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Weight {
    #[serde(default = "one")]
    weight: i64,
}

fn one() -> i64 {
    1
}

/// Attach a registry; the optional body `{"weight": 1..100}` sets its balancing weight.
async fn attach_registry(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
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

async fn detach_registry(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Value>, ApiError> {
    let consumer = state.store.detach_registry(ids[0], ids[1], ids[2]).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

async fn attach_auth(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Value>, ApiError> {
    let consumer = state.store.attach_auth(ids[0], ids[1], ids[2]).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

async fn detach_auth(
    State(state): State<AdminState>,
    Ids(ids): Ids,
) -> Result<Json<Value>, ApiError> {
    let consumer = state.store.detach_auth(ids[0], ids[1], ids[2]).await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}

/// Attach or detach a policy or role.
async fn link(
    State(state): State<AdminState>,
    Ids(ids): Ids,
    other: &'static str,
    attach: bool,
) -> Result<Json<Value>, ApiError> {
    let consumer = state
        .store
        .link_consumer(ids[0], ids[1], other, ids[2], attach)
        .await?;
    state.publish(ids[0]).await;
    Ok(Json(view(consumer)))
}
