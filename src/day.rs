//! A generated business day run through the three sandboxes and the engine. The demo's tour,
//! `heartsuite bench day` and the soak test all use it, so they exercise the same path a
//! merchant's day takes: Retail webhooks and signed shop orders into the real HTTP ingress, the
//! deposit poller against GP-API, NetSuite's events back into the engine.

use crate::config::{Config, GpApiConfig, NetSuiteConfig, RetailConfig, SourceConfig, SourceKind};
use anyhow::{Context, Result, anyhow};
use heartsuite_core::{Clock, Secret, SystemClock};
use heartsuite_engine::ingress;
use heartsuite_sandbox::heartland::{DayOptions, GeneratedDay};
use heartsuite_store::{DynStore, JobState};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

pub const SHOP_SECRET: &str = "demo-shop-secret";
pub const NETSUITE_EVENT_SECRET: &str = "demo-netsuite-event-secret";
/// The sandbox's fixed credentials (crates/sandbox-heartland `Config::default`).
pub const GP_APP_ID: &str = "sandbox-app-id";
pub const GP_APP_KEY: &str = "sandbox-app-key";
pub const RETAIL_API_TOKEN: &str = "sandbox-retail-token";
/// The secret part of the engine's Retail webhook URL (Retail signs nothing).
pub const RETAIL_PATH_TOKEN: &str = "demo-retail-path-token-7f3a9c";

/// What kind of day to run.
#[derive(Debug, Clone)]
pub struct DayPlan {
    pub seed: u64,
    pub date: jiff::civil::Date,
    pub tickets: usize,
    pub netsuite_latency: Duration,
    pub netsuite_concurrency: u32,
    pub include_cad: bool,
}

impl DayPlan {
    pub fn generator_options(&self) -> DayOptions {
        DayOptions {
            seed: self.seed,
            date: self.date,
            tickets: self.tickets,
            // Web orders arrive as signed shop orders (order-to-cash), not as bare GP-API
            // authorizations with no order behind them.
            web_orders: 0,
            include_cad: self.include_cad,
            // The engine is given the webhooks after NetSuite's catalogue exists (see `deliver`).
            emit_webhooks: false,
            ..DayOptions::default()
        }
    }
}

/// The NetSuite and Heartland sandboxes, wired to send their events to `engine`.
pub struct Sandboxes {
    pub netsuite: heartsuite_sandbox::netsuite::SandboxHandle,
    pub heartland: heartsuite_sandbox::heartland::SandboxHandle,
    pub engine: SocketAddr,
}

impl Sandboxes {
    /// Starts both on random ports. `engine` is where the engine will listen (bind it first).
    pub async fn start(plan: &DayPlan, engine: SocketAddr) -> Result<Self> {
        use heartsuite_sandbox::{heartland, netsuite};
        let ns_cfg = netsuite::Config {
            latency: plan.netsuite_latency,
            concurrency_limit: plan.netsuite_concurrency,
            // Only what a flow waits for: the script is deployed on fulfilments (and items).
            emit_events_to: Some(netsuite::EventSink {
                url: format!("http://{engine}/hooks/netsuite"),
                secret: NETSUITE_EVENT_SECRET.into(),
                // (Item events would push NetSuite's stock to the stores; the demo's NetSuite
                // catalogue has no stock, so they are left out here.)
                record_types: vec!["itemFulfillment".into()],
            }),
            ..Default::default()
        };
        let netsuite = netsuite::spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await?, ns_cfg).await?;
        let hl_cfg = heartland::Config { seed: plan.seed, webhook_backoff: Duration::from_millis(100), ..Default::default() };
        let heartland = heartland::spawn(
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            tokio::net::TcpListener::bind("127.0.0.1:0").await?,
            hl_cfg,
        )
        .await?;
        Ok(Self { netsuite, heartland, engine })
    }

    /// The engine's configuration for these sandboxes; deposits polled every second.
    pub fn engine_config(&self, data_dir: &Path, database_url: &str, concurrency: u32) -> Config {
        let mut cfg = Config::default();
        cfg.server.listen = self.engine.to_string();
        cfg.server.data_dir = data_dir.to_path_buf();
        cfg.server.database_url = database_url.to_string();
        // Twice the NetSuite permits: while some workers wait on NetSuite, others fetch from
        // Retail and map, so the permits stay busy (the governor still bounds NetSuite).
        cfg.engine.workers = (concurrency as usize * 2).max(4);
        let src = |kind, secrets: Vec<&str>, app_key: Option<&str>, token: Option<&str>| SourceConfig {
            kind,
            secrets: secrets.into_iter().map(String::from).collect(),
            app_key: app_key.map(String::from),
            token: token.map(String::from),
            tolerance_secs: 300,
        };
        cfg.sources.insert("shop".into(), src(SourceKind::Shop, vec![SHOP_SECRET], None, None));
        cfg.sources.insert("gpapi".into(), src(SourceKind::Gpapi, vec![], Some(GP_APP_KEY), None));
        cfg.sources.insert("retail".into(), src(SourceKind::Retail, vec![], None, Some(RETAIL_PATH_TOKEN)));
        cfg.sources.insert("netsuite".into(), src(SourceKind::Netsuite, vec![NETSUITE_EVENT_SECRET], None, None));
        let mut ns = NetSuiteConfig::sandbox(self.netsuite.base_url());
        ns.concurrency = concurrency;
        cfg.netsuite = Some(ns);
        cfg.gpapi = Some(GpApiConfig { base_url: Some(self.heartland.gpapi_url()), app_id: GP_APP_ID.into(), app_key: GP_APP_KEY.into() });
        cfg.retail = Some(RetailConfig { base_url: self.heartland.retail_url(), token: RETAIL_API_TOKEN.into() });
        cfg.pollers.gpapi_deposits_every_secs = 1;
        cfg.pollers.netsuite_every_secs = 0;
        cfg
    }

    pub fn netsuite_client(&self) -> Result<heartsuite_netsuite::NetSuiteClient> {
        let auth = heartsuite_netsuite::Auth::Tba {
            consumer_key: Secret::new("sandbox-consumer-key"),
            consumer_secret: Secret::new("sandbox-consumer-secret"),
            token_id: Secret::new("sandbox-token-id"),
            token_secret: Secret::new("sandbox-token-secret"),
        };
        heartsuite_netsuite::NetSuiteClient::new(heartsuite_netsuite::Config::new("1234567_SB1", auth).with_base_url(self.netsuite.base_url()))
            .map_err(|e| anyhow!("NetSuite client: {e}"))
    }

    pub fn retail_client(&self) -> Result<heartsuite_heartland::RetailClient> {
        let conf = heartsuite_heartland::RetailConfig::new(self.heartland.retail_url(), Secret::new(RETAIL_API_TOKEN));
        heartsuite_heartland::RetailClient::new(conf).map_err(|e| anyhow!("Retail client: {e}"))
    }

    /// Generates the day inside the Heartland sandbox (tickets, card payments, returns, the
    /// batch close and the next day's funded deposits).
    pub fn generate(&self, plan: &DayPlan) -> Result<GeneratedDay> {
        self.heartland.sandbox().generate_day(&plan.generator_options()).map_err(|e| anyhow!("generating the business day: {e}"))
    }

    /// The set-up a consultant does once, before the first sync: the catalogue both systems
    /// share (NetSuite is the item master: one inventory item per Retail SKU, same price), the
    /// items refunds, POS tax and POS discounts are booked against, and the walk-in customer.
    /// Returns the number of catalogue items.
    pub async fn mirror_catalogue(&self) -> Result<usize> {
        let ns = self.netsuite_client()?;
        let refund = ns
            .upsert("inventoryItem", "hs-item-refund", &json!({"itemId": "REFUND", "displayName": "Customer refund", "basePrice": 0}))
            .await
            .map_err(|e| anyhow!("creating the refund item in the NetSuite sandbox: {e}"))?;
        if refund != "501" {
            println!("  note: the refund item got id {refund}; flows/gpapi_refund_to_credit_memo.toml expects 501");
        }
        // What the POS flow books tax, discounts and anonymous sales against
        // (flows/retail_ticket_to_cash_sale.toml).
        for (sku, name) in [("POS-SALES-TAX", "Sales tax collected at the POS"), ("POS-DISCOUNT", "POS discount")] {
            ns.upsert("inventoryItem", &format!("hs-item-{sku}"), &json!({"itemId": sku, "displayName": name, "basePrice": 0}))
                .await
                .map_err(|e| anyhow!("creating item {sku} in NetSuite: {e}"))?;
        }
        ns.upsert("customer", "hs-walk-in", &json!({"companyName": "Walk-in customer", "isPerson": false, "subsidiary": {"id": "1"}}))
            .await
            .map_err(|e| anyhow!("creating the walk-in customer in NetSuite: {e}"))?;
        let items = self
            .retail_client()?
            .list_items(&heartsuite_heartland::ListQuery::default())
            .await
            .map_err(|e| anyhow!("listing the Retail catalogue: {e}"))?;
        let mut n = 0;
        for it in &items {
            let Some(sku) = it.public_id.as_deref().filter(|s| !s.is_empty()) else { continue };
            let mut body = json!({"itemId": sku, "displayName": it.description.clone().unwrap_or_default()});
            if let Some(p) = it.price {
                body["basePrice"] = json!(p);
            }
            if let Some(c) = it.cost {
                body["cost"] = json!(c);
            }
            ns.upsert("inventoryItem", &format!("hs-item-{sku}"), &body).await.map_err(|e| anyhow!("creating item {sku} in NetSuite: {e}"))?;
            n += 1;
        }
        Ok(n)
    }
}

/// What the senders saw from the engine's ingress.
#[derive(Default, Debug, Clone)]
pub struct Sent {
    pub accepted: usize,
    pub duplicates: usize,
    pub refused: BTreeMap<String, usize>,
}

impl Sent {
    fn record(&mut self, status: u16, body: &Value) {
        match (status, body["status"].as_str()) {
            (200, Some("accepted")) => self.accepted += 1,
            (200, Some("duplicate")) => self.duplicates += 1,
            _ => *self.refused.entry(format!("{status} {}", body["error"]["code"].as_str().unwrap_or("?"))).or_default() += 1,
        }
    }
}

/// Posts webhooks to the engine the way each source does (path token, X-GP-Signature, HMAC).
pub struct Sender {
    http: reqwest::Client,
    base: String,
    pub sent: Sent,
}

impl Sender {
    pub fn new(engine: SocketAddr) -> Self {
        Self { http: reqwest::Client::new(), base: format!("http://{engine}"), sent: Sent::default() }
    }

    async fn post(&mut self, path: &str, body: &str, headers: &[(&str, String)]) -> Result<()> {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.context("posting a webhook to the engine")?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        self.sent.record(status, &v);
        Ok(())
    }

    pub async fn retail(&mut self, body: &Value) -> Result<()> {
        self.post(&format!("/hooks/retail/{RETAIL_PATH_TOKEN}"), &body.to_string(), &[]).await
    }

    pub async fn gpapi(&mut self, body: &Value, key: &str) -> Result<()> {
        let text = body.to_string();
        let sig = ingress::gp_signature(key, text.as_bytes());
        self.post("/hooks/gpapi", &text, &[(ingress::GP_SIGNATURE_HEADER, sig)]).await
    }

    pub async fn shop(&mut self, text: &str, secret: &str) -> Result<()> {
        let ts = (SystemClock.now_micros() / 1_000_000).to_string();
        let sig = ingress::hmac_signature(secret.as_bytes(), &ts, text.as_bytes());
        self.post("/hooks/shop", text, &[(ingress::TIMESTAMP_HEADER, ts), (ingress::SIGNATURE_HEADER, sig)]).await
    }

    /// Delivers what the day's systems would have sent, in order: Retail's webhooks (customers,
    /// items, tickets, returns) and GP-API's status notifications.
    pub async fn deliver(&mut self, day: &GeneratedDay) -> Result<usize> {
        self.deliver_where(day, |_| true).await
    }

    /// Delivers the day's webhooks of one phase: the master data (customers, items) or the
    /// sales (`sales_transaction_completed`: tickets and returns).
    pub async fn deliver_phase(&mut self, day: &GeneratedDay, sales: bool) -> Result<usize> {
        self.deliver_where(day, |w| (w.event == "sales_transaction_completed") == sales).await
    }

    async fn deliver_where(&mut self, day: &GeneratedDay, keep: impl Fn(&heartsuite_sandbox::heartland::WebhookPayload) -> bool) -> Result<usize> {
        let mut n = 0;
        for w in day.webhooks.iter().filter(|w| keep(w)) {
            if w.event == "status_url" {
                self.gpapi(&w.body, GP_APP_KEY).await?;
            } else {
                self.retail(&w.body).await?;
            }
            n += 1;
        }
        Ok(n)
    }
}

/// Counts of jobs by state, and how many are still open (pending, running, or retrying within
/// `soon` — a job waiting minutes for a dependency is reported rather than waited for).
pub async fn open_jobs(store: &DynStore, soon: Duration) -> Result<(BTreeMap<JobState, i64>, i64)> {
    let counts: BTreeMap<JobState, i64> = store.job_counts().await?.into_iter().collect();
    let horizon = SystemClock.now_micros() + soon.as_micros() as i64;
    let retrying_soon = store.jobs(Some(JobState::Retrying), 100_000).await?.iter().filter(|j| j.run_at <= horizon).count() as i64;
    let open = counts.get(&JobState::Pending).copied().unwrap_or(0) + counts.get(&JobState::Running).copied().unwrap_or(0) + retrying_soon;
    Ok((counts, open))
}

/// Waits until no job is open (see [`open_jobs`]) and `settle` has passed with none; shows a
/// progress bar on a terminal. `settle` lets events that arrive by poll or by a NetSuite event
/// (deposits, fulfilments) turn into jobs before the wait ends.
pub async fn wait_idle(store: &DynStore, label: &str, settle: Duration, limit: Duration) -> Result<bool> {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("  {msg:36} [{bar:30}] {pos}/{len} jobs").unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message(label.to_string());
    let started = Instant::now();
    let mut idle_since: Option<Instant> = None;
    loop {
        let (counts, open) = open_jobs(store, Duration::from_secs(3)).await?;
        let total: i64 = counts.values().sum();
        bar.set_length(total as u64);
        bar.set_position((total - open) as u64);
        if open == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= settle {
                bar.finish_and_clear();
                return Ok(true);
            }
        } else {
            idle_since = None;
        }
        if started.elapsed() > limit {
            bar.finish_and_clear();
            println!("  {label}: {open} job(s) still open after {} s (see `heartsuite status`)", limit.as_secs());
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The engine in this process: HTTP ingress, workers and pollers, as `heartsuite serve` runs them.
pub struct Engine {
    pub running: crate::server::Running,
    pub store: DynStore,
    pub router: std::sync::Arc<dyn crate::server::FlowRouter>,
    pub connectors: std::sync::Arc<crate::connectors::Connectors>,
    pollers: Vec<tokio::task::JoinHandle<()>>,
}

impl Engine {
    pub async fn start(cfg: &Config, listener: tokio::net::TcpListener, admin_token: &str) -> Result<Self> {
        let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
        let secrets = crate::config::SecretResolver::new(cfg);
        let store = crate::cli::open_store(cfg).await?;
        let (alerts, breakers) = crate::cli::engine_parts(cfg, clock.clone(), &secrets)?;
        let wired = crate::wiring::build(cfg, &secrets, clock.clone(), breakers.clone(), Some(store.clone()))?;
        let running = crate::server::start(
            listener,
            crate::server::StartOptions {
                store: store.clone(),
                clock: clock.clone(),
                sources: crate::sources::build(cfg, &secrets)?,
                router: wired.router.clone(),
                handler: wired.handler.clone(),
                alerts,
                breakers,
                worker: Some(crate::cli::worker_config(cfg)),
                admin_token: Some(Secret::new(admin_token)),
                max_body: cfg.server.max_body_bytes,
                max_batch: cfg.engine.max_batch,
            },
        )
        .await?;
        let pollers = crate::pollers::spawn(&cfg.pollers, store.clone(), wired.connectors.clone(), wired.router.clone(), clock, running.token());
        Ok(Self { running, store, router: wired.router, connectors: wired.connectors, pollers })
    }

    /// One deposit poll now (as the poller does on its interval); returns the new deposits.
    pub async fn poll_deposits_now(&self) -> Result<usize> {
        let gp = self.connectors.gpapi.as_deref().ok_or_else(|| anyhow!("no [gpapi] configured"))?;
        crate::pollers::poll_gp_deposits_once(&self.store, gp, self.router.as_ref(), &SystemClock).await.map_err(|f| anyhow!("deposit poll: {f}"))
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
        for p in self.pollers {
            let _ = p.await;
        }
    }
}
