//! NetSuite's concurrency limit is per account, shared by every process. Two clients (standing in
//! for two heartsuite processes) whose governors take their permits from the same store never
//! exceed the account's limit together, so the sandbox never has to answer 429. Run on SQLite
//! and on PostgreSQL (the multi-process backend).

use heartsuite::connectors::StorePermits;
use heartsuite_core::{Secret, SystemClock};
use heartsuite_netsuite::{Auth, Concurrency, Governor, NetSuiteClient};
use heartsuite_store::DynStore;
use serde_json::json;
use sqlx::Connection;
use std::sync::Arc;
use std::time::Duration;

const LIMIT: u32 = 3;

fn client(base: &str, store: &DynStore, owner: &str) -> NetSuiteClient {
    let permits = Arc::new(StorePermits { store: store.clone(), clock: Arc::new(SystemClock), ttl: Duration::from_secs(120) });
    let governor = Governor::new("netsuite:1234567_SB1", LIMIT, 20).with_store(permits, owner);
    let mut cfg = heartsuite_netsuite::Config::new(
        "1234567_SB1",
        Auth::Tba {
            consumer_key: Secret::new("sandbox-consumer-key"),
            consumer_secret: Secret::new("sandbox-consumer-secret"),
            token_id: Secret::new("sandbox-token-id"),
            token_secret: Secret::new("sandbox-token-secret"),
        },
    )
    .with_base_url(base);
    cfg.concurrency = Concurrency::Fixed(LIMIT);
    // A 429 would be retried inside the client; forbid that so any 429 shows as a failure too.
    cfg.rate_limit_retries = 0;
    cfg.governor = Some(Arc::new(governor));
    NetSuiteClient::new(cfg).unwrap()
}

async fn two_processes_share_one_limit(store: DynStore) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = heartsuite_sandbox::netsuite::Config {
        latency: Duration::from_millis(40),
        concurrency_limit: LIMIT,
        ..Default::default()
    };
    let ns = heartsuite_sandbox::netsuite::spawn(l, cfg).await.unwrap();
    let a = client(&ns.base_url(), &store, "process-a");
    let b = client(&ns.base_url(), &store, "process-b");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            c.upsert("customer", &format!("hs-perm-{i}"), &json!({"companyName": format!("Permit {i}"), "subsidiary": {"id": "1"}})).await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("no request may be refused");
    }
    let stats = ns.stats().await;
    assert_eq!(stats.rate_limited, 0, "the two clients together exceeded the account limit");
    assert_eq!(stats.records.get("customer").copied(), Some(24));
    ns.shutdown().await;
}

#[tokio::test]
async fn sqlite_permits_bound_two_clients() {
    let dir = std::env::temp_dir().join(format!("hs-permits-{}", std::process::id()));
    let store = heartsuite_store::open(&format!("sqlite://{}", dir.join("p.db").display())).await.unwrap();
    two_processes_share_one_limit(store).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_permits_bound_two_clients() {
    let base = std::env::var("HEARTSUITE_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) if std::env::var("HEARTSUITE_REQUIRE_PG").as_deref() != Ok("1") => {
            eprintln!("SKIPPED postgres_permits_bound_two_clients: PostgreSQL not reachable at {base} ({e}); start it or set HEARTSUITE_TEST_PG_URL");
            return;
        }
        Err(e) => panic!("PostgreSQL required (HEARTSUITE_REQUIRE_PG=1) but not reachable: {e}"),
    };
    // A name we make from hex digits only: safe to splice into DDL, which cannot take binds.
    let db = format!("hs_test_permits_{:x}", rand::random::<u32>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await.unwrap();
    let url = match base.rfind('/') {
        Some(i) => format!("{}/{db}", &base[..i]),
        None => panic!("bad PG URL"),
    };
    let store = heartsuite_store::open(&url).await.unwrap();
    two_processes_share_one_limit(store.clone()).await;
    drop(store);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))).execute(&mut admin).await;
}
