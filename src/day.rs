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

    /// Sends web-store orders as the store does (signed with [`SHOP_SECRET`]).
    pub async fn shop_orders(&mut self, orders: &[WebOrder]) -> Result<usize> {
        for o in orders {
            self.shop(&o.body, SHOP_SECRET).await?;
        }
        Ok(orders.len())
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

// ---------------------------------------------------------------- web-store orders (order-to-cash)

/// Sandbox test cards (docs/shop-orders.md, the GP-API sandbox's approve list). The store's
/// payment page sends a card to GP-API once and keeps only the `PMT_` token; heartsuite only ever
/// sees the token.
const WEB_APPROVE_CARDS: &[&str] = &["4263970000005262", "5425230000004415", "374101000000608", "6011000000000087"];
/// Declined by the GP-API sandbox (result code 101).
const WEB_DECLINE_CARD: &str = "4000120000001154";
const WEB_FIRST: &[&str] = &["Ann", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon"];
const WEB_LAST: &[&str] = &["Lee", "Okafor", "Martin", "Patel", "Rossi", "Nguyen", "Smith", "Kowalski"];

/// One signed web-store order as the demo sent it (docs/shop-orders.md).
#[derive(Debug, Clone)]
pub struct WebOrder {
    pub id: String,
    /// The exact JSON text sent: a resend is the same bytes with the same event id.
    pub body: String,
    /// (SKU, quantity, unit price), in the order's line order.
    pub lines: Vec<(String, u32, rust_decimal::Decimal)>,
    pub currency: String,
    /// Paid with a card the GP-API sandbox declines.
    pub declines: bool,
}

/// `amount` in minor units of a two-decimal currency (the demo's orders are in USD).
fn cents(amount: rust_decimal::Decimal) -> Result<i64> {
    use rust_decimal::prelude::ToPrimitive;
    (amount * rust_decimal::Decimal::ONE_HUNDRED).round().to_i64().ok_or_else(|| anyhow!("amount {amount} out of range"))
}

/// A NetSuite amount (number or decimal string) in minor units.
fn record_cents(v: &Value, field: &str) -> Result<i64> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(anyhow!("{field}: not an amount: {other}")),
    };
    cents(text.parse().map_err(|e| anyhow!("{field}: {text:?} is not a decimal: {e}"))?)
}

impl WebOrder {
    /// The worth of `quantity` of line `index` (0-based), in minor units.
    pub fn line_minor(&self, index: usize, quantity: u32) -> Result<i64> {
        let (sku, _, price) = self.lines.get(index).ok_or_else(|| anyhow!("order {} has no line {}", self.id, index + 1))?;
        cents(*price * rust_decimal::Decimal::from(quantity)).with_context(|| format!("order {} line {sku}", self.id))
    }

    pub fn total_minor(&self) -> Result<i64> {
        (0..self.lines.len()).map(|i| self.line_minor(i, self.lines[i].1)).sum()
    }
}

/// The orders once the warehouse has done its part.
#[derive(Debug, Clone, Default)]
pub struct Warehouse {
    /// Sales orders found in NetSuite with an approved authorization / on hold after a decline.
    pub authorized: usize,
    pub declined: usize,
    /// Orders with no sales order in NetSuite (still retrying or dead-lettered for another reason).
    pub missing: Vec<String>,
    pub shipments: Vec<Shipment>,
}

/// One item fulfilment the warehouse created.
#[derive(Debug, Clone)]
pub struct Shipment {
    pub order: String,
    pub fulfilment: String,
    pub partial: bool,
    /// The shipped lines at the order's prices, in minor units: what must be captured.
    pub value_minor: i64,
}

impl Sandboxes {
    /// A JSON POST to the GP-API sandbox as the store's payment page makes it; `what` names it in errors.
    async fn gp_post(&self, http: &reqwest::Client, path: &str, bearer: Option<&str>, body: &Value, what: &str) -> Result<Value> {
        let mut req = http.post(format!("{}{path}", self.heartland.gpapi_url())).header("X-GP-Version", "2021-03-22").json(body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send().await.with_context(|| format!("GP-API sandbox {what}"))?.json().await.with_context(|| format!("GP-API sandbox {what}: the answer"))
    }

    /// A GP-API access token, as the store's payment page gets one.
    async fn gp_access_token(&self, http: &reqwest::Client) -> Result<String> {
        let nonce = format!("demo-shop-{}", SystemClock.now_micros());
        let secret = heartsuite_heartland::gpapi::access_token_secret(&nonce, &Secret::new(GP_APP_KEY));
        let body = json!({"app_id": GP_APP_ID, "nonce": nonce, "secret": secret, "grant_type": "client_credentials"});
        let v = self.gp_post(http, "/accesstoken", None, &body, "access token").await?;
        v["token"].as_str().map(String::from).ok_or_else(|| anyhow!("GP-API sandbox access token: no token in {v}"))
    }

    /// The store's payment page: stores the card at GP-API and keeps the `PMT_` token.
    async fn tokenize(&self, http: &reqwest::Client, bearer: &str, card: &str, name: &str) -> Result<String> {
        let body = json!({"card": {"number": card, "expiry_month": "12", "expiry_year": "30"}, "name": name});
        let v = self.gp_post(http, "/payment-methods", Some(bearer), &body, "payment method").await?;
        // The answer masks the card; only the id is kept.
        v["id"].as_str().filter(|id| id.starts_with("PMT_")).map(String::from).ok_or_else(|| anyhow!("GP-API sandbox stored no payment method (status {})", v["status"]))
    }

    /// `n` web-store orders placed on the plan's day, deterministic from its seed: shoppers
    /// (some ordering twice), 1–3 lines of the catalogue's SKUs at their prices, each paid with
    /// a stored card token; every seventh order (the 4th, 11th, …) with a card that declines.
    pub async fn web_orders(&self, plan: &DayPlan, n: usize) -> Result<Vec<WebOrder>> {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut catalogue: Vec<(String, rust_decimal::Decimal)> = self
            .retail_client()?
            .list_items(&heartsuite_heartland::ListQuery::default())
            .await
            .map_err(|e| anyhow!("listing the Retail catalogue: {e}"))?
            .into_iter()
            .filter_map(|it| Some((it.public_id.filter(|s| !s.is_empty())?, it.price.filter(|p| p.is_sign_positive() && !p.is_zero())?.round_dp(2))))
            .collect();
        catalogue.sort();
        if n > 0 && catalogue.is_empty() {
            return Err(anyhow!("the Retail catalogue has no priced items to order"));
        }
        // A different stream from the generator's, so adding orders leaves the POS day unchanged.
        let mut rng = StdRng::seed_from_u64(plan.seed ^ 0x5eb0_0d3e);
        let http = reqwest::Client::new();
        let bearer = self.gp_access_token(&http).await?;
        let shoppers = (n * 2 / 3).max(1);
        let mut orders = Vec::with_capacity(n);
        for i in 0..n {
            let shopper = rng.random_range(0..shoppers);
            let (first, last) = (WEB_FIRST[shopper % WEB_FIRST.len()], WEB_LAST[(shopper / WEB_FIRST.len() + shopper) % WEB_LAST.len()]);
            let email = format!("{}.{}{shopper}@example.com", first.to_lowercase(), last.to_lowercase());
            let mut picks: Vec<usize> = Vec::new();
            let want = rng.random_range(1..=3usize).min(catalogue.len());
            while picks.len() < want {
                let k = rng.random_range(0..catalogue.len());
                if !picks.contains(&k) {
                    picks.push(k);
                }
            }
            let lines: Vec<(String, u32, rust_decimal::Decimal)> =
                picks.iter().map(|&k| (catalogue[k].0.clone(), rng.random_range(1..=3u32), catalogue[k].1)).collect();
            let declines = i % 7 == 3;
            let card = if declines { WEB_DECLINE_CARD } else { WEB_APPROVE_CARDS[i % WEB_APPROVE_CARDS.len()] };
            let token = self.tokenize(&http, &bearer, card, &format!("{first} {last}")).await?;
            let id = format!("W{}", 1001 + i);
            let mut order = WebOrder { id: id.clone(), body: String::new(), lines, currency: "USD".into(), declines };
            let subtotal = format!("{}.{:02}", order.total_minor()? / 100, order.total_minor()? % 100);
            let body = json!({
                "event_id": format!("order-{id}-created"),
                "type": "order.created",
                "id": id,
                // Store hours, 08:00–15:59 in Chicago: the business date is the plan's date.
                "created_at": format!("{}T{:02}:{:02}:00Z", plan.date, 14 + i % 8, (i * 7) % 60),
                "currency": order.currency,
                "customer": {
                    "email": email,
                    "phone": format!("(512) 555-{:04}", 100 + shopper),
                    "first_name": first,
                    "last_name": last,
                    "billing_address": {"line1": format!("{} Main St", 100 + shopper), "city": "Austin", "state": "TX", "zip": "78701", "country": "US"},
                    "shipping_address": {"line1": format!("{} Elm Rd", 10 + shopper), "city": "Austin", "state": "TX", "zip": "78702", "country": "US"}
                },
                "lines": order.lines.iter().map(|(sku, q, p)| json!({"sku": sku, "quantity": q, "unit_price": p.to_string()})).collect::<Vec<_>>(),
                "totals": {"subtotal": subtotal, "shipping": "0.00", "tax": "0.00", "total": subtotal},
                "payment": {"token": token}
            });
            order.body = body.to_string();
            orders.push(order);
        }
        Ok(orders)
    }

    /// The warehouse ships every order whose sales order is pending fulfilment: in full, except
    /// the first with more than one unit, of which one unit of its first line ships (the rest
    /// stays open). Each fulfilment is created through the NetSuite API; the sandbox's
    /// user-event emitter tells the engine.
    pub async fn ship(&self, orders: &[WebOrder]) -> Result<Warehouse> {
        let ns = self.netsuite_client()?;
        let mut w = Warehouse::default();
        let mut partial_done = false;
        for o in orders {
            let eid = format!("hs-so-{}", o.id);
            let Some(so) = ns.get_by_external_id::<Value>("salesOrder", &eid, true).await.map_err(|e| anyhow!("reading sales order {eid}: {e}"))? else {
                w.missing.push(o.id.clone());
                continue;
            };
            match so["custbody_hs_auth_status"].as_str() {
                Some("DECLINED") => w.declined += 1,
                Some("PREAUTHORIZED") => w.authorized += 1,
                _ => {}
            }
            if so["orderStatus"]["id"].as_str() != Some("B") {
                continue;
            }
            let so_id = so["id"].as_str().ok_or_else(|| anyhow!("sales order {eid} has no id"))?;
            let units: u32 = o.lines.iter().map(|l| l.1).sum();
            let (body, partial, value_minor) = if !partial_done && units > 1 {
                partial_done = true;
                let first_line = so["item"]["items"][0]["line"].clone();
                (Some(json!({"item": {"items": [{"orderLine": first_line, "quantity": "1", "itemReceive": true}]}})), true, o.line_minor(0, 1)?)
            } else {
                (None, false, o.total_minor()?)
            };
            let fulfilment = ns
                .transform("salesOrder", so_id, "itemFulfillment", body.as_ref())
                .await
                .map_err(|e| anyhow!("fulfilling sales order {eid}: {e}"))?;
            w.shipments.push(Shipment { order: o.id.clone(), fulfilment, partial, value_minor });
        }
        Ok(w)
    }

    /// What GP-API captured for these orders, read back from GP-API: (captures, total in minor
    /// units). The captures are found through the payments the fulfilment flow applied in
    /// NetSuite (external id `hs-pay-<capture TRN id>`, memo ending `web order <id>`).
    pub async fn captured(&self, orders: &[WebOrder]) -> Result<(usize, i64)> {
        let ns = self.netsuite_client()?;
        let conf = heartsuite_heartland::GpApiConfig::new(GP_APP_ID, Secret::new(GP_APP_KEY)).with_base_url(self.heartland.gpapi_url());
        let gp = heartsuite_heartland::GpApiClient::new(conf).map_err(|e| anyhow!("GP-API client: {e}"))?;
        let (mut n, mut total) = (0, 0);
        for o in orders {
            let sql = format!("SELECT externalid FROM transaction WHERE recordtype = 'customerpayment' AND memo LIKE '%web order {}'", o.id);
            for row in ns.suiteql(&sql, 1000).await.map_err(|e| anyhow!("finding the payments of web order {}: {e}", o.id))? {
                let Some(trn) = row.get("externalid").and_then(Value::as_str).and_then(|e| e.strip_prefix("hs-pay-")) else { continue };
                let t = gp.get_transaction(trn).await.map_err(|e| anyhow!("reading capture {trn} of web order {}: {e}", o.id))?;
                if t.status.as_str() == "CAPTURED" {
                    total += t.amount.map(|m| m.minor).ok_or_else(|| anyhow!("capture {trn} has no amount"))?;
                    n += 1;
                }
            }
        }
        Ok((n, total))
    }

    /// The invoices the fulfilment flow billed for these shipments: (how many exist, their total
    /// in minor units). Each invoice's total is the shipment's capture (docs/shop-orders.md).
    pub async fn invoiced(&self, shipments: &[Shipment]) -> Result<(usize, i64)> {
        let ns = self.netsuite_client()?;
        let (mut n, mut total) = (0, 0);
        for s in shipments {
            let eid = format!("hs-inv-{}", s.fulfilment);
            if let Some(inv) = ns.get_by_external_id::<Value>("invoice", &eid, false).await.map_err(|e| anyhow!("reading invoice {eid}: {e}"))? {
                total += record_cents(&inv["total"], &format!("invoice {eid} total"))?;
                n += 1;
            }
        }
        Ok((n, total))
    }
}
