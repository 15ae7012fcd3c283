//! Fixtures shared by the benchmarks: config documents of a chosen size.

use serde_json::json;
use sluice_shared::apikey;
use sluice_shared::document::GatewayDocument;
use uuid::Uuid;

/// A gateway document with `consumers` consumers, each with its own key and registry.
/// Consumer `i` has slug `c{i}` and key `ag_bench_{i}`.
pub fn document(consumers: usize) -> Option<GatewayDocument> {
    document_with(consumers, consumers)
}

/// [`document`] with `registries` registries, consumer `i` linked to registry
/// `i % registries`.
pub fn document_with(consumers: usize, registries: usize) -> Option<GatewayDocument> {
    let gw = Uuid::now_v7();
    let reg_ids: Vec<Uuid> = (0..registries.max(1)).map(|_| Uuid::now_v7()).collect();
    let registries: Vec<_> = reg_ids
        .iter()
        .enumerate()
        .map(|(i, reg)| {
            json!({"id": reg, "gateway_id": gw, "name": format!("r{i}"), "provider": "openai",
            "auth": {"type": "api_key", "api_key": "sk"}, "created_at": "t", "updated_at": "t"})
        })
        .collect();
    let mut cons = Vec::new();
    let mut auths = Vec::new();
    for i in 0..consumers {
        let (reg, auth) = (reg_ids[i % reg_ids.len()], Uuid::now_v7());
        auths.push(json!({"id": auth, "gateway_id": gw, "name": format!("k{i}"), "type": "api_key",
            "key_hash": apikey::hex(&apikey::digest(&format!("ag_bench_{i}"))), "created_at": "t", "updated_at": "t"}));
        cons.push(json!({"id": Uuid::now_v7(), "gateway_id": gw, "slug": format!("c{i}"), "name": format!("c{i}"),
            "registries": [{"registry_id": reg, "weight": 1}], "auth_ids": [auth], "created_at": "t", "updated_at": "t"}));
    }
    serde_json::from_value(json!({
        "version": 1,
        "gateway": {"id": gw, "slug": "bench", "version": 1, "created_at": "t", "updated_at": "t"},
        "registries": registries, "consumers": cons, "auths": auths
    }))
    .ok()
}
