//! The store conformance suite: every test is written once and run against SQLite (a fresh file)
//! and PostgreSQL (a fresh database, dropped afterwards).
//!
//! PostgreSQL comes from `HEARTSUITE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When it is unreachable the postgres variants
//! print a SKIPPED line and pass, unless `HEARTSUITE_REQUIRE_PG=1`, which makes them fail.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heartsuite_core::{ErrorClass, Failure, NewEvent};
use heartsuite_store::{
    audit::GENESIS, open_with, verify_chain, DynStore, IngestItem, JobState, NewAudit, NewEffect, Options, Outcome,
};
use serde_json::{json, Value};
use sqlx::Connection;

const T0: i64 = 1_700_000_000_000_000;
const SEC: i64 = 1_000_000;

// ----- harness ----------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub struct Harness {
    pub store: DynStore,
    kind: Kind,
    url: String,
    /// SQLite: the directory holding the file. PostgreSQL: (admin URL, database name).
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Database { admin: String, name: String },
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{}", std::process::id(), nanos % 1_000_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

fn test_options() -> Options {
    // Small pools: the tests run in parallel against one PostgreSQL server.
    Options { max_connections: 4, ..Options::default() }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let host_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    format!("{root}/{db}{query}")
}

impl Harness {
    async fn new(kind: Kind, test: &str) -> Option<Harness> {
        match kind {
            Kind::Sqlite => {
                // A directory that does not exist yet: open must create it.
                let dir = std::env::temp_dir().join(unique("hs_store_test"));
                let url = format!("sqlite://{}", dir.join("nested").join("store.db").display());
                let store = open_with(&url, &test_options()).await.unwrap();
                Some(Harness { store, kind, url, cleanup: Cleanup::Dir(dir) })
            }
            Kind::Postgres => {
                let admin = std::env::var("HEARTSUITE_TEST_PG_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
                let conn = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin)).await;
                let mut conn = match conn {
                    Ok(Ok(c)) => c,
                    other => {
                        let why = match other {
                            Ok(Err(e)) => e.to_string(),
                            _ => "connect timed out".to_string(),
                        };
                        if std::env::var("HEARTSUITE_REQUIRE_PG").as_deref() == Ok("1") {
                            panic!("PostgreSQL required (HEARTSUITE_REQUIRE_PG=1) but not reachable at {admin}: {why}");
                        }
                        println!(
                            "SKIPPED postgres test {test}: PostgreSQL not reachable at {admin}; start it or set HEARTSUITE_TEST_PG_URL"
                        );
                        return None;
                    }
                };
                let name = unique("hs_test");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let _ = conn.close().await;
                let url = with_database(&admin, &name);
                let store = open_with(&url, &test_options()).await.unwrap();
                Some(Harness { store, kind, url, cleanup: Cleanup::Database { admin, name } })
            }
        }
    }

    /// A second, independent store on the same database: another process, as far as the
    /// database can tell (its own connections, its own SQLite writer).
    async fn open_another(&self) -> DynStore {
        open_with(&self.url, &test_options()).await.unwrap()
    }

    /// Runs SQL on a separate raw connection, behind the store's back.
    async fn exec(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        match self.kind {
            Kind::Sqlite => {
                let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)?.busy_timeout(Duration::from_secs(10));
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await?;
                let r = sqlx::query(sql).execute(&mut c).await;
                let _ = c.close().await;
                Ok(r?.rows_affected())
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                let r = sqlx::query(sql).execute(&mut c).await;
                let _ = c.close().await;
                Ok(r?.rows_affected())
            }
        }
    }

    async fn cleanup(&self) {
        match &self.cleanup {
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Cleanup::Database { admin, name } => {
                if let Ok(mut c) = sqlx::PgConnection::connect(admin).await {
                    // FORCE: the store's pool still holds connections to it.
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                        .execute(&mut c)
                        .await;
                    let _ = c.close().await;
                }
            }
        }
    }
}

/// Runs one test body against one backend, cleaning up even when the body panics.
pub async fn run<F, Fut>(kind: Kind, name: &str, body: F)
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(h) = Harness::new(kind, name).await else { return };
    let h = Arc::new(h);
    let res = tokio::spawn(body(h.clone())).await;
    h.cleanup().await;
    if let Err(e) = res {
        match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::run(crate::Kind::Sqlite, stringify!($name), crate::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::run(crate::Kind::Postgres, stringify!($name), crate::$name).await;
                }
            )*
        }
    };
}

conformance!(
    migrate_is_idempotent,
    ingest_writes_events_and_jobs,
    duplicate_ingest_is_noop,
    payload_numbers_round_trip_exactly,
    lease_claims_due_jobs_in_order,
    concurrent_leases_are_disjoint,
    expired_lease_comes_back_with_attempt_incremented,
    stale_owner_cannot_finish_or_heartbeat,
    retry_with_refund_gives_the_attempt_back,
    dead_then_replay_with_edited_payload,
    cancel_rules,
    job_counts_has_all_six_states,
    jobs_listing_newest_first_and_filtered,
    next_due_is_earliest_pending_or_retrying,
    effects_first_write_wins,
    effect_and_its_audit_entry_are_one_write,
    effects_listing_filters_and_pages,
    audit_chain_verifies_and_detects_tampering,
    concurrent_audit_appends_form_one_chain,
    permits_never_exceed_limit_under_concurrency,
    permits_expire_and_release_only_by_owner,
    cursors_round_trip,
    check_constraints_reject_invalid_states,
);

// ----- helpers ----------------------------------------------------------------------------------

fn item(key: &str, flows: &[&str], run_at: i64) -> IngestItem {
    IngestItem {
        event: NewEvent {
            source: "retail".into(),
            source_event_key: key.into(),
            kind: "retail.ticket.completed".into(),
            payload: json!({ "ticket": key, "total": "12.34" }),
            received_at: run_at,
        },
        flows: flows.iter().map(|f| f.to_string()).collect(),
        run_at,
    }
}

/// Ingests `n` events with one `sync` job each, all due at `run_at`; returns the job ids.
async fn seed_jobs(s: &DynStore, prefix: &str, n: usize, run_at: i64) -> Vec<i64> {
    let batch: Vec<_> = (0..n).map(|i| item(&format!("{prefix}-{i}"), &["sync"], run_at)).collect();
    s.ingest(&batch).await.unwrap().into_iter().flat_map(|r| r.job_ids).collect()
}

fn failure(class: ErrorClass, msg: &str) -> Failure {
    let mut f = Failure::new(class, msg);
    f.system = Some("netsuite".into());
    f.field_path = Some("item.items[0].item".into());
    f.code = Some("INVALID_KEY_OR_REF".into());
    f
}

fn audit(subject: &str, n: i64) -> NewAudit {
    NewAudit {
        at: T0 + n,
        actor: "engine".into(),
        action: "effect.netsuite.create".into(),
        subject: subject.into(),
        event_id: Some(n),
        job_id: None,
        remote_id: Some(format!("R{n}")),
        // Key order and number text must survive storage, or the hash would not verify.
        details: serde_json::from_str(&format!(r#"{{"z":1,"a":{{"amount":10.50,"n":{n}}},"big":123456789012345678901234567890.01}}"#))
            .unwrap(),
    }
}

// ----- tests ------------------------------------------------------------------------------------

async fn migrate_is_idempotent(h: Arc<Harness>) {
    let s = &h.store;
    assert_eq!(s.backend(), if h.kind == Kind::Sqlite { "sqlite" } else { "postgres" });
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    // Re-opening (which migrates again) keeps the data.
    seed_jobs(s, "m", 2, T0).await;
    let again = h.open_another().await;
    again.migrate().await.unwrap();
    again.ping().await.unwrap();
    assert_eq!(again.event_count().await.unwrap(), 2);
}

async fn ingest_writes_events_and_jobs(h: Arc<Harness>) {
    let s = &h.store;
    assert!(s.ingest(&[]).await.unwrap().is_empty());
    let res = s
        .ingest(&[item("a", &["sync", "notify"], T0), item("b", &[], T0 + 1), item("c", &["sync", "sync"], T0 + 2)])
        .await
        .unwrap();
    assert_eq!(res.len(), 3);
    assert!(res.iter().all(|r| !r.duplicate));
    assert_eq!(res[0].job_ids.len(), 2);
    assert!(res[1].job_ids.is_empty());
    // The same flow named twice is one job.
    assert_eq!(res[2].job_ids.len(), 1);
    assert_eq!(s.event_count().await.unwrap(), 3);

    let ev = s.event(res[0].event_id).await.unwrap().unwrap();
    assert_eq!(ev.source, "retail");
    assert_eq!(ev.source_event_key, "a");
    assert_eq!(ev.kind, "retail.ticket.completed");
    assert_eq!(ev.payload, json!({ "ticket": "a", "total": "12.34" }));
    assert_eq!(ev.received_at, T0);
    assert!(s.event(999_999).await.unwrap().is_none());

    let job = s.job(res[0].job_ids[1]).await.unwrap().unwrap();
    assert_eq!(job.event_id, res[0].event_id);
    assert_eq!(job.flow, "notify");
    assert_eq!(job.state, JobState::Pending);
    assert_eq!(job.attempts, 0);
    assert_eq!(job.run_at, T0);
    assert_eq!((job.lease_owner, job.lease_expires_at, job.finished_at), (None, None, None));
    assert_eq!((job.last_error, job.payload_override), (None, None));
    assert!(s.job(999_999).await.unwrap().is_none());
}

async fn duplicate_ingest_is_noop(h: Arc<Harness>) {
    let s = &h.store;
    let batch = vec![item("a", &["sync"], T0), item("b", &["sync", "notify"], T0)];
    let first = s.ingest(&batch).await.unwrap();
    let counts_before = s.job_counts().await.unwrap();

    let mut changed = batch.clone();
    changed[0].event.payload = json!({ "ticket": "a", "total": "99.99" });
    let second = s.ingest(&changed).await.unwrap();
    for (a, b) in first.iter().zip(&second) {
        assert!(b.duplicate);
        assert_eq!(b.event_id, a.event_id);
        assert!(b.job_ids.is_empty());
    }
    assert_eq!(s.event_count().await.unwrap(), 2);
    assert_eq!(s.job_counts().await.unwrap(), counts_before);
    // The first write stands.
    assert_eq!(s.event(first[0].event_id).await.unwrap().unwrap().payload["total"], json!("12.34"));

    // A repeat inside one batch is a duplicate of the earlier item in the same batch.
    let res = s.ingest(&[item("c", &["sync"], T0), item("c", &["sync"], T0)]).await.unwrap();
    assert!(!res[0].duplicate && res[1].duplicate);
    assert_eq!(res[0].event_id, res[1].event_id);
    // Same key from another source is a different event.
    let mut other = item("a", &["sync"], T0);
    other.event.source = "gpapi".into();
    assert!(!s.ingest(&[other]).await.unwrap()[0].duplicate);
    assert_eq!(s.event_count().await.unwrap(), 4);
    // Found again by the sender's own key.
    let src = batch[0].event.source.clone();
    let found = s.event_by_key(&src, "a").await.unwrap().unwrap();
    assert_eq!(found.id, first[0].event_id);
    assert!(s.event_by_key(&src, "zzz").await.unwrap().is_none());
}

async fn payload_numbers_round_trip_exactly(h: Arc<Harness>) {
    let s = &h.store;
    let text = r#"{"z":"first","amount":1234567890123456789012345.678901234567890,"tiny":0.1,"neg":-0.00,"list":[1.10,2.500]}"#;
    let mut it = item("money", &["sync"], T0);
    it.event.payload = serde_json::from_str(text).unwrap();
    let id = s.ingest(&[it]).await.unwrap()[0].event_id;
    let back = s.event(id).await.unwrap().unwrap();
    assert_eq!(back.payload.to_string(), text);
}

async fn lease_claims_due_jobs_in_order(h: Arc<Harness>) {
    let s = &h.store;
    // Inserted out of run_at order on purpose.
    let r = s
        .ingest(&[item("late", &["sync"], T0 + 30), item("early", &["sync"], T0 + 10), item("future", &["sync"], T0 + 1000)])
        .await
        .unwrap();
    let (late, early, future) = (r[0].job_ids[0], r[1].job_ids[0], r[2].job_ids[0]);

    assert!(s.lease("w1", 0, T0 + 100, 60 * SEC).await.unwrap().is_empty());
    assert!(s.lease("w1", 10, T0, 60 * SEC).await.unwrap().is_empty(), "nothing is due yet");

    let got = s.lease("w1", 1, T0 + 100, 60 * SEC).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].job.id, early, "earliest run_at first");
    let got = s.lease("w1", 10, T0 + 100, 60 * SEC).await.unwrap();
    assert_eq!(got.iter().map(|l| l.job.id).collect::<Vec<_>>(), vec![late]);

    let l = &got[0];
    assert_eq!(l.job.state, JobState::Running);
    assert_eq!(l.job.attempts, 1);
    assert_eq!(l.job.lease_owner.as_deref(), Some("w1"));
    assert_eq!(l.job.lease_expires_at, Some(T0 + 100 + 60 * SEC));
    assert_eq!(l.event.id, r[0].event_id);
    assert_eq!(l.event.source_event_key, "late");
    assert_eq!(s.job(late).await.unwrap().unwrap(), l.job);

    // Running jobs with a live lease are not handed out again; the future one is still pending.
    assert!(s.lease("w2", 10, T0 + 200, 60 * SEC).await.unwrap().is_empty());
    assert_eq!(s.job(future).await.unwrap().unwrap().state, JobState::Pending);

    // Two flows of one event: both jobs carry the same event.
    let two = s.ingest(&[item("pair", &["a", "b"], T0)]).await.unwrap();
    let got = s.lease("w3", 10, T0 + 200, SEC).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|l| l.event.id == two[0].event_id));
}

async fn concurrent_leases_are_disjoint(h: Arc<Harness>) {
    let all: HashSet<i64> = seed_jobs(&h.store, "c", 300, T0).await.into_iter().collect();
    assert_eq!(all.len(), 300);
    let other = h.open_another().await;

    let mut tasks = Vec::new();
    for w in 0..6 {
        // Half the workers go through a second store: several processes on one database.
        let s = if w % 2 == 0 { h.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut mine = Vec::new();
            loop {
                let got = s.lease(&owner, 7, T0 + 1, 600 * SEC).await.unwrap();
                if got.is_empty() {
                    break;
                }
                for l in got {
                    assert_eq!(l.job.lease_owner.as_deref(), Some(owner.as_str()));
                    assert_eq!(l.job.attempts, 1);
                    mine.push(l.job.id);
                }
                tokio::task::yield_now().await;
            }
            (owner, mine)
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        let (owner, mine) = t.await.unwrap();
        total += mine.len();
        for id in mine {
            assert!(seen.insert(id), "job {id} leased twice");
            assert_eq!(h.store.job(id).await.unwrap().unwrap().lease_owner.as_deref(), Some(owner.as_str()));
        }
    }
    assert_eq!(total, 300);
    assert_eq!(seen, all);
}

async fn expired_lease_comes_back_with_attempt_incremented(h: Arc<Harness>) {
    let s = &h.store;
    let id = seed_jobs(s, "e", 1, T0).await[0];
    let first = s.lease("crashed", 5, T0, 10 * SEC).await.unwrap();
    assert_eq!(first[0].job.attempts, 1);
    assert!(s.lease("w2", 5, T0 + 9 * SEC, 10 * SEC).await.unwrap().is_empty(), "lease still live");

    let again = s.lease("w2", 5, T0 + 10 * SEC, 10 * SEC).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.id, id);
    assert_eq!(again[0].job.attempts, 2);
    assert_eq!(again[0].job.lease_owner.as_deref(), Some("w2"));
    assert_eq!(again[0].job.lease_expires_at, Some(T0 + 20 * SEC));
    assert_eq!(again[0].event.source_event_key, "e-0");

    // A heartbeat keeps it from expiring.
    assert!(s.heartbeat(id, "w2", T0 + 60 * SEC).await.unwrap());
    assert!(s.lease("w3", 5, T0 + 30 * SEC, 10 * SEC).await.unwrap().is_empty());
    assert_eq!(s.job(id).await.unwrap().unwrap().lease_expires_at, Some(T0 + 60 * SEC));
}

async fn stale_owner_cannot_finish_or_heartbeat(h: Arc<Harness>) {
    let s = &h.store;
    let id = seed_jobs(s, "s", 1, T0).await[0];
    s.lease("old", 1, T0, SEC).await.unwrap();
    s.lease("new", 1, T0 + 2 * SEC, 60 * SEC).await.unwrap();
    let before = s.job(id).await.unwrap().unwrap();

    assert!(!s.finish(id, "old", &Outcome::Succeeded, T0 + 3 * SEC).await.unwrap());
    let dead = Outcome::Dead { error: failure(ErrorClass::Data, "x") };
    assert!(!s.finish(id, "old", &dead, T0 + 3 * SEC).await.unwrap());
    let retry = Outcome::Retry { run_at: T0, error: failure(ErrorClass::Transient, "x"), refund_attempt: true };
    assert!(!s.finish(id, "old", &retry, T0 + 3 * SEC).await.unwrap());
    assert!(!s.heartbeat(id, "old", T0 + 100 * SEC).await.unwrap());
    assert_eq!(s.job(id).await.unwrap().unwrap(), before, "a refused finish writes nothing");

    assert!(s.finish(id, "new", &Outcome::Succeeded, T0 + 4 * SEC).await.unwrap());
    let done = s.job(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.finished_at, Some(T0 + 4 * SEC));
    assert_eq!((done.lease_owner, done.lease_expires_at), (None, None));
    // Finished: nobody can finish it again, not even the last owner.
    assert!(!s.finish(id, "new", &Outcome::Succeeded, T0 + 5 * SEC).await.unwrap());
    assert!(!s.finish(999_999, "new", &Outcome::Succeeded, T0).await.unwrap());
}

async fn retry_with_refund_gives_the_attempt_back(h: Arc<Harness>) {
    let s = &h.store;
    let id = seed_jobs(s, "r", 1, T0).await[0];
    s.lease("w", 1, T0, 60 * SEC).await.unwrap();
    let mut err = failure(ErrorClass::RateLimited, "429");
    err.retry_after = Some(Duration::from_millis(1500));
    let out = Outcome::Retry { run_at: T0 + 100, error: err.clone(), refund_attempt: true };
    assert!(s.finish(id, "w", &out, T0 + 1).await.unwrap());

    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Retrying);
    assert_eq!(j.attempts, 0, "refunded");
    assert_eq!(j.run_at, T0 + 100);
    assert_eq!(j.last_error, Some(err));
    assert_eq!((j.lease_owner, j.lease_expires_at, j.finished_at), (None, None, None));
    assert_eq!(j.updated_at, T0 + 1);

    assert!(s.lease("w", 1, T0 + 50, 60 * SEC).await.unwrap().is_empty(), "not due before run_at");
    let got = s.lease("w", 1, T0 + 100, 60 * SEC).await.unwrap();
    assert_eq!(got[0].job.attempts, 1);

    let out = Outcome::Retry { run_at: T0 + 200, error: failure(ErrorClass::Transient, "503"), refund_attempt: false };
    assert!(s.finish(id, "w", &out, T0 + 101).await.unwrap());
    assert_eq!(s.job(id).await.unwrap().unwrap().attempts, 1, "a transient failure burns the attempt");
    let got = s.lease("w", 1, T0 + 200, 60 * SEC).await.unwrap();
    assert_eq!(got[0].job.attempts, 2);
}

async fn dead_then_replay_with_edited_payload(h: Arc<Harness>) {
    let s = &h.store;
    let id = seed_jobs(s, "d", 1, T0).await[0];
    assert!(!s.replay(id, None, T0).await.unwrap(), "pending jobs are not replayable");
    s.lease("w", 1, T0, 60 * SEC).await.unwrap();
    assert!(!s.replay(id, None, T0).await.unwrap(), "running jobs are not replayable");

    let err = failure(ErrorClass::Data, "unknown item");
    assert!(s.finish(id, "w", &Outcome::Dead { error: err.clone() }, T0 + 5).await.unwrap());
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Dead);
    assert_eq!(j.last_error, Some(err.clone()));
    assert_eq!(j.finished_at, Some(T0 + 5));
    assert_eq!(j.attempts, 1);
    assert!(s.lease("w", 1, T0 + 1000 * SEC, SEC).await.unwrap().is_empty(), "dead jobs are not leased");

    let edited: Value = serde_json::from_str(r#"{"ticket":"d-0","total":"12.30","sku":"ABC-2","qty":1.50}"#).unwrap();
    assert!(s.replay(id, Some(&edited), T0 + 10 * SEC).await.unwrap());
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Pending);
    assert_eq!(j.attempts, 0);
    assert_eq!(j.run_at, T0 + 10 * SEC);
    assert_eq!(j.finished_at, None);
    assert_eq!(j.payload_override.as_ref().map(|v| v.to_string()), Some(edited.to_string()));
    assert_eq!(j.last_error, Some(err), "the reason it died stays visible");

    let got = s.lease("w2", 1, T0 + 10 * SEC, 60 * SEC).await.unwrap();
    assert_eq!(got[0].job.payload_override, Some(edited));
    assert_eq!(got[0].job.attempts, 1);
    // The event itself is untouched.
    assert_eq!(got[0].event.payload["total"], json!("12.34"));

    // Dead again, replayed without an override: the edit is cleared.
    let dead = Outcome::Dead { error: failure(ErrorClass::Data, "still bad") };
    assert!(s.finish(id, "w2", &dead, T0 + 11 * SEC).await.unwrap());
    assert!(s.replay(id, None, T0 + 12 * SEC).await.unwrap());
    assert_eq!(s.job(id).await.unwrap().unwrap().payload_override, None);
    assert!(!s.replay(999_999, None, T0).await.unwrap());
}

async fn cancel_rules(h: Arc<Harness>) {
    let s = &h.store;
    let ids = seed_jobs(s, "x", 4, T0).await;
    let (pending, running, retrying, dead) = (ids[0], ids[1], ids[2], ids[3]);
    // Lease the last three (limit 4 takes all; put the first back through cancel first).
    assert!(s.cancel(pending, T0 + 1).await.unwrap());
    let got = s.lease("w", 10, T0 + 2, 60 * SEC).await.unwrap();
    assert_eq!(got.len(), 3);
    s.finish(retrying, "w", &Outcome::Retry { run_at: T0 + 50, error: failure(ErrorClass::Transient, "t"), refund_attempt: false }, T0 + 3)
        .await
        .unwrap();
    s.finish(dead, "w", &Outcome::Dead { error: failure(ErrorClass::Data, "d") }, T0 + 3).await.unwrap();

    let j = s.job(pending).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.finished_at, Some(T0 + 1));
    assert!(!s.cancel(pending, T0 + 4).await.unwrap(), "already cancelled");
    assert!(!s.cancel(running, T0 + 4).await.unwrap(), "running jobs are not cancelled under a worker");
    assert_eq!(s.job(running).await.unwrap().unwrap().state, JobState::Running);
    assert!(s.cancel(retrying, T0 + 4).await.unwrap());
    assert!(s.cancel(dead, T0 + 4).await.unwrap());
    assert_eq!(s.job(dead).await.unwrap().unwrap().state, JobState::Cancelled);
    s.finish(running, "w", &Outcome::Succeeded, T0 + 5).await.unwrap();
    assert!(!s.cancel(running, T0 + 6).await.unwrap(), "succeeded jobs stay succeeded");
    assert!(!s.cancel(999_999, T0).await.unwrap());

    // Cancelled jobs are never leased, but can be replayed.
    assert!(s.lease("w", 10, T0 + 1000 * SEC, SEC).await.unwrap().is_empty());
    assert!(s.replay(pending, None, T0 + 7).await.unwrap());
    assert_eq!(s.job(pending).await.unwrap().unwrap().state, JobState::Pending);
}

async fn job_counts_has_all_six_states(h: Arc<Harness>) {
    let s = &h.store;
    let zero: Vec<_> = JobState::ALL.iter().map(|st| (*st, 0)).collect();
    assert_eq!(s.job_counts().await.unwrap(), zero);

    let ids = seed_jobs(s, "k", 9, T0).await;
    s.cancel(ids[8], T0).await.unwrap();
    // Lease ids[0..=6] (ids[7] stays pending because of the limit).
    let got = s.lease("w", 7, T0, 60 * SEC).await.unwrap();
    assert_eq!(got.len(), 7);
    s.finish(ids[0], "w", &Outcome::Succeeded, T0).await.unwrap();
    s.finish(ids[1], "w", &Outcome::Succeeded, T0).await.unwrap();
    s.finish(ids[2], "w", &Outcome::Dead { error: failure(ErrorClass::Bug, "b") }, T0).await.unwrap();
    let retry = Outcome::Retry { run_at: T0 + SEC, error: failure(ErrorClass::Transient, "t"), refund_attempt: false };
    s.finish(ids[3], "w", &retry, T0).await.unwrap();
    s.finish(ids[4], "w", &retry, T0).await.unwrap();
    s.finish(ids[5], "w", &retry, T0).await.unwrap();
    // ids[6] stays running.

    let counts: BTreeMap<_, _> = s.job_counts().await.unwrap().into_iter().collect();
    let expected: BTreeMap<_, _> = [
        (JobState::Pending, 1),
        (JobState::Running, 1),
        (JobState::Retrying, 3),
        (JobState::Succeeded, 2),
        (JobState::Dead, 1),
        (JobState::Cancelled, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
    // In the canonical order, every state present.
    let order: Vec<_> = s.job_counts().await.unwrap().into_iter().map(|(st, _)| st).collect();
    assert_eq!(order, JobState::ALL.to_vec());
}

async fn jobs_listing_newest_first_and_filtered(h: Arc<Harness>) {
    let s = &h.store;
    let ids = seed_jobs(s, "l", 5, T0).await;
    s.cancel(ids[1], T0).await.unwrap();
    s.cancel(ids[3], T0).await.unwrap();

    let all: Vec<_> = s.jobs(None, 100).await.unwrap().into_iter().map(|j| j.id).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(all, newest_first);
    let two: Vec<_> = s.jobs(None, 2).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(two, vec![ids[4], ids[3]]);
    let cancelled: Vec<_> = s.jobs(Some(JobState::Cancelled), 100).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(cancelled, vec![ids[3], ids[1]]);
    assert!(s.jobs(Some(JobState::Dead), 100).await.unwrap().is_empty());
}

async fn next_due_is_earliest_pending_or_retrying(h: Arc<Harness>) {
    let s = &h.store;
    assert_eq!(s.next_due().await.unwrap(), None);
    let r = s.ingest(&[item("a", &["sync"], T0 + 50), item("b", &["sync"], T0 + 20)]).await.unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(T0 + 20));
    let b = r[1].job_ids[0];
    s.lease("w", 1, T0 + 20, 60 * SEC).await.unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(T0 + 50), "running jobs are not due");
    let retry = Outcome::Retry { run_at: T0 + 30, error: failure(ErrorClass::Transient, "t"), refund_attempt: false };
    s.finish(b, "w", &retry, T0 + 21).await.unwrap();
    assert_eq!(s.next_due().await.unwrap(), Some(T0 + 30));
    s.cancel(b, T0 + 22).await.unwrap();
    s.cancel(r[0].job_ids[0], T0 + 22).await.unwrap();
    assert_eq!(s.next_due().await.unwrap(), None);
}

async fn effect_and_its_audit_entry_are_one_write(h: Arc<Harness>) {
    let s = &h.store;
    let e = NewEffect {
        system: "netsuite".into(),
        record_type: "customer".into(),
        idempotency_key: "hs-cust-1".into(),
        remote_id: "101".into(),
        job_id: None,
        created_at: T0,
    };
    let got = s.record_effect_audited(&e, &audit("netsuite:customer:101", 1)).await.unwrap();
    assert_eq!(got.remote_id, "101");
    // A repeat (a rerun after a crash) neither overwrites the effect nor audits it twice.
    let again = NewEffect { remote_id: "999".into(), ..e.clone() };
    assert_eq!(s.record_effect_audited(&again, &audit("netsuite:customer:999", 2)).await.unwrap().remote_id, "101");
    let entries = s.audit_entries(0, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entry.subject, "netsuite:customer:101");
    verify_chain(heartsuite_store::audit::GENESIS, 1, &entries).unwrap();
}

async fn effects_first_write_wins(h: Arc<Harness>) {
    let s = &h.store;
    assert!(s.effect("netsuite", "customerPayment", "k1").await.unwrap().is_none());
    let first = NewEffect {
        system: "netsuite".into(),
        record_type: "customerPayment".into(),
        idempotency_key: "k1".into(),
        remote_id: "100".into(),
        job_id: Some(7),
        created_at: T0,
    };
    let got = s.record_effect(&first).await.unwrap();
    assert_eq!(got.remote_id, "100");
    assert_eq!(got.job_id, Some(7));
    assert_eq!(got.created_at, T0);

    let second = NewEffect { remote_id: "200".into(), job_id: None, created_at: T0 + 1, ..first.clone() };
    let got2 = s.record_effect(&second).await.unwrap();
    assert_eq!(got2, got, "the first write wins and is returned");
    assert_eq!(s.effect("netsuite", "customerPayment", "k1").await.unwrap(), Some(got));

    // The key is scoped by system and record type.
    let other_type = NewEffect { record_type: "invoice".into(), remote_id: "300".into(), ..first.clone() };
    assert_eq!(s.record_effect(&other_type).await.unwrap().remote_id, "300");
    let other_sys = NewEffect { system: "retail".into(), remote_id: "400".into(), ..first.clone() };
    assert_eq!(s.record_effect(&other_sys).await.unwrap().remote_id, "400");

    // Racing writers of one key all see the same winner.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = h.store.clone();
        let e = NewEffect { idempotency_key: "race".into(), remote_id: format!("r{i}"), ..first.clone() };
        tasks.push(tokio::spawn(async move { s.record_effect(&e).await.unwrap().remote_id }));
    }
    let mut winners = HashSet::new();
    for t in tasks {
        winners.insert(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1);
}

async fn effects_listing_filters_and_pages(h: Arc<Harness>) {
    let s = &h.store;
    for (rt, key) in [("invoice", "b"), ("invoice", "a"), ("invoice", "c"), ("payment", "a2"), ("payment", "d")] {
        let e = NewEffect {
            system: "netsuite".into(),
            record_type: rt.into(),
            idempotency_key: key.into(),
            remote_id: format!("{rt}-{key}"),
            job_id: None,
            created_at: T0,
        };
        s.record_effect(&e).await.unwrap();
    }
    let other = NewEffect {
        system: "retail".into(),
        record_type: "invoice".into(),
        idempotency_key: "a".into(),
        remote_id: "x".into(),
        job_id: None,
        created_at: T0,
    };
    s.record_effect(&other).await.unwrap();

    let keys = |v: Vec<heartsuite_store::Effect>| v.into_iter().map(|e| e.idempotency_key).collect::<Vec<_>>();
    assert_eq!(keys(s.effects("netsuite", Some("invoice"), 100, None).await.unwrap()), ["a", "b", "c"]);
    assert_eq!(keys(s.effects("netsuite", Some("invoice"), 2, None).await.unwrap()), ["a", "b"]);
    assert_eq!(keys(s.effects("netsuite", Some("invoice"), 2, Some("b")).await.unwrap()), ["c"]);
    assert_eq!(keys(s.effects("netsuite", None, 100, None).await.unwrap()), ["a", "a2", "b", "c", "d"]);
    assert_eq!(keys(s.effects("netsuite", None, 100, Some("a2")).await.unwrap()), ["b", "c", "d"]);
    assert!(s.effects("gpapi", None, 100, None).await.unwrap().is_empty());
}

async fn audit_chain_verifies_and_detects_tampering(h: Arc<Harness>) {
    let s = &h.store;
    assert!(s.audit_entries(0, 100).await.unwrap().is_empty());
    let mut appended = Vec::new();
    for n in 1..=5 {
        let subject = if n % 2 == 0 { "job:2" } else { "netsuite:customerPayment:1" };
        appended.push(s.audit_append(&audit(subject, n)).await.unwrap());
    }
    assert_eq!(appended.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(appended[0].prev_hash, GENESIS);
    assert_eq!(appended[1].prev_hash, appended[0].hash);

    let all = s.audit_entries(0, 100).await.unwrap();
    assert_eq!(all, appended, "what was stored reads back identically");
    verify_chain(GENESIS, 1, &all).unwrap();
    // A window verifies from the hash of the entry before it.
    let tail = s.audit_entries(2, 2).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    verify_chain(&all[1].hash, 3, &tail).unwrap();

    let for_job = s.audit_for_subject("job:2").await.unwrap();
    assert_eq!(for_job.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 4]);
    assert!(s.audit_for_subject("nobody").await.unwrap().is_empty());

    // Someone edits a row behind the store's back.
    let n = h.exec(r#"UPDATE audit SET details = '{"z":1,"a":{"amount":99.99,"n":3}}' WHERE seq = 3"#).await.unwrap();
    assert_eq!(n, 1);
    let all = s.audit_entries(0, 100).await.unwrap();
    let brk = verify_chain(GENESIS, 1, &all).unwrap_err();
    assert_eq!(brk.seq, 3);

    // A deletion breaks the chain too (at the entry after the gap).
    h.exec("DELETE FROM audit WHERE seq = 3").await.unwrap();
    let all = s.audit_entries(0, 100).await.unwrap();
    assert_eq!(verify_chain(GENESIS, 1, &all).unwrap_err().seq, 4);
}

async fn concurrent_audit_appends_form_one_chain(h: Arc<Harness>) {
    let other = h.open_another().await;
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = if t % 2 == 0 { h.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            for n in 0..10 {
                s.audit_append(&audit(&format!("task:{t}"), n)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = h.store.audit_entries(0, 1000).await.unwrap();
    assert_eq!(all.len(), 40);
    verify_chain(GENESIS, 1, &all).unwrap();
}

async fn permits_never_exceed_limit_under_concurrency(h: Arc<Harness>) {
    const LIMIT: u32 = 3;
    let other = h.open_another().await;
    let held = Arc::new(Mutex::new(HashSet::new()));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let granted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = if t % 2 == 0 { h.store.clone() } else { other.clone() };
        let (held, max_seen, granted) = (held.clone(), max_seen.clone(), granted.clone());
        tasks.push(tokio::spawn(async move {
            let owner = format!("node{t}");
            for _ in 0..15 {
                // Permits live long (far future TTL), so only release frees a slot.
                match s.acquire_permit("netsuite:acct1", LIMIT, &owner, T0, 3600 * SEC).await.unwrap() {
                    Some(slot) => {
                        assert!(slot < LIMIT, "slot {slot} out of range");
                        {
                            let mut h = held.lock().unwrap();
                            assert!(h.insert(slot), "slot {slot} handed to two owners");
                            max_seen.fetch_max(h.len(), Ordering::SeqCst);
                        }
                        granted.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        held.lock().unwrap().remove(&slot);
                        s.release_permit("netsuite:acct1", slot, &owner).await.unwrap();
                    }
                    None => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(max_seen.load(Ordering::SeqCst) <= LIMIT as usize);
    assert!(granted.load(Ordering::SeqCst) > 0);
}

async fn permits_expire_and_release_only_by_owner(h: Arc<Harness>) {
    let s = &h.store;
    let ttl = 10 * SEC;
    let mut slots = Vec::new();
    for owner in ["a", "b"] {
        slots.push(s.acquire_permit("p", 2, owner, T0, ttl).await.unwrap().unwrap());
    }
    slots.sort();
    assert_eq!(slots, [0, 1]);
    assert_eq!(s.acquire_permit("p", 2, "c", T0 + 1, ttl).await.unwrap(), None, "full");
    // Pools are independent.
    assert!(s.acquire_permit("q", 2, "c", T0 + 1, ttl).await.unwrap().is_some());

    // Releasing somebody else's permit does nothing.
    s.release_permit("p", 0, "c").await.unwrap();
    assert_eq!(s.acquire_permit("p", 2, "c", T0 + 2, ttl).await.unwrap(), None);
    // The owner's release frees it.
    let a_slot = slots[0];
    s.release_permit("p", a_slot, "a").await.unwrap();
    assert_eq!(s.acquire_permit("p", 2, "c", T0 + 3, ttl).await.unwrap(), Some(a_slot));
    assert_eq!(s.acquire_permit("p", 2, "d", T0 + 4, ttl).await.unwrap(), None);

    // b's permit (taken at T0) expires at T0 + ttl and is then reclaimable; c's (T0 + 3) is not.
    assert_eq!(s.acquire_permit("p", 2, "d", T0 + ttl - 1, ttl).await.unwrap(), None);
    let reclaimed = s.acquire_permit("p", 2, "d", T0 + ttl, ttl).await.unwrap();
    assert_eq!(reclaimed, Some(slots[1]));
    // b, whose permit was taken over, cannot release d's.
    s.release_permit("p", slots[1], "b").await.unwrap();
    assert_eq!(s.acquire_permit("p", 2, "e", T0 + ttl + 1, ttl).await.unwrap(), None);

    // A lowered limit still counts permits held in higher slots.
    assert_eq!(s.acquire_permit("p", 1, "e", T0 + ttl + 1, ttl).await.unwrap(), None);
}

async fn cursors_round_trip(h: Arc<Harness>) {
    let s = &h.store;
    assert_eq!(s.cursor("netsuite:saved-search").await.unwrap(), None);
    s.set_cursor("netsuite:saved-search", "2026-11-20T10:00:00Z|4711", T0).await.unwrap();
    assert_eq!(s.cursor("netsuite:saved-search").await.unwrap().as_deref(), Some("2026-11-20T10:00:00Z|4711"));
    s.set_cursor("netsuite:saved-search", "page-2", T0 + 1).await.unwrap();
    s.set_cursor("retail:tickets", "", T0 + 1).await.unwrap();
    assert_eq!(s.cursor("netsuite:saved-search").await.unwrap().as_deref(), Some("page-2"));
    assert_eq!(s.cursor("retail:tickets").await.unwrap().as_deref(), Some(""));
}

async fn check_constraints_reject_invalid_states(h: Arc<Harness>) {
    let s = &h.store;
    let id = seed_jobs(s, "chk", 1, T0).await[0];
    assert_eq!(id, 1, "the raw SQL below targets job 1");

    let invalid = [
        ("unknown state", "UPDATE jobs SET state = 'exploded' WHERE id = 1"),
        ("running without a lease", "UPDATE jobs SET state = 'running' WHERE id = 1"),
        ("a lease while pending", "UPDATE jobs SET lease_owner = 'w', lease_expires_at = 5 WHERE id = 1"),
        ("succeeded without finished_at", "UPDATE jobs SET state = 'succeeded' WHERE id = 1"),
        ("finished_at while pending", "UPDATE jobs SET finished_at = 5 WHERE id = 1"),
        ("dead without an error", "UPDATE jobs SET state = 'dead', finished_at = 5 WHERE id = 1"),
        ("negative attempts", "UPDATE jobs SET attempts = -1 WHERE id = 1"),
        ("a job without its event", "INSERT INTO jobs (event_id, flow, state, attempts, run_at, created_at, updated_at) VALUES (424242, 'f', 'pending', 0, 0, 0, 0)"),
        ("a second audit head", "INSERT INTO audit_head (id, seq, hash) VALUES (2, 0, 'x')"),
    ];
    for (what, sql) in invalid {
        assert!(h.exec(sql).await.is_err(), "the database accepted {what}");
    }
    assert_eq!(s.job(id).await.unwrap().unwrap().state, JobState::Pending);

    // The constraints are not simply rejecting everything.
    let ok = h
        .exec("UPDATE jobs SET state = 'dead', finished_at = 5, last_error = '{\"class\":\"data\",\"message\":\"m\"}' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(ok, 1);
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Dead);
    assert_eq!(j.last_error, Some(Failure::data("m")));
}

// ----- SQLite only ------------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_memory_store_works() {
    let s = heartsuite_store::open("sqlite::memory:").await.unwrap();
    assert_eq!(s.backend(), "sqlite");
    s.migrate().await.unwrap();
    let r = s.ingest(&[item("a", &["sync"], T0)]).await.unwrap();
    // Reads and writes see the same in-memory database.
    assert_eq!(s.event_count().await.unwrap(), 1);
    let got = s.lease("w", 5, T0, SEC).await.unwrap();
    assert_eq!(got[0].job.id, r[0].job_ids[0]);
    assert!(s.finish(got[0].job.id, "w", &Outcome::Succeeded, T0 + 1).await.unwrap());
    s.audit_append(&audit("x", 1)).await.unwrap();
    verify_chain(GENESIS, 1, &s.audit_entries(0, 10).await.unwrap()).unwrap();

    // Two memory stores are two separate databases.
    let s2 = heartsuite_store::open("sqlite::memory:").await.unwrap();
    assert_eq!(s2.event_count().await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_bare_path_creates_file_and_parents() {
    let dir = std::env::temp_dir().join(unique("hs_store_path"));
    let path = dir.join("a").join("b").join("hs.db");
    let s = heartsuite_store::open(path.to_str().unwrap()).await.unwrap();
    s.ingest(&[item("a", &["sync"], T0)]).await.unwrap();
    assert!(path.exists());
    drop(s);
    let again = heartsuite_store::open(&format!("sqlite:{}", path.display())).await.unwrap();
    assert_eq!(again.event_count().await.unwrap(), 1, "the data is in the file");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn bad_urls_are_rejected() {
    for url in ["", "mysql://localhost/db", "sqlite://"] {
        match heartsuite_store::open(url).await {
            Err(heartsuite_store::StoreError::BadUrl(_)) => {}
            Err(e) => panic!("{url:?}: expected BadUrl, got {e}"),
            Ok(_) => panic!("{url:?}: expected BadUrl, got a store"),
        }
    }
}

/// Group-commit throughput on a SQLite file: `cargo test -p heartsuite-store --release --test
/// conformance -- --ignored --nocapture sqlite_ingest_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn sqlite_ingest_throughput() {
    let dir = std::env::temp_dir().join(unique("hs_store_bench"));
    let s = heartsuite_store::open(dir.join("bench.db").to_str().unwrap()).await.unwrap();
    let payload: Value = serde_json::from_str(
        r#"{"ticket":{"id":"T-1","lines":[{"sku":"ABC-1","qty":"1","price":"12.34"},{"sku":"XYZ-9","qty":"2","price":"5.00"}],"total":"22.34","customer":{"email":"a@example.com"}}}"#,
    )
    .unwrap();
    for size in [100usize, 500] {
        let batches = 20_000 / size;
        let start = std::time::Instant::now();
        for b in 0..batches {
            let batch: Vec<_> = (0..size)
                .map(|i| {
                    let mut it = item(&format!("{size}-{b}-{i}"), &["sync"], T0 + i as i64);
                    it.event.payload = payload.clone();
                    it
                })
                .collect();
            s.ingest(&batch).await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let n = (batches * size) as f64;
        println!("sqlite ingest: {n} events in {secs:.2}s = {:.0} events/s (batches of {size}, 1 job each)", n / secs);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Same measurement on PostgreSQL (one round trip per row inside the batch's transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn postgres_ingest_throughput() {
    let Some(h) = Harness::new(Kind::Postgres, "postgres_ingest_throughput").await else { return };
    let size = 500;
    let batches = 20;
    let start = std::time::Instant::now();
    for b in 0..batches {
        let batch: Vec<_> = (0..size).map(|i| item(&format!("{b}-{i}"), &["sync"], T0 + i as i64)).collect();
        h.store.ingest(&batch).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = (batches * size) as f64;
    println!("postgres ingest: {n} events in {secs:.2}s = {:.0} events/s (batches of {size}, 1 job each)", n / secs);
    h.cleanup().await;
}
