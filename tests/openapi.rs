//! The admin API's OpenAPI document: served without a token with its reference page,
//! naming every route the router answers (checked from outside, by asking the router
//! every method of every path the document or the admin's source names), valid OpenAPI
//! 3.1 by openapi-spec-validator, and true: real answers of every kind of object match
//! the schemas it gives them (jsonschema, `tests/openapi/check.py`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every string literal of the admin crate's source that looks like a path.
fn path_literals(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("admin/src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            path_literals(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            for (i, piece) in text.split('"').enumerate() {
                if i % 2 == 1
                    && piece.len() > 1
                    && piece.starts_with('/')
                    && !piece.contains(char::is_whitespace)
                {
                    out.insert(piece.to_string());
                }
            }
        }
    }
}

/// The documented template the router would match `candidate` with, as the router
/// does: segment by segment, a parameter taking any segment, the most static template
/// winning (`…/registries/test-connection` over `…/registries/{registry_id}`).
fn matching<'a>(documented: impl Iterator<Item = &'a String>, candidate: &str) -> Option<&'a str> {
    let c: Vec<&str> = candidate.split('/').collect();
    documented
        .filter_map(|t| {
            let segs: Vec<&str> = t.split('/').collect();
            if segs.len() != c.len() {
                return None;
            }
            let mut statics = 0;
            for (d, c) in segs.iter().zip(&c) {
                match (d.starts_with('{'), c.starts_with('{')) {
                    (true, _) => {}
                    (false, false) if d == c => statics += 1,
                    _ => return None,
                }
            }
            Some((statics, t.as_str()))
        })
        .max_by_key(|(statics, _)| *statics)
        .map(|(_, t)| t)
}

/// A path template with every `{param}` filled with a fresh id.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                uuid::Uuid::new_v4().to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// GET `path` without a token; it must answer 200 with `content_type`.
async fn open_get(admin: &Admin, path: &str, content_type: &str) -> String {
    let resp = client()
        .get(format!("{}{path}", admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let got = resp.headers()["content-type"].to_str().unwrap();
    assert!(got.starts_with(content_type), "{path}: {got}");
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_names_every_route_and_nothing_else() {
    let s = embedded().await;
    let http = client();

    // Served without a token, like the probes.
    let doc: Value =
        serde_json::from_str(&open_get(&s.admin, "/openapi.json", "application/json").await)
            .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");

    let mut candidates: BTreeSet<String> = paths.keys().cloned().collect();
    path_literals(&root().join("admin/src"), &mut candidates);
    for template in &candidates {
        for method in METHODS {
            let resp = http
                .request(
                    method.parse().unwrap(),
                    format!("{}{}", s.admin.base, concrete(template)),
                )
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or_default();
            let fallback = status == 404 && body["message"] == "route not found";
            let routed = status != 405 && !fallback;
            let documented = matching(paths.keys(), template)
                .is_some_and(|t| paths[t].get(method.to_ascii_lowercase()).is_some());
            assert_eq!(
                routed,
                documented,
                "{method} {template}: the router {} it ({status} {body}) but the document {}",
                if routed { "answers" } else { "does not answer" },
                if documented { "names it" } else { "does not" },
            );
        }
    }
    let operations: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert!(operations >= 59, "{operations} documented operations");

    // The reference page: no token, no asset from elsewhere, reads the document.
    let page = open_get(&s.admin, "/docs", "text/html").await;
    assert!(page.contains("fetch(\"openapi.json\")"));
    for external in [
        "src=\"http",
        "href=\"http",
        "<link",
        "@import",
        "<script src",
    ] {
        assert!(!page.contains(external), "the page loads {external}…");
    }
    // Every other route still needs the token.
    let resp = http
        .get(format!("{}/v1/gateways", s.admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    s.running.shutdown().await;
}

/// Answers gathered from a real session, with the template each was asked by.
struct Answers {
    admin: Admin,
    seen: Vec<Value>,
}

impl Answers {
    async fn ask(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let (status, answer) = self.admin.send(method, path, body).await;
        assert_eq!(status.as_u16(), expected, "{method} {path}: {answer}");
        self.seen.push(json!({
            "method": method, "path": template, "status": expected, "body": answer,
        }));
        answer
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1_and_true_to_the_answers_on_sqlite() {
    true_to_the_answers(embedded().await).await;
}

/// The same walk through every kind of object on the real PostgreSQL store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_true_to_the_answers_on_postgres() {
    let url = fresh_database("openapi").await;
    true_to_the_answers(embedded_on(Some(url)).await).await;
}

async fn true_to_the_answers(s: Embedded) {
    let python = root().join(".venv-sdk/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/sdk-venv.sh (make test does)",
        python.display()
    );
    let mut a = Answers {
        admin: s.admin.clone(),
        seen: Vec::new(),
    };

    let gw = a
        .ask(
            "POST",
            "/v1/gateways",
            "/v1/gateways",
            Some(
                json!({"name": "Docs", "slug": "docs", "metadata": {"team": "a"},
                "telemetry": {"exporters": [{"name": "file"}]},
                "entitlements": {"tier": "pro", "burst_per_min": 10}}),
            ),
            201,
        )
        .await;
    let g = gw["id"].as_str().unwrap().to_string();
    a.ask("GET", "/v1/gateways", "/v1/gateways?slug=docs", None, 200)
        .await;
    a.ask(
        "PUT",
        "/v1/gateways/{gateway_id}",
        &format!("/v1/gateways/{g}"),
        Some(json!({"domain": "docs.example.com"})),
        200,
    )
    .await;
    // Errors have their documented shape too.
    a.ask(
        "POST",
        "/v1/gateways",
        "/v1/gateways",
        Some(json!({"slug": "Not A Slug", "bogus": 1})),
        422,
    )
    .await;
    a.ask(
        "GET",
        "/v1/gateways/{gateway_id}",
        "/v1/gateways/not-a-uuid",
        None,
        400,
    )
    .await;

    let reg_t = "/v1/gateways/{gateway_id}/registries";
    let llm = a
        .ask(
            "POST",
            reg_t,
            &format!("/v1/gateways/{g}/registries"),
            Some(json!({"name": "llm", "provider": "openai_compatible",
                "provider_options": {"base_url": "http://127.0.0.1:9/v1"},
                "auth": {"type": "api_key", "api_key": "sk-docs-secret"},
                "health_checks": {"passive": true, "threshold": 2},
                "timeouts": {"connect_ms": 500}})),
            201,
        )
        .await;
    let r = llm["id"].as_str().unwrap().to_string();
    a.ask(
        "POST",
        reg_t,
        &format!("/v1/gateways/{g}/registries"),
        Some(json!({"name": "tools", "type": "MCP",
            "mcp_target": {"url": "http://127.0.0.1:9/mcp", "headers": {"x-key": "secret-value"}}})),
        201,
    )
    .await;
    a.ask(
        "GET",
        reg_t,
        &format!("/v1/gateways/{g}/registries?type=LLM"),
        None,
        200,
    )
    .await;
    a.ask(
        "GET",
        "/v1/gateways/{gateway_id}/registries/{registry_id}/health",
        &format!("/v1/gateways/{g}/registries/{r}/health"),
        None,
        200,
    )
    .await;
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/registries/test-connection",
        &format!("/v1/gateways/{g}/registries/test-connection"),
        Some(json!({"registry_id": r})),
        200,
    )
    .await;

    let consumer = a
        .ask(
            "POST",
            "/v1/gateways/{gateway_id}/consumers",
            &format!("/v1/gateways/{g}/consumers"),
            Some(json!({"name": "Docs App", "headers": {"x-team": "a"},
                "lb_config": {"algorithm": "weighted-round-robin"},
                "fallback": {"enabled": false, "triggers": ["http_5xx"], "budget": {"max_attempts": 2}},
                "model_policies": [{"registry_id": r, "allowed": ["gpt-4o-mini"], "default": "gpt-4o-mini"}]})),
            201,
        )
        .await;
    let c = consumer["id"].as_str().unwrap().to_string();
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/consumers/{consumer_id}/registries/{registry_id}",
        &format!("/v1/gateways/{g}/consumers/{c}/registries/{r}"),
        Some(json!({"weight": 7})),
        200,
    )
    .await;

    let auth = a
        .ask(
            "POST",
            "/v1/gateways/{gateway_id}/auths",
            &format!("/v1/gateways/{g}/auths"),
            Some(json!({"name": "key", "type": "api_key"})),
            201,
        )
        .await;
    let k = auth["id"].as_str().unwrap().to_string();
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/auths",
        &format!("/v1/gateways/{g}/auths"),
        Some(json!({"name": "sso", "type": "oidc",
            "oidc": {"issuer": "https://idp.example.com", "jwks_url": "https://idp.example.com/jwks"}})),
        201,
    )
    .await;
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/auths/{auth_id}/rotate",
        &format!("/v1/gateways/{g}/auths/{k}/rotate"),
        None,
        200,
    )
    .await;
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/consumers/{consumer_id}/auths/{auth_id}",
        &format!("/v1/gateways/{g}/consumers/{c}/auths/{k}"),
        None,
        200,
    )
    .await;
    a.ask(
        "GET",
        "/v1/gateways/{gateway_id}/auths",
        &format!("/v1/gateways/{g}/auths"),
        None,
        200,
    )
    .await;

    let policy = a
        .ask(
            "POST",
            "/v1/gateways/{gateway_id}/policies",
            &format!("/v1/gateways/{g}/policies"),
            Some(json!({"name": "60 rpm", "slug": "rate_limiter",
                "settings": {"limit": 60, "window": 60}})),
            201,
        )
        .await;
    let p = policy["id"].as_str().unwrap().to_string();
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/policies/{policy_id}/global",
        &format!("/v1/gateways/{g}/policies/{p}/global"),
        None,
        200,
    )
    .await;
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/policies/{policy_id}/duplicate",
        &format!("/v1/gateways/{g}/policies/{p}/duplicate"),
        None,
        201,
    )
    .await;
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/consumers/{consumer_id}/policies/{policy_id}",
        &format!("/v1/gateways/{g}/consumers/{c}/policies/{p}"),
        None,
        200,
    )
    .await;

    let role = a
        .ask(
            "POST",
            "/v1/gateways/{gateway_id}/roles",
            &format!("/v1/gateways/{g}/roles"),
            Some(json!({"name": "analysts",
                "model_policies": [{"registry_id": r, "allowed": ["gpt-4o-mini"]}],
                "oidc_mapping": {"match": "any", "claims": [{"path": "groups", "op": "contains_any", "values": ["analysts"]}]}})),
            201,
        )
        .await;
    let o = role["id"].as_str().unwrap().to_string();
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/roles/{role_id}/registries/{registry_id}",
        &format!("/v1/gateways/{g}/roles/{o}/registries/{r}"),
        None,
        200,
    )
    .await;
    a.ask(
        "POST",
        "/v1/gateways/{gateway_id}/consumers/{consumer_id}/roles/{role_id}",
        &format!("/v1/gateways/{g}/consumers/{c}/roles/{o}"),
        None,
        200,
    )
    .await;
    a.ask(
        "GET",
        "/v1/gateways/{gateway_id}/consumers",
        &format!("/v1/gateways/{g}/consumers?active=true"),
        None,
        200,
    )
    .await;
    a.ask(
        "DELETE",
        "/v1/gateways/{gateway_id}/registries/{registry_id}",
        &format!("/v1/gateways/{g}/registries/{r}"),
        None,
        409,
    )
    .await;

    for catalog in [
        "/v1/providers-catalog",
        "/v1/models-catalog",
        "/v1/policies-catalog",
        "/v1/mcp-servers-catalog",
    ] {
        a.ask("GET", catalog, catalog, None, 200).await;
    }
    a.ask(
        "POST",
        "/v1/admin-tokens",
        "/v1/admin-tokens",
        Some(json!({"name": "ci", "gateway_id": g, "scopes": ["registries:read"]})),
        201,
    )
    .await;
    a.ask("GET", "/v1/admin-tokens", "/v1/admin-tokens", None, 200)
        .await;
    a.ask("GET", "/healthz", "/healthz", None, 200).await;
    a.ask("GET", "/readyz", "/readyz", None, 200).await;
    a.ask(
        "DELETE",
        "/v1/gateways/{gateway_id}",
        &format!("/v1/gateways/{g}"),
        None,
        204,
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let doc_path = dir.path().join("openapi.json");
    let doc = open_get(&s.admin, "/openapi.json", "application/json").await;
    std::fs::write(&doc_path, &doc).unwrap();
    let answers_path = dir.path().join("answers.json");
    std::fs::write(&answers_path, serde_json::to_vec(&a.seen).unwrap()).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .arg(root().join("tests/openapi/check.py"))
            .arg(&doc_path)
            .arg(&answers_path)
            .output(),
    )
    .await
    .expect("the check finishes")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{} answers match", a.seen.len())));
    s.running.shutdown().await;
}
