//! `heartsuite sandbox`: the NetSuite, GP-API and Heartland Retail simulators on fixed ports,
//! with the fixed credentials the documentation uses.

use anyhow::Result;
use clap::Args;
use heartsuite_sandbox::{Options, heartland, netsuite};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct SandboxArgs {
    #[arg(long, default_value = "127.0.0.1:9101")]
    pub netsuite_addr: String,
    #[arg(long, default_value = "127.0.0.1:9102")]
    pub gpapi_addr: String,
    #[arg(long, default_value = "127.0.0.1:9103")]
    pub retail_addr: String,
    /// Added to every NetSuite response (NetSuite is slow; the demo sets it low).
    #[arg(long, default_value_t = 0)]
    pub netsuite_latency_ms: u64,
    /// NetSuite concurrency limit (429 beyond it).
    #[arg(long, default_value_t = 15)]
    pub netsuite_limit: u32,
    /// Generate a business day into the Heartland sandbox at start.
    #[arg(long)]
    pub generate_day: bool,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    #[arg(long, default_value_t = 3000)]
    pub tickets: u32,
    /// Send NetSuite user-event-script events to this heartsuite URL (…/hooks/netsuite).
    #[arg(long)]
    pub emit_netsuite_events_to: Option<String>,
    /// Shared secret for those events.
    #[arg(long, env = "HEARTSUITE_SANDBOX_EVENT_SECRET", default_value = "sandbox-netsuite-hook-secret")]
    pub event_secret: String,
}

pub async fn run(a: SandboxArgs) -> Result<()> {
    let mut ns = netsuite::Config { latency: Duration::from_millis(a.netsuite_latency_ms), concurrency_limit: a.netsuite_limit, ..Default::default() };
    if let Some(url) = &a.emit_netsuite_events_to {
        ns.emit_events_to = Some(netsuite::EventSink::new(url.clone(), a.event_secret.clone()));
    }
    let hl = heartland::Config { seed: a.seed, ..Default::default() };
    let sb = heartsuite_sandbox::start(Options {
        netsuite_addr: a.netsuite_addr.clone(),
        gpapi_addr: a.gpapi_addr.clone(),
        retail_addr: a.retail_addr.clone(),
        netsuite: ns,
        heartland: hl,
    })
    .await?;
    println!("NetSuite sandbox:         {}  (account 1234567_SB1; TBA sandbox-consumer-key / sandbox-token-id)", sb.netsuite.base_url());
    println!("GP-API sandbox:           {}  (app id sandbox-app-id, app key sandbox-app-key)", sb.heartland.gpapi_url());
    println!("Heartland Retail sandbox: {}  (token sandbox-retail-token)", sb.heartland.retail_url());
    if a.generate_day {
        let opts = heartland::DayOptions { seed: a.seed, tickets: a.tickets as usize, ..Default::default() };
        let day = sb.heartland.sandbox().generate_day(&opts)?;
        println!("generated business day: {}", serde_json::to_string(&day.summary)?);
    }
    println!("control APIs: GET /_sandbox/stats on each port; Ctrl-C stops");
    let _ = tokio::signal::ctrl_c().await;
    sb.shutdown().await;
    Ok(())
}
