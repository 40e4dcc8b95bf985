//! Crash safety: `heartsuite serve` is killed with SIGKILL while jobs are leased; a restarted
//! process finishes them, and each effect happens exactly once in the NetSuite sandbox.

use heartsuite_store::JobState;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-retail-token-0123456789";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn serve(config: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_heartsuite"))
        .args(["--config", config.to_str().unwrap(), "serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start heartsuite serve")
}

async fn wait_healthy(http: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/healthz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("heartsuite serve did not become healthy");
}

fn count(counts: &[(JobState, i64)], s: JobState) -> i64 {
    counts.iter().find(|(x, _)| *x == s).map(|(_, n)| *n).unwrap_or(0)
}

#[tokio::test]
async fn sigkill_while_jobs_are_leased_loses_nothing_and_duplicates_nothing() {
    const N: usize = 60;
    let dir = std::env::temp_dir().join(format!("hs-crash-{}-{:x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();

    // NetSuite is slow on purpose, so the kill lands while requests are in flight.
    let ns_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ns_cfg = heartsuite_sandbox::netsuite::Config { latency: Duration::from_millis(60), ..Default::default() };
    let netsuite = heartsuite_sandbox::netsuite::spawn(ns_listener, ns_cfg).await.unwrap();

    let config = dir.join("heartsuite.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
data_dir = "{data}"
[engine]
workers = 6
lease_secs = 2
[sources.retail]
kind = "retail"
token = "{TOKEN}"
[netsuite]
account = "1234567_SB1"
base_url = "{ns}"
auth = "tba"
consumer_key = "sandbox-consumer-key"
consumer_secret = "sandbox-consumer-secret"
token_id = "sandbox-token-id"
token_secret = "sandbox-token-secret"
concurrency = 6
[flows]
dir = "{flows}"
"#,
            data = dir.join("data").display(),
            ns = netsuite.base_url(),
            flows = concat!(env!("CARGO_MANIFEST_DIR"), "/flows"),
        ),
    )
    .unwrap();

    let http = reqwest::Client::new();
    let port = free_port();
    let mut first = serve(&config, port);
    wait_healthy(&http, port).await;
    for i in 0..N {
        let body = json!({"id": 7000 + i, "first_name": "Crash", "last_name": format!("Test{i}"),
                          "email": format!("crash{i}@example.com"), "updated_at": "2026-11-26T10:00:00Z"});
        let r = http.post(format!("http://127.0.0.1:{port}/hooks/retail/{TOKEN}")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }

    // Kill once some, but not all, customers are in NetSuite.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = netsuite.stats().await.records.get("customer").copied().unwrap_or(0);
        if n >= 6 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().unwrap();

    let store = heartsuite_store::open(&format!("sqlite://{}", dir.join("data/heartsuite.db").display())).await.unwrap();
    let at_kill = store.job_counts().await.unwrap();
    let done_at_kill = count(&at_kill, JobState::Succeeded);
    assert!(done_at_kill < N as i64, "the kill must land before the work is done: {at_kill:?}");
    assert!(count(&at_kill, JobState::Running) > 0, "jobs must be leased at the kill: {at_kill:?}");

    // A new process takes over the expired leases and finishes everything.
    let port2 = free_port();
    let mut second = serve(&config, port2);
    wait_healthy(&http, port2).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = store.job_counts().await.unwrap();
        if count(&c, JobState::Succeeded) == N as i64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();

    let end = store.job_counts().await.unwrap();
    assert_eq!(count(&end, JobState::Succeeded), N as i64, "{end:?}");
    assert_eq!(count(&end, JobState::Dead), 0, "{end:?}");
    // Exactly once on the remote side: N customers, one per external id.
    let stats = netsuite.stats().await;
    assert_eq!(stats.records.get("customer").copied(), Some(N as u64), "{:?}", stats.records);
    // And once in our crosswalk and audit chain. (The customer flow also records its duplicate
    // checks as effects — lookups, the e-mail claim — so only the creations are counted by key.)
    let effects = store.effects("netsuite", None, 10_000, None).await.unwrap();
    let created: std::collections::BTreeSet<&str> =
        effects.iter().filter(|e| e.record_type == "customer" && e.idempotency_key.starts_with("hs-cust-")).map(|e| e.idempotency_key.as_str()).collect();
    assert_eq!(created.len(), N, "one creation per customer: {effects:?}");
    assert_eq!(effects.iter().filter(|e| e.record_type == "customer" && e.idempotency_key.starts_with("hs-cust-")).count(), N, "none twice");
    let report = heartsuite_engine::admin::audit_verify(&store).await.unwrap();
    assert!(report.first_break.is_none());
    // Every effect has exactly its one audit entry (they are written in one transaction), and
    // the configuration was recorded at the first start only (the restart changed nothing).
    assert_eq!(report.entries, effects.len() as i64 + 1);
    eprintln!("crash test: {done_at_kill} of {N} done at the kill, {} running; all {N} done once after restart", count(&at_kill, JobState::Running));
    netsuite.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
