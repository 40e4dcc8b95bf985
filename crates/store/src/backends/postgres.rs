//! PostgreSQL backend, shared by several `heartsuite serve` processes. Coordination is entirely
//! in the database: jobs are claimed with `FOR UPDATE SKIP LOCKED`, audit appends lock the one-row
//! head table, and permits are lease rows taken with a conditional upsert.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{event_cols, job_cols, pair_leased, EventRow, JobRow, Options};
use crate::{
    AuditEntry, Effect, IngestItem, Ingested, Job, JobState, LeasedJob, Micros, NewAudit, NewEffect, Outcome, Result,
    Store, StoredEvent,
};

mod q {
    crate::backends::shared_queries!(sqlx::Postgres);
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub(crate) struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub(crate) async fn open(url: &str, opts: &Options) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)?.application_name("heartsuite");
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await?;
        // sqlx takes an advisory lock around migrations, so processes starting together are safe.
        MIGRATOR.run(&pool).await?;
        Ok(PgStore { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ingest(&self, batch: &[IngestItem]) -> Result<Vec<Ingested>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let out = q::ingest(&mut *tx, batch).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn event(&self, id: i64) -> Result<Option<StoredEvent>> {
        q::event(&self.pool, id).await
    }

    async fn event_count(&self) -> Result<i64> {
        q::event_count(&self.pool).await
    }

    async fn lease(&self, owner: &str, limit: u32, now: Micros, lease_for: Micros) -> Result<Vec<LeasedJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: rows another process is claiming right now are passed over instead of
        // waited on, and a locked row is re-checked against the WHERE once we hold it, so a job
        // is never handed to two owners. MATERIALIZED pins the claim to one evaluation.
        let jobs: Vec<JobRow> = sqlx::query_as(concat!(
            "WITH due AS MATERIALIZED ( \
                 SELECT id FROM jobs \
                 WHERE (state IN ('pending', 'retrying') AND run_at <= $3) \
                    OR (state = 'running' AND lease_expires_at <= $3) \
                 ORDER BY run_at, id LIMIT $4 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
                 lease_expires_at = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM due) \
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
        let ids: Vec<i64> = jobs.iter().map(|j| j.event_id).collect();
        let events: Vec<EventRow> =
            sqlx::query_as(concat!("SELECT ", event_cols!(), " FROM events WHERE id = ANY($1)"))
                .bind(ids)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        pair_leased(jobs, events)
    }

    async fn heartbeat(&self, job_id: i64, owner: &str, until: Micros) -> Result<bool> {
        q::heartbeat(&self.pool, job_id, owner, until).await
    }

    async fn finish(&self, job_id: i64, owner: &str, outcome: &Outcome, now: Micros) -> Result<bool> {
        q::finish(&self.pool, job_id, owner, outcome, now).await
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        q::job(&self.pool, id).await
    }

    async fn jobs(&self, state: Option<JobState>, limit: u32) -> Result<Vec<Job>> {
        q::jobs(&self.pool, state, limit).await
    }

    async fn job_counts(&self) -> Result<Vec<(JobState, i64)>> {
        q::job_counts(&self.pool).await
    }

    async fn replay(&self, job_id: i64, payload_override: Option<&Value>, now: Micros) -> Result<bool> {
        q::replay(&self.pool, job_id, payload_override, now).await
    }

    async fn cancel(&self, job_id: i64, now: Micros) -> Result<bool> {
        q::cancel(&self.pool, job_id, now).await
    }

    async fn next_due(&self) -> Result<Option<Micros>> {
        q::next_due(&self.pool).await
    }

    async fn effect(&self, system: &str, record_type: &str, key: &str) -> Result<Option<Effect>> {
        q::effect(&self.pool, system, record_type, key).await
    }

    async fn record_effect(&self, effect: &NewEffect) -> Result<Effect> {
        q::record_effect(&self.pool, effect).await
    }

    async fn effects(&self, system: &str, record_type: Option<&str>, limit: u32, after_key: Option<&str>) -> Result<Vec<Effect>> {
        q::effects(&self.pool, system, record_type, limit, after_key).await
    }

    async fn audit_append(&self, entry: &NewAudit) -> Result<AuditEntry> {
        let mut tx = self.pool.begin().await?;
        let e = q::audit_append(&mut *tx, "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", entry).await?;
        tx.commit().await?;
        Ok(e)
    }

    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        q::audit_entries(&self.pool, after, limit).await
    }

    async fn audit_for_subject(&self, subject: &str) -> Result<Vec<AuditEntry>> {
        q::audit_for_subject(&self.pool, subject).await
    }

    async fn cursor(&self, name: &str) -> Result<Option<String>> {
        q::cursor(&self.pool, name).await
    }

    async fn set_cursor(&self, name: &str, value: &str, now: Micros) -> Result<()> {
        q::set_cursor(&self.pool, name, value, now).await
    }

    async fn acquire_permit(&self, pool: &str, limit: u32, owner: &str, now: Micros, ttl: Micros) -> Result<Option<u32>> {
        // Autocommit on purpose: each upsert attempt is atomic by itself, and committing it at
        // once releases the slot's row lock for the next contender.
        let mut conn = self.pool.acquire().await?;
        q::acquire_permit(&mut conn, pool, limit, owner, now, ttl).await
    }

    async fn release_permit(&self, pool: &str, slot: u32, owner: &str) -> Result<()> {
        q::release_permit(&self.pool, pool, slot, owner).await
    }
}
