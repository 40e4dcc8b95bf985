//! `heartsuite reconcile`: runs the reconciliation (crate `heartsuite-recon`) against the
//! configured GP-API and NetSuite accounts, turns exceptions into work (re-drive a missing
//! posting through the normal flow, accept a difference with a note, both on the audit chain),
//! and the daily schedule `serve` runs.

use crate::config::{Config, SecretResolver};
use crate::server::FlowRouter;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use heartsuite_core::{Clock, NewEvent};
use heartsuite_heartland::GpApiClient;
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_recon::{Fetcher, Format, Input, Report, Rules, Status};
use heartsuite_store::{DynStore, IngestItem, NewAudit};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct ReconcileArgs {
    /// The merchant's business date (YYYY-MM-DD): its settled transactions and the deposits
    /// funding them.
    #[arg(long, conflicts_with_all = ["deposit", "redrive", "accept"])]
    pub date: Option<String>,
    /// One GP-API deposit (DEP_...): its transactions and its NetSuite deposit or journal entry.
    #[arg(long, conflicts_with_all = ["redrive", "accept"])]
    pub deposit: Option<String>,
    /// table, json, csv or html.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Report only: record nothing on the audit chain (with --redrive: show the event, ingest nothing).
    #[arg(long)]
    pub dry_run: bool,
    /// Write the report to FILE instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Re-drive a transaction missing in NetSuite (`txn:TRN_...`) through its normal flow.
    #[arg(long, conflicts_with = "accept")]
    pub redrive: Option<String>,
    /// Accept an exception (`txn:...`, `deposit:...`, `netsuite:...`) with --note.
    #[arg(long, requires = "note")]
    pub accept: Option<String>,
    #[arg(long)]
    pub note: Option<String>,
}

/// What a run covers.
#[derive(Debug, Clone)]
pub enum Scope {
    Date(jiff::civil::Date),
    Deposit(String),
}

impl Scope {
    fn subject(&self) -> String {
        match self {
            Scope::Date(d) => format!("recon:date:{d}"),
            Scope::Deposit(id) => format!("recon:deposit:{id}"),
        }
    }
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn subject_of(item: &str) -> String {
    format!("recon:{item}")
}

fn check_item_key(item: &str) -> Result<()> {
    let ok = ["txn:", "deposit:", "netsuite:"].iter().any(|p| {
        item.strip_prefix(p)
            .is_some_and(|rest| !rest.trim().is_empty())
    });
    if !ok {
        bail!(
            "item `{item}` is not an item key; use the key the report shows (txn:TRN_..., deposit:DEP_..., netsuite:<internal id>)"
        );
    }
    Ok(())
}

/// The notes of accepted items, latest acceptance wins.
pub async fn accepted_notes(
    store: &DynStore,
    report_keys: impl Iterator<Item = &str>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for key in report_keys {
        let entries = store
            .audit_for_subject(&subject_of(key))
            .await
            .map_err(|e| anyhow!("reading the audit chain: {e}"))?;
        if let Some(e) = entries
            .iter()
            .rev()
            .find(|e| e.entry.action == "recon.accept")
        {
            let note = e
                .entry
                .details
                .get("note")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.insert(
                key.to_string(),
                format!("{note} ({} by {})", micros_date(e.entry.at), e.entry.actor),
            );
        }
    }
    Ok(out)
}

fn micros_date(at: i64) -> String {
    jiff::Timestamp::from_microsecond(at)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| at.to_string())
}

/// Fetches both sides, applies earlier acceptances, and reconciles.
pub async fn run_report(
    gp: &GpApiClient,
    ns: &NetSuiteClient,
    store: &DynStore,
    rules: &Rules,
    scope: &Scope,
) -> Result<Report> {
    let opts = rules
        .fetch_options()
        .map_err(|e| anyhow!("configuration error: {e}"))?;
    let fetcher = Fetcher {
        gp,
        ns,
        rules,
        opts: &opts,
    };
    let mut input: Input = match scope {
        Scope::Date(d) => fetcher.for_date(*d).await,
        Scope::Deposit(id) => fetcher.for_deposit(id).await,
    }
    .map_err(|e| anyhow!("reconciliation could not read its data: {e}"))?;
    // A first pass finds the exceptions; only they can have been accepted.
    let first = heartsuite_recon::reconcile(rules, &input)?;
    input.accepted = accepted_notes(store, first.exceptions().map(|i| i.key.as_str())).await?;
    if input.accepted.is_empty() {
        return Ok(first);
    }
    Ok(heartsuite_recon::reconcile(rules, &input)?)
}

/// Records that a reconciliation ran, with its counts, so the chain shows when it was done.
pub async fn audit_run(
    store: &DynStore,
    clock: &dyn Clock,
    actor: &str,
    scope: &Scope,
    report: &Report,
) -> Result<()> {
    let counts: BTreeMap<&str, u64> = Status::ALL
        .iter()
        .map(|s| (s.as_str(), report.count(*s)))
        .collect();
    store
        .audit_append(&NewAudit {
            at: clock.now_micros(),
            actor: actor.to_string(),
            action: "recon.run".into(),
            subject: scope.subject(),
            event_id: None,
            job_id: None,
            remote_id: None,
            details: json!({"title": report.title, "counts": counts}),
        })
        .await
        .map_err(|e| anyhow!("audit: {e}"))?;
    Ok(())
}

/// Accepts an exception with a note; later reports show it as `accepted`.
pub async fn accept(
    store: &DynStore,
    clock: &dyn Clock,
    actor: &str,
    item: &str,
    note: &str,
) -> Result<()> {
    check_item_key(item)?;
    if note.trim().is_empty() {
        bail!("--note must say why the difference is accepted");
    }
    store
        .audit_append(&NewAudit {
            at: clock.now_micros(),
            actor: actor.to_string(),
            action: "recon.accept".into(),
            subject: subject_of(item),
            event_id: None,
            job_id: None,
            remote_id: None,
            details: json!({"item": item, "note": note}),
        })
        .await
        .map_err(|e| anyhow!("audit: {e}"))?;
    Ok(())
}

/// What a re-drive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redriven {
    /// A new event; its jobs run the normal flows.
    Ingested { event_id: i64, flows: Vec<String> },
    /// This transaction was re-driven before; the earlier event stands (its jobs say how it went).
    AlreadyRedriven { event_id: i64 },
    /// `--dry-run`: what would be ingested.
    WouldIngest {
        kind: String,
        flows: Vec<String>,
        payload: Value,
    },
}

pub const REDRIVE_SOURCE: &str = "recon";

/// The GP-API notification shape the payment and refund flows read, rebuilt from the API's
/// transaction when no original notification is in the inbox.
fn notification_of(t: &heartsuite_heartland::gpapi::Transaction) -> Result<Value> {
    let amount = t
        .amount
        .ok_or_else(|| anyhow!("GP-API transaction {}: field `amount` is missing", t.id))?;
    let card = t.payment_method.as_ref().and_then(|p| p.card.as_ref());
    Ok(json!({
        "id": t.id,
        "time_created": t.time_created,
        "type": t.kind.as_ref().map(|k| k.as_str()),
        // The kind is `captured`: what the status notification said when the money was taken.
        "status": "CAPTURED",
        "amount": amount.minor.abs().to_string(),
        "currency": amount.code(),
        "reference": t.reference,
        "batch_id": t.batch_id,
        "payment_method": {"card": {"brand": card.and_then(|c| c.brand.clone()), "authcode": card.and_then(|c| c.authcode.clone())}},
    }))
}

/// Re-ingests a Heartland transaction as `gpapi.transaction.captured`, so the normal flow posts
/// it. At most once: the inbox key `redrive:<TRN>:captured` admits one re-drive, and the flow's
/// write is keyed `hs-pay-<TRN>` / `hs-cm-<TRN>` like the original, so even a late original
/// notification cannot post it a second time.
#[allow(clippy::too_many_arguments)]
pub async fn redrive(
    store: &DynStore,
    router: &dyn FlowRouter,
    gp: &GpApiClient,
    rules: &Rules,
    gp_sources: &[String],
    clock: &dyn Clock,
    actor: &str,
    item: &str,
    dry_run: bool,
) -> Result<Redriven> {
    check_item_key(item)?;
    let trn = item
        .strip_prefix("txn:")
        .ok_or_else(|| {
            anyhow!(
                "only a Heartland transaction (txn:TRN_...) can be re-driven; `{item}` is not one"
            )
        })?
        .trim();
    let t = gp
        .get_transaction(trn)
        .await
        .map_err(|e| anyhow!("GP-API transaction {trn}: {e}"))?;
    let opts = rules
        .fetch_options()
        .map_err(|e| anyhow!("configuration error: {e}"))?;
    let h = heartsuite_recon::fetch::heartland_txn(&t, &opts.time_zone)?;
    // Already posted as far as the engine knows: a re-drive would be skipped by the crosswalk,
    // so say so instead of pretending.
    for eid in rules.external_ids_for(&h) {
        for rt in ["customerPayment", "cashSale", "creditMemo", "cashRefund"] {
            if let Some(e) = store
                .effect("netsuite", rt, &eid)
                .await
                .map_err(|e| anyhow!("store: {e}"))?
            {
                bail!(
                    "the engine recorded {eid} as NetSuite {rt} {} (job {:?}); a re-drive would be skipped. If that record was deleted in NetSuite, re-create it there or remove the crosswalk entry first",
                    e.remote_id,
                    e.job_id
                );
            }
        }
    }
    let key = format!("{trn}:captured");
    let mut payload = None;
    for src in gp_sources {
        if let Some(ev) = store
            .event_by_key(src, &key)
            .await
            .map_err(|e| anyhow!("store: {e}"))?
        {
            payload = Some((ev.payload, format!("inbox event {}", ev.id)));
            break;
        }
    }
    let (mut payload, origin) = match payload {
        Some(p) => p,
        None => (notification_of(&t)?, "GP-API transaction".to_string()),
    };
    heartsuite_core::pan::mask_json(&mut payload);
    let kind = "gpapi.transaction.captured".to_string();
    let flows = router.flows_for(&kind, &payload);
    if flows.is_empty() {
        bail!(
            "no flow is triggered by {kind} for {trn}; check the flows directory (`heartsuite flows check`)"
        );
    }
    if dry_run {
        return Ok(Redriven::WouldIngest {
            kind,
            flows,
            payload,
        });
    }
    let now = clock.now_micros();
    let res = store
        .ingest(&[IngestItem {
            event: NewEvent {
                source: REDRIVE_SOURCE.into(),
                source_event_key: format!("redrive:{key}"),
                kind: kind.clone(),
                payload,
                received_at: now,
            },
            flows: flows.clone(),
            run_at: now,
        }])
        .await
        .map_err(|e| anyhow!("store: {e}"))?;
    let r = res
        .first()
        .ok_or_else(|| anyhow!("the store returned no result for the re-drive"))?;
    if r.duplicate {
        return Ok(Redriven::AlreadyRedriven {
            event_id: r.event_id,
        });
    }
    store
        .audit_append(&NewAudit {
            at: now,
            actor: actor.to_string(),
            action: "recon.redrive".into(),
            subject: subject_of(item),
            event_id: Some(r.event_id),
            job_id: r.job_ids.first().copied(),
            remote_id: None,
            details: json!({"kind": kind, "flows": flows, "payload_from": origin, "jobs": r.job_ids}),
        })
        .await
        .map_err(|e| anyhow!("audit: {e}"))?;
    Ok(Redriven::Ingested {
        event_id: r.event_id,
        flows,
    })
}

fn clients(
    cfg: &Config,
    secrets: &SecretResolver,
    clock: Arc<dyn Clock>,
    store: &DynStore,
) -> Result<(Arc<GpApiClient>, Arc<NetSuiteClient>)> {
    let c = crate::connectors::Connectors::from_config(cfg, secrets, clock, Some(store.clone()))?;
    let gp = c
        .gpapi
        .clone()
        .ok_or_else(|| anyhow!("configuration error: reconciliation needs a [gpapi] section"))?;
    let ns = c
        .netsuite
        .clone()
        .ok_or_else(|| anyhow!("configuration error: reconciliation needs a [netsuite] section"))?;
    Ok((gp, ns))
}

fn write_out(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

pub async fn run(args: ReconcileArgs, cfg: &Config, clock: Arc<dyn Clock>) -> Result<()> {
    let rules = cfg.recon.clone();
    rules
        .validate()
        .map_err(|e| anyhow!("configuration error: {e}"))?;
    let store = crate::cli::open_store(cfg).await?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow!("cannot migrate the store: {e}"))?;
    let secrets = SecretResolver::new(cfg);
    let who = actor();
    if let Some(item) = &args.accept {
        accept(
            &store,
            clock.as_ref(),
            &who,
            item,
            args.note.as_deref().unwrap_or_default(),
        )
        .await?;
        println!("{item} accepted; later reports show it as accepted");
        return Ok(());
    }
    if let Some(item) = &args.redrive {
        let (_, breakers) = crate::cli::engine_parts(cfg, clock.clone(), &secrets)?;
        let wired =
            crate::wiring::build(cfg, &secrets, clock.clone(), breakers, Some(store.clone()))?;
        let gp =
            wired.connectors.gpapi.clone().ok_or_else(|| {
                anyhow!("configuration error: a re-drive needs a [gpapi] section")
            })?;
        let gp_sources: Vec<String> = cfg
            .sources
            .iter()
            .filter(|(_, s)| s.kind == crate::config::SourceKind::Gpapi)
            .map(|(n, _)| n.clone())
            .collect();
        match redrive(
            &store,
            wired.router.as_ref(),
            &gp,
            &rules,
            &gp_sources,
            clock.as_ref(),
            &who,
            item,
            args.dry_run,
        )
        .await?
        {
            Redriven::Ingested { event_id, flows } => println!(
                "{item} re-driven as event {event_id} (flows: {}); `heartsuite serve` posts it",
                flows.join(", ")
            ),
            Redriven::AlreadyRedriven { event_id } => println!(
                "{item} was re-driven before (event {event_id}); see `heartsuite status` and `heartsuite dlq list`"
            ),
            Redriven::WouldIngest {
                kind,
                flows,
                payload,
            } => println!(
                "dry run: would ingest {kind} for flows {}:\n{payload:#}",
                flows.join(", ")
            ),
        }
        return Ok(());
    }
    let format: Format = args.format.parse().map_err(|e: String| anyhow!(e))?;
    let scope = match (&args.date, &args.deposit) {
        (Some(d), None) => Scope::Date(
            d.parse()
                .map_err(|e| anyhow!("--date `{d}` is not a date (YYYY-MM-DD): {e}"))?,
        ),
        (None, Some(id)) if !id.trim().is_empty() => Scope::Deposit(id.trim().to_string()),
        _ => bail!(
            "say what to reconcile: --date YYYY-MM-DD or --deposit DEP_... (or --redrive / --accept an item)"
        ),
    };
    let (gp, ns) = clients(cfg, &secrets, clock.clone(), &store)?;
    let report = run_report(&gp, &ns, &store, &rules, &scope).await?;
    if !args.dry_run {
        audit_run(&store, clock.as_ref(), &who, &scope, &report).await?;
    }
    write_out(
        args.out.as_deref(),
        &heartsuite_recon::render(&report, format),
    )?;
    if let Some(p) = &args.out {
        eprintln!(
            "{}: {} exception(s), {} matched → {}",
            report.title,
            report.exceptions().count(),
            report.count(Status::Matched),
            p.display()
        );
    }
    Ok(())
}

/// The next `at` (merchant time) strictly after `now`.
pub fn next_daily_run(
    now: jiff::Timestamp,
    at: jiff::civil::Time,
    tz: &jiff::tz::TimeZone,
) -> Result<jiff::Timestamp> {
    let local = now.to_zoned_datetime(tz.clone());
    let today = local
        .date()
        .to_datetime(at)
        .to_zoned_datetime(tz.clone())
        .map_err(|e| anyhow!("recon.daily_at: {e}"))?;
    if today.timestamp() > now {
        return Ok(today.timestamp());
    }
    let tomorrow = local.date().tomorrow().map_err(|e| anyhow!("{e}"))?;
    Ok(tomorrow
        .to_datetime(at)
        .to_zoned_datetime(tz.clone())
        .map_err(|e| anyhow!("recon.daily_at: {e}"))?
        .timestamp())
}

/// The daily reconciliation inside `serve`: at `recon.daily_at` (merchant time) it reconciles
/// the previous business date and writes `recon-<date>.html` and `.json` to `recon.out_dir`.
/// Off unless `daily_at` is set.
pub fn spawn_daily(
    cfg: &Config,
    store: DynStore,
    connectors: Arc<crate::connectors::Connectors>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let rules = cfg.recon.clone();
    rules
        .validate()
        .map_err(|e| anyhow!("configuration error: {e}"))?;
    let Some(at) = rules
        .daily_time()
        .map_err(|e| anyhow!("configuration error: {e}"))?
    else {
        return Ok(None);
    };
    let (Some(gp), Some(ns)) = (connectors.gpapi.clone(), connectors.netsuite.clone()) else {
        bail!("configuration error: recon.daily_at needs [gpapi] and [netsuite]");
    };
    let tz = rules
        .time_zone()
        .map_err(|e| anyhow!("configuration error: {e}"))?;
    let dir = rules
        .out_dir
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.server.data_dir.join("recon"));
    Ok(Some(tokio::spawn(async move {
        loop {
            let now = jiff::Timestamp::from_microsecond(clock.now_micros())
                .unwrap_or_else(|_| jiff::Timestamp::now());
            let next = match next_daily_run(now, at, &tz) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("daily reconciliation stopped: {e}");
                    return;
                }
            };
            let wait = std::time::Duration::try_from(next.duration_since(now)).unwrap_or_default();
            tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(wait) => {} }
            let yesterday = next.to_zoned_datetime(tz.clone()).date().yesterday();
            let Ok(day) = yesterday else { continue };
            match daily_once(&gp, &ns, &store, &rules, clock.as_ref(), &dir, day).await {
                Ok(r) => {
                    tracing::info!(date = %day, exceptions = r.exceptions().count(), matched = r.count(Status::Matched), dir = %dir.display(), "daily reconciliation written")
                }
                Err(e) => tracing::warn!(date = %day, "daily reconciliation failed: {e:#}"),
            }
        }
    })))
}

pub async fn daily_once(
    gp: &GpApiClient,
    ns: &NetSuiteClient,
    store: &DynStore,
    rules: &Rules,
    clock: &dyn Clock,
    dir: &Path,
    day: jiff::civil::Date,
) -> Result<Report> {
    let scope = Scope::Date(day);
    let report = run_report(gp, ns, store, rules, &scope).await?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (ext, f) in [("html", Format::Html), ("json", Format::Json)] {
        let p = dir.join(format!("recon-{day}.{ext}"));
        std::fs::write(&p, heartsuite_recon::render(&report, f))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    audit_run(store, clock, "engine:recon-daily", &scope, &report).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_run_is_the_next_local_time_after_now() {
        let tz = jiff::tz::TimeZone::get("America/Chicago").unwrap();
        let at = jiff::civil::time(6, 30, 0, 0);
        // 2026-03-14 10:00 UTC = 05:00 CDT: today at 06:30 local = 11:30 UTC.
        let now: jiff::Timestamp = "2026-03-14T10:00:00Z".parse().unwrap();
        assert_eq!(
            next_daily_run(now, at, &tz).unwrap().to_string(),
            "2026-03-14T11:30:00Z"
        );
        // Exactly at the time: the next day's, never the same instant twice.
        let now: jiff::Timestamp = "2026-03-14T11:30:00Z".parse().unwrap();
        assert_eq!(
            next_daily_run(now, at, &tz).unwrap().to_string(),
            "2026-03-15T11:30:00Z"
        );
        // Across the autumn change: Saturday 07:00 CDT → Sunday 06:30 CST, which is 12:30 UTC
        // (it was 11:30 UTC the day before).
        let now: jiff::Timestamp = "2026-10-31T12:00:00Z".parse().unwrap();
        assert_eq!(
            next_daily_run(now, at, &tz).unwrap().to_string(),
            "2026-11-01T12:30:00Z"
        );
    }

    #[test]
    fn item_keys_are_checked() {
        assert!(check_item_key("txn:TRN_1").is_ok());
        assert!(check_item_key("deposit:DEP_1").is_ok());
        let e = check_item_key("TRN_1").unwrap_err().to_string();
        assert!(e.contains("txn:TRN_"), "{e}");
        assert!(check_item_key("txn:").is_err());
    }
}
