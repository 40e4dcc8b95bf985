//! The referee: the official `globalpayments-api` 2.0.8 Python SDK against the sandbox.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn python() -> Option<PathBuf> {
    let p = match std::env::var_os("HEARTSUITE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
    };
    let ok = Command::new(&p)
        .args(["-c", "import globalpayments.api, importlib.metadata as m; assert m.version('globalpayments-api') == '2.0.8'"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_drives_token_auth_capture_refund_decline_and_settlement() {
    let Some(py) = python() else {
        if std::env::var("HEARTSUITE_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!(
                "HEARTSUITE_REQUIRE_PYTHON=1 but globalpayments-api 2.0.8 is not importable; run scripts/setup-python.sh"
            );
        }
        println!(
            "SKIPPED python_sdk_drives_token_auth_capture_refund_decline_and_settlement: python clients not installed; run scripts/setup-python.sh"
        );
        return;
    };
    let h = common::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/gp_sdk_flow.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .env("SANDBOX_GPAPI_URL", h.gpapi_url())
        .env(
            "SANDBOX_CONTROL_URL",
            format!("http://{}/_sandbox", h.gpapi_addr),
        )
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "python SDK flow failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("\"step\": \"OK\"")),
        "script did not finish"
    );
    // Token + 9 transaction calls + reports: the SDK really talked to us.
    assert!(h.sandbox().stats().gpapi_requests >= 10);
    h.shutdown().await;
}
