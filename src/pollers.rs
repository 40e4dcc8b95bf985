//! Pollers for what has no webhook: funded GP-API deposits ("settlement posted") and, for
//! accounts that will not install the user-event script, NetSuite records changed since a
//! cursor. Each new record becomes an inbox event exactly like a webhook; the cursor moves only
//! after the events are committed, so a crash repeats a poll (deduplicated by the inbox key)
//! and never skips one.

use crate::server::FlowRouter;
use heartsuite_core::{Clock, Failure, NewEvent};
use heartsuite_store::{DynStore, IngestItem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollersConfig {
    /// Poll GP-API for funded deposits every N seconds (0 = off; needs [gpapi]).
    pub gpapi_deposits_every_secs: u64,
    /// Poll NetSuite tables by lastmodifieddate every N seconds (0 = off; needs [netsuite]).
    pub netsuite_every_secs: u64,
    /// SuiteQL tables to poll (`transaction`, `customer`, `item`...).
    pub netsuite_tables: Vec<String>,
}

impl Default for PollersConfig {
    fn default() -> Self {
        // Off until the settlement flow reads the poller's deposit payload (issue #6): a deposit
        // event with no flow able to post it would only fill the dead-letter queue.
        Self { gpapi_deposits_every_secs: 0, netsuite_every_secs: 0, netsuite_tables: vec!["transaction".into()] }
    }
}

fn store_failure(e: heartsuite_store::StoreError) -> Failure {
    Failure::transient(format!("store: {e}")).with_system("store")
}

/// Commits events (deduplicated by key) and returns how many were new.
async fn ingest(store: &DynStore, router: &dyn FlowRouter, clock: &dyn Clock, source: &str, events: Vec<(String, String, Value)>) -> Result<usize, Failure> {
    if events.is_empty() {
        return Ok(0);
    }
    let now = clock.now_micros();
    let items: Vec<IngestItem> = events
        .into_iter()
        .map(|(key, kind, mut payload)| {
            heartsuite_core::pan::mask_json(&mut payload);
            let flows = router.flows_for(&kind, &payload);
            IngestItem {
                event: NewEvent { source: source.into(), source_event_key: key, kind, payload, received_at: now },
                flows,
                run_at: now,
            }
        })
        .collect();
    let res = store.ingest(&items).await.map_err(store_failure)?;
    Ok(res.iter().filter(|r| !r.duplicate).count())
}

pub const GP_DEPOSITS_CURSOR: &str = "gpapi.deposits";

/// One poll of funded deposits: each new one becomes a `gpapi.deposit.funded` event carrying the
/// deposit and its settlement transactions.
pub async fn poll_gp_deposits_once(
    store: &DynStore,
    client: &heartsuite_heartland::GpApiClient,
    router: &dyn FlowRouter,
    clock: &dyn Clock,
) -> Result<usize, Failure> {
    let cursor = store.cursor(GP_DEPOSITS_CURSOR).await.map_err(store_failure)?;
    let (deposits, next) = heartsuite_heartland::poll_funded_deposits(client, cursor).await?;
    let events = deposits
        .into_iter()
        .map(|d| {
            let key = d.deposit.id.clone();
            let payload = serde_json::to_value(&d).unwrap_or(Value::Null);
            (key, "gpapi.deposit.funded".to_string(), payload)
        })
        .collect();
    let n = ingest(store, router, clock, "gpapi-poller", events).await?;
    store.set_cursor(GP_DEPOSITS_CURSOR, &next, clock.now_micros()).await.map_err(store_failure)?;
    Ok(n)
}

/// One poll of a NetSuite table: each changed row becomes `netsuite.{table}.changed`.
pub async fn poll_netsuite_once(
    store: &DynStore,
    client: &heartsuite_netsuite::NetSuiteClient,
    table: &str,
    router: &dyn FlowRouter,
    clock: &dyn Clock,
) -> Result<usize, Failure> {
    let name = format!("netsuite.{table}");
    let cursor = store.cursor(&name).await.map_err(store_failure)?;
    let (rows, next) = heartsuite_netsuite::poll_changes(client, table, cursor, 1000).await?;
    let events = rows
        .into_iter()
        .map(|row| {
            let id = row.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let modified = row.get(heartsuite_netsuite::poll::CURSOR_COLUMN).and_then(Value::as_str).unwrap_or_default().to_string();
            // NetSuite stamps to the second; the content digest tells two saves in one second apart.
            let digest = heartsuite_netsuite::poll::digest(&row);
            (format!("{table}:{id}:{modified}:{digest}"), format!("netsuite.{table}.changed"), Value::Object(row))
        })
        .collect();
    let n = ingest(store, router, clock, "netsuite-poller", events).await?;
    if let Some(next) = next {
        store.set_cursor(&name, &next, clock.now_micros()).await.map_err(store_failure)?;
    }
    Ok(n)
}

/// Runs the configured pollers until `shutdown`.
pub fn spawn(
    cfg: &PollersConfig,
    store: DynStore,
    connectors: Arc<crate::connectors::Connectors>,
    router: Arc<dyn FlowRouter>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let (Some(gp), 1..) = (connectors.gpapi.clone(), cfg.gpapi_deposits_every_secs) {
        let every = Duration::from_secs(cfg.gpapi_deposits_every_secs);
        let (store, router, clock, shutdown) = (store.clone(), router.clone(), clock.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                match poll_gp_deposits_once(&store, &gp, router.as_ref(), clock.as_ref()).await {
                    Ok(n) if n > 0 => tracing::info!(deposits = n, "funded deposits found"),
                    Ok(_) => {}
                    Err(f) => tracing::warn!("deposit poll failed; will try again: {f}"),
                }
                tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(every) => {} }
            }
        }));
    }
    if let (Some(ns), 1..) = (connectors.netsuite.clone(), cfg.netsuite_every_secs) {
        let every = Duration::from_secs(cfg.netsuite_every_secs);
        let tables = cfg.netsuite_tables.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                for t in &tables {
                    match poll_netsuite_once(&store, &ns, t, router.as_ref(), clock.as_ref()).await {
                        Ok(n) if n > 0 => tracing::info!(table = %t, changed = n, "NetSuite changes found"),
                        Ok(_) => {}
                        Err(f) => tracing::warn!(table = %t, "NetSuite poll failed; will try again: {f}"),
                    }
                }
                tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(every) => {} }
            }
        }));
    }
    tasks
}
