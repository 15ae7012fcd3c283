//! The official SDKs as clients: `tests/sdk/e2e.py` drives every client dialect against
//! every provider dialect through sluice with the `openai` and `anthropic` Python
//! packages, and checks what they parse. `make test` prepares their virtualenv
//! (`scripts/sdk-venv.sh`); this test fails, not skips, without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::*;

fn python() -> PathBuf {
    std::env::var_os("SLUICE_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-sdk/bin/python"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_parse_every_dialect_pair() {
    let python = python();
    assert!(
        python.exists(),
        "{} is missing: run scripts/sdk-venv.sh (make test does)",
        python.display()
    );
    let s = embedded().await;
    let m = mock("sdk").await;
    let f = setup_dialects(&s.admin, "sdk", &m.base_url()).await;
    wait_model(&s.proxy, &f, "claude-sonnet-4-5").await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/e2e.py");
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(&python)
            .arg(&script)
            .env("SLUICE_PROXY", &s.proxy.base)
            .env("SLUICE_CONSUMER", &f.consumer_slug)
            .env("SLUICE_GATEWAY", &f.gateway_slug)
            .env("SLUICE_KEY", &f.key)
            .output(),
    )
    .await
    .expect("the SDK suite finishes")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "SDK suite failed:\n{stdout}\n{stderr}"
    );
    s.running.shutdown().await;
}
