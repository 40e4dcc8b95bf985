//! The worker pool: lease due jobs, run each through the [`JobHandler`], and record the outcome
//! that [`crate::policy`] decides. Leases expire, so a killed process loses nothing: its jobs come
//! back to whoever leases next. Shutdown stops leasing and drains what is in flight.

use crate::alerts::{AlertKind, Alerts};
use crate::breaker::{Admit, Breakers, Transition};
use crate::context::JobContext;
use crate::metrics as m;
use crate::policy::{Decision, Policies, decide};
use async_trait::async_trait;
use futures::FutureExt;
use heartsuite_core::{Clock, ErrorClass, Failure};
use heartsuite_store::{DynStore, LeasedJob, Outcome};
use rand::{SeedableRng, rngs::StdRng};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Remote systems this job will call, so an open circuit parks it before it runs.
    fn systems(&self, _job: &LeasedJob) -> Vec<String> {
        Vec::new()
    }
    /// Retry policies for the job's flow (per-flow overrides of the defaults).
    fn policies(&self, _flow: &str) -> Policies {
        Policies::default()
    }
    async fn run(&self, job: &LeasedJob, ctx: &JobContext) -> Result<(), Failure>;
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Lease owner name; unique per process (host:pid:random).
    pub owner: String,
    /// Jobs run at once.
    pub concurrency: usize,
    pub lease_for: Duration,
    /// Longest sleep when idle (new events wake workers earlier).
    pub idle_poll: Duration,
    /// Seed for retry jitter (deterministic in tests and simulations).
    pub seed: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            owner: format!("{}:{}", std::process::id(), rand::random::<u32>()),
            concurrency: 16,
            lease_for: Duration::from_secs(60),
            idle_poll: Duration::from_millis(500),
            seed: rand::random(),
        }
    }
}

pub struct Worker {
    store: DynStore,
    handler: Arc<dyn JobHandler>,
    clock: Arc<dyn Clock>,
    breakers: Arc<Breakers>,
    alerts: Arc<Alerts>,
    cfg: WorkerConfig,
    wake: Arc<Notify>,
    rng: Mutex<StdRng>,
}

impl Worker {
    pub fn new(
        store: DynStore,
        handler: Arc<dyn JobHandler>,
        clock: Arc<dyn Clock>,
        breakers: Arc<Breakers>,
        alerts: Arc<Alerts>,
        cfg: WorkerConfig,
        wake: Arc<Notify>,
    ) -> Self {
        let rng = Mutex::new(StdRng::seed_from_u64(cfg.seed));
        Self { store, handler, clock, breakers, alerts, cfg, wake, rng }
    }

    pub fn breakers(&self) -> &Arc<Breakers> {
        &self.breakers
    }

    /// Runs until `shutdown`, then waits for in-flight jobs to finish (graceful drain).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.cfg.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits() as u32;
            let leased = if free == 0 {
                Vec::new()
            } else {
                let now = self.clock.now_micros();
                match self.store.lease(&self.cfg.owner, free, now, self.cfg.lease_for.as_micros() as i64).await {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::error!(error = %e, "leasing jobs failed; will retry");
                        Vec::new()
                    }
                }
            };
            if leased.is_empty() {
                let wait = self.idle_wait().await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    // A finished job frees a slot; look for more work at once.
                    Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                }
                continue;
            }
            for job in leased {
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let me = self.clone();
                tasks.spawn(async move {
                    me.run_one(job).await;
                    drop(permit);
                });
            }
        }
        tracing::info!(in_flight = tasks.len(), "worker stopping: draining in-flight jobs");
        while tasks.join_next().await.is_some() {}
    }

    async fn idle_wait(&self) -> Duration {
        let now = self.clock.now_micros();
        match self.store.next_due().await {
            Ok(Some(due)) if due > now => Duration::from_micros((due - now) as u64).min(self.cfg.idle_poll),
            Ok(Some(_)) => Duration::from_millis(10),
            _ => self.cfg.idle_poll,
        }
    }

    /// Runs one leased job to a recorded outcome.
    pub async fn run_one(&self, job: LeasedJob) {
        let id = job.job.id;
        let span = tracing::info_span!("job", job_id = id, event_id = job.event.id, flow = %job.job.flow);
        let _enter = span.enter();
        for system in self.handler.systems(&job) {
            if let Admit::No { until } = self.breakers.admit(&system) {
                let error = Failure::new(ErrorClass::Unavailable, format!("circuit for {system} is open; parked"))
                    .with_system(system.as_str());
                let outcome = Outcome::Retry { run_at: until, error, refund_attempt: true };
                self.finish(&job, &outcome, "parked").await;
                return;
            }
        }
        let ctx = JobContext::new(self.store.clone(), self.clock.clone(), id, job.event.id, &job.job.flow);
        let started = Instant::now();
        // Heartbeat so a long job keeps its lease; a crashed process stops heartbeating and
        // its lease expires.
        let heartbeat = {
            let store = self.store.clone();
            let clock = self.clock.clone();
            let owner = self.cfg.owner.clone();
            let lease = self.cfg.lease_for;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(lease / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let until = clock.now_micros() + lease.as_micros() as i64;
                    if !matches!(store.heartbeat(id, &owner, until).await, Ok(true)) {
                        break;
                    }
                }
            })
        };
        let result = AssertUnwindSafe(self.handler.run(&job, &ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(Failure::bug(format!("the flow panicked: {what}")))
            });
        heartbeat.abort();
        metrics::histogram!(m::JOB_DURATION, "flow" => job.job.flow.clone()).record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                for s in ctx.touched() {
                    if let Some(t) = self.breakers.on_success(&s) {
                        self.on_transition(t);
                    }
                }
                self.finish(&job, &Outcome::Succeeded, "succeeded").await;
            }
            Err(failure) => self.on_failure(&job, &ctx, failure).await,
        }
    }

    async fn on_failure(&self, job: &LeasedJob, ctx: &JobContext, failure: Failure) {
        // Systems the job reached before it failed elsewhere answered: that closes their
        // circuits (a half-open probe that got its answer must report it, or the circuit
        // would wait for a probe that already happened).
        for s in ctx.touched().into_iter().filter(|s| failure.system.as_deref() != Some(s.as_str())) {
            if let Some(t) = self.breakers.on_success(&s) {
                self.on_transition(t);
            }
        }
        if let Some(system) = &failure.system {
            if let Some(t) = self.breakers.on_failure(system, failure.class, &failure.message) {
                self.on_transition(t);
            }
            if failure.class == ErrorClass::Auth {
                self.alerts.fire(AlertKind::CredentialsRefused, system, &format!("{system} refused our credentials: {failure}"));
            }
        }
        let policy = self.handler.policies(&job.job.flow).get(failure.class);
        let now = self.clock.now_micros();
        let age = Duration::from_micros((now - job.event.received_at).max(0) as u64);
        let attempts = job.job.attempts.max(1) as u32;
        let decision = {
            let mut rng = self.rng.lock().await;
            decide(&policy, &failure, attempts, age, &mut *rng)
        };
        match decision {
            Decision::Retry { delay, refund_attempt } => {
                tracing::info!(class = %failure.class, delay_ms = delay.as_millis() as u64, "job will retry: {failure}");
                let outcome = Outcome::Retry { run_at: now + delay.as_micros() as i64, error: failure, refund_attempt };
                self.finish(job, &outcome, "retried").await;
            }
            Decision::DeadLetter { reason } => {
                let mut error = failure;
                error.message = format!("{} — {reason}", error.message);
                tracing::warn!(class = %error.class, "job dead-lettered: {error}");
                let text = format!("job {} (flow {}, event {}) dead-lettered: {error}", job.job.id, job.job.flow, job.event.id);
                self.finish(job, &Outcome::Dead { error }, "dead").await;
                self.alerts.fire(AlertKind::DeadLettered, &job.job.flow, &text);
            }
        }
    }

    fn on_transition(&self, t: Transition) {
        match t {
            Transition::Opened { system, reason } => {
                self.alerts.fire(AlertKind::CircuitOpened, &system, &format!("circuit for {system} opened: {reason}"));
            }
            Transition::Closed { system } => {
                self.alerts.fire(AlertKind::CircuitClosed, &system, &format!("circuit for {system} closed; work resumes"));
            }
        }
    }

    async fn finish(&self, job: &LeasedJob, outcome: &Outcome, label: &'static str) {
        let now = self.clock.now_micros();
        match self.store.finish(job.job.id, &self.cfg.owner, outcome, now).await {
            Ok(true) => {
                metrics::counter!(m::JOBS_FINISHED, "flow" => job.job.flow.clone(), "outcome" => label).increment(1);
            }
            Ok(false) => tracing::warn!(job_id = job.job.id, "lease was lost before the outcome was recorded; another worker owns the job"),
            Err(e) => tracing::error!(job_id = job.job.id, error = %e, "could not record the job outcome; the lease will expire and the job rerun"),
        }
    }
}
