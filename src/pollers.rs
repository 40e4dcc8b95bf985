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
    /// Poll GP-API for funded deposits every N seconds (0 = off). Runs only when [gpapi] is
    /// configured.
    pub gpapi_deposits_every_secs: u64,
    /// Poll NetSuite tables by lastmodifieddate every N seconds (0 = off; needs [netsuite]).
    pub netsuite_every_secs: u64,
    /// SuiteQL tables to poll (`transaction`, `customer`, `item`...).
    pub netsuite_tables: Vec<String>,
}

impl Default for PollersConfig {
    fn default() -> Self {
        // Deposits have no webhook, so with [gpapi] configured the poller is on unless set to 0:
        // the settlement flow posts what it finds. Every 5 minutes is far inside GP-API's limits
        // and deposits are funded once a day.
        Self { gpapi_deposits_every_secs: DEFAULT_DEPOSIT_POLL_SECS, netsuite_every_secs: 0, netsuite_tables: vec!["transaction".into()] }
    }
}

/// How often funded deposits are polled when `[gpapi]` is configured and nothing else is set.
pub const DEFAULT_DEPOSIT_POLL_SECS: u64 = 300;

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
    // A deposit that cannot be encoded must stop the poll (cursor unmoved), never become an
    // event with an empty payload.
    let events = deposits
        .into_iter()
        .map(|d| {
            let payload = serde_json::to_value(&d).map_err(|e| Failure::bug(format!("encoding deposit {}: {e}", d.deposit.id)))?;
            Ok((d.deposit.id, heartsuite_heartland::events::GPAPI_DEPOSIT_FUNDED.to_string(), payload))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Connectors;
    use heartsuite_core::{Secret, SystemClock};

    struct NoFlows;
    impl FlowRouter for NoFlows {
        fn flows_for(&self, _kind: &str, _payload: &Value) -> Vec<String> {
            Vec::new()
        }
    }

    async fn spawned(cfg: &PollersConfig, with_gpapi: bool) -> usize {
        let dir = std::env::temp_dir().join(format!("hs-pollers-{}-{:x}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = heartsuite_store::open(&format!("sqlite://{}", dir.join("p.db").display())).await.unwrap();
        let mut connectors = Connectors::default();
        if with_gpapi {
            // Nothing listens there: the task's first poll fails and it waits, which is all we need.
            let conf = heartsuite_heartland::GpApiConfig::new("id", Secret::new("key")).with_base_url("http://127.0.0.1:9".to_string());
            connectors.gpapi = Some(Arc::new(heartsuite_heartland::GpApiClient::new(conf).unwrap()));
        }
        let shutdown = CancellationToken::new();
        let tasks = spawn(cfg, store, Arc::new(connectors), Arc::new(NoFlows), Arc::new(SystemClock), shutdown.clone());
        let n = tasks.len();
        shutdown.cancel();
        for t in tasks {
            t.await.unwrap();
        }
        let _ = std::fs::remove_dir_all(dir);
        n
    }

    #[tokio::test]
    async fn deposit_poller_is_on_by_default_with_gpapi_and_can_be_turned_off() {
        let cfg = crate::config::Config::default();
        assert_eq!(cfg.pollers.gpapi_deposits_every_secs, DEFAULT_DEPOSIT_POLL_SECS);
        assert_eq!(spawned(&cfg.pollers, true).await, 1, "[gpapi] configured: the deposit poller runs");
        assert_eq!(spawned(&cfg.pollers, false).await, 0, "no [gpapi]: nothing to poll");

        let p = std::env::temp_dir().join(format!("hs-pollers-{:x}.toml", rand::random::<u64>()));
        std::fs::write(&p, "[pollers]\ngpapi_deposits_every_secs = 0\n").unwrap();
        let off = crate::config::Config::load(Some(&p)).unwrap();
        let _ = std::fs::remove_file(&p);
        assert_eq!(off.pollers.gpapi_deposits_every_secs, 0);
        assert_eq!(spawned(&off.pollers, true).await, 0, "the opt-out is honoured");
    }
}
