//! SQLite backend: one file in WAL mode, one writer connection, a small pool of readers.
//!
//! Every write goes through the single writer connection and every write transaction starts with
//! `BEGIN IMMEDIATE`: inside the process the pool serialises writers, and against another process
//! on the same file (`heartsuite migrate`, a CLI command) the write lock is taken up front, so a
//! transaction never has to upgrade a read lock and fail with SQLITE_BUSY halfway through.

use std::path::PathBuf;
use std::str::FromStr;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::{event_cols, job_cols, pair_leased, to_json, EventRow, JobRow, Options};
use crate::{
    AuditEntry, Effect, IngestItem, Ingested, Job, JobState, LeasedJob, Micros, NewAudit, NewEffect, Outcome, Result,
    Store, StoredEvent,
};

mod q {
    crate::backends::shared_queries!(sqlx::Sqlite);
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub(crate) enum Target {
    Memory,
    /// A `sqlite:` URL, parsed by sqlx (so `?mode=ro` and friends keep working).
    Url(String),
    Path(PathBuf),
}

pub(crate) struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(target: Target, opts: &Options) -> Result<Self> {
        let memory = matches!(target, Target::Memory);
        let base = match target {
            Target::Memory => SqliteConnectOptions::from_str("sqlite::memory:")?,
            Target::Url(u) => SqliteConnectOptions::from_str(&u)?,
            Target::Path(p) => SqliteConnectOptions::new().filename(p),
        }
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(opts.busy_timeout)
        // FULL: a commit that returned is on disk, so a webhook acknowledged after ingest is
        // never lost to a power cut (NORMAL in WAL mode may lose the last transactions).
        .synchronous(SqliteSynchronous::Full);

        let store = if memory {
            // sqlx names each `:memory:` database uniquely with a shared cache; it lives only as
            // long as a connection to it does, so keep exactly one connection forever and use
            // it for reads and writes alike.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(base)
                .await?;
            MIGRATOR.run(&pool).await?;
            SqliteStore { read: pool.clone(), write: pool }
        } else {
            let file = base.get_filename().to_path_buf();
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(parent).await.map_err(sqlx::Error::Io)?;
            }
            let base = base.journal_mode(SqliteJournalMode::Wal);
            let write = SqlitePoolOptions::new().max_connections(1).connect_with(base.clone()).await?;
            // Migrate before the readers open so they never see a half-made schema.
            MIGRATOR.run(&write).await?;
            let read = SqlitePoolOptions::new().max_connections(opts.max_connections).connect_with(base).await?;
            SqliteStore { read, write }
        };
        Ok(store)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.write).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn ingest(&self, batch: &[IngestItem]) -> Result<Vec<Ingested>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let out = ingest_rows(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn event(&self, id: i64) -> Result<Option<StoredEvent>> {
        q::event(&self.read, id).await
    }

    async fn event_by_key(&self, source: &str, key: &str) -> Result<Option<StoredEvent>> {
        q::event_by_key(&self.read, source, key).await
    }

    async fn event_count(&self) -> Result<i64> {
        q::event_count(&self.read).await
    }

    async fn lease(&self, owner: &str, limit: u32, now: Micros, lease_for: Micros) -> Result<Vec<LeasedJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // No row locks in SQLite: the one writer connection plus BEGIN IMMEDIATE make the
        // select-and-update below atomic against every other writer.
        let mut tx = self.begin_write().await?;
        let jobs: Vec<JobRow> = sqlx::query_as(concat!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_expires_at = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs \
                          WHERE (state IN ('pending', 'retrying') AND run_at <= $3) \
                             OR (state = 'running' AND lease_expires_at <= $3) \
                          ORDER BY run_at, id LIMIT $4) \
             RETURNING ",
            job_cols!()
        ))
        .bind(owner)
        .bind(now.saturating_add(lease_for))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if jobs.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let ids = jobs.iter().map(|j| j.event_id.to_string()).collect::<Vec<_>>().join(",");
        // One cached statement for any number of ids, rather than SQL built per call.
        let events: Vec<EventRow> = sqlx::query_as(concat!(
            "SELECT ",
            event_cols!(),
            " FROM events WHERE id IN (SELECT value FROM json_each($1))"
        ))
        .bind(format!("[{ids}]"))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        pair_leased(jobs, events)
    }

    async fn heartbeat(&self, job_id: i64, owner: &str, until: Micros) -> Result<bool> {
        q::heartbeat(&self.write, job_id, owner, until).await
    }

    async fn finish(&self, job_id: i64, owner: &str, outcome: &Outcome, now: Micros) -> Result<bool> {
        q::finish(&self.write, job_id, owner, outcome, now).await
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        q::job(&self.read, id).await
    }

    async fn jobs(&self, state: Option<JobState>, limit: u32) -> Result<Vec<Job>> {
        q::jobs(&self.read, state, limit).await
    }

    async fn job_counts(&self) -> Result<Vec<(JobState, i64)>> {
        q::job_counts(&self.read).await
    }

    async fn replay(&self, job_id: i64, payload_override: Option<&Value>, now: Micros) -> Result<bool> {
        q::replay(&self.write, job_id, payload_override, now).await
    }

    async fn cancel(&self, job_id: i64, now: Micros) -> Result<bool> {
        q::cancel(&self.write, job_id, now).await
    }

    async fn next_due(&self) -> Result<Option<Micros>> {
        q::next_due(&self.read).await
    }

    async fn effect(&self, system: &str, record_type: &str, key: &str) -> Result<Option<Effect>> {
        q::effect(&self.read, system, record_type, key).await
    }

    async fn record_effect(&self, effect: &NewEffect) -> Result<Effect> {
        q::record_effect(&self.write, effect).await
    }

    async fn record_effect_audited(&self, effect: &NewEffect, audit: &NewAudit) -> Result<Effect> {
        let mut tx = self.begin_write().await?;
        if q::insert_effect(&mut tx, effect).await? {
            q::audit_append(&mut tx, "SELECT seq, hash FROM audit_head WHERE id = 1", audit).await?;
        }
        tx.commit().await?;
        q::effect(&self.write, &effect.system, &effect.record_type, &effect.idempotency_key).await?.ok_or_else(|| {
            crate::StoreError::Corrupt(format!("effect {}/{}/{} vanished right after it was recorded", effect.system, effect.record_type, effect.idempotency_key))
        })
    }

    async fn effects(&self, system: &str, record_type: Option<&str>, limit: u32, after_key: Option<&str>) -> Result<Vec<Effect>> {
        q::effects(&self.read, system, record_type, limit, after_key).await
    }

    async fn audit_append(&self, entry: &NewAudit) -> Result<AuditEntry> {
        let mut tx = self.begin_write().await?;
        let e = q::audit_append(&mut tx, "SELECT seq, hash FROM audit_head WHERE id = 1", entry).await?;
        tx.commit().await?;
        Ok(e)
    }

    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        q::audit_entries(&self.read, after, limit).await
    }

    async fn audit_for_subject(&self, subject: &str) -> Result<Vec<AuditEntry>> {
        q::audit_for_subject(&self.read, subject).await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>> {
        q::cursor(&self.read, name).await
    }

    async fn set_cursor(&self, name: &str, value: &str, now: Micros) -> Result<()> {
        q::set_cursor(&self.write, name, value, now).await
    }

    async fn acquire_permit(&self, pool: &str, limit: u32, owner: &str, now: Micros, ttl: Micros) -> Result<Option<u32>> {
        let mut tx = self.begin_write().await?;
        let slot = q::acquire_permit(&mut tx, pool, limit, owner, now, ttl).await?;
        tx.commit().await?;
        Ok(slot)
    }

    async fn release_permit(&self, pool: &str, slot: u32, owner: &str) -> Result<()> {
        q::release_permit(&self.write, pool, slot, owner).await
    }
}

/// Row by row inside the caller's transaction: in-process SQLite statements cost microseconds, so
/// the group commit (one fsync per batch) is what makes ingest fast, not fewer statements.
async fn ingest_rows(conn: &mut sqlx::SqliteConnection, batch: &[IngestItem]) -> Result<Vec<Ingested>> {
    let mut out = Vec::with_capacity(batch.len());
    for item in batch {
        let e = &item.event;
        let payload = to_json(&e.payload)?;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO events (source, source_event_key, kind, payload, received_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (source, source_event_key) DO NOTHING RETURNING id",
        )
        .bind(&e.source)
        .bind(&e.source_event_key)
        .bind(&e.kind)
        .bind(payload)
        .bind(e.received_at)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(event_id) = inserted else {
            let event_id: i64 =
                sqlx::query_scalar("SELECT id FROM events WHERE source = $1 AND source_event_key = $2")
                    .bind(&e.source)
                    .bind(&e.source_event_key)
                    .fetch_one(&mut *conn)
                    .await?;
            out.push(Ingested { event_id, duplicate: true, job_ids: Vec::new() });
            continue;
        };
        let mut job_ids = Vec::with_capacity(item.flows.len());
        for (i, flow) in item.flows.iter().enumerate() {
            // A flow named twice for one event is one job (UNIQUE(event_id, flow)).
            if item.flows[..i].contains(flow) {
                continue;
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO jobs (event_id, flow, state, attempts, run_at, created_at, updated_at) \
                 VALUES ($1, $2, 'pending', 0, $3, $4, $4) RETURNING id",
            )
            .bind(event_id)
            .bind(flow)
            .bind(item.run_at)
            .bind(e.received_at)
            .fetch_one(&mut *conn)
            .await?;
            job_ids.push(id);
        }
        out.push(Ingested { event_id, duplicate: false, job_ids });
    }
    Ok(out)
}
