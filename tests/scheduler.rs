//! Black box: `heartsuite serve`'s scheduler, on a clock the test moves. A flow with
//! `[trigger] schedule` runs once per slot: not for slots before it was first scheduled, once
//! when two processes share the store, not again after a restart, and, after downtime over
//! several slots, once for the latest of them only.

mod common;

use async_trait::async_trait;
use heartsuite::server::{self, FlowRouter, Running, StartOptions};
use heartsuite_core::{Clock, Failure, ManualClock};
use heartsuite_engine::alerts::{AlertConfig, Alerts};
use heartsuite_engine::breaker::{BreakerConfig, Breakers};
use heartsuite_engine::{JobContext, JobHandler, WorkerConfig};
use heartsuite_flows::schedule::Schedule;
use heartsuite_flows::{DryRunContext, FlowSet};
use heartsuite_store::{DynStore, LeasedJob};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FLOW: &str = r#"
name = "close_day"
description = "A timed flow: its input is the slot"

[trigger]
schedule = "*/5 * * * *"

[[steps]]
kind = "map"
name = "closing"
[steps.fields]
"slot" = "input.slot"
"flow" = "input.flow"
"#;

/// Routes and runs flows from a `FlowSet` the way the engine's wiring does, recording each
/// run's mapped record instead of writing anywhere.
struct Flows {
    set: FlowSet,
    ran: Mutex<Vec<Value>>,
}

impl FlowRouter for Flows {
    fn flows_for(&self, kind: &str, payload: &Value) -> Vec<String> {
        self.set
            .flows_for(kind, payload)
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    }
    fn schedules(&self) -> Vec<(String, Schedule)> {
        self.set
            .flows()
            .iter()
            .filter_map(|f| Some((f.name().to_string(), f.schedule()?.clone())))
            .collect()
    }
}

#[async_trait]
impl JobHandler for Flows {
    async fn run(&self, job: &LeasedJob, _ctx: &JobContext) -> Result<(), Failure> {
        let flow = self
            .set
            .get(&job.job.flow)
            .map_err(|e| Failure::bug(e.to_string()))?;
        let report = flow.dry_run(&job.event.payload, &mut DryRunContext::new());
        if let Some(f) = report.failure {
            return Err(f);
        }
        let mut ran = self.ran.lock().map_err(|_| Failure::bug("poisoned"))?;
        ran.extend(report.records.into_iter().map(|r| r.record));
        Ok(())
    }
}

fn micros(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_microsecond())
        .expect("timestamp")
}

async fn start(store: &DynStore, flows: &Arc<Flows>, clock: &Arc<ManualClock>) -> Running {
    let clock: Arc<dyn Clock> = clock.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    server::start(
        listener,
        StartOptions {
            store: store.clone(),
            clock: clock.clone(),
            sources: common::sources(),
            router: flows.clone(),
            handler: flows.clone(),
            alerts: Arc::new(Alerts::new(AlertConfig::default(), clock.clone())),
            breakers: Arc::new(Breakers::new(BreakerConfig::default(), clock)),
            worker: Some(WorkerConfig {
                concurrency: 2,
                idle_poll: Duration::from_millis(20),
                ..WorkerConfig::default()
            }),
            admin_token: None,
            max_body: 64 * 1024,
            max_batch: 64,
        },
    )
    .await
    .expect("start")
}

/// Polls `check` until it holds (the scheduler looks at the clock once a second).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < until, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn slot_event(store: &DynStore, slot: &str) -> Option<heartsuite_store::StoredEvent> {
    store
        .event_by_key("scheduler", &format!("schedule:close_day:{slot}"))
        .await
        .expect("store")
}

/// Lets each running scheduler take at least two more looks at the clock.
async fn two_ticks() {
    tokio::time::sleep(heartsuite::scheduler::TICK * 2 + Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_flow_fires_once_per_slot_across_processes_and_restarts() {
    let dir = common::fresh_dir();
    let store = heartsuite_store::open(&format!("sqlite://{}", dir.join("t.db").display()))
        .await
        .expect("store");
    let set = FlowSet::from_sources([(Path::new("close_day.toml"), FLOW)]).expect("flow loads");
    let flows = Arc::new(Flows {
        set,
        ran: Mutex::new(Vec::new()),
    });
    let clock = Arc::new(ManualClock::new(micros("2026-03-14T10:02:00Z")));

    // First start ever: the 10:00 slot passed before the flow was scheduled and does not fire.
    let a = start(&store, &flows, &clock).await;
    eventually("the scheduler to note where it starts", || async {
        store
            .cursor("schedule.close_day")
            .await
            .expect("cursor")
            .as_deref()
            == Some("2026-03-14T10:00:00Z")
    })
    .await;
    two_ticks().await;
    assert_eq!(store.event_count().await.expect("count"), 0);

    // 10:05 is due: one event, routed to the flow, which runs with the slot as its input.
    clock.set(micros("2026-03-14T10:05:30Z"));
    eventually("the 10:05 slot", || async {
        slot_event(&store, "2026-03-14T10:05:00Z").await.is_some()
    })
    .await;
    let ev = slot_event(&store, "2026-03-14T10:05:00Z")
        .await
        .expect("event");
    assert_eq!(ev.kind, "schedule.close_day");
    assert_eq!(ev.source, "scheduler");
    assert_eq!(
        ev.payload,
        json!({"flow": "close_day", "slot": "2026-03-14T10:05:00Z", "fired_at": "2026-03-14T10:05:30Z"})
    );
    eventually("the flow to run", || async {
        flows.ran.lock().map(|r| r.len()).unwrap_or(0) == 1
    })
    .await;
    assert_eq!(
        flows.ran.lock().expect("ran")[0],
        json!({"flow": "close_day", "slot": "2026-03-14T10:05:00Z"})
    );

    // A second process on the same store: both see 10:10 due, one event is committed.
    let b = start(&store, &flows, &clock).await;
    two_ticks().await;
    clock.set(micros("2026-03-14T10:10:01Z"));
    eventually("the 10:10 slot", || async {
        slot_event(&store, "2026-03-14T10:10:00Z").await.is_some()
    })
    .await;
    two_ticks().await;
    assert_eq!(
        store.event_count().await.expect("count"),
        2,
        "one event per slot with two schedulers"
    );

    // Both stop; the clock passes 10:15, 10:20 and 10:25 while nothing runs.
    a.shutdown().await;
    b.shutdown().await;
    clock.set(micros("2026-03-14T10:27:00Z"));
    let c = start(&store, &flows, &clock).await;
    eventually("the latest missed slot, 10:25", || async {
        slot_event(&store, "2026-03-14T10:25:00Z").await.is_some()
    })
    .await;
    two_ticks().await;
    assert!(
        slot_event(&store, "2026-03-14T10:15:00Z").await.is_none(),
        "no burst of missed slots"
    );
    assert!(
        slot_event(&store, "2026-03-14T10:20:00Z").await.is_none(),
        "no burst of missed slots"
    );
    assert_eq!(store.event_count().await.expect("count"), 3);

    // A restart with no new slot due fires nothing again.
    c.shutdown().await;
    let d = start(&store, &flows, &clock).await;
    two_ticks().await;
    assert_eq!(
        store.event_count().await.expect("count"),
        3,
        "a restart does not fire a slot twice"
    );
    let jobs = store.jobs(None, 100).await.expect("jobs");
    assert_eq!(jobs.len(), 3, "one job per slot");
    assert!(jobs.iter().all(|j| j.flow == "close_day"));
    eventually("every slot's run", || async {
        flows.ran.lock().map(|r| r.len()).unwrap_or(0) == 3
    })
    .await;
    let mut slots: Vec<String> = flows
        .ran
        .lock()
        .expect("ran")
        .iter()
        .filter_map(|r| r["slot"].as_str().map(str::to_string))
        .collect();
    slots.sort();
    assert_eq!(
        slots,
        [
            "2026-03-14T10:05:00Z",
            "2026-03-14T10:10:00Z",
            "2026-03-14T10:25:00Z"
        ]
    );
    d.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
