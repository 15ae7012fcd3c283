//! The admin API's read-only catalogs, policy settings checked against them, and registry
//! connection tests against the mock provider.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_and_policy_settings() {
    let s = embedded().await;
    let a = &s.admin;
    let providers = a.ok("GET", "/v1/providers-catalog", None, 200).await;
    let ids: Vec<_> = providers["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 13);
    assert!(ids.contains(&"anthropic") && ids.contains(&"openrouter"));
    let models = a
        .ok("GET", "/v1/models-catalog?provider=anthropic", None, 200)
        .await;
    let items = models["items"].as_array().expect("items");
    assert!(!items.is_empty() && items.iter().all(|m| m["provider"] == "anthropic"));
    assert!(
        items
            .iter()
            .all(|m| m["max_output_tokens"].as_u64().is_some()
                && m["input_per_1m"].as_f64().is_some())
    );
    let (status, _) = a
        .send("GET", "/v1/models-catalog?provider=nope", None)
        .await;
    assert_eq!(status, 400);
    let kinds = a.ok("GET", "/v1/policies-catalog", None, 200).await;
    let rate = kinds["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|k| k["slug"] == "rate_limiter")
        .expect("kind");
    assert_eq!(
        rate["settings_schema"]["required"],
        json!(["limit", "window"])
    );
    assert!(
        a.ok("GET", "/v1/mcp-servers-catalog", None, 200).await["items"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );

    // Policy settings are checked against the kind's schema.
    a.ok("POST", "/v1/gateways", Some(json!({"slug": "pol"})), 201)
        .await;
    let gw = a.ok("GET", "/v1/gateways?slug=pol", None, 200).await["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let url = format!("/v1/gateways/{gw}/policies");
    let (status, body) = a
        .send("POST", &url, Some(json!({"name": "rl", "slug": "rate_limiter", "settings": {"limit": 0, "window": 60, "burst": 1}})))
        .await;
    assert_eq!(status, 422);
    let fields: Vec<_> = body["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| d["field"].as_str().expect("f"))
        .collect();
    assert_eq!(fields, ["settings.burst", "settings.limit"]);
    let (status, body) = a
        .send("POST", &url, Some(json!({"name": "rl", "slug": "cors", "mode": "throttle", "settings": {"allowed_origins": ["*"]}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("mode"))
    );
    let (status, body) = a
        .send("POST", &url, Some(json!({"name": "rl", "slug": "cors", "stages": ["post_response"], "settings": {"allowed_origins": ["*"]}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("stages[0]"))
    );
    a.ok("POST", &url, Some(json!({"name": "rl", "slug": "rate_limiter", "mode": "throttle",
        "settings": {"limit": 10, "window": 60, "group_by": "header", "group_by_header": "x-user"}})), 201)
        .await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_connection_tests_name_the_failing_stage() {
    let s = embedded().await;
    let a = &s.admin;
    let upstream = mock("m").await;
    let f = setup(a, "probe", &upstream.base_url()).await;
    let url = format!("/v1/gateways/{}/registries/test-connection", f.gateway_id);

    let saved = a
        .ok(
            "POST",
            &url,
            Some(json!({"registry_id": f.registry_id})),
            200,
        )
        .await;
    assert_eq!(
        (
            saved["ok"].as_bool(),
            saved["stage"].as_str(),
            saved["status_code"].as_u64()
        ),
        (Some(true), Some("provider"), Some(200))
    );
    assert_eq!(saved["provider"], "openai_compatible");
    assert!(saved["latency_ms"].as_u64().is_some());
    let seen = upstream.recorded();
    let probe = seen.last().expect("probe reached the mock");
    assert_eq!(
        (probe.method.as_str(), probe.path_and_query.as_str()),
        ("GET", "/v1/models")
    );

    let unsaved = |key: &str, base: String| {
        json!({"provider": "openai_compatible",
        "provider_options": {"base_url": base}, "auth": {"type": "api_key", "api_key": key}})
    };
    let wrong = a
        .ok(
            "POST",
            &url,
            Some(unsaved("sk-wrong", upstream.base_url())),
            200,
        )
        .await;
    assert_eq!(
        (
            wrong["ok"].as_bool(),
            wrong["stage"].as_str(),
            wrong["status_code"].as_u64()
        ),
        (Some(false), Some("authentication"), Some(401))
    );
    let down = a
        .ok(
            "POST",
            &url,
            Some(unsaved(UPSTREAM_KEY, format!("http://{}/v1", free_addr()))),
            200,
        )
        .await;
    assert_eq!(
        (down["ok"].as_bool(), down["stage"].as_str()),
        (Some(false), Some("connectivity"))
    );
    let other = a
        .ok("POST", &url, Some(json!({"provider": "bedrock", "provider_options": {"base_url": "https://bedrock.example"},
            "auth": {"type": "aws", "region": "us-east-1"}})), 200)
        .await;
    assert_eq!(other["stage"], "unsupported");
    let (status, _) = a
        .send("POST", &url, Some(json!({"provider": "openai_compatible"})))
        .await;
    assert_eq!(status, 422);
    let (status, _) = a
        .send(
            "POST",
            &url,
            Some(json!({"registry_id": uuid::Uuid::new_v4()})),
        )
        .await;
    assert_eq!(status, 404);
    s.running.shutdown().await;
}

/// With `SLUICE_MODELS_CATALOG_URL`, the catalog comes from that URL at boot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_catalog_syncs_from_a_url() {
    let catalog = json!({"models": [{"provider": "openai", "model": "gpt-next", "context_window": 1000000,
        "max_output_tokens": 64000, "input_per_1m": 1.0, "output_per_1m": 4.0, "cached_input_per_1m": 0.1,
        "capabilities": ["chat"]}]});
    let addr = serve_json(catalog.to_string()).await;
    let s = embedded_with(|settings| {
        settings.models_catalog_url = Some(format!("http://{addr}/models.json"))
    })
    .await;
    let models = s
        .admin
        .ok("GET", "/v1/models-catalog?provider=openai", None, 200)
        .await;
    let names: Vec<_> = models["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["model"].clone())
        .collect();
    assert_eq!(names, [json!("gpt-next")]);
    s.running.shutdown().await;
}
