//! `heartsuite bench netsuite-governance`: how close the NetSuite client's governor gets to the
//! throughput bound of an account's concurrency limit without drawing 429s of its own making.
//!
//! The NetSuite simulator is started on a random loopback port with `limit` concurrent requests
//! allowed and `latency_ms` added to each; more tasks than the limit then upsert distinct
//! customers through one real `NetSuiteClient` (TBA, `Concurrency::Fixed(limit)`). With every
//! request taking at least `latency`, no client can sustain more than `limit / latency`
//! requests per second; the report says how much of that bound was reached, how many 429s the
//! simulator sent, and the latency distribution. Nothing here asserts a speed; it reports one.
//!
//! Self-contained (only external crates), so the integration tests can include it by path.

use anyhow::{Context, Result};
use heartsuite_core::Secret;
use heartsuite_netsuite::{Auth, Concurrency, Config as ClientConfig, NetSuiteClient};
use heartsuite_sandbox::netsuite as sim;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GovernanceReport {
    /// The simulator's (and the client's) concurrency limit.
    pub limit: u32,
    /// Latency the simulator added to every request.
    pub latency_ms: u64,
    /// Upserts asked for.
    pub requests: usize,
    /// Concurrent tasks driving them (more than `limit`).
    pub tasks: usize,
    /// Upserts that succeeded / failed (after the client's own 429 retries).
    pub succeeded: usize,
    pub failed: usize,
    /// API requests the simulator received (includes any retried after a 429).
    pub simulator_requests: u64,
    /// 429s the simulator sent. No faults are injected, so every one is of the client's making.
    pub simulator_429s: u64,
    /// Records of the benchmark's type the simulator holds afterwards.
    pub records_created: u64,
    /// First error seen, if any upsert failed.
    pub first_error: Option<String>,
    /// Wall time from the first request to the last answer.
    pub wall: Duration,
    /// Per-upsert latency as the caller sees it (includes waiting for a governor permit).
    pub p50: Duration,
    pub p99: Duration,
    /// The slowest upsert.
    pub max_latency: Duration,
}

impl GovernanceReport {
    /// Sustained successful requests per second.
    pub fn throughput_rps(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs <= 0.0 { 0.0 } else { self.succeeded as f64 / secs }
    }

    /// `limit / latency`: what a perfect client could sustain. `None` without latency.
    pub fn bound_rps(&self) -> Option<f64> {
        (self.latency_ms > 0).then(|| f64::from(self.limit) / (self.latency_ms as f64 / 1000.0))
    }

    /// Throughput as a percentage of the bound.
    pub fn percent_of_bound(&self) -> Option<f64> {
        self.bound_rps().filter(|b| *b > 0.0).map(|b| self.throughput_rps() / b * 100.0)
    }
}

impl fmt::Display for GovernanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "NetSuite governance: simulator limit {} concurrent, latency {} ms; client Concurrency::Fixed({})",
            self.limit, self.latency_ms, self.limit
        )?;
        writeln!(
            f,
            "  requests    {} upserts of distinct customers from {} tasks: {} ok, {} failed ({} API requests seen by the simulator, {} records)",
            self.requests, self.tasks, self.succeeded, self.failed, self.simulator_requests, self.records_created
        )?;
        match (self.bound_rps(), self.percent_of_bound()) {
            (Some(b), Some(p)) => writeln!(
                f,
                "  throughput  {:.1} req/s sustained vs bound {:.1} req/s ({} / {:.3} s) = {:.1}% of the bound",
                self.throughput_rps(),
                b,
                self.limit,
                self.latency_ms as f64 / 1000.0,
                p
            )?,
            _ => writeln!(f, "  throughput  {:.1} req/s sustained (no latency set: no bound)", self.throughput_rps())?,
        }
        writeln!(
            f,
            "  429s        {} sent by the simulator (no faults injected: all of the client's making; goal 0)",
            self.simulator_429s
        )?;
        writeln!(
            f,
            "  latency     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (caller's view, permit wait included)",
            ms(self.p50),
            ms(self.p99),
            ms(self.max_latency)
        )?;
        write!(f, "  wall time   {:.3} s", self.wall.as_secs_f64())?;
        if let Some(e) = &self.first_error {
            write!(f, "\n  first error {e}")?;
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs the benchmark: simulator with `limit` and `latency_ms`, `requests` upserts.
pub async fn governance(limit: u32, latency_ms: u64, requests: usize) -> Result<GovernanceReport> {
    anyhow::ensure!(limit >= 1, "limit must be at least 1");
    anyhow::ensure!(requests >= 1, "requests must be at least 1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the NetSuite simulator")?;
    let sim_cfg = sim::Config { concurrency_limit: limit, latency: Duration::from_millis(latency_ms), ..sim::Config::default() };
    let creds = sim_cfg.clone();
    let sandbox = sim::spawn(listener, sim_cfg).await.context("starting the NetSuite simulator")?;

    let mut cfg = ClientConfig::new(
        creds.account.clone(),
        Auth::Tba {
            consumer_key: Secret::new(creds.consumer_key.clone()),
            consumer_secret: Secret::new(creds.consumer_secret.clone()),
            token_id: Secret::new(creds.token_id.clone()),
            token_secret: Secret::new(creds.token_secret.clone()),
        },
    )
    .with_base_url(sandbox.base_url());
    cfg.concurrency = Concurrency::Fixed(limit);
    cfg.timeout = Duration::from_secs(30);
    let client = NetSuiteClient::new(cfg).context("building the NetSuite client")?;

    // More tasks than permits, so the governor (not the task count) is what bounds concurrency.
    let tasks = (limit as usize * 3).max(limit as usize + 1).min(requests.max(1));
    let next = Arc::new(AtomicUsize::new(0));
    let run = format!("{:08x}", rand::random::<u32>());
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let client = client.clone();
        let next = next.clone();
        let run = run.clone();
        set.spawn(async move {
            let mut samples = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let eid = format!("bench-{run}-{i}");
                let body = serde_json::json!({
                    "companyName": format!("Governance Bench {i}"),
                    "subsidiary": {"id": "1"},
                });
                let t0 = Instant::now();
                let r = client.upsert("customer", &eid, &body).await;
                samples.push(t0.elapsed());
                if let Err(e) = r {
                    errors.push(e.to_string());
                }
            }
            (samples, errors)
        });
    }
    let mut samples = Vec::with_capacity(requests);
    let mut errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (s, e) = joined.context("benchmark task panicked")?;
        samples.extend(s);
        errors.extend(e);
    }
    let wall = started.elapsed();
    let stats = sandbox.stats().await;
    sandbox.shutdown().await;

    samples.sort();
    let failed = errors.len();
    Ok(GovernanceReport {
        limit,
        latency_ms,
        requests,
        tasks,
        succeeded: samples.len().saturating_sub(failed),
        failed,
        simulator_requests: stats.requests,
        simulator_429s: stats.rate_limited,
        records_created: stats.records.get("customer").copied().unwrap_or(0),
        first_error: errors.into_iter().next(),
        wall,
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        max_latency: samples.last().copied().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_bound() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&s, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        let r = GovernanceReport {
            limit: 15,
            latency_ms: 200,
            requests: 150,
            tasks: 45,
            succeeded: 150,
            failed: 0,
            simulator_requests: 150,
            simulator_429s: 0,
            records_created: 150,
            first_error: None,
            wall: Duration::from_secs(2),
            p50: Duration::from_millis(200),
            p99: Duration::from_millis(210),
            max_latency: Duration::from_millis(220),
        };
        assert_eq!(r.bound_rps(), Some(75.0));
        assert_eq!(r.throughput_rps(), 75.0);
        assert_eq!(r.percent_of_bound(), Some(100.0));
        assert!(r.to_string().contains("= 100.0% of the bound"), "{r}");
    }
}
