//! Admin API scenarios: every resource, its validation and integrity rules, on the
//! embedded SQLite store and on the real local PostgreSQL; authentication with the admin
//! token and scoped tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_validates_and_keeps_integrity_on_sqlite() {
    let s = embedded().await;
    admin_validates_and_keeps_integrity(&s).await;
    policies_and_roles(&s).await;
    fields_and_filters(&s).await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_validates_and_keeps_integrity_on_postgres() {
    let s = embedded_on(Some(fresh_database("admin").await)).await;
    admin_validates_and_keeps_integrity(&s).await;
    policies_and_roles(&s).await;
    fields_and_filters(&s).await;
    s.running.shutdown().await;
}

async fn fields_and_filters(s: &Embedded) {
    let a = &s.admin;
    let gw = a
        .ok(
            "POST",
            "/v1/gateways",
            Some(json!({"slug": "fields", "tenant_id": "t-1",
            "telemetry": {"exporters": [{"name": "kafka", "settings": {"topic": "llm"}}]},
            "session_config": {"enabled": true, "header_name": "x-session-id"},
            "entitlements": {"tier": "gold", "burst_per_min": 100, "quota_per_month": 1000000}})),
            201,
        )
        .await;
    assert_eq!(gw["entitlements"]["tier"], "gold");
    let (status, body) = a
        .send("POST", "/v1/gateways", Some(json!({"slug": "bad-tel", "telemetry": {"exporters": [{"name": "carrier-pigeon"}]}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("telemetry.exporters[0].name"))
    );
    let g = format!("/v1/gateways/{}", gw["id"].as_str().expect("id"));

    // Registries: MCP ones need an mcp_target, LLM ones a provider.
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "m", "type": "MCP"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("mcp_target"))
    );
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "l"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("provider"))
    );
    let mcp = a
        .ok(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "tools", "type": "MCP",
            "mcp_target": {"url": "http://127.0.0.1:9/mcp", "auth": {"mode": "none"}}})),
            201,
        )
        .await;
    assert_eq!(mcp["mcp_target"]["transport"], "streamable-http");
    let llm = a
        .ok(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "llm", "provider": "openai",
            "health_checks": {"path": "/v1/models", "threshold": 3, "interval": 10}})),
            201,
        )
        .await;
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "hc", "provider": "openai", "health_checks": {"path": "models"}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("health_checks.path"))
    );
    assert_eq!(
        a.ok("GET", &format!("{g}/registries?type=mcp"), None, 200)
            .await["total"],
        1
    );
    assert_eq!(
        a.ok("GET", &format!("{g}/registries?type=LLM"), None, 200)
            .await["total"],
        1
    );
    let (status, _) = a
        .send("GET", &format!("{g}/registries?type=xyz"), None)
        .await;
    assert_eq!(status, 400);

    // Consumers: routing fields are validated; role-based consumers carry none.
    let llm_id = llm["id"].as_str().expect("id");
    let routed = a
        .ok("POST", &format!("{g}/consumers"), Some(json!({"name": "routed",
            "lb_config": {"algorithm": "weighted-round-robin", "members": [{"registry_id": llm_id, "weight": 5}]},
            "fallback": {"enabled": true, "triggers": ["http_5xx", "http_429"], "budget": {"max_attempts": 3}, "chain": [llm_id]},
            "model_policies": [{"registry_id": llm_id, "allowed": ["gpt-4o"], "default": "gpt-4o"}]})), 201)
        .await;
    assert_eq!(routed["lb_config"]["algorithm"], "weighted-round-robin");
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/consumers"),
            Some(json!({"name": "rb", "routing_mode": "role_based",
            "lb_config": {"algorithm": "random"}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("lb_config"))
    );
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/consumers"),
            Some(json!({"name": "w",
            "lb_config": {"members": [{"registry_id": llm_id, "weight": 0}]}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("lb_config.members[0].weight"))
    );
    let (status, _) = a
        .send(
            "POST",
            &format!("{g}/consumers"),
            Some(json!({"name": "alg", "lb_config": {"algorithm": "fastest"}})),
        )
        .await;
    assert_eq!(status, 422);
    a.ok(
        "POST",
        &format!("{g}/consumers"),
        Some(json!({"name": "agent", "type": "MCP", "active": false,
        "mcp": {"fail_mode": "closed"}})),
        201,
    )
    .await;
    let auth = a
        .ok(
            "POST",
            &format!("{g}/auths"),
            Some(json!({"name": "k"})),
            201,
        )
        .await;
    a.ok(
        "POST",
        &format!(
            "{g}/consumers/{}/auths/{}",
            routed["id"].as_str().expect("id"),
            auth["id"].as_str().expect("id")
        ),
        None,
        200,
    )
    .await;
    let count = |q: &'static str| {
        let url = format!("{g}/consumers?{q}");
        async move { a.ok("GET", &url, None, 200).await["total"].as_i64() }
    };
    assert_eq!(count("type=MCP").await, Some(1));
    assert_eq!(count("active=false").await, Some(1));
    assert_eq!(count("active=true").await, Some(1));
    assert_eq!(count("search=rout").await, Some(1));
    let by_auth = format!("{g}/consumers?auth_id={}", auth["id"].as_str().expect("id"));
    assert_eq!(
        a.ok("GET", &by_auth, None, 200).await["items"][0]["name"],
        "routed"
    );
    let (status, body) = a
        .send("GET", &format!("{g}/consumers?auth_id=nope"), None)
        .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_uuid"))
    );
    // Credential types: tokens and certificates are verified, not minted.
    let oauth = a
        .ok("POST", &format!("{g}/auths"), Some(json!({"name": "sso", "type": "oauth2",
            "oauth2": {"issuer": "https://id.example.com", "jwks_url": "https://id.example.com/jwks",
                       "audiences": ["sluice"], "allowed_algorithms": ["RS256"]}})), 201)
        .await;
    assert!(oauth.get("key").is_none() && oauth.get("key_prefix").is_none());
    a.ok("POST", &format!("{g}/auths"), Some(json!({"name": "mtls", "type": "mtls",
        "mtls": {"ca_cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "allowed_common_names": ["svc"]}})), 201)
        .await;
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/auths"),
            Some(json!({"name": "bad", "type": "oidc"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("oidc"))
    );
    let (status, body) = a
        .send("POST", &format!("{g}/auths"), Some(json!({"name": "bad", "type": "oauth2",
            "oauth2": {"issuer": "https://id", "jwks_url": "https://id/jwks", "allowed_algorithms": ["none"]}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("oauth2.allowed_algorithms[0]"))
    );

    // Upstream credentials of every type are masked on read.
    let azure = a
        .ok("POST", &format!("{g}/registries"), Some(json!({"name": "az", "provider": "azure",
            "provider_options": {"base_url": "https://res.openai.azure.com/openai"},
            "auth": {"type": "azure", "client_id": "cid", "client_secret": "azure-client-secret", "tenant_id": "tid"}})), 201)
        .await;
    assert_eq!(azure["auth"]["client_secret"], "****cret");
    assert!(!azure.to_string().contains("azure-client-secret"));
    let (status, body) = a
        .send(
            "POST",
            &format!("{g}/registries"),
            Some(json!({"name": "aws", "provider": "bedrock",
            "provider_options": {"base_url": "https://bedrock-runtime.us-east-1.amazonaws.com"},
            "auth": {"type": "aws", "region": "us-east-1", "access_key_id": "AKIA"}})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("auth.secret_access_key"))
    );
    a.ok("DELETE", &g, None, 204).await;
}

async fn policies_and_roles(s: &Embedded) {
    let a = &s.admin;
    let upstream = "http://127.0.0.1:9/v1";
    let f = setup(a, "governed", upstream).await;
    let gw = format!("/v1/gateways/{}", f.gateway_id);

    let (status, body) = a
        .send(
            "POST",
            &format!("{gw}/policies"),
            Some(json!({"name": "p", "slug": "no_such_kind"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("slug"))
    );
    let policy = a
        .ok("POST", &format!("{gw}/policies"), Some(json!({"name": "limit", "slug": "rate_limiter",
            "priority": 10, "stages": ["pre_request"], "mode": "observe", "settings": {"limit": 5, "window": 60}})), 201)
        .await;
    assert_eq!(
        (policy["global"].as_bool(), policy["mode"].as_str()),
        (Some(false), Some("observe"))
    );
    let pid = policy["id"].as_str().expect("id");
    let global = a
        .ok("POST", &format!("{gw}/policies/{pid}/global"), None, 200)
        .await;
    assert_eq!(global["global"], true);
    assert_eq!(
        a.ok("DELETE", &format!("{gw}/policies/{pid}/global"), None, 200)
            .await["global"],
        false
    );
    let copy = a
        .ok("POST", &format!("{gw}/policies/{pid}/duplicate"), None, 201)
        .await;
    assert_eq!(copy["name"], "limit (copy)");
    let copy2 = a
        .ok("POST", &format!("{gw}/policies/{pid}/duplicate"), None, 201)
        .await;
    assert_eq!(copy2["name"], "limit (copy 2)");
    let updated = a
        .ok(
            "PUT",
            &format!("{gw}/policies/{pid}"),
            Some(json!({"enabled": false})),
            200,
        )
        .await;
    assert_eq!(
        (updated["enabled"].as_bool(), updated["priority"].as_i64()),
        (Some(false), Some(10))
    );
    assert_eq!(
        a.ok("GET", &format!("{gw}/policies"), None, 200).await["total"],
        3
    );

    let (status, body) = a
        .send(
            "POST",
            &format!("{gw}/roles"),
            Some(json!({"name": "r", "model_policies": [
            {"registry_id": f.registry_id, "allowed": ["a"], "default": "b"}]})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("model_policies[0].default"))
    );
    let role = a
        .ok(
            "POST",
            &format!("{gw}/roles"),
            Some(json!({"name": "analysts"})),
            201,
        )
        .await;
    let rid = role["id"].as_str().expect("id");
    let linked = a
        .ok(
            "POST",
            &format!("{gw}/roles/{rid}/registries/{}", f.registry_id),
            None,
            200,
        )
        .await;
    assert_eq!(linked["registry_ids"], json!([f.registry_id]));
    // A registry linked to a role is in use too.
    a.ok(
        "DELETE",
        &format!(
            "{gw}/consumers/{}/registries/{}",
            f.consumer_id, f.registry_id
        ),
        None,
        200,
    )
    .await;
    let (status, _) = a
        .send(
            "DELETE",
            &format!("{gw}/registries/{}", f.registry_id),
            None,
        )
        .await;
    assert_eq!(status, 409);
    a.ok(
        "DELETE",
        &format!("{gw}/roles/{rid}/registries/{}", f.registry_id),
        None,
        200,
    )
    .await;

    let consumer = format!("{gw}/consumers/{}", f.consumer_id);
    a.ok("POST", &format!("{consumer}/policies/{pid}"), None, 200)
        .await;
    let c = a
        .ok("POST", &format!("{consumer}/roles/{rid}"), None, 200)
        .await;
    assert_eq!(
        (c["policy_ids"].clone(), c["role_ids"].clone()),
        (json!([pid]), json!([rid]))
    );
    let (status, _) = a
        .send(
            "POST",
            &format!("{consumer}/roles/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Deleting a policy removes its links.
    a.ok("DELETE", &format!("{gw}/policies/{pid}"), None, 204)
        .await;
    assert_eq!(
        a.ok("GET", &consumer, None, 200).await["policy_ids"],
        json!([])
    );
    a.ok("DELETE", &format!("{consumer}/roles/{rid}"), None, 200)
        .await;
    a.ok("DELETE", &format!("{gw}/roles/{rid}"), None, 204)
        .await;
}

async fn admin_validates_and_keeps_integrity(s: &Embedded) {
    let a = &s.admin;
    let (status, body) = a
        .send(
            "POST",
            "/v1/gateways",
            Some(json!({"slug": "ok-gw", "colour": "red"})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["details"][0]["field"], "colour");
    let (status, body) = a
        .send("POST", "/v1/gateways", Some(json!({"slug": "Not A Slug"})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("slug"))
    );
    let gw = a
        .ok("POST", "/v1/gateways", Some(json!({"slug": "ok-gw"})), 201)
        .await;
    let (status, body) = a
        .send("POST", "/v1/gateways", Some(json!({"slug": "ok-gw"})))
        .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (409, Some("already_exists"))
    );
    let (status, body) = a.send("GET", "/v1/gateways/not-a-uuid", None).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_uuid"))
    );
    let (status, _) = a
        .send(
            "GET",
            &format!("/v1/gateways/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let gid = gw["id"].as_str().expect("id");
    let (status, body) = a
        .send(
            "POST",
            &format!("/v1/gateways/{gid}/registries"),
            Some(json!({"name": "x", "provider": "openai_compatible"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("provider_options.base_url"))
    );
    let (status, body) = a
        .send("POST", &format!("/v1/gateways/{gid}/registries"), Some(json!({"name": "x", "provider": "openai", "auth": {"type": "api_key", "api_key": "k", "extra": 1}})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("auth"))
    );
    assert!(
        body["details"][0]["problem"]
            .as_str()
            .expect("problem")
            .contains("extra"),
        "{body}"
    );

    // A registry in use cannot be deleted unless forced.
    let f = setup(a, "integrity", "http://127.0.0.1:9/v1").await;
    let reg = format!("/v1/gateways/{}/registries/{}", f.gateway_id, f.registry_id);
    let (status, body) = a.send("DELETE", &reg, None).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (409, Some("has_dependents"))
    );
    a.ok("DELETE", &format!("{reg}?force=true"), None, 204)
        .await;
    let consumer = a
        .ok(
            "GET",
            &format!("/v1/gateways/{}/consumers/{}", f.gateway_id, f.consumer_id),
            None,
            200,
        )
        .await;
    assert_eq!(consumer["registry_ids"], json!([]));

    // Keys are shown once; reads show only their ends.
    let auth = a
        .ok(
            "GET",
            &format!("/v1/gateways/{}/auths/{}", f.gateway_id, f.auth_id),
            None,
            200,
        )
        .await;
    assert!(auth.get("key").is_none() && auth.get("key_hash").is_none());
    assert_eq!(auth["key_suffix"].as_str(), Some(&f.key[f.key.len() - 4..]));

    // Listing pages.
    let page = a.ok("GET", "/v1/gateways?page=1&size=1", None, 200).await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
    let (status, _) = a.send("GET", "/v1/gateways?size=500", None).await;
    assert_eq!(status, 400);

    // Deleting a gateway removes everything under it.
    a.ok(
        "DELETE",
        &format!("/v1/gateways/{}", f.gateway_id),
        None,
        204,
    )
    .await;
    let (status, _) = a
        .send(
            "GET",
            &format!("/v1/gateways/{}/consumers/{}", f.gateway_id, f.consumer_id),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requires_its_token() {
    let s = embedded().await;
    let http = client();
    let url = format!("{}/v1/gateways", s.admin.base);
    for token in [None, Some("wrong"), Some("test-admin-tokenX")] {
        let mut req = http.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 401, "{token:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            resp.json::<Value>().await.expect("json")["error"],
            "unauthorized"
        );
    }
    assert_eq!(
        http.get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("ok")
            .status(),
        200
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_admin_tokens_reach_only_their_gateway_and_resources() {
    let s = embedded().await;
    let a = &s.admin;
    let mine = setup(a, "mine", "http://127.0.0.1:9/v1").await;
    let theirs = setup(a, "theirs", "http://127.0.0.1:9/v1").await;
    let (status, body) = a
        .send("POST", "/v1/admin-tokens", Some(json!({"name": "ci", "gateway_id": mine.gateway_id, "scopes": ["registries:admin"]})))
        .await;
    assert_eq!(
        (status.as_u16(), body["details"][0]["field"].as_str()),
        (422, Some("scopes[0]"))
    );
    let created = a
        .ok(
            "POST",
            "/v1/admin-tokens",
            Some(json!({"name": "ci", "gateway_id": mine.gateway_id,
            "scopes": ["registries:read", "consumers:write"]})),
            201,
        )
        .await;
    let token = created["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("sls_"));
    let listed = a.ok("GET", "/v1/admin-tokens", None, 200).await;
    assert!(
        !listed.to_string().contains(&token),
        "the token is shown once"
    );

    let scoped = |method: &str, path: String| {
        let http = client();
        let url = format!("{}{path}", a.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let token = token.clone();
        async move {
            http.request(method, url)
                .bearer_auth(token)
                .json(&json!({"name": "x"}))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    let g = format!("/v1/gateways/{}", mine.gateway_id);
    assert_eq!(scoped("GET", format!("{g}/registries")).await, 200);
    assert_eq!(scoped("POST", format!("{g}/registries")).await, 403);
    assert_eq!(scoped("POST", format!("{g}/consumers")).await, 201);
    assert_eq!(scoped("GET", format!("{g}/auths")).await, 403);
    assert_eq!(
        scoped(
            "GET",
            format!("/v1/gateways/{}/registries", theirs.gateway_id)
        )
        .await,
        403
    );
    assert_eq!(scoped("GET", "/v1/gateways".into()).await, 403);
    assert_eq!(scoped("GET", "/v1/admin-tokens".into()).await, 403);
    assert_eq!(scoped("GET", "/v1/policies-catalog".into()).await, 200);

    a.ok(
        "DELETE",
        &format!("/v1/admin-tokens/{}", created["id"].as_str().expect("id")),
        None,
        204,
    )
    .await;
    assert_eq!(scoped("GET", format!("{g}/registries")).await, 401);
    s.running.shutdown().await;
}
