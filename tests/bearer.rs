//! Bearer tokens on the proxy: consumers whose auths are OAuth2 (JWKS, introspection)
//! or OIDC (PEM keys); verified claims feed `prompt_template`; every bad token gets a
//! clear 401 or 403 and never reaches the provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::*;

const EC_PRIVATE: &str = include_str!("fixtures/jwt/ec-private.pem");
const EC_PUBLIC: &str = include_str!("fixtures/jwt/ec-public.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn good_claims() -> Value {
    json!({"iss": "https://idp.test", "aud": "sluice", "sub": "user-1", "exp": now() + 600,
        "scope": "llm read", "name": "Ana", "org": {"id": "acme"}})
}

async fn with_token(s: &Embedded, f: &Fixture, token: &str) -> reqwest::Response {
    let req = s.proxy.request(f, "chat/completions").bearer_auth(token);
    req.json(&simple_chat(false)).send().await.unwrap()
}

async fn attach_auth(s: &Embedded, f: &Fixture, spec: Value) {
    let auth = s
        .admin
        .ok(
            "POST",
            &format!("/v1/gateways/{}/auths", f.gateway_id),
            Some(spec),
            201,
        )
        .await;
    let aid = auth["id"].as_str().unwrap();
    s.admin
        .ok(
            "POST",
            &format!(
                "/v1/gateways/{}/consumers/{}/auths/{aid}",
                f.gateway_id, f.consumer_id
            ),
            None,
            200,
        )
        .await;
}

async fn code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or_default();
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_and_opaque_tokens_authenticate_and_their_claims_fill_templates() {
    let s = embedded().await;
    let m = mock("bearer").await;
    let f = setup(&s.admin, "bearer", &m.base_url()).await;
    s.proxy.wait_serving(&f).await;
    let jwks = serve_json(JWKS.to_string()).await;
    let introspection = serve_json(
        json!({"active": true, "iss": "https://opaque.test", "sub": "svc-9", "name": "Robot"})
            .to_string(),
    )
    .await;
    attach_auth(
        &s,
        &f,
        json!({"name": "idp", "type": "oauth2", "oauth2": {"issuer": "https://idp.test",
            "audiences": ["sluice"], "jwks_url": format!("http://{jwks}/jwks.json"),
            "required_scopes": ["llm"]}}),
    )
    .await;
    attach_auth(
        &s,
        &f,
        json!({"name": "oidc", "type": "oidc", "oidc": {"issuer": "https://oidc.test",
            "public_keys": [EC_PUBLIC]}}),
    )
    .await;
    attach_auth(
        &s,
        &f,
        json!({"name": "opaque", "type": "oauth2", "oauth2": {"issuer": "https://opaque.test",
            "introspection_url": format!("http://{introspection}/introspect")}}),
    )
    .await;
    policy(
        &s.admin,
        &f,
        json!({"name": "greeting", "slug": "prompt_template",
            "settings": {"system": "Hello {{claim.name}} ({{claim.org.id}})"}}),
        true,
    )
    .await;

    let token = rs256(&good_claims());
    eventually(Duration::from_secs(10), "bearer auth to apply", || async {
        (with_token(&s, &f, &token).await.status() == 200).then_some(())
    })
    .await;
    let up = m.recorded().last().unwrap().clone();
    let body: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(body["messages"][0]["content"], "Hello Ana (acme)");
    // The caller's token never reaches the provider; the registry's key does.
    assert_eq!(
        up.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}").as_str()
    );

    // OIDC with a PEM key, ES256.
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let es = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &json!({"iss": "https://oidc.test", "sub": "u2", "exp": now() + 600, "name": "Bo"}),
        &key,
    )
    .unwrap();
    assert_eq!(with_token(&s, &f, &es).await.status(), 200);
    let body: Value = serde_json::from_slice(&m.recorded().last().unwrap().body).unwrap();
    assert_eq!(body["messages"][0]["content"], "Hello Bo ()");

    // An opaque token, by introspection.
    assert_eq!(with_token(&s, &f, "opaque-token-123").await.status(), 200);
    let body: Value = serde_json::from_slice(&m.recorded().last().unwrap().body).unwrap();
    assert_eq!(body["messages"][0]["content"], "Hello Robot ()");

    // Every bad token: a clear error, and nothing reaches the provider.
    let served = m.served();
    let mut expired = good_claims();
    expired["exp"] = json!(now() - 3600);
    let mut wrong_aud = good_claims();
    wrong_aud["aud"] = json!("someone-else");
    let mut no_scope = good_claims();
    no_scope["scope"] = json!("read");
    let mut unknown_issuer = good_claims();
    unknown_issuer["iss"] = json!("https://evil.test");
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims(),
        &EncodingKey::from_secret(JWKS.as_bytes()),
    )
    .unwrap();
    // One character of the signature changed (not the last, whose low bits are
    // padding and may decode the same).
    let signed = rs256(&good_claims());
    let at = signed.rfind('.').unwrap() + 10;
    let flipped = if &signed[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &signed[..at], &signed[at + 1..]);
    let cases = [
        ("expired", rs256(&expired), (401, "invalid_token")),
        ("audience", rs256(&wrong_aud), (401, "invalid_token")),
        ("scope", rs256(&no_scope), (403, "insufficient_scope")),
        ("issuer", rs256(&unknown_issuer), (401, "invalid_token")),
        ("hs256", hs256, (401, "invalid_token")),
        ("tampered", tampered, (401, "invalid_token")),
    ];
    for (name, token, want) in cases {
        let got = code(with_token(&s, &f, &token).await).await;
        assert_eq!((got.0, got.1.as_str()), want, "{name}");
    }
    // No credential at all.
    let req = s.proxy.request(&f, "chat/completions");
    let resp = req.json(&simple_chat(false)).send().await.unwrap();
    assert_eq!(code(resp).await, (401, "missing_api_key".to_string()));
    assert_eq!(m.served(), served);
    s.running.shutdown().await;
}
