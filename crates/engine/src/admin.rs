//! Operator actions shared by the CLI and the admin API: the dead-letter queue and the audit
//! chain. Every mutation is itself audited.

use crate::EngineError;
use heartsuite_core::Clock;
use heartsuite_store::{ChainBreak, DynStore, Job, JobState, NewAudit, StoredEvent, audit::GENESIS, verify_chain};
use serde_json::{Value, json};

pub async fn dlq_list(store: &DynStore, limit: u32) -> Result<Vec<Job>, EngineError> {
    Ok(store.jobs(Some(JobState::Dead), limit).await?)
}

pub async fn job_with_event(store: &DynStore, job_id: i64) -> Result<(Job, StoredEvent), EngineError> {
    let job = store.job(job_id).await?.ok_or_else(|| EngineError::NotFound(format!("no job {job_id}")))?;
    let event = store
        .event(job.event_id)
        .await?
        .ok_or_else(|| EngineError::NotFound(format!("job {job_id} names event {} which is missing", job.event_id)))?;
    Ok((job, event))
}

/// Top-level paths whose values differ, so the audit says what an edit changed without copying
/// the payload (which may hold personal data) into the chain.
pub fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    match (x.get(k), y.get(k)) {
                        (Some(va), Some(vb)) => walk(&p, va, vb, out),
                        _ => out.push(p),
                    }
                }
            }
            _ if a != b => out.push(if prefix.is_empty() { "$".into() } else { prefix.to_string() }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

pub async fn dlq_replay(
    store: &DynStore,
    clock: &dyn Clock,
    job_id: i64,
    edited: Option<Value>,
    actor: &str,
) -> Result<(), EngineError> {
    let (job, event) = job_with_event(store, job_id).await?;
    if !matches!(job.state, JobState::Dead | JobState::Cancelled) {
        return Err(EngineError::Invalid(format!(
            "job {job_id} is {}; only dead or cancelled jobs can be replayed",
            job.state.as_str()
        )));
    }
    let mut edited = edited;
    if let Some(v) = edited.as_mut() {
        // An operator's edit gets the same card scrubbing as a webhook.
        heartsuite_core::pan::mask_json(v);
    }
    let now = clock.now_micros();
    if !store.replay(job_id, edited.as_ref(), now).await? {
        return Err(EngineError::Invalid(format!("job {job_id} changed state while replaying; look again")));
    }
    let before = job.payload_override.as_ref().unwrap_or(&event.payload);
    let details = match &edited {
        Some(v) => json!({"edited": true, "changed_paths": changed_paths(before, v), "flow": job.flow}),
        None => json!({"edited": false, "flow": job.flow}),
    };
    store
        .audit_append(&NewAudit {
            at: now,
            actor: actor.to_string(),
            action: "dlq.replay".into(),
            subject: format!("job:{job_id}"),
            event_id: Some(job.event_id),
            job_id: Some(job_id),
            remote_id: None,
            details,
        })
        .await?;
    Ok(())
}

pub async fn dlq_discard(store: &DynStore, clock: &dyn Clock, job_id: i64, actor: &str, reason: &str) -> Result<(), EngineError> {
    let (job, _) = job_with_event(store, job_id).await?;
    let now = clock.now_micros();
    if !store.cancel(job_id, now).await? {
        return Err(EngineError::Invalid(format!("job {job_id} is {}; it cannot be discarded", job.state.as_str())));
    }
    store
        .audit_append(&NewAudit {
            at: now,
            actor: actor.to_string(),
            action: "dlq.discard".into(),
            subject: format!("job:{job_id}"),
            event_id: Some(job.event_id),
            job_id: Some(job_id),
            remote_id: None,
            details: json!({"reason": reason, "flow": job.flow}),
        })
        .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: i64,
    pub first_break: Option<ChainBreak>,
}

/// Walks the whole chain in pages and reports the first broken link.
pub async fn audit_verify(store: &DynStore) -> Result<VerifyReport, EngineError> {
    const PAGE: u32 = 1000;
    let mut prev = GENESIS.to_string();
    let mut next_seq = 1;
    let mut count = 0;
    loop {
        let page = store.audit_entries(next_seq - 1, PAGE).await?;
        if page.is_empty() {
            return Ok(VerifyReport { entries: count, first_break: None });
        }
        if let Err(b) = verify_chain(&prev, next_seq, &page) {
            return Ok(VerifyReport { entries: count, first_break: Some(b) });
        }
        count += page.len() as i64;
        if let Some(last) = page.last() {
            prev = last.hash.clone();
            next_seq = last.seq + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_paths_names_what_an_edit_touched() {
        let a = json!({"amount": "10.00", "customer": {"email": "A@x.com", "name": "A"}, "gone": 1});
        let b = json!({"amount": "10.00", "customer": {"email": "a@x.com", "name": "A"}, "new": 2});
        assert_eq!(changed_paths(&a, &b), vec!["customer.email", "gone", "new"]);
        assert!(changed_paths(&a, &a).is_empty());
    }
}
