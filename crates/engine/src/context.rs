//! What a running job may do to the world: every remote write goes through [`JobContext::once`],
//! keyed by a deterministic idempotency key. The crosswalk remembers each key's remote id, so a
//! rerun of a half-done job skips what is done, and later flows can find "the NetSuite customer
//! for Heartland customer 123" without a remote call.

use heartsuite_core::{Clock, ErrorClass, Failure};
use heartsuite_store::{DynStore, NewAudit, NewEffect, StoreError};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

pub struct JobContext {
    store: DynStore,
    clock: Arc<dyn Clock>,
    pub job_id: i64,
    pub event_id: i64,
    pub flow: String,
    touched: Mutex<BTreeSet<String>>,
    performed: AtomicU32,
    skipped: AtomicU32,
}

fn store_failure(e: StoreError) -> Failure {
    Failure::new(ErrorClass::Transient, format!("store: {e}")).with_system("store")
}

impl JobContext {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, job_id: i64, event_id: i64, flow: &str) -> Self {
        Self {
            store,
            clock,
            job_id,
            event_id,
            flow: flow.to_string(),
            touched: Mutex::new(BTreeSet::new()),
            performed: AtomicU32::new(0),
            skipped: AtomicU32::new(0),
        }
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// The remote id recorded for this key, if the effect already happened.
    pub async fn known(&self, system: &str, record_type: &str, key: &str) -> Result<Option<String>, Failure> {
        Ok(self.store.effect(system, record_type, key).await.map_err(store_failure)?.map(|e| e.remote_id))
    }

    /// Runs `call` unless the effect keyed `(system, record_type, key)` is already recorded;
    /// records its remote id and appends it to the audit chain. `call` must itself be idempotent
    /// under the same key (NetSuite `eid:` upsert, GP-API `x-gp-idempotency`), which covers the
    /// crash window between the remote write and our record of it.
    pub async fn once<F, Fut>(&self, system: &str, record_type: &str, key: &str, action: &str, call: F) -> Result<String, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, Failure>>,
    {
        if let Some(id) = self.known(system, record_type, key).await? {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(id);
        }
        self.touch(system);
        let remote_id = call().await?;
        let now = self.clock.now_micros();
        let effect = self
            .store
            .record_effect_audited(
                &NewEffect {
                    system: system.to_string(),
                    record_type: record_type.to_string(),
                    idempotency_key: key.to_string(),
                    remote_id: remote_id.clone(),
                    job_id: Some(self.job_id),
                    created_at: now,
                },
                &NewAudit {
                    at: now,
                    actor: "engine".into(),
                    action: format!("effect.{system}.{action}"),
                    subject: format!("{system}:{record_type}:{remote_id}"),
                    event_id: Some(self.event_id),
                    job_id: Some(self.job_id),
                    remote_id: Some(remote_id.clone()),
                    details: json!({"record_type": record_type, "idempotency_key": key, "flow": self.flow}),
                },
            )
            .await
            .map_err(store_failure)?;
        self.performed.fetch_add(1, Ordering::Relaxed);
        Ok(effect.remote_id)
    }

    /// Notes that this job called `system` (for the circuit breaker's success bookkeeping).
    pub fn touch(&self, system: &str) {
        self.touched.lock().unwrap_or_else(|p| p.into_inner()).insert(system.to_string());
    }

    pub async fn audit(&self, action: &str, subject: &str, remote_id: Option<String>, details: Value) -> Result<(), Failure> {
        self.store
            .audit_append(&NewAudit {
                at: self.clock.now_micros(),
                actor: "engine".into(),
                action: action.to_string(),
                subject: subject.to_string(),
                event_id: Some(self.event_id),
                job_id: Some(self.job_id),
                remote_id,
                details,
            })
            .await
            .map(|_| ())
            .map_err(store_failure)
    }

    pub fn touched(&self) -> Vec<String> {
        self.touched.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// (effects performed, effects skipped because already done)
    pub fn counts(&self) -> (u32, u32) {
        (self.performed.load(Ordering::Relaxed), self.skipped.load(Ordering::Relaxed))
    }
}

/// The payload a job runs on: an operator's edited payload if a replay set one, else the event's.
pub fn job_input(job: &heartsuite_store::LeasedJob) -> &Value {
    job.job.payload_override.as_ref().unwrap_or(&job.event.payload)
}
