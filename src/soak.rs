//! The exactly-once proof under faults: a generated business day runs through the sandboxes
//! while NetSuite answers 429s and 5xx and "applies but loses the response", Heartland Retail
//! goes down, webhooks are redelivered, and the engine processes (`heartsuite serve`, one or two
//! sharing a database) are killed with SIGKILL and restarted. When the queue is empty the result
//! is checked against what the day should have posted: zero missing, zero duplicates, every dead
//! letter explained, the audit chain intact. The plan (kill times, faults, redeliveries, which
//! process gets which webhook) comes from the seed, so a failing seed replays the same plan;
//! thread timing still varies between runs.
//!
//! `heartsuite bench soak` runs a large one; `tests/soak.rs` a small one in CI.

use crate::day::{self, DayPlan, Sandboxes};
use anyhow::{Context, Result, anyhow, bail};
use heartsuite_core::ErrorClass;
use heartsuite_sandbox::netsuite::{Fault, FaultKind};
use heartsuite_store::{DynStore, JobState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Seed of the day and of the fault plan; printed, so a failing run can be replayed.
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, default_value_t = 1500)]
    pub tickets: usize,
    /// SIGKILLs spread over the run.
    #[arg(long, default_value_t = 6)]
    pub kills: u32,
    /// Engine processes sharing the database (two need PostgreSQL).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// `sqlite://...` (default: a fresh file) or `postgres://...` (an empty database).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Inject faults (on by default; `--faults false` for a clean baseline).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub faults: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub limit_secs: u64,
}

impl SoakArgs {
    pub fn small(seed: u64) -> Self {
        Self { seed: Some(seed), tickets: 120, kills: 3, processes: 1, database_url: None, faults: true, limit_secs: 300 }
    }
}

/// What a soak run saw and concluded.
#[derive(Debug, Default)]
pub struct SoakOutcome {
    pub seed: u64,
    pub webhooks: usize,
    pub redeliveries: usize,
    pub kills: u32,
    pub netsuite_faults: u64,
    pub retail_downtime_secs: u64,
    pub expected: usize,
    pub missing: Vec<String>,
    pub duplicates: Vec<String>,
    pub unexpected: Vec<String>,
    pub dead: Vec<String>,
    /// `heartsuite reconcile --deposit` for every funded deposit: exceptions, by status.
    pub recon: BTreeMap<String, u64>,
    pub recon_exceptions: Vec<String>,
    pub audit: String,
    pub audit_intact: bool,
    pub finished: bool,
    pub elapsed: Duration,
}

impl SoakOutcome {
    /// The proof holds: nothing missing or twice, the queue drained, the chain intact.
    pub fn holds(&self) -> bool {
        self.finished
            && self.missing.is_empty()
            && self.duplicates.is_empty()
            && self.unexpected.is_empty()
            && self.recon_exceptions.is_empty()
            && self.audit_intact
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "soak: seed {} — {} webhooks ({} redelivered), {} SIGKILLs, {} NetSuite faults injected, Retail down {} s, {:.1} s\n",
            self.seed,
            self.webhooks,
            self.redeliveries,
            self.kills,
            self.netsuite_faults,
            self.retail_downtime_secs,
            self.elapsed.as_secs_f64()
        );
        s += &format!(
            "  expected NetSuite postings {}: missing {}, duplicated {}, unexpected {}; queue drained: {}; audit chain: {}\n",
            self.expected,
            self.missing.len(),
            self.duplicates.len(),
            self.unexpected.len(),
            self.finished,
            self.audit
        );
        for (label, list) in [("missing", &self.missing), ("duplicated", &self.duplicates), ("unexpected", &self.unexpected)] {
            for k in list.iter().take(20) {
                s += &format!("    {label}: {k}\n");
            }
        }
        s += &format!("  reconciliation of every funded deposit: {:?}\n", self.recon);
        for e in self.recon_exceptions.iter().take(20) {
            s += &format!("    {e}\n");
        }
        s += &format!("  dead letters: {}\n", self.dead.len());
        for d in self.dead.iter().take(20) {
            s += &format!("    {d}\n");
        }
        s += if self.holds() { "  RESULT: exactly once held\n" } else { "  RESULT: FAILED — replay with the seed above\n" };
        s
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Proc {
    port: u16,
    child: Option<Child>,
}

fn spawn_serve(bin: &Path, config: &Path, port: u16, log: &Path) -> Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    Command::new(bin)
        .args(["--config", &config.display().to_string(), "serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// The NetSuite postings the day must produce, one per key: an external id per ticket, return
/// and funded deposit (the flows' naming, see flows/*.toml).
fn expected_postings(day: &heartsuite_sandbox::heartland::GeneratedDay) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for w in &day.webhooks {
        let id = w.body.get("id").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        match (w.body.get("type").and_then(Value::as_str), id) {
            (Some("Ticket"), Some(id)) => {
                keys.insert(format!("hs-sale-{id}"));
            }
            (Some("Return"), Some(id)) => {
                keys.insert(format!("hs-ret-{id}"));
            }
            _ => {}
        }
    }
    for d in &day.summary.deposits {
        keys.insert(format!("hs-dep-{}", d.id));
    }
    keys
}

/// Every transaction in the NetSuite sandbox with one of our external ids, and the records of
/// posting types that carry none (a duplicate posting made without its key would show there).
async fn netsuite_postings(ns: &heartsuite_netsuite::NetSuiteClient) -> Result<(BTreeMap<String, u32>, Vec<String>)> {
    let rows = ns
        .suiteql("SELECT id, type, externalid FROM transaction WHERE type IN ('CashSale', 'CashRfnd', 'Deposit', 'Journal')", 1000)
        .await
        .map_err(|e| anyhow!("listing NetSuite transactions: {e}"))?;
    let mut by_key = BTreeMap::new();
    let mut keyless = Vec::new();
    for r in rows {
        let ext = r.get("externalid").and_then(Value::as_str).unwrap_or_default().to_string();
        if ext.is_empty() {
            keyless.push(format!("{} {}", r.get("type").and_then(Value::as_str).unwrap_or("?"), r.get("id").map(|v| v.to_string()).unwrap_or_default()));
        } else {
            *by_key.entry(ext).or_insert(0) += 1;
        }
    }
    Ok((by_key, keyless))
}

async fn all_done(store: &DynStore) -> Result<bool> {
    let (counts, open) = day::open_jobs(store, Duration::from_secs(24 * 3600)).await?;
    Ok(open == 0 && counts.values().sum::<i64>() > 0)
}

pub async fn run(args: &SoakArgs, bin: &Path, flows_dir: Option<PathBuf>) -> Result<SoakOutcome> {
    let started = Instant::now();
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = std::env::temp_dir().join(format!("heartsuite-soak-{seed:x}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let database_url = args.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", dir.join("heartsuite.db").display()));
    if args.processes > 1 && !database_url.starts_with("postgres") {
        bail!("two engine processes share one database only on PostgreSQL (--database-url postgres://...)");
    }
    let plan = DayPlan {
        seed,
        date: jiff::civil::date(2026, 11, 26),
        tickets: args.tickets,
        netsuite_latency: Duration::from_millis(5),
        netsuite_concurrency: 10,
        include_cad: true,
    };
    let mut procs: Vec<Proc> = (0..args.processes.max(1)).map(|_| free_port().map(|port| Proc { port, child: None })).collect::<Result<_>>()?;
    let sandboxes = Sandboxes::start(&plan, format!("127.0.0.1:{}", procs[0].port).parse()?).await?;
    let mut cfg = sandboxes.engine_config(&dir, &database_url, 10);
    // Short leases and retries: a killed process's jobs come back within seconds.
    cfg.engine.lease_secs = 3;
    cfg.engine.breaker_open_secs = 2;
    // (Configured delays are whole seconds.)
    for class in [ErrorClass::Transient, ErrorClass::RateLimited, ErrorClass::Unavailable, ErrorClass::Dependency] {
        let mut p = heartsuite_engine::policy::Policies::default().get(class);
        p.base_delay = Duration::from_secs(1);
        p.max_delay = Duration::from_secs(2);
        p.max_attempts = p.max_attempts.max(60);
        cfg.retry.insert(class.as_str().to_string(), p);
    }
    if let Some(f) = flows_dir {
        cfg.flows.dir = f;
    }
    let config_path = dir.join("heartsuite.toml");
    std::fs::write(&config_path, toml::to_string(&cfg).context("writing the soak configuration")?)?;
    let log = dir.join("engine.log");

    let generated = sandboxes.generate(&plan)?;
    sandboxes.mirror_catalogue().await?;
    let expected = expected_postings(&generated);
    for p in procs.iter_mut() {
        p.child = Some(spawn_serve(bin, &config_path, p.port, &log)?);
    }
    let store = heartsuite_store::open(&database_url).await.map_err(|e| anyhow!("opening the soak store: {e}"))?;

    // Faults: bounded counts, so the day can finish. Probabilities are the sandbox's own draws.
    let mut netsuite_faults = 0;
    if args.faults {
        for (kind, count, p) in [(FaultKind::RateLimit, 40, 0.05), (FaultKind::ServerError, 25, 0.03), (FaultKind::LostResponse, 15, 0.03)] {
            let mut f = Fault::new(kind);
            f.count = Some(count);
            f.probability = Some(p);
            sandboxes.netsuite.state().inject_fault(f);
        }
    }

    // Delivery with redeliveries, SIGKILLs at seeded points, Retail down for a while mid-day.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let n = generated.webhooks.len();
    let kill_points: BTreeSet<usize> = (0..args.kills).map(|_| rng.random_range(0..n.max(1))).collect();
    let downtime_at = rng.random_range(0..n.max(1));
    let retail_downtime_secs = if args.faults { 3 } else { 0 };
    let mut redeliveries = 0;
    let mut kills = 0;
    let mut order: Vec<usize> = (0..n).collect();
    for i in 0..n {
        if rng.random_range(0..100) < 5 {
            order.push(i);
            redeliveries += 1;
        }
    }
    for (step, &i) in order.iter().enumerate() {
        if kill_points.contains(&step) {
            let victim = rng.random_range(0..procs.len());
            if let Some(mut c) = procs[victim].child.take() {
                let _ = c.kill(); // SIGKILL on unix
                let _ = c.wait();
                kills += 1;
            }
            let downtime = Duration::from_millis(rng.random_range(100..800));
            tokio::time::sleep(downtime).await;
            procs[victim].child = Some(spawn_serve(bin, &config_path, procs[victim].port, &log)?);
        }
        if step == downtime_at && args.faults {
            let spec = heartsuite_sandbox::heartland::FaultSpec { downtime_secs: Some(retail_downtime_secs), ..Default::default() };
            sandboxes.heartland.sandbox().set_faults(&spec, heartsuite_sandbox::heartland::Service::Retail).map_err(|e| anyhow!("Retail downtime: {e}"))?;
        }
        let w = &generated.webhooks[i];
        let (path, body) = (format!("/hooks/retail/{}", day::RETAIL_PATH_TOKEN), w.body.to_string());
        if w.event == "status_url" {
            continue;
        }
        // Like a sender's retry loop: until some live process has stored it.
        let first = rng.random_range(0..procs.len());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut attempt = 0usize;
        loop {
            let p = &procs[(first + attempt) % procs.len()];
            let ok = match http.post(format!("http://127.0.0.1:{}{path}", p.port)).body(body.clone()).send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            };
            if ok {
                break;
            }
            if Instant::now() > deadline {
                bail!("webhook {i} was refused by every engine process for 60 s (see {})", log.display());
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Deposits: the poller in each process finds them; wait until nothing is left to do.
    let limit = Duration::from_secs(args.limit_secs);
    let mut finished = false;
    let mut idle_since: Option<Instant> = None;
    while started.elapsed() < limit {
        if all_done(&store).await? {
            let since = *idle_since.get_or_insert_with(Instant::now);
            // Several poll intervals of quiet: every funded deposit has become a job.
            if since.elapsed() > Duration::from_secs(4) {
                finished = true;
                break;
            }
        } else {
            idle_since = None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for p in procs.iter_mut() {
        if let Some(mut c) = p.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    // The check itself must not meet a fault the run left unspent (a lost response to the
    // verification query failed a CI run).
    sandboxes.netsuite.state().clear_faults();
    sandboxes.heartland.sandbox().clear_faults();
    let ns = sandboxes.netsuite_client()?;
    let (posted, keyless) = netsuite_postings(&ns).await?;
    let missing = expected.iter().filter(|k| !posted.contains_key(*k)).cloned().collect();
    let duplicates = posted.iter().filter(|(_, n)| **n > 1).map(|(k, n)| format!("{k} ×{n}")).collect();
    let mut unexpected: Vec<String> = posted.keys().filter(|k| !expected.contains(*k)).cloned().collect();
    unexpected.extend(keyless.into_iter().map(|k| format!("{k} (no external id)")));
    let dead = store
        .jobs(Some(JobState::Dead), 1000)
        .await?
        .into_iter()
        .map(|j| format!("job {} ({}): {}", j.id, j.flow, j.last_error.map(|e| e.to_string()).unwrap_or_else(|| "NO REASON RECORDED".into())))
        .collect();
    let report = heartsuite_engine::admin::audit_verify(&store).await?;
    let (audit, audit_intact) = match report.first_break {
        None => (format!("intact ({} entries)", report.entries), true),
        Some(b) => (format!("BROKEN at entry {}: {}", b.seq, b.reason), false),
    };
    // Then reconcile, as an operator would: each funded deposit against NetSuite.
    let connectors = crate::connectors::Connectors::from_config(&cfg, &crate::config::SecretResolver::new(&cfg), std::sync::Arc::new(heartsuite_core::SystemClock), None)?;
    let (Some(gp), Some(ns_conn)) = (connectors.gpapi.as_deref(), connectors.netsuite.as_deref()) else {
        bail!("the soak configuration has no [gpapi] or [netsuite]");
    };
    let mut recon: BTreeMap<String, u64> = BTreeMap::new();
    let mut recon_exceptions = Vec::new();
    for d in &generated.summary.deposits {
        let scope = crate::recon_cmd::Scope::Deposit(d.id.clone());
        let report = crate::recon_cmd::run_report(gp, ns_conn, &store, &cfg.recon, &scope).await?;
        for item in &report.items {
            *recon.entry(item.status.as_str().to_string()).or_default() += 1;
        }
        recon_exceptions.extend(report.exceptions().map(|i| format!("deposit {}: {} {} — {}", d.id, i.key, i.status.as_str(), i.reason)));
        for line in report.deposits.iter().filter(|l| l.status.is_exception()) {
            recon_exceptions.push(format!("deposit {}: {} — {}", line.deposit_id, line.status.as_str(), line.reason));
        }
    }
    let stats = sandboxes.netsuite.stats().await;
    if args.faults {
        netsuite_faults = stats.faults_injected;
    }
    sandboxes.netsuite.shutdown().await;
    sandboxes.heartland.shutdown().await;
    Ok(SoakOutcome {
        seed,
        webhooks: n,
        redeliveries,
        kills,
        netsuite_faults,
        retail_downtime_secs,
        expected: expected.len(),
        missing,
        duplicates,
        unexpected,
        dead,
        recon,
        recon_exceptions,
        audit,
        audit_intact,
        finished,
        elapsed: started.elapsed(),
    })
}
