//! Third-party clients as referees: the PyPI `netsuite` package (0.12.0) and `oauthlib`
//! talk to a sandbox on a random port.
//!
//! Interpreter: `HEARTSUITE_PYTHON`, else `<workspace>/.venv/bin/python`. If it or the
//! packages are missing the tests print SKIPPED, unless `HEARTSUITE_REQUIRE_PYTHON=1`, when
//! they fail.

mod common;

use std::path::PathBuf;

use heartsuite_sandbox_netsuite::Config;

fn python() -> PathBuf {
    std::env::var_os("HEARTSUITE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"))
}

/// The interpreter, if it exists and imports the clients; otherwise skip (or fail when required).
async fn interpreter(test: &str) -> Option<PathBuf> {
    let py = python();
    let ok = tokio::process::Command::new(&py)
        .args(["-c", "import netsuite, oauthlib, authlib, httpx"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    if std::env::var("HEARTSUITE_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
        panic!("{test}: python clients not installed at {} (HEARTSUITE_REQUIRE_PYTHON=1); run scripts/setup-python.sh", py.display());
    }
    println!("SKIPPED {test}: python clients not installed; run scripts/setup-python.sh");
    None
}

async fn run_script(py: &PathBuf, script: &str, base: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let out = tokio::process::Command::new(py)
        .arg(&path)
        .arg(base)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "{script} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}");
}

#[tokio::test]
async fn pypi_netsuite_client_creates_reads_upserts_and_queries() {
    let Some(py) = interpreter("pypi_netsuite_client_creates_reads_upserts_and_queries").await else { return };
    let h = common::start(Config::default()).await;
    run_script(&py, "netsuite_client.py", &h.base_url()).await;
    let st = h.stats().await;
    assert_eq!((st.records["customer"], st.records["salesOrder"], st.auth_failures), (2, 1, 0));
    h.shutdown().await;
}

#[tokio::test]
async fn oauthlib_signature_is_accepted() {
    let Some(py) = interpreter("oauthlib_signature_is_accepted").await else { return };
    let h = common::start(Config::default()).await;
    run_script(&py, "oauthlib_sign.py", &h.base_url()).await;
    assert_eq!(h.stats().await.auth_failures, 1);
    h.shutdown().await;
}
