//! The worker pool end to end: retries by class, the dead-letter queue and replay, circuit
//! parking, panics, and effects that a rerun does not repeat.

mod common;

use async_trait::async_trait;
use common::*;
use heartsuite_core::{ErrorClass, Failure};
use heartsuite_engine::admin;
use heartsuite_engine::context::job_input;
use heartsuite_engine::policy::{ClassPolicy, Policies};
use heartsuite_engine::{JobContext, JobHandler};
use heartsuite_store::{DynStore, JobState, LeasedJob};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Behaviour chosen by the event payload's `script`: a list of outcomes, one per attempt.
#[derive(Default)]
struct Scripted {
    runs: Mutex<HashMap<String, u32>>,
    remote_writes: AtomicU32,
}

fn fast() -> Policies {
    let mut p = Policies::default();
    for c in ErrorClass::ALL {
        let mut cp = ClassPolicy::default_for(c);
        cp.base_delay = Duration::from_millis(1);
        cp.max_delay = Duration::from_millis(20);
        cp.max_attempts = cp.max_attempts.min(4);
        p.set(c, cp);
    }
    p
}

#[async_trait]
impl JobHandler for Scripted {
    fn systems(&self, job: &LeasedJob) -> Vec<String> {
        job.event.payload.get("system").and_then(|s| s.as_str()).map(|s| vec![s.to_string()]).unwrap_or_default()
    }
    fn policies(&self, _flow: &str) -> Policies {
        fast()
    }
    async fn run(&self, job: &LeasedJob, ctx: &JobContext) -> Result<(), Failure> {
        let input = job_input(job);
        let key = input["event_id"].as_str().unwrap_or_default().to_string();
        let n = {
            let mut runs = self.runs.lock().unwrap();
            let n = runs.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        // The effect comes first, so a later failure makes the job rerun past it.
        if input.get("write").is_some() {
            ctx.once("ledger", "entry", &key, "create", || async {
                self.remote_writes.fetch_add(1, Ordering::SeqCst);
                Ok(format!("L-{key}"))
            })
            .await?;
        }
        let script: Vec<String> = input["script"].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default();
        let step = script.get((n - 1) as usize).map(String::as_str).unwrap_or("ok");
        let system = input.get("system").and_then(|s| s.as_str()).unwrap_or("ledger").to_string();
        match step {
            "ok" => Ok(()),
            "panic" => panic!("scripted panic"),
            other => {
                let class = ErrorClass::parse(other).expect("class");
                Err(Failure::new(class, format!("scripted {other}")).with_system(system).with_field("customer.email"))
            }
        }
    }
}

async fn wait_for(store: &DynStore, what: &str, mut pred: impl FnMut(&[(JobState, i64)]) -> bool) {
    for _ in 0..400 {
        let counts = store.job_counts().await.unwrap();
        if pred(&counts) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}: {:?}", store.job_counts().await.unwrap());
}

fn n(counts: &[(JobState, i64)], s: JobState) -> i64 {
    counts.iter().find(|(x, _)| *x == s).map(|(_, n)| *n).unwrap_or(0)
}

fn settled(c: &[(JobState, i64)]) -> bool {
    n(c, JobState::Pending) + n(c, JobState::Running) + n(c, JobState::Retrying) == 0
}

#[tokio::test]
async fn transient_failures_retry_then_succeed_and_data_errors_dead_letter() {
    let h = Arc::new(Scripted::default());
    let app = spawn_app(Arc::new(StaticRouter(vec!["f".into()])), h.clone(), true).await;
    app.post_signed("shop", r#"{"event_id":"t1","script":["transient","transient","ok"]}"#, SHOP_SECRET).await;
    app.post_signed("shop", r#"{"event_id":"d1","script":["data"]}"#, SHOP_SECRET).await;
    app.post_signed("shop", r#"{"event_id":"x1","script":["transient","transient","transient","transient","transient"]}"#, SHOP_SECRET).await;
    wait_for(&app.store, "all jobs settled", settled).await;
    let counts = app.store.job_counts().await.unwrap();
    assert_eq!(n(&counts, JobState::Succeeded), 1);
    assert_eq!(n(&counts, JobState::Dead), 2);
    let dead = admin::dlq_list(&app.store, 10).await.unwrap();
    let data = dead.iter().find(|j| j.attempts == 1).expect("data error dead after one attempt");
    let err = data.last_error.as_ref().unwrap();
    assert_eq!(err.class, ErrorClass::Data);
    assert_eq!(err.field_path.as_deref(), Some("customer.email"));
    let exhausted = dead.iter().find(|j| j.attempts == 4).expect("transient dead after max attempts");
    assert!(exhausted.last_error.as_ref().unwrap().message.contains("gave up after 4 attempts"));
    assert_eq!(h.runs.lock().unwrap()["t1"], 3);
    app.stop().await;
}

#[tokio::test]
async fn replay_with_an_edited_payload_is_audited_and_runs_again() {
    let h = Arc::new(Scripted::default());
    let app = spawn_app(Arc::new(StaticRouter(vec!["f".into()])), h.clone(), true).await;
    app.post_signed("shop", r#"{"event_id":"r1","script":["data"],"email":"BAD"}"#, SHOP_SECRET).await;
    wait_for(&app.store, "dead letter", |c| n(c, JobState::Dead) == 1).await;
    let job = admin::dlq_list(&app.store, 1).await.unwrap().remove(0);
    let clock = heartsuite_core::SystemClock;
    // The edit fixes the e-mail; the handler counts runs per event_id, so the second run is "ok".
    let edited = serde_json::json!({"event_id":"r1","script":["data","ok"],"email":"good@example.com"});
    admin::dlq_replay(&app.store, &clock, job.id, Some(edited), "cli:tester").await.unwrap();
    wait_for(&app.store, "replayed job succeeded", |c| n(c, JobState::Succeeded) == 1).await;
    let trail = app.store.audit_for_subject(&format!("job:{}", job.id)).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].entry.action, "dlq.replay");
    assert_eq!(trail[0].entry.actor, "cli:tester");
    assert_eq!(trail[0].entry.details["changed_paths"], serde_json::json!(["email", "script"]));
    assert!(admin::audit_verify(&app.store).await.unwrap().first_break.is_none());
    // A succeeded job cannot be replayed or discarded.
    assert!(admin::dlq_replay(&app.store, &clock, job.id, None, "cli:tester").await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn effects_are_not_repeated_when_a_job_reruns() {
    let h = Arc::new(Scripted::default());
    let app = spawn_app(Arc::new(StaticRouter(vec!["f".into()])), h.clone(), true).await;
    for i in 0..20 {
        app.post_signed("shop", &format!(r#"{{"event_id":"e{i}","write":true,"script":["transient","transient","ok"]}}"#), SHOP_SECRET).await;
    }
    wait_for(&app.store, "all succeeded", |c| n(c, JobState::Succeeded) == 20).await;
    assert_eq!(h.remote_writes.load(Ordering::SeqCst), 20, "each effect once although every job ran three times");
    let effects = app.store.effects("ledger", Some("entry"), 100, None).await.unwrap();
    assert_eq!(effects.len(), 20);
    // Every effect is in the audit chain, and the chain verifies.
    let report = admin::audit_verify(&app.store).await.unwrap();
    assert_eq!(report.entries, 20);
    assert!(report.first_break.is_none());
    app.stop().await;
}

#[tokio::test]
async fn rate_limits_do_not_burn_attempts_and_panics_dead_letter() {
    let h = Arc::new(Scripted::default());
    let app = spawn_app(Arc::new(StaticRouter(vec!["f".into()])), h.clone(), true).await;
    // Six rate-limit answers exceed max_attempts (4), yet the job succeeds: they were refunded.
    app.post_signed("shop", r#"{"event_id":"rl","script":["rate_limited","rate_limited","rate_limited","rate_limited","rate_limited","rate_limited","ok"]}"#, SHOP_SECRET).await;
    app.post_signed("shop", r#"{"event_id":"p","script":["panic"]}"#, SHOP_SECRET).await;
    wait_for(&app.store, "settled", settled).await;
    let counts = app.store.job_counts().await.unwrap();
    assert_eq!(n(&counts, JobState::Succeeded), 1);
    let dead = admin::dlq_list(&app.store, 5).await.unwrap();
    assert_eq!(dead.len(), 1);
    let e = dead[0].last_error.as_ref().unwrap();
    assert_eq!(e.class, ErrorClass::Bug);
    assert!(e.message.contains("scripted panic"), "{}", e.message);
    app.stop().await;
}

#[tokio::test]
async fn an_open_circuit_parks_jobs_without_running_them() {
    let h = Arc::new(Scripted::default());
    let app = spawn_app(Arc::new(StaticRouter(vec!["f".into()])), h.clone(), true).await;
    // Five consecutive unavailable failures of "remote" open its circuit (threshold 5, 30 s).
    for i in 0..5 {
        app.post_signed("shop", &format!(r#"{{"event_id":"u{i}","system":"remote","script":["unavailable","unavailable","unavailable","unavailable","unavailable","unavailable","unavailable"]}}"#), SHOP_SECRET).await;
    }
    let running = app.running.as_ref().unwrap();
    for _ in 0..400 {
        if running.breakers.states().iter().any(|(s, st)| s == "remote" && st.as_str() == "open") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(running.breakers.states().iter().any(|(s, st)| s == "remote" && st.as_str() == "open"));
    let runs_before: u32 = h.runs.lock().unwrap().values().sum();
    app.post_signed("shop", r#"{"event_id":"parked","system":"remote"}"#, SHOP_SECRET).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!h.runs.lock().unwrap().contains_key("parked"), "a job for an open circuit must not run");
    let parked = app.store.jobs(Some(JobState::Retrying), 50).await.unwrap();
    let p = parked.iter().find(|j| j.last_error.as_ref().is_some_and(|e| e.message.contains("circuit for remote is open"))).expect("parked job");
    assert_eq!(p.attempts, 0, "parking gives the attempt back");
    assert!(running.alerts.sent().iter().any(|a| a.contains("circuit for remote opened")));
    let runs_after: u32 = h.runs.lock().unwrap().values().sum();
    assert!(runs_after >= runs_before);
    app.stop().await;
}

/// A handler that takes a while, to catch shutdown mid-job.
struct Slow(std::sync::atomic::AtomicU32);
#[async_trait]
impl JobHandler for Slow {
    async fn run(&self, _job: &LeasedJob, _ctx: &JobContext) -> Result<(), Failure> {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(())
    }
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_jobs() {
    let h = Arc::new(Slow(AtomicU32::new(0)));
    let mut app = spawn_app(Arc::new(StaticRouter(vec!["f".into()])), h.clone(), true).await;
    for i in 0..3 {
        app.post_signed("shop", &format!(r#"{{"event_id":"g{i}"}}"#), SHOP_SECRET).await;
    }
    wait_for(&app.store, "jobs running", |c| n(c, JobState::Running) == 3).await;
    // Shut down while all three are mid-run: they finish and are recorded, none is abandoned.
    app.running.take().unwrap().shutdown().await;
    let c = app.store.job_counts().await.unwrap();
    assert_eq!(n(&c, JobState::Succeeded), 3, "{c:?}");
    assert_eq!(n(&c, JobState::Running), 0, "{c:?}");
    assert_eq!(h.0.load(Ordering::SeqCst), 3);
    app.stop().await;
}
