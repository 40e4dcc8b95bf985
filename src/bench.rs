//! `heartsuite bench ...`: measurements recorded in docs/benchmarks.md. Nothing here asserts a
//! speed; it reports one.

use crate::cli::Global;
use crate::server::{self, FlowRouter, StartOptions};
use anyhow::{Context, Result};
use async_trait::async_trait;
use clap::Subcommand;
use heartsuite_core::{Clock, Failure, Secret, SystemClock};
use heartsuite_engine::alerts::{AlertConfig, Alerts};
use heartsuite_engine::breaker::{BreakerConfig, Breakers};
use heartsuite_engine::ingress::{self, SourceAuth, SourceFormat, SourceSpec};
use heartsuite_engine::{JobContext, JobHandler};
use heartsuite_store::LeasedJob;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Sustained NetSuite throughput against the concurrency bound (limit / latency), with the
    /// 429s the sandbox had to send.
    Governance {
        #[arg(long, default_value_t = 15)]
        limit: u32,
        #[arg(long, default_value_t = 200)]
        latency_ms: u64,
        #[arg(long, default_value_t = 600)]
        requests: usize,
    },
    /// Mean cost of one GP-API payment → NetSuite customerPayment mapping (lookup, map,
    /// validate, write intent), best of 20 batches.
    Mapping {
        #[arg(long, default_value_t = 20_000)]
        records: u32,
    },
    /// A generated business day (POS tickets, returns, deposits) posted through the NetSuite
    /// sandbox: wall time and NetSuite requests per ticket and per deposit.
    Day(crate::bench_day::DayBenchArgs),
    /// The exactly-once proof under faults: a business day with NetSuite 429s/5xx/lost
    /// responses, Retail downtime, redeliveries and SIGKILLed engine processes, then checked.
    Soak(crate::soak::SoakArgs),
    /// Signed webhooks accepted per second with durability on (inbox + job committed before 200).
    Ingest {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Concurrent senders.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

pub async fn run(cmd: BenchCmd, g: &Global) -> Result<()> {
    match cmd {
        BenchCmd::Governance { limit, latency_ms, requests } => {
            println!("{}", crate::bench_netsuite::governance(limit, latency_ms, requests).await?);
            Ok(())
        }
        BenchCmd::Soak(args) => {
            let bin = std::env::current_exe()?;
            let flows = std::path::Path::new("flows").is_dir().then(|| std::path::PathBuf::from("flows"));
            let out = crate::soak::run(&args, &bin, flows).await?;
            print!("{}", out.text());
            if !out.holds() {
                anyhow::bail!("the exactly-once proof failed for seed {}", out.seed);
            }
            Ok(())
        }
        BenchCmd::Day(args) => {
            print!("{}", crate::bench_day::run(&args).await?.text);
            Ok(())
        }
        BenchCmd::Mapping { records } => {
            let per = heartsuite_flows::bench_mapping(records);
            println!("bench mapping: gpapi_payment_to_customer_payment, {records} records in 20 batches, mean of the fastest batch");
            println!("  {:.2} µs per record ({:.0} records/s on one core)", per.as_secs_f64() * 1e6, 1.0 / per.as_secs_f64());
            Ok(())
        }
        BenchCmd::Ingest { events, concurrency } => {
            let r = ingest(g, events, concurrency).await?;
            println!("{r}");
            Ok(())
        }
    }
}

struct OneFlow;
impl FlowRouter for OneFlow {
    fn flows_for(&self, _kind: &str, _payload: &Value) -> Vec<String> {
        vec!["bench.noop".into()]
    }
}

struct NoRun;
#[async_trait]
impl JobHandler for NoRun {
    async fn run(&self, _job: &LeasedJob, _ctx: &JobContext) -> Result<(), Failure> {
        Ok(())
    }
}

pub struct IngestReport {
    pub backend: &'static str,
    pub events: usize,
    pub accepted: usize,
    pub concurrency: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub peak_rss_kib: Option<u64>,
}

impl std::fmt::Display for IngestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self.accepted as f64 / self.elapsed.as_secs_f64();
        writeln!(f, "bench ingest on {} ({} signed webhooks, {} concurrent senders)", self.backend, self.events, self.concurrency)?;
        writeln!(f, "  accepted:   {} (inbox row + job row committed before each 200)", self.accepted)?;
        writeln!(f, "  wall time:  {:.2} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "  throughput: {rate:.0} events/s")?;
        writeln!(f, "  latency:    p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", ms(self.p50), ms(self.p99), ms(self.max))?;
        match self.peak_rss_kib {
            Some(k) => write!(f, "  peak RSS:   {:.1} MiB (server and load generator share this process)", k as f64 / 1024.0),
            None => write!(f, "  peak RSS:   unavailable on this platform"),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Peak resident set size of this process (Linux VmHWM).
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

pub async fn ingest(g: &Global, events: usize, concurrency: usize) -> Result<IngestReport> {
    let tmp;
    let url = match &g.database_url {
        Some(u) => u.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("heartsuite-bench-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            format!("sqlite://{}", tmp.join("bench.db").display())
        }
    };
    let store = heartsuite_store::open(&url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secret = "bench-secret";
    let spec = SourceSpec {
        name: "shop".into(),
        auth: SourceAuth::Hmac { secrets: vec![Secret::new(secret)], tolerance_secs: 300 },
        format: SourceFormat::Shop,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let running = server::start(
        listener,
        StartOptions {
            store: store.clone(),
            clock: clock.clone(),
            sources: vec![spec],
            router: Arc::new(OneFlow),
            handler: Arc::new(NoRun),
            alerts: Arc::new(Alerts::new(AlertConfig::default(), clock.clone())),
            breakers: Arc::new(Breakers::new(BreakerConfig::default(), clock.clone())),
            worker: None,
            admin_token: None,
            max_body: 1 << 20,
            max_batch: 512,
        },
    )
    .await?;
    let url = format!("http://{}/hooks/shop", running.addr);
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let run_id = format!("{:x}", clock.now_micros());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let http = http.clone();
        let url = url.clone();
        let next = next.clone();
        let run_id = run_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut ok = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= events {
                    break;
                }
                let body = format!(
                    r#"{{"event_id":"bench-{run_id}-{i}","type":"order.created","order":{{"id":"{i}","total":"19.99","currency":"USD","email":"buyer{i}@example.com"}}}}"#
                );
                let ts = (SystemClock.now_micros() / 1_000_000).to_string();
                let sig = ingress::hmac_signature(secret.as_bytes(), &ts, body.as_bytes());
                let t0 = Instant::now();
                let r = http
                    .post(&url)
                    .header(ingress::TIMESTAMP_HEADER, ts)
                    .header(ingress::SIGNATURE_HEADER, sig)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                lat.push(t0.elapsed());
                if matches!(r, Ok(ref r) if r.status().is_success()) {
                    ok += 1;
                }
            }
            (lat, ok)
        }));
    }
    let mut lat = Vec::with_capacity(events);
    let mut accepted = 0;
    for t in tasks {
        let (l, ok) = t.await.context("sender task failed")?;
        lat.extend(l);
        accepted += ok;
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default();
    let report = IngestReport {
        backend: store.backend(),
        events,
        accepted,
        concurrency,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        max: lat.last().copied().unwrap_or_default(),
        peak_rss_kib: peak_rss_kib(),
    };
    running.shutdown().await;
    Ok(report)
}
