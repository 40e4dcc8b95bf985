//! URL dispatch, the row types both backends decode into, and the SQL both dialects share.
//!
//! sqlx-sqlite accepts `$N` placeholders, so every statement that is the same in both dialects is
//! written once in [`shared_queries!`] and instantiated per database; only ingest (row by row on
//! SQLite, array-at-a-time on PostgreSQL), the claim query, the lease's event fetch and the audit
//! head lock differ.

mod postgres;
mod sqlite;

use crate::{DynStore, Effect, Job, JobState, Result, StoreError, StoredEvent};
use heartsuite_core::Failure;
use serde_json::Value;

/// Connection settings for [`open_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// PostgreSQL: pool size. SQLite: number of reader connections (writes always go through one
    /// dedicated connection, which is what keeps SQLite free of SQLITE_BUSY inside one process).
    pub max_connections: u32,
    /// How long a SQLite connection waits for another process's write lock before failing.
    pub busy_timeout: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self { max_connections: 8, busy_timeout: std::time::Duration::from_secs(10) }
    }
}

pub async fn open(url: &str) -> Result<DynStore> {
    open_with(url, &Options::default()).await
}

/// Like [`crate::open`], with explicit connection settings.
pub async fn open_with(url: &str, opts: &Options) -> Result<DynStore> {
    let url = url.trim();
    let opts = Options { max_connections: opts.max_connections.max(1), ..opts.clone() };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(postgres::PgStore::open(url, &opts).await?));
    }
    let target = if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let memory = rest == ":memory:" || rest.starts_with(":memory:?") || url.contains("mode=memory");
        if memory {
            sqlite::Target::Memory
        } else if rest.is_empty() {
            return Err(StoreError::BadUrl(url.to_string()));
        } else {
            sqlite::Target::Url(url.to_string())
        }
    } else if url.is_empty() || url.contains("://") {
        return Err(StoreError::BadUrl(url.to_string()));
    } else {
        sqlite::Target::Path(url.into())
    };
    Ok(std::sync::Arc::new(sqlite::SqliteStore::open(target, &opts).await?))
}

// ----- rows -------------------------------------------------------------------------------------

/// Column list matching [`JobRow`]; a macro so it can be `concat!`ed into `&'static str` SQL.
macro_rules! job_cols {
    () => {
        "id, event_id, flow, state, attempts, run_at, lease_owner, lease_expires_at, last_error, \
         payload_override, created_at, updated_at, finished_at"
    };
}
macro_rules! event_cols {
    () => {
        "id, source, source_event_key, kind, payload, received_at"
    };
}
macro_rules! audit_cols {
    () => {
        "seq, at, actor, action, subject, event_id, job_id, remote_id, details, prev_hash, hash"
    };
}
macro_rules! effect_cols {
    () => {
        "system, record_type, idempotency_key, remote_id, job_id, created_at"
    };
}
pub(crate) use {audit_cols, effect_cols, event_cols, job_cols};

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: i64,
    event_id: i64,
    flow: String,
    state: String,
    attempts: i32,
    run_at: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    last_error: Option<String>,
    payload_override: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<Job> {
        let state = JobState::parse(&self.state)
            .ok_or_else(|| StoreError::Corrupt(format!("job {}: unknown state `{}`", self.id, self.state)))?;
        let last_error = match self.last_error {
            Some(s) => Some(serde_json::from_str::<Failure>(&s).map_err(|e| {
                StoreError::Corrupt(format!("job {}: last_error is not a Failure: {e}", self.id))
            })?),
            None => None,
        };
        let payload_override = match self.payload_override {
            Some(s) => Some(parse_json(&s, || format!("job {} payload_override", self.id))?),
            None => None,
        };
        Ok(Job {
            id: self.id,
            event_id: self.event_id,
            flow: self.flow,
            state,
            attempts: self.attempts,
            run_at: self.run_at,
            lease_owner: self.lease_owner,
            lease_expires_at: self.lease_expires_at,
            last_error,
            payload_override,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    source: String,
    source_event_key: String,
    kind: String,
    payload: String,
    received_at: i64,
}

impl EventRow {
    pub(crate) fn into_event(self) -> Result<StoredEvent> {
        let payload = parse_json(&self.payload, || format!("event {} payload", self.id))?;
        Ok(StoredEvent {
            id: self.id,
            source: self.source,
            source_event_key: self.source_event_key,
            kind: self.kind,
            payload,
            received_at: self.received_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    subject: String,
    event_id: Option<i64>,
    job_id: Option<i64>,
    remote_id: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    pub(crate) fn into_entry(self) -> Result<crate::AuditEntry> {
        let details = parse_json(&self.details, || format!("audit {} details", self.seq))?;
        Ok(crate::AuditEntry {
            seq: self.seq,
            entry: crate::NewAudit {
                at: self.at,
                actor: self.actor,
                action: self.action,
                subject: self.subject,
                event_id: self.event_id,
                job_id: self.job_id,
                remote_id: self.remote_id,
                details,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EffectRow {
    system: String,
    record_type: String,
    idempotency_key: String,
    remote_id: String,
    job_id: Option<i64>,
    created_at: i64,
}

impl From<EffectRow> for Effect {
    fn from(r: EffectRow) -> Self {
        Effect {
            system: r.system,
            record_type: r.record_type,
            idempotency_key: r.idempotency_key,
            remote_id: r.remote_id,
            job_id: r.job_id,
            created_at: r.created_at,
        }
    }
}

fn parse_json(s: &str, what: impl FnOnce() -> String) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{} is not JSON: {e}", what())))
}

/// Serialises JSON for a TEXT column. With `arbitrary_precision` a `Value` keeps each number's
/// original text, so amounts round-trip digit for digit.
pub(crate) fn to_json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("value does not serialise to JSON: {e}")))
}

pub(crate) fn limit_i64(limit: u32) -> i64 {
    i64::from(limit)
}

pub(crate) fn counts_in_order(rows: Vec<(String, i64)>) -> Result<Vec<(JobState, i64)>> {
    let mut out: Vec<(JobState, i64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
    for (state, n) in rows {
        let st = JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("unknown job state `{state}`")))?;
        if let Some(slot) = out.iter_mut().find(|(s, _)| *s == st) {
            slot.1 = n;
        }
    }
    Ok(out)
}

/// Sorts leased jobs into claim order and pairs each with its event.
pub(crate) fn pair_leased(jobs: Vec<JobRow>, events: Vec<EventRow>) -> Result<Vec<crate::LeasedJob>> {
    let events: std::collections::HashMap<i64, StoredEvent> = events
        .into_iter()
        .map(|e| e.into_event().map(|e| (e.id, e)))
        .collect::<Result<_>>()?;
    let mut jobs = jobs.into_iter().map(JobRow::into_job).collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|j| (j.run_at, j.id));
    jobs.into_iter()
        .map(|job| {
            // Several jobs can share one event (one per flow), so clone rather than remove.
            let event = events
                .get(&job.event_id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("job {} refers to missing event {}", job.id, job.event_id)))?;
            Ok(crate::LeasedJob { job, event })
        })
        .collect()
}

/// The failure columns of `finish`, bound the same way by both dialects.
pub(crate) struct FinishParams {
    pub(crate) error_json: Option<String>,
    pub(crate) error_class: Option<&'static str>,
}

pub(crate) fn failure_params(f: &Failure) -> Result<FinishParams> {
    Ok(FinishParams { error_json: Some(to_json(f)?), error_class: Some(f.class.as_str()) })
}

/// The statements that are identical in both dialects, instantiated once per database so each
/// copy is concretely typed (no generic `Database` bound soup). `$db` is the sqlx database type.
macro_rules! shared_queries {
    ($db:ty) => {
        use $crate::backends::{
            audit_cols, counts_in_order, effect_cols, event_cols, failure_params, job_cols, limit_i64, to_json,
            AuditRow, EffectRow, EventRow, JobRow,
        };
        use $crate::{
            AuditEntry, Effect, Job, JobState, Micros, NewAudit, NewEffect, Outcome, Result, StoredEvent,
        };
        use serde_json::Value;
        use sqlx::Executor;

        type Conn = <$db as sqlx::Database>::Connection;

        pub(super) async fn event<'e, E: Executor<'e, Database = $db>>(ex: E, id: i64) -> Result<Option<StoredEvent>> {
            let row: Option<EventRow> = sqlx::query_as(concat!("SELECT ", event_cols!(), " FROM events WHERE id = $1"))
                .bind(id)
                .fetch_optional(ex)
                .await?;
            row.map(EventRow::into_event).transpose()
        }

        pub(super) async fn event_by_key<'e, E: Executor<'e, Database = $db>>(ex: E, source: &str, key: &str) -> Result<Option<StoredEvent>> {
            let row: Option<EventRow> =
                sqlx::query_as(concat!("SELECT ", event_cols!(), " FROM events WHERE source = $1 AND source_event_key = $2"))
                    .bind(source)
                    .bind(key)
                    .fetch_optional(ex)
                    .await?;
            row.map(EventRow::into_event).transpose()
        }

        pub(super) async fn event_count<'e, E: Executor<'e, Database = $db>>(ex: E) -> Result<i64> {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(ex).await?)
        }

        pub(super) async fn heartbeat<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            job_id: i64,
            owner: &str,
            until: Micros,
        ) -> Result<bool> {
            let r = sqlx::query(
                "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            )
            .bind(job_id)
            .bind(owner)
            .bind(until)
            .execute(ex)
            .await?;
            Ok(r.rows_affected() == 1)
        }

        pub(super) async fn finish<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            job_id: i64,
            owner: &str,
            outcome: &Outcome,
            now: Micros,
        ) -> Result<bool> {
            // Every statement matches only a row still `running` under `owner`: a worker whose
            // lease was taken over writes nothing.
            let r = match outcome {
                Outcome::Succeeded => {
                    sqlx::query(
                        "UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, \
                         finished_at = $3, updated_at = $3 \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2",
                    )
                    .bind(job_id)
                    .bind(owner)
                    .bind(now)
                    .execute(ex)
                    .await?
                }
                Outcome::Retry { run_at, error, refund_attempt } => {
                    let p = failure_params(error)?;
                    sqlx::query(
                        "UPDATE jobs SET state = 'retrying', lease_owner = NULL, lease_expires_at = NULL, \
                         run_at = $3, last_error = $4, last_error_class = $5, \
                         attempts = CASE WHEN attempts >= $6 THEN attempts - $6 ELSE 0 END, updated_at = $7 \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2",
                    )
                    .bind(job_id)
                    .bind(owner)
                    .bind(*run_at)
                    .bind(p.error_json)
                    .bind(p.error_class)
                    .bind(if *refund_attempt { 1_i32 } else { 0_i32 })
                    .bind(now)
                    .execute(ex)
                    .await?
                }
                Outcome::Dead { error } => {
                    let p = failure_params(error)?;
                    sqlx::query(
                        "UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL, \
                         last_error = $3, last_error_class = $4, finished_at = $5, updated_at = $5 \
                         WHERE id = $1 AND state = 'running' AND lease_owner = $2",
                    )
                    .bind(job_id)
                    .bind(owner)
                    .bind(p.error_json)
                    .bind(p.error_class)
                    .bind(now)
                    .execute(ex)
                    .await?
                }
            };
            Ok(r.rows_affected() == 1)
        }

        pub(super) async fn job<'e, E: Executor<'e, Database = $db>>(ex: E, id: i64) -> Result<Option<Job>> {
            let row: Option<JobRow> = sqlx::query_as(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1"))
                .bind(id)
                .fetch_optional(ex)
                .await?;
            row.map(JobRow::into_job).transpose()
        }

        pub(super) async fn jobs<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            state: Option<JobState>,
            limit: u32,
        ) -> Result<Vec<Job>> {
            let rows: Vec<JobRow> = match state {
                Some(s) => {
                    sqlx::query_as(concat!(
                        "SELECT ",
                        job_cols!(),
                        " FROM jobs WHERE state = $1 ORDER BY id DESC LIMIT $2"
                    ))
                    .bind(s.as_str())
                    .bind(limit_i64(limit))
                    .fetch_all(ex)
                    .await?
                }
                None => {
                    sqlx::query_as(concat!("SELECT ", job_cols!(), " FROM jobs ORDER BY id DESC LIMIT $1"))
                        .bind(limit_i64(limit))
                        .fetch_all(ex)
                        .await?
                }
            };
            rows.into_iter().map(JobRow::into_job).collect()
        }

        pub(super) async fn job_counts<'e, E: Executor<'e, Database = $db>>(ex: E) -> Result<Vec<(JobState, i64)>> {
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetch_all(ex).await?;
            counts_in_order(rows)
        }

        pub(super) async fn replay<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            job_id: i64,
            payload_override: Option<&Value>,
            now: Micros,
        ) -> Result<bool> {
            let payload = payload_override.map(to_json).transpose()?;
            // last_error is kept: the operator replaying still sees why it died last time.
            let r = sqlx::query(
                "UPDATE jobs SET state = 'pending', attempts = 0, run_at = $2, payload_override = $3, \
                 finished_at = NULL, updated_at = $2 \
                 WHERE id = $1 AND state IN ('dead', 'cancelled')",
            )
            .bind(job_id)
            .bind(now)
            .bind(payload)
            .execute(ex)
            .await?;
            Ok(r.rows_affected() == 1)
        }

        pub(super) async fn cancel<'e, E: Executor<'e, Database = $db>>(ex: E, job_id: i64, now: Micros) -> Result<bool> {
            let r = sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = $2, updated_at = $2 \
                 WHERE id = $1 AND state IN ('dead', 'pending', 'retrying')",
            )
            .bind(job_id)
            .bind(now)
            .execute(ex)
            .await?;
            Ok(r.rows_affected() == 1)
        }

        pub(super) async fn next_due<'e, E: Executor<'e, Database = $db>>(ex: E) -> Result<Option<Micros>> {
            Ok(sqlx::query_scalar("SELECT MIN(run_at) FROM jobs WHERE state IN ('pending', 'retrying')")
                .fetch_one(ex)
                .await?)
        }

        pub(super) async fn effect<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            system: &str,
            record_type: &str,
            key: &str,
        ) -> Result<Option<Effect>> {
            let row: Option<EffectRow> = sqlx::query_as(concat!(
                "SELECT ",
                effect_cols!(),
                " FROM effects WHERE system = $1 AND record_type = $2 AND idempotency_key = $3"
            ))
            .bind(system)
            .bind(record_type)
            .bind(key)
            .fetch_optional(ex)
            .await?;
            Ok(row.map(Effect::from))
        }

        /// Insert-if-absent, then read back whichever row won. Two statements, no transaction
        /// needed: the read happens after the insert (or the conflicting row) is committed.
        pub(super) async fn record_effect(pool: &sqlx::Pool<$db>, e: &NewEffect) -> Result<Effect> {
            sqlx::query(
                "INSERT INTO effects (system, record_type, idempotency_key, remote_id, job_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (system, record_type, idempotency_key) DO NOTHING",
            )
            .bind(&e.system)
            .bind(&e.record_type)
            .bind(&e.idempotency_key)
            .bind(&e.remote_id)
            .bind(e.job_id)
            .bind(e.created_at)
            .execute(pool)
            .await?;
            effect(pool, &e.system, &e.record_type, &e.idempotency_key)
                .await?
                .ok_or_else(|| $crate::StoreError::Corrupt(format!(
                    "effect {}/{}/{} vanished right after it was recorded",
                    e.system, e.record_type, e.idempotency_key
                )))
        }

        /// Inserts the effect inside the caller's transaction; true if it was new.
        pub(super) async fn insert_effect(conn: &mut Conn, e: &NewEffect) -> Result<bool> {
            let r = sqlx::query(
                "INSERT INTO effects (system, record_type, idempotency_key, remote_id, job_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (system, record_type, idempotency_key) DO NOTHING",
            )
            .bind(&e.system)
            .bind(&e.record_type)
            .bind(&e.idempotency_key)
            .bind(&e.remote_id)
            .bind(e.job_id)
            .bind(e.created_at)
            .execute(&mut *conn)
            .await?;
            Ok(r.rows_affected() == 1)
        }

        pub(super) async fn effects<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            system: &str,
            record_type: Option<&str>,
            limit: u32,
            after_key: Option<&str>,
        ) -> Result<Vec<Effect>> {
            let rows: Vec<EffectRow> = sqlx::query_as(concat!(
                "SELECT ",
                effect_cols!(),
                " FROM effects WHERE system = $1 \
                 AND (CAST($2 AS TEXT) IS NULL OR record_type = $2) \
                 AND (CAST($3 AS TEXT) IS NULL OR idempotency_key > $3) \
                 ORDER BY idempotency_key, record_type LIMIT $4"
            ))
            .bind(system)
            .bind(record_type)
            .bind(after_key)
            .bind(limit_i64(limit))
            .fetch_all(ex)
            .await?;
            Ok(rows.into_iter().map(Effect::from).collect())
        }

        /// Appends under the head row; `head_sql` is the dialect's way to read it (PostgreSQL
        /// locks it FOR UPDATE; SQLite's BEGIN IMMEDIATE already excludes other writers).
        /// Must run inside the caller's transaction.
        pub(super) async fn audit_append(
            conn: &mut Conn,
            head_sql: &'static str,
            entry: &NewAudit,
        ) -> Result<AuditEntry> {
            let (last_seq, prev_hash): (i64, String) = sqlx::query_as(head_sql).fetch_one(&mut *conn).await?;
            let seq = last_seq + 1;
            let hash = $crate::audit::entry_hash(&prev_hash, seq, entry);
            sqlx::query(
                "INSERT INTO audit (seq, at, actor, action, subject, event_id, job_id, remote_id, details, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(seq)
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.subject)
            .bind(entry.event_id)
            .bind(entry.job_id)
            .bind(&entry.remote_id)
            .bind(to_json(&entry.details)?)
            .bind(&prev_hash)
            .bind(&hash)
            .execute(&mut *conn)
            .await?;
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(seq)
                .bind(&hash)
                .execute(&mut *conn)
                .await?;
            Ok(AuditEntry { seq, entry: entry.clone(), prev_hash, hash })
        }

        pub(super) async fn audit_entries<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            after: i64,
            limit: u32,
        ) -> Result<Vec<AuditEntry>> {
            let rows: Vec<AuditRow> =
                sqlx::query_as(concat!("SELECT ", audit_cols!(), " FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"))
                    .bind(after)
                    .bind(limit_i64(limit))
                    .fetch_all(ex)
                    .await?;
            rows.into_iter().map(AuditRow::into_entry).collect()
        }

        pub(super) async fn audit_for_subject<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            subject: &str,
        ) -> Result<Vec<AuditEntry>> {
            let rows: Vec<AuditRow> =
                sqlx::query_as(concat!("SELECT ", audit_cols!(), " FROM audit WHERE subject = $1 ORDER BY seq"))
                    .bind(subject)
                    .fetch_all(ex)
                    .await?;
            rows.into_iter().map(AuditRow::into_entry).collect()
        }

        pub(super) async fn cursor<'e, E: Executor<'e, Database = $db>>(ex: E, name: &str) -> Result<Option<String>> {
            Ok(sqlx::query_scalar("SELECT value FROM cursors WHERE name = $1").bind(name).fetch_optional(ex).await?)
        }

        pub(super) async fn set_cursor<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            name: &str,
            value: &str,
            now: Micros,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO cursors (name, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(value)
            .bind(now)
            .execute(ex)
            .await?;
            Ok(())
        }

        /// Takes a free slot below `limit`. Each attempt is one upsert that only overwrites an
        /// expired lease, so two racing acquirers can never both win a slot: on PostgreSQL the
        /// ON CONFLICT path re-checks `expires_at` on the latest row version under its row lock.
        pub(super) async fn acquire_permit(
            conn: &mut Conn,
            pool: &str,
            limit: u32,
            owner: &str,
            now: Micros,
            ttl: Micros,
        ) -> Result<Option<u32>> {
            let live: Vec<i32> = sqlx::query_scalar("SELECT slot FROM permits WHERE pool = $1 AND expires_at > $2")
                .bind(pool)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            // Counting live slots (not just slots below `limit`) keeps the bound when the limit
            // was lowered while higher slots are still held.
            if live.len() as u64 >= u64::from(limit) {
                return Ok(None);
            }
            let limit = i32::try_from(limit).unwrap_or(i32::MAX);
            for slot in (0..limit).filter(|s| !live.contains(s)) {
                let won: Option<i32> = sqlx::query_scalar(
                    "INSERT INTO permits (pool, slot, owner, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (pool, slot) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
                     WHERE permits.expires_at <= $5 \
                     RETURNING slot",
                )
                .bind(pool)
                .bind(slot)
                .bind(owner)
                .bind(now.saturating_add(ttl))
                .bind(now)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(s) = won {
                    return Ok(u32::try_from(s).ok());
                }
            }
            Ok(None)
        }

        pub(super) async fn release_permit<'e, E: Executor<'e, Database = $db>>(
            ex: E,
            pool: &str,
            slot: u32,
            owner: &str,
        ) -> Result<()> {
            let Ok(slot) = i32::try_from(slot) else { return Ok(()) };
            sqlx::query("DELETE FROM permits WHERE pool = $1 AND slot = $2 AND owner = $3")
                .bind(pool)
                .bind(slot)
                .bind(owner)
                .execute(ex)
                .await?;
            Ok(())
        }
    };
}
pub(crate) use shared_queries;
