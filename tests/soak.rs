//! The exactly-once proof, small: a generated day through the sandboxes with NetSuite 429s, 5xx
//! and lost responses, Retail downtime, redelivered webhooks and `heartsuite serve` killed with
//! SIGKILL and restarted — on SQLite, on PostgreSQL, and with two processes sharing PostgreSQL.
//! Each run prints its seed; `heartsuite bench soak --seed N` replays the plan at any size.

use heartsuite::soak::{SoakArgs, run};
use sqlx::Connection;
use std::path::PathBuf;

fn flows_dir() -> Option<PathBuf> {
    Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("flows"))
}

fn seed() -> u64 {
    std::env::var("HEARTSUITE_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random)
}

async fn check(args: SoakArgs) {
    let out = run(&args, std::path::Path::new(env!("CARGO_BIN_EXE_heartsuite")), flows_dir()).await.expect("soak run");
    println!("{}", out.text());
    assert!(out.kills > 0, "the plan killed no process:\n{}", out.text());
    assert!(out.finished, "the queue did not drain:\n{}", out.text());
    assert!(out.missing.is_empty(), "postings missing:\n{}", out.text());
    assert!(out.duplicates.is_empty() && out.unexpected.is_empty(), "postings duplicated:\n{}", out.text());
    assert!(out.recon.get("matched").copied().unwrap_or(0) > 0, "reconciliation matched nothing:\n{}", out.text());
    assert!(out.recon_exceptions.is_empty(), "reconciliation exceptions:\n{}", out.text());
    assert!(out.audit_intact, "audit chain:\n{}", out.text());
    assert!(out.dead.iter().all(|d| !d.contains("NO REASON RECORDED")), "an unexplained dead letter:\n{}", out.text());
}

/// A fresh PostgreSQL database, or None (test skipped) when PostgreSQL is not required here.
async fn fresh_pg(label: &str) -> Option<String> {
    let base = std::env::var("HEARTSUITE_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = match sqlx::PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) if std::env::var("HEARTSUITE_REQUIRE_PG").as_deref() != Ok("1") => {
            eprintln!("SKIPPED {label}: PostgreSQL not reachable at {base} ({e}); start it or set HEARTSUITE_TEST_PG_URL");
            return None;
        }
        Err(e) => panic!("PostgreSQL required (HEARTSUITE_REQUIRE_PG=1) but not reachable: {e}"),
    };
    // Hex digits only: safe to splice into DDL, which cannot take binds.
    let db = format!("hs_soak_{:x}", rand::random::<u32>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut admin).await.expect("create database");
    let i = base.rfind('/').expect("a database in the URL");
    Some(format!("{}/{db}", &base[..i]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_sqlite_exactly_once_under_faults_and_sigkill() {
    check(SoakArgs::small(seed())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_postgres_exactly_once_under_faults_and_sigkill() {
    let Some(url) = fresh_pg("soak_postgres").await else { return };
    check(SoakArgs { database_url: Some(url), ..SoakArgs::small(seed()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_two_processes_sharing_postgres_one_killed() {
    let Some(url) = fresh_pg("soak_two_processes").await else { return };
    check(SoakArgs { database_url: Some(url), processes: 2, ..SoakArgs::small(seed()) }).await;
}
