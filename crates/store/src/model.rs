//! Plain data carried in and out of the [`crate::Store`].

use heartsuite_core::{Failure, NewEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Micros;

#[derive(Debug, Clone)]
pub struct IngestItem {
    pub event: NewEvent,
    /// The flows this event triggers; one job each.
    pub flows: Vec<String>,
    /// Run-at for the new jobs (usually the receive time).
    pub run_at: Micros,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub event_id: i64,
    /// True when the event was already in the inbox; then `job_ids` is empty.
    pub duplicate: bool,
    pub job_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub source: String,
    pub source_event_key: String,
    pub kind: String,
    pub payload: Value,
    pub received_at: Micros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Retrying,
    Succeeded,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Running,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub event_id: i64,
    pub flow: String,
    pub state: JobState,
    /// Attempts started so far (incremented at lease; given back for rate-limited/unavailable).
    pub attempts: i32,
    pub run_at: Micros,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Micros>,
    /// The last failure, as stored (class, message, field path, code).
    pub last_error: Option<Failure>,
    /// An operator-edited payload set by a replay; used instead of the event's payload.
    pub payload_override: Option<Value>,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub finished_at: Option<Micros>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeasedJob {
    pub job: Job,
    pub event: StoredEvent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Back to `retrying` at `run_at`. With `refund_attempt` the attempt just made is given back
    /// (rate-limited, unavailable: back-pressure must not burn the attempt budget).
    Retry { run_at: Micros, error: Failure, refund_attempt: bool },
    /// To the dead-letter queue.
    Dead { error: Failure },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEffect {
    pub system: String,
    pub record_type: String,
    pub idempotency_key: String,
    pub remote_id: String,
    pub job_id: Option<i64>,
    pub created_at: Micros,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effect {
    pub system: String,
    pub record_type: String,
    pub idempotency_key: String,
    pub remote_id: String,
    pub job_id: Option<i64>,
    pub created_at: Micros,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewAudit {
    pub at: Micros,
    /// Who: `engine`, `cli:<user>`, `api:<token name>`.
    pub actor: String,
    /// What: `effect.netsuite.create`, `dlq.replay`, `dlq.discard`, `config.change`, ...
    pub action: String,
    /// The record the entry is about (`netsuite:customerPayment:123`, `job:42`...).
    pub subject: String,
    pub event_id: Option<i64>,
    pub job_id: Option<i64>,
    pub remote_id: Option<String>,
    /// Free-form details; must never hold secrets or card data.
    pub details: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: NewAudit,
    pub prev_hash: String,
    pub hash: String,
}
