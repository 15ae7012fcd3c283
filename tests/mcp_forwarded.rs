//! The `forwarded` upstream mode against an MCP server that acts as each user and is its
//! own OAuth authorization server (`tests/mcp/oauth_server.py`, the official Python
//! SDK's server and OAuth routes): an agent's first call gets MCP's "URL elicitation
//! required" error with a consent link; the person follows it through sluice, the
//! server's authorization server (found by discovery, sluice registered by dynamic
//! registration, PKCE) and back; from then on that user's calls carry that user's
//! token, refreshed when it nears expiry, while another user must consent for
//! themself. The tokens rest sealed in Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::mcp::*;
use support::*;

/// The consent link of a -32042 answer.
fn consent_link(msg: &Value) -> String {
    assert_eq!(msg["error"]["code"], -32042, "{msg}");
    let data = &msg["error"]["data"];
    assert_eq!(data["reason"], "consent_required", "{msg}");
    let elicitation = &data["elicitations"][0];
    assert_eq!(elicitation["mode"], "url", "{msg}");
    assert!(elicitation["elicitationId"].is_string(), "{msg}");
    let url = elicitation["url"].as_str().unwrap().to_string();
    assert_eq!(data["connect_url"], url.as_str());
    url
}

/// Follow a consent link as a browser would; the page sluice ends on.
async fn consent(url: &str) -> (u16, String, String) {
    let browser = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = browser.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let end = resp.url().path().to_string();
    (status, end, resp.text().await.unwrap())
}

fn text(msg: &Value) -> String {
    msg["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {msg}"))
        .to_string()
}

fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379", "--raw"])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_consents_once_and_calls_as_themself() {
    let logs = tempfile::tempdir().unwrap();
    let (_upstream, port) = mcp_script("oauth_server.py", &["4"], logs.path()).await;
    let s = embedded_with(|settings| {
        settings.redis_url = Some("redis://127.0.0.1:6379/0".into());
    })
    .await;
    let slug = format!("fwd-{}", std::process::id());
    // Nothing but the mode: endpoints are discovered, the client registered.
    let one = one_server(
        &s.admin,
        &slug,
        json!({"url": format!("http://127.0.0.1:{port}/mcp"), "auth": {"mode": "forwarded"}}),
        json!({"fail_mode": "closed"}),
    )
    .await;
    let (gid, rid, cid) = (one.gid.clone(), one.rid.clone(), one.cid.clone());
    let key = |name: &str| {
        let (admin, gid, cid) = (s.admin.clone(), gid.clone(), cid.clone());
        let spec = json!({"name": name, "type": "api_key"});
        async move {
            attach_auth(&admin, &gid, &cid, spec).await["key"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (alice, bob, carol) = (key("alice").await, key("bob").await, key("carol").await);
    let f = one.fixture(&slug, &alice);
    let addr = mcp_addr(&s);
    wait_mcp(addr, &f).await;
    let (alice, bob) = (format!("Bearer {alice}"), format!("Bearer {bob}"));

    // Not connected yet: the consent link, for this plane.
    let link = consent_link(&call_with(addr, &f, &alice, "me").await);
    assert!(
        link.starts_with(&format!("http://{addr}/oauth/connect?ticket=enc")),
        "{link}"
    );

    // A ticket that was tampered with, or written by the caller, starts nothing.
    let (status, _, _) = consent(&link.replace("ticket=enc%3Av1%3A", "ticket=enc%3Av1%3AA")).await;
    assert_eq!(status, 400);
    let forged = format!(
        "http://{addr}/oauth/connect?ticket={}",
        url_encode(
            &json!({"gateway_id": gid, "consumer_id": cid, "registry_id": rid,
            "user": "key:x", "base_url": "http://evil.test", "expires": u64::MAX})
            .to_string()
        )
    );
    assert_eq!(consent(&forged).await.0, 400);

    // Alice consents: discovery, registration, PKCE, and back to sluice.
    let (status, end, page) = consent(&link).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(end, "/oauth/callback");
    assert!(page.contains("Connected"), "{page}");
    assert_eq!(
        text(&call_with(addr, &f, &alice, "me").await),
        "upstream-user-1"
    );
    let first = text(&call_with(addr, &f, &alice, "whoami").await);
    assert!(
        first.starts_with("Bearer at-"),
        "the server's own token: {first}"
    );

    // Bob is somebody else: Alice's token does not serve him.
    let bob_link = consent_link(&call_with(addr, &f, &bob, "me").await);
    assert_ne!(bob_link, link);
    assert_eq!(consent(&bob_link).await.0, 200);
    assert_eq!(
        text(&call_with(addr, &f, &bob, "me").await),
        "upstream-user-2"
    );
    assert_eq!(
        text(&call_with(addr, &f, &alice, "me").await),
        "upstream-user-1"
    );

    // The tokens rest sealed: no access or refresh token in Redis in the clear.
    let keys = redis_cli(&["--scan", "--pattern", "sluice:oauth:forwarded:*"]);
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(!keys.is_empty(), "tokens are stored in Redis");
    for key in &keys {
        let value = redis_cli(&["GET", key]);
        assert!(value.starts_with("\"enc:v1:"), "{key} is sealed: {value}");
        assert!(
            !value.contains("at-") && !value.contains("rt-"),
            "{key}: {value}"
        );
    }

    // Tokens live 4 s here: after 3 s Alice's is refreshed, and she is still herself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = text(&call_with(addr, &f, &alice, "whoami").await);
    assert!(
        second.starts_with("Bearer at-") && second != first,
        "{first} then {second}"
    );
    assert_eq!(
        text(&call_with(addr, &f, &alice, "me").await),
        "upstream-user-1"
    );

    // Telemetry and metrics know the refusal by its reason.
    let metrics = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("consent_required"), "{metrics}");

    // The way back works once: a replayed callback (its code and state) is refused.
    let step = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut at = consent_link(&call_with(addr, &f, &format!("Bearer {carol}"), "me").await);
    let mut callback = None;
    for _ in 0..4 {
        let resp = step.get(&at).send().await.unwrap();
        if resp.url().path() == "/oauth/callback" {
            assert_eq!(resp.status(), 200);
            callback = Some(at.clone());
            break;
        }
        assert_eq!(resp.status().as_u16() / 100, 3, "{at}");
        at = resp.headers()["location"].to_str().unwrap().to_string();
    }
    let callback = callback.expect("the flow comes back to sluice");
    assert_eq!(consent(&callback).await.0, 400, "a replayed callback");

    for key in keys {
        redis_cli(&["DEL", key]);
    }
    s.running.shutdown().await;
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
