//! The durable state of heartsuite behind one trait, [`Store`], with two real backends:
//! SQLite (the embedded default) and PostgreSQL (chosen by a `postgres://` URL, shared by several
//! processes). One conformance suite (`tests/conformance.rs`) runs every operation on both.
//!
//! Tables: the inbox (`events`, unique on source + source event key), `jobs` (a state machine whose
//! CHECK constraints mirror [`JobState`]), `effects` (the crosswalk: system + record type +
//! idempotency key → remote id), the hash-chained `audit` log, poller `cursors`, and `permits`
//! (per-account concurrency leases for the NetSuite governor across processes).

pub mod audit;
pub mod model;

pub use audit::{verify_chain, ChainBreak};
pub use backends::{open_with, Options};
pub use model::*;

use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: use a file path, `sqlite://PATH`, `sqlite::memory:` or `postgres://...`")]
    BadUrl(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations (idempotent). `open` already calls it.
    async fn migrate(&self) -> Result<()>;

    /// Cheap liveness probe for `/readyz`.
    async fn ping(&self) -> Result<()>;

    // ----- inbox + dispatch -------------------------------------------------------------------

    /// Writes a batch of events and, for each newly inserted event, one job per named flow, all in
    /// ONE transaction (group commit). An event whose `(source, source_event_key)` already exists
    /// is reported as a duplicate and nothing is written for it. The result has one entry per
    /// input, in order.
    async fn ingest(&self, batch: &[IngestItem]) -> Result<Vec<Ingested>>;

    async fn event(&self, id: i64) -> Result<Option<StoredEvent>>;

    /// The inbox row of one sender's event, by the sender's own key.
    async fn event_by_key(&self, source: &str, key: &str) -> Result<Option<StoredEvent>>;

    /// Number of events in the inbox (for the demo and metrics).
    async fn event_count(&self) -> Result<i64>;

    // ----- jobs -------------------------------------------------------------------------------

    /// Leases up to `limit` due jobs for `owner`: jobs in `pending`/`retrying` with
    /// `run_at <= now`, and jobs in `running` whose lease expired (a crashed worker's work comes
    /// back). Leased jobs become `running`, with `attempts + 1`, `lease_owner = owner` and
    /// `lease_expires_at = now + lease_for`. Ordered by run_at, id. On PostgreSQL the claim uses
    /// `FOR UPDATE SKIP LOCKED` so several processes never lease the same job.
    async fn lease(&self, owner: &str, limit: u32, now: Micros, lease_for: Micros) -> Result<Vec<LeasedJob>>;

    /// Extends a lease still held by `owner`; false if the lease was lost.
    async fn heartbeat(&self, job_id: i64, owner: &str, until: Micros) -> Result<bool>;

    /// Records the outcome of a run for a job still leased by `owner`. Returns false (and writes
    /// nothing) if the job is no longer leased by `owner`, e.g. its lease expired and another
    /// worker took it.
    async fn finish(&self, job_id: i64, owner: &str, outcome: &Outcome, now: Micros) -> Result<bool>;

    async fn job(&self, id: i64) -> Result<Option<Job>>;

    /// Jobs, newest first, optionally in one state.
    async fn jobs(&self, state: Option<JobState>, limit: u32) -> Result<Vec<Job>>;

    /// Count of jobs per state (every state present, zero included).
    async fn job_counts(&self) -> Result<Vec<(JobState, i64)>>;

    /// Puts a `dead` or `cancelled` job back to `pending` with `attempts = 0` and `run_at = now`,
    /// optionally with an edited payload that the next run uses instead of the event's. Returns
    /// false if the job is not in one of those states.
    async fn replay(&self, job_id: i64, payload_override: Option<&Value>, now: Micros) -> Result<bool>;

    /// Discards a `dead` (or `pending`/`retrying`) job: it becomes `cancelled`. False otherwise.
    async fn cancel(&self, job_id: i64, now: Micros) -> Result<bool>;

    /// Earliest `run_at` among `pending`/`retrying` jobs, so idle workers know when to wake.
    async fn next_due(&self) -> Result<Option<Micros>>;

    // ----- effects / crosswalk ----------------------------------------------------------------

    async fn effect(&self, system: &str, record_type: &str, key: &str) -> Result<Option<Effect>>;

    /// Inserts the effect, or returns the one already recorded under the same key (first write
    /// wins; a later write with another remote id does not overwrite it).
    async fn record_effect(&self, effect: &NewEffect) -> Result<Effect>;

    /// Records the effect and, only if it is new, appends `audit` — in one transaction, so a
    /// crash can never leave an effect without its audit entry (or the reverse).
    async fn record_effect_audited(&self, effect: &NewEffect, audit: &NewAudit) -> Result<Effect>;

    /// Effects of one system and record type, by key, for crosswalk scans and reconciliation.
    async fn effects(&self, system: &str, record_type: Option<&str>, limit: u32, after_key: Option<&str>) -> Result<Vec<Effect>>;

    // ----- audit chain ------------------------------------------------------------------------

    /// Appends one entry: `seq` is the next number, `prev_hash` the previous entry's hash (or 64
    /// zeros), `hash = audit::entry_hash(...)`. Appends serialise on a one-row head table, so the
    /// chain has no forks even with several processes.
    async fn audit_append(&self, entry: &NewAudit) -> Result<AuditEntry>;

    /// Entries with `seq > after`, ascending, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>>;

    /// Entries whose subject is `subject`, ascending.
    async fn audit_for_subject(&self, subject: &str) -> Result<Vec<AuditEntry>>;

    // ----- poller cursors ---------------------------------------------------------------------

    async fn cursor(&self, name: &str) -> Result<Option<String>>;
    async fn set_cursor(&self, name: &str, value: &str, now: Micros) -> Result<()>;

    // ----- cross-process concurrency permits (NetSuite governance) ----------------------------

    /// Takes one of `limit` slots of `pool` for `owner` until `now + ttl` (slots whose lease has
    /// expired are free). Returns the slot number, or None when all are taken.
    async fn acquire_permit(&self, pool: &str, limit: u32, owner: &str, now: Micros, ttl: Micros) -> Result<Option<u32>>;
    async fn release_permit(&self, pool: &str, slot: u32, owner: &str) -> Result<()>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens (creating if needed) and migrates the store named by `url`:
/// - `postgres://...` or `postgresql://...` → PostgreSQL;
/// - `sqlite::memory:` → a private in-memory SQLite database (tests);
/// - `sqlite://PATH` or a bare path → SQLite file in WAL mode.
pub async fn open(url: &str) -> Result<DynStore> {
    backends::open(url).await
}

mod backends;
