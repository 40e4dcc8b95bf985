//! Timed flows: for each loaded flow with `[trigger] schedule = "<cron>"`, each due slot becomes
//! an inbox event `schedule.<flow>` keyed `schedule:<flow>:<slot RFC 3339>`, committed like a
//! webhook. The inbox's unique key is what makes a slot fire once: two processes, or a restart,
//! that both see a slot due both submit it and the second is a duplicate.
//!
//! Only the latest due slot is ever fired: a process that was down over several slots fires the
//! last of them once on startup, not a burst. A cursor per flow (`schedule.<flow>` = the last slot
//! handled) tells a slot missed while down from one that passed before the flow was first
//! scheduled: on the very first start nothing in the past fires.
//!
//! Time comes from the injected `Clock`, so tests move a `ManualClock` and the loop notices
//! within one `tick` of real time.

use crate::server::FlowRouter;
use heartsuite_core::clock::{Micros, format_micros};
use heartsuite_core::{Clock, Failure, NewEvent};
use heartsuite_flows::schedule::{EVENT_PREFIX, Schedule};
use heartsuite_store::{DynStore, IngestItem};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The inbox source of scheduled events.
pub const SOURCE: &str = "scheduler";

/// How often the loop looks at the clock. A slot fires at most this late.
pub const TICK: Duration = Duration::from_secs(1);

pub fn event_key(flow: &str, slot: Micros) -> String {
    format!("schedule:{flow}:{}", format_micros(slot))
}

fn cursor_name(flow: &str) -> String {
    format!("{EVENT_PREFIX}{flow}")
}

fn store_failure(e: heartsuite_store::StoreError) -> Failure {
    Failure::transient(format!("store: {e}")).with_system("store")
}

/// The scheduled flows and the last slot handled for each (as far as this process knows).
pub struct Scheduler {
    flows: Vec<(String, Schedule)>,
    handled: HashMap<String, Micros>,
}

impl Scheduler {
    pub fn new(flows: Vec<(String, Schedule)>) -> Self {
        Self {
            flows,
            handled: HashMap::new(),
        }
    }

    /// One look at the clock: fires each flow's latest due slot if it is newer than the last
    /// one handled. Returns how many new events were committed (a slot another process already
    /// fired counts 0).
    pub async fn fire_due(
        &mut self,
        store: &DynStore,
        router: &dyn FlowRouter,
        clock: &dyn Clock,
    ) -> Result<usize, Failure> {
        let now = clock.now_micros();
        let mut fired = 0;
        for (flow, schedule) in &self.flows {
            let Some(slot) = schedule.latest_at_or_before(now) else {
                continue;
            };
            let last = match self.handled.get(flow) {
                Some(l) => Some(*l),
                None => {
                    let stored = store
                        .cursor(&cursor_name(flow))
                        .await
                        .map_err(store_failure)?;
                    stored
                        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                        .map(|t| t.as_microsecond())
                }
            };
            match last {
                Some(l) if slot <= l => {}
                // The first time this flow is scheduled at all: start watching from here.
                None => {}
                Some(_) => {
                    let payload = json!({ "flow": flow, "slot": format_micros(slot), "fired_at": format_micros(now) });
                    let kind = format!("{EVENT_PREFIX}{flow}");
                    let flows = router.flows_for(&kind, &payload);
                    let item = IngestItem {
                        event: NewEvent {
                            source: SOURCE.into(),
                            source_event_key: event_key(flow, slot),
                            kind,
                            payload,
                            received_at: now,
                        },
                        flows,
                        run_at: now,
                    };
                    let res = store
                        .ingest(std::slice::from_ref(&item))
                        .await
                        .map_err(store_failure)?;
                    let new = res.iter().filter(|r| !r.duplicate).count();
                    if new > 0 {
                        tracing::info!(flow = %flow, slot = %format_micros(slot), "scheduled flow fired");
                    }
                    fired += new;
                }
            }
            if last.is_none_or(|l| slot > l) {
                store
                    .set_cursor(&cursor_name(flow), &format_micros(slot), now)
                    .await
                    .map_err(store_failure)?;
            }
            self.handled
                .insert(flow.clone(), last.map_or(slot, |l| l.max(slot)));
        }
        Ok(fired)
    }
}

/// Runs the scheduler until `shutdown`, looking at the clock every `tick`; `None` when no flow
/// has a schedule.
pub fn spawn(
    flows: Vec<(String, Schedule)>,
    store: DynStore,
    router: Arc<dyn FlowRouter>,
    clock: Arc<dyn Clock>,
    tick: Duration,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if flows.is_empty() {
        return None;
    }
    let mut s = Scheduler::new(flows);
    Some(tokio::spawn(async move {
        loop {
            if let Err(f) = s.fire_due(&store, router.as_ref(), clock.as_ref()).await {
                tracing::warn!("scheduler: {f}; will try again");
            }
            tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(tick) => {} }
        }
    }))
}
