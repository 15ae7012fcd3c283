//! Signing in to sluice's MCP authorization server through the consumer's OpenID
//! provider instead of with an API key, against an authlib-based OpenID provider from
//! PyPI (`oidc-provider-mock`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::mcp::*;
use support::*;

/// A person signs in to sluice's authorization server through the consumer's OpenID
/// provider (an authlib-based provider from PyPI) instead of with an API key: sluice
/// runs the code flow with it, verifies the ID token, and the token it issues stands
/// for the provider's subject, which upstreams see in the token sluice signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_through_the_consumers_openid_provider() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest;

    let logs = tempfile::tempdir().unwrap();
    let (_idp, idp_port) = python_on_port(
        "oidc-provider",
        &["-m", "oidc_provider_mock", "--port"],
        &["--require-nonce"],
        logs.path(),
    )
    .await;
    let modern = Upstream::start(false, logs.path()).await;
    let idp = format!("http://127.0.0.1:{idp_port}");

    let s = embedded().await;
    let one = one_server(
        &s.admin,
        "mcp-idp",
        json!({"url": modern.url(), "auth": {"mode": "exchange", "audience": "modern-mcp"}}),
        Value::Null,
    )
    .await;
    let (gid, cid, slug) = (one.gid.clone(), one.cid.clone(), one.consumer_slug.clone());
    let sso = attach_auth(
        &s.admin,
        &gid,
        &cid,
        json!({"name": "sso", "type": "oidc", "oidc": {"issuer": idp,
            "jwks_url": format!("{idp}/jwks"), "audiences": ["sluice-mcp"],
            "login": {"client_id": "sluice-mcp", "client_secret": "idp-client-secret",
                      "scopes": ["email"]}}}),
    )
    .await;
    assert!(
        !sso.to_string().contains("idp-client-secret"),
        "the client secret is masked: {sso}"
    );
    let sso_id = sso["id"].as_str().unwrap().to_string();
    let (_, key) = attach_key(&s.admin, &gid, &cid).await;
    let f = one.fixture("mcp-idp", &key);
    let addr = mcp_addr(&s);
    wait_mcp(addr, &f).await;

    let base = format!("http://{addr}");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let location = |r: &reqwest::Response| {
        assert!(r.status().is_redirection(), "{} is no redirect", r.status());
        r.headers()["location"].to_str().unwrap().to_string()
    };
    let registered: Value = browser
        .post(format!("{base}/oauth/mcp-idp/register"))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_string();
    let verifier = "a-verifier-of-enough-length-for-pkce-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let resource = format!("{base}/{slug}/mcp");
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "client-state"),
        ("resource", resource.as_str()),
    ];
    // The sign-in page offers the provider beside the API key.
    let page = browser
        .get(format!("{base}/oauth/mcp-idp/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Sign in with 127.0.0.1") && page.contains(&sso_id),
        "{page}"
    );

    // The person picks it: off to the provider, with a nonce and PKCE.
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push(("idp", &sso_id));
    let r = browser
        .post(format!("{base}/oauth/mcp-idp/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let at_idp = location(&r);
    assert!(
        at_idp.starts_with(&format!("{idp}/oauth2/authorize?")),
        "{at_idp}"
    );
    assert!(
        at_idp.contains("nonce=") && at_idp.contains("code_challenge="),
        "{at_idp}"
    );
    // Signs in there as alice, and comes back to sluice.
    let r = browser
        .post(&at_idp)
        .form(&[("sub", "alice@example.com")])
        .send()
        .await
        .unwrap();
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{base}/oauth/mcp-idp/idp/callback?")),
        "{back}"
    );
    let r = browser.get(&back).send().await.unwrap();
    let to_client = url::Url::parse(&location(&r)).unwrap();
    assert_eq!(to_client.path(), "/cb");
    let q: std::collections::HashMap<_, _> = to_client.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "client-state");
    // The way back works once.
    let replay = browser.get(&back).send().await.unwrap();
    assert_eq!(replay.status(), 400);

    let token: Value = browser
        .post(format!("{base}/oauth/mcp-idp/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("client_id", client_id.as_str()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().expect("an access token");

    // The token opens the endpoint, and stands for alice at the provider.
    let msg = call_with(addr, &f, &format!("Bearer {access}"), "whoami").await;
    let signed = msg["result"]["content"][0]["text"]
        .as_str()
        .and_then(|t| t.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("{msg}"));
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["sub"],
        format!("sub:{sso_id}:alice@example.com"),
        "{claims}"
    );
    s.running.shutdown().await;
}
