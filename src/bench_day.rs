//! `heartsuite bench day`: a generated business day posted through the NetSuite sandbox at a
//! given concurrency limit and latency — wall time, NetSuite requests per ticket and per deposit.
//! Tickets post first with the deposit poller off, then one poll posts the deposits, so each
//! phase's requests are counted apart.

use crate::day::{self, DayPlan, Engine, Sandboxes, Sender};
use anyhow::Result;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct DayBenchArgs {
    #[arg(long, default_value_t = 5000)]
    pub tickets: usize,
    /// The NetSuite account's concurrency limit (the sandbox enforces it; the engine uses it).
    #[arg(long, default_value_t = 15)]
    pub concurrency: u32,
    #[arg(long, default_value_t = 200)]
    pub latency_ms: u64,
    #[arg(long, default_value_t = 11)]
    pub seed: u64,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub limit_secs: u64,
}

pub struct DayBench {
    pub text: String,
}

pub async fn run(a: &DayBenchArgs) -> Result<DayBench> {
    let dir = std::env::temp_dir().join(format!("heartsuite-bench-day-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let plan = DayPlan {
        seed: a.seed,
        date: jiff::civil::date(2026, 11, 26),
        tickets: a.tickets,
        netsuite_latency: Duration::from_millis(a.latency_ms),
        netsuite_concurrency: a.concurrency,
        include_cad: true,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandboxes = Sandboxes::start(&plan, listener.local_addr()?).await?;
    let mut cfg = sandboxes.engine_config(&dir, &format!("sqlite://{}", dir.join("heartsuite.db").display()), a.concurrency);
    cfg.pollers.gpapi_deposits_every_secs = 0;
    let engine = Engine::start(&cfg, listener, "bench").await?;
    let generated = sandboxes.generate(&plan)?;
    sandboxes.mirror_catalogue().await?;
    let limit = Duration::from_secs(a.limit_secs);
    // The customers' initial sync is set-up, measured apart from the day's sales.
    let mut sender = Sender::new(engine.running.addr);
    let master_started = Instant::now();
    let master_hooks = sender.deliver_phase(&generated, false).await?;
    day::wait_idle(&engine.store, "customers → NetSuite", Duration::from_millis(500), limit).await?;
    let master_wall = master_started.elapsed();
    let setup = sandboxes.netsuite.stats().await.requests;

    let started = Instant::now();
    let hooks = sender.deliver_phase(&generated, true).await?;
    let done_tickets = day::wait_idle(&engine.store, "tickets → NetSuite", Duration::from_millis(500), limit).await?;
    let tickets_wall = started.elapsed();
    let after_tickets = sandboxes.netsuite.stats().await;

    let dep_started = Instant::now();
    let deposits = engine.poll_deposits_now().await?;
    let done_deposits = day::wait_idle(&engine.store, "deposits → NetSuite", Duration::from_millis(500), limit).await?;
    let deposits_wall = dep_started.elapsed();
    let after_all = sandboxes.netsuite.stats().await;
    let (counts, _) = day::open_jobs(&engine.store, Duration::ZERO).await?;

    let ticket_requests = after_tickets.requests - setup;
    let deposit_requests = after_all.requests - after_tickets.requests;
    let tickets = generated.summary.tickets + generated.summary.returns;
    let mut t = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(t, "bench day: seed {}, {} tickets + {} returns, {} webhooks; NetSuite sandbox limit {} at {} ms latency", a.seed, generated.summary.tickets, generated.summary.returns, hooks, a.concurrency, a.latency_ms);
    let _ = writeln!(t, "  set-up:   {} customer/item webhooks synced in {:.1} s, {} NetSuite requests (catalogue included)", master_hooks, master_wall.as_secs_f64(), setup);
    let _ = writeln!(t, "  tickets:  {:.1} s wall ({:.1} tickets/s){}", tickets_wall.as_secs_f64(), tickets as f64 / tickets_wall.as_secs_f64(), if done_tickets { "" } else { " — NOT FINISHED" });
    let _ = writeln!(t, "            {} NetSuite requests = {:.2} per ticket; {} answered 429", ticket_requests, ticket_requests as f64 / tickets.max(1) as f64, after_tickets.rate_limited);
    let _ = writeln!(t, "  deposits: {} funded, {:.1} s wall, {} NetSuite requests = {:.2} per deposit{}", deposits, deposits_wall.as_secs_f64(), deposit_requests, deposit_requests as f64 / deposits.max(1) as f64, if done_deposits { "" } else { " — NOT FINISHED" });
    let _ = writeln!(t, "  jobs: {:?}", counts.iter().map(|(k, v)| format!("{}={v}", k.as_str())).collect::<Vec<_>>());
    let posted: Vec<String> = after_all.records.iter().filter(|(k, n)| **n > 0 && !["account", "subsidiary", "location", "paymentMethod", "currency", "inventoryItem"].contains(&k.as_str())).map(|(k, n)| format!("{k}={n}")).collect();
    let _ = writeln!(t, "  NetSuite records: {}", posted.join(", "));
    if let Some(kib) = crate::bench::peak_rss_kib() {
        let _ = writeln!(t, "  peak RSS (engine + both sandboxes, one process): {:.1} MiB", kib as f64 / 1024.0);
    }
    engine.shutdown().await;
    sandboxes.netsuite.shutdown().await;
    sandboxes.heartland.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(DayBench { text: t })
}
