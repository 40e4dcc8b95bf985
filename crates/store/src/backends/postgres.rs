//! PostgreSQL backend, shared by several `heartsuite serve` processes. Coordination is entirely
//! in the database: jobs are claimed with `FOR UPDATE SKIP LOCKED`, audit appends lock the one-row
//! head table, and permits are lease rows taken with a conditional upsert.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{event_cols, job_cols, pair_leased, to_json, EventRow, JobRow, Options};
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
        let out = ingest_arrays(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn event(&self, id: i64) -> Result<Option<StoredEvent>> {
        q::event(&self.pool, id).await
    }

    async fn event_by_key(&self, source: &str, key: &str) -> Result<Option<StoredEvent>> {
        q::event_by_key(&self.pool, source, key).await
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

    async fn record_effect_audited(&self, effect: &NewEffect, audit: &NewAudit) -> Result<Effect> {
        let mut tx = self.pool.begin().await?;
        if q::insert_effect(&mut tx, effect).await? {
            q::audit_append(&mut tx, "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", audit).await?;
        }
        tx.commit().await?;
        q::effect(&self.pool, &effect.system, &effect.record_type, &effect.idempotency_key).await?.ok_or_else(|| {
            crate::StoreError::Corrupt(format!("effect {}/{}/{} vanished right after it was recorded", effect.system, effect.record_type, effect.idempotency_key))
        })
    }

    async fn effects(&self, system: &str, record_type: Option<&str>, limit: u32, after_key: Option<&str>) -> Result<Vec<Effect>> {
        q::effects(&self.pool, system, record_type, limit, after_key).await
    }

    async fn audit_append(&self, entry: &NewAudit) -> Result<AuditEntry> {
        let mut tx = self.pool.begin().await?;
        let e = q::audit_append(&mut tx, "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", entry).await?;
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

/// Three statements per batch whatever its size (events, lookups of duplicates, jobs), each over
/// arrays: a round trip to the server costs far more than a row, so per-row statements would cap
/// ingest at a few thousand rows a second. Rows are inserted in input order (ORDER BY ord), so
/// ids grow in arrival order as on SQLite, and a key repeated inside the batch is inserted once.
async fn ingest_arrays(conn: &mut sqlx::PgConnection, batch: &[IngestItem]) -> Result<Vec<Ingested>> {
    let n = batch.len();
    let (mut sources, mut keys, mut kinds, mut payloads, mut received) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for item in batch {
        let e = &item.event;
        sources.push(e.source.as_str());
        keys.push(e.source_event_key.as_str());
        kinds.push(e.kind.as_str());
        payloads.push(to_json(&e.payload)?);
        received.push(e.received_at);
    }
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO events (source, source_event_key, kind, payload, received_at) \
         SELECT source, source_event_key, kind, payload, received_at \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
              WITH ORDINALITY AS t(source, source_event_key, kind, payload, received_at, ord) \
         ORDER BY ord \
         ON CONFLICT (source, source_event_key) DO NOTHING \
         RETURNING id, source, source_event_key",
    )
    .bind(&sources)
    .bind(&keys)
    .bind(&kinds)
    .bind(&payloads)
    .bind(&received)
    .fetch_all(&mut *conn)
    .await?;
    type Key = (String, String);
    let key_of = |i: &IngestItem| -> Key { (i.event.source.clone(), i.event.source_event_key.clone()) };
    // Keys this call inserted; the first item carrying one is new, any later one a duplicate.
    let fresh: HashMap<Key, i64> = inserted.into_iter().map(|(id, s, k)| ((s, k), id)).collect();

    let (dup_sources, dup_keys): (Vec<&str>, Vec<&str>) = batch
        .iter()
        .filter(|i| !fresh.contains_key(&key_of(i)))
        .map(|i| (i.event.source.as_str(), i.event.source_event_key.as_str()))
        .unzip();
    let mut existing: HashMap<Key, i64> = HashMap::new();
    if !dup_sources.is_empty() {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT e.id, e.source, e.source_event_key FROM events e \
             JOIN UNNEST($1::text[], $2::text[]) AS d(source, source_event_key) \
               ON e.source = d.source AND e.source_event_key = d.source_event_key",
        )
        .bind(&dup_sources)
        .bind(&dup_keys)
        .fetch_all(&mut *conn)
        .await?;
        existing = rows.into_iter().map(|(id, s, k)| ((s, k), id)).collect();
    }

    // Decide each item's event and whether it is new, then insert every new job in one go.
    let mut claimed: HashSet<Key> = HashSet::with_capacity(fresh.len());
    let mut plan: Vec<(i64, bool)> = Vec::with_capacity(n);
    let (mut job_events, mut job_flows, mut job_run_at, mut job_created) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in batch {
        let key = key_of(item);
        if let Some(&id) = fresh.get(&key) {
            let first = claimed.insert(key);
            if first {
                for (i, flow) in item.flows.iter().enumerate() {
                    // A flow named twice for one event is one job (UNIQUE(event_id, flow)).
                    if !item.flows[..i].contains(flow) {
                        job_events.push(id);
                        job_flows.push(flow.as_str());
                        job_run_at.push(item.run_at);
                        job_created.push(item.event.received_at);
                    }
                }
            }
            plan.push((id, !first));
        } else {
            let id = existing.get(&key).copied().ok_or_else(|| {
                crate::StoreError::Corrupt(format!("event {}/{} was neither inserted nor found", key.0, key.1))
            })?;
            plan.push((id, true));
        }
    }

    let mut job_ids: HashMap<(i64, String), i64> = HashMap::with_capacity(job_events.len());
    if !job_events.is_empty() {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "INSERT INTO jobs (event_id, flow, state, attempts, run_at, created_at, updated_at) \
             SELECT event_id, flow, 'pending', 0, run_at, created_at, created_at \
             FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::int8[]) \
                  WITH ORDINALITY AS t(event_id, flow, run_at, created_at, ord) \
             ORDER BY ord \
             RETURNING id, event_id, flow",
        )
        .bind(&job_events)
        .bind(&job_flows)
        .bind(&job_run_at)
        .bind(&job_created)
        .fetch_all(&mut *conn)
        .await?;
        job_ids = rows.into_iter().map(|(id, e, f)| ((e, f), id)).collect();
    }

    let mut out = Vec::with_capacity(n);
    for (item, (event_id, duplicate)) in batch.iter().zip(plan) {
        let mut ids = Vec::new();
        if !duplicate {
            for flow in &item.flows {
                if let Some(&id) = job_ids.get(&(event_id, flow.clone()))
                    && !ids.contains(&id)
                {
                    ids.push(id);
                }
            }
        }
        out.push(Ingested { event_id, duplicate, job_ids: ids });
    }
    Ok(out)
}
