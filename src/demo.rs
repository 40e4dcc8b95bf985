//! `heartsuite demo`: the product tour on the embedded default. It starts the NetSuite sandbox
//! and the engine (SQLite in a fresh data directory), pushes a seeded batch of signed sample
//! events through the real HTTP ingress — Heartland Retail customers, GP-API captured payments
//! and refunds, with redeliveries, forged signatures, malformed bodies and a card number a
//! careless sender left in a note — lets the built-in flows post them to NetSuite, and prints
//! what happened, in words a finance person can follow. The same summary is written as HTML.

use crate::cli::Global;
use crate::config::{Config, GpApiConfig, NetSuiteConfig, SecretResolver, SourceConfig, SourceKind};
use crate::server::{self, StartOptions};
use anyhow::{Context, Result};
use heartsuite_core::{Clock, Secret, SystemClock};
use heartsuite_engine::ingress;
use heartsuite_store::{DynStore, JobState};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Seed of the generated events: the same seed, the same day.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Heartland Retail customers to sync.
    #[arg(long, default_value_t = 40)]
    pub customers: usize,
    /// GP-API captured sales (a tenth of them are refunded).
    #[arg(long, default_value_t = 150)]
    pub payments: usize,
    /// Latency the NetSuite sandbox adds to each request.
    #[arg(long, default_value_t = 20)]
    pub netsuite_latency_ms: u64,
    /// Where to write the HTML summary (default: the data directory).
    #[arg(long)]
    pub html: Option<PathBuf>,
}

const SHOP_SECRET: &str = "demo-shop-secret";
const RETAIL_TOKEN: &str = "demo-retail-path-token-7f3a9c";
const GP_APP_KEY: &str = "sandbox-app-key";

#[derive(Default, Debug)]
struct Sent {
    accepted: usize,
    duplicates: usize,
    refused: BTreeMap<String, usize>,
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

struct Sender {
    http: reqwest::Client,
    base: String,
    sent: Sent,
}

impl Sender {
    async fn post(&mut self, path: &str, body: &str, headers: &[(&str, String)]) -> Result<()> {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.context("posting a demo webhook")?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        self.sent.record(status, &v);
        Ok(())
    }

    async fn retail(&mut self, body: &Value) -> Result<()> {
        self.post(&format!("/hooks/retail/{RETAIL_TOKEN}"), &body.to_string(), &[]).await
    }

    async fn gpapi(&mut self, body: &Value, key: &str) -> Result<()> {
        let text = body.to_string();
        let sig = ingress::gp_signature(key, text.as_bytes());
        self.post("/hooks/gpapi", &text, &[(ingress::GP_SIGNATURE_HEADER, sig)]).await
    }

    async fn shop(&mut self, text: &str, secret: &str) -> Result<()> {
        let ts = (SystemClock.now_micros() / 1_000_000).to_string();
        let sig = ingress::hmac_signature(secret.as_bytes(), &ts, text.as_bytes());
        self.post("/hooks/shop", text, &[(ingress::TIMESTAMP_HEADER, ts), (ingress::SIGNATURE_HEADER, sig)]).await
    }
}

const FIRST: &[&str] = &["dana", "Luis", "PRIYA", "Tom", "aisha", "Mei", "Jonas", "Fatima", "Olu", "Grace", "Ken", "Sofia"];
const LAST: &[&str] = &["whitfield", "Garcia", "Raman", "O'NEIL", "Bello", "Chen", "Berg", "Haddad", "Adeyemi", "Kim", "Sato", "Rossi"];
const STREETS: &[&str] = &["Main St", "Oak Ave", "Elm Street", "Lakeshore Blvd", "2nd Ave"];
const CITIES: &[(&str, &str)] = &[("Chicago", "Illinois"), ("Austin", "TX"), ("Denver", "colorado"), ("Madison", "WI")];
const BRANDS: &[&str] = &["VISA", "MASTERCARD", "AMEX", "DISCOVER"];

fn customer(rng: &mut StdRng, i: usize) -> Value {
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    let (city, state) = CITIES[rng.random_range(0..CITIES.len())];
    // Messy on purpose: the flow corrects case, spaces, phone formats and state names.
    let email = match i % 4 {
        0 => format!("  {}.{}{}@Example.COM ", first, last, i),
        _ => format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), i),
    };
    let phone = match i % 3 {
        0 => format!("(312) 555-{:04}", 1000 + i),
        1 => format!("312.555.{:04}", 1000 + i),
        _ => format!("+1 312 555 {:04}", 1000 + i),
    };
    json!({
        "id": 5000 + i,
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": phone,
        "address": {"line": format!("{} {}, {}, {} 6060{}", 100 + i, STREETS[i % STREETS.len()], city, state, i % 10),
                    "state": state, "country": if i % 5 == 0 { "United States" } else { "US" }},
        "loyalty_member": if i % 2 == 0 { "yes" } else { "no" },
        "updated_at": format!("2026-11-26T09:{:02}:00Z", i % 60),
    })
}

fn payment(rng: &mut StdRng, i: usize, customers: usize) -> Value {
    let cust = 5000 + rng.random_range(0..customers.max(1));
    let amount: i64 = rng.random_range(500..45_000);
    json!({
        "id": format!("TRN_DEMO{:06}", i),
        "time_created": format!("2026-11-26T{:02}:{:02}:{:02}.000Z", 14 + i % 9, i % 60, (i * 7) % 60),
        "type": "SALE", "status": "CAPTURED", "channel": "CNP",
        "amount": amount.to_string(), "currency": "USD",
        "reference": format!("WEB-{}", 10_000 + i),
        "payment_method": {"result": "00", "entry_mode": "ECOM",
            "card": {"brand": BRANDS[rng.random_range(0..BRANDS.len())], "masked_number_last4": "XXXXXXXXXXXX5262", "authcode": format!("{:06}", rng.random_range(0..999_999))}},
        "customer": {"id": format!("{cust}")},
    })
}

pub async fn run(args: DemoArgs, g: &Global) -> Result<()> {
    let started = Instant::now();
    let data_dir = g.data_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("heartsuite-demo-{}", std::process::id())));
    std::fs::create_dir_all(&data_dir)?;
    let db = data_dir.join("heartsuite.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    // The NetSuite sandbox, with the fixed sandbox credentials.
    let ns_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ns_cfg = heartsuite_sandbox::netsuite::Config { latency: Duration::from_millis(args.netsuite_latency_ms), ..Default::default() };
    let netsuite = heartsuite_sandbox::netsuite::spawn(ns_listener, ns_cfg).await?;

    let mut cfg = Config::default();
    cfg.server.data_dir = data_dir.clone();
    cfg.server.database_url = format!("sqlite://{}", db.display());
    cfg.engine.workers = 15;
    let src = |kind, secrets: Vec<&str>, app_key: Option<&str>, token: Option<&str>| SourceConfig {
        kind,
        secrets: secrets.into_iter().map(String::from).collect(),
        app_key: app_key.map(String::from),
        token: token.map(String::from),
        tolerance_secs: 300,
    };
    cfg.sources.insert("shop".into(), src(SourceKind::Shop, vec![SHOP_SECRET], None, None));
    cfg.sources.insert("gpapi".into(), src(SourceKind::Gpapi, vec![], Some(GP_APP_KEY), None));
    cfg.sources.insert("retail".into(), src(SourceKind::Retail, vec![], None, Some(RETAIL_TOKEN)));
    cfg.netsuite = Some(NetSuiteConfig::sandbox(netsuite.base_url()));
    cfg.gpapi = Some(GpApiConfig { base_url: None, app_id: "sandbox-app-id".into(), app_key: GP_APP_KEY.into() });
    cfg.flows.dir = PathBuf::from("flows");

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets = SecretResolver::new(&cfg);
    let store = crate::cli::open_store(&cfg).await?;
    let (alerts, breakers) = crate::cli::engine_parts(&cfg, clock.clone(), &secrets)?;
    let wired = crate::wiring::build(&cfg, &secrets, clock.clone(), breakers.clone(), Some(store.clone()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let running = server::start(
        listener,
        StartOptions {
            store: store.clone(),
            clock: clock.clone(),
            sources: crate::sources::build(&cfg, &secrets)?,
            router: wired.router.clone(),
            handler: wired.handler.clone(),
            alerts,
            breakers,
            worker: Some(crate::cli::worker_config(&cfg)),
            admin_token: Some(Secret::new("demo-admin")),
            max_body: cfg.server.max_body_bytes,
            max_batch: cfg.engine.max_batch,
        },
    )
    .await?;
    println!("heartsuite demo — seed {}, data in {}", args.seed, data_dir.display());
    println!("  engine   http://{}  (SQLite, WAL, synchronous=FULL)", running.addr);
    println!("  NetSuite sandbox {}  ({} ms latency, 15 concurrent requests)", netsuite.base_url(), args.netsuite_latency_ms);

    // The account's set-up a consultant does once: the item refunds are booked against.
    let ns_client = heartsuite_netsuite::NetSuiteClient::new(
        heartsuite_netsuite::Config::new(
            "1234567_SB1",
            heartsuite_netsuite::Auth::Tba {
                consumer_key: Secret::new("sandbox-consumer-key"),
                consumer_secret: Secret::new("sandbox-consumer-secret"),
                token_id: Secret::new("sandbox-token-id"),
                token_secret: Secret::new("sandbox-token-secret"),
            },
        )
        .with_base_url(netsuite.base_url()),
    )?;
    let refund_item = ns_client
        .upsert("inventoryItem", "hs-item-refund", &json!({"itemId": "REFUND", "displayName": "Customer refund", "basePrice": 0}))
        .await
        .map_err(|e| anyhow::anyhow!("creating the refund item in the NetSuite sandbox: {e}"))?;
    if refund_item != "501" {
        println!("  note: the refund item got id {refund_item}; flows/gpapi_refund_to_credit_memo.toml expects 501");
    }

    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut sender = Sender { http: reqwest::Client::new(), base: format!("http://{}", running.addr), sent: Sent::default() };

    // 1. Customers from the POS, some delivered twice (Retail retries slow receivers).
    let customers: Vec<Value> = (0..args.customers).map(|i| customer(&mut rng, i)).collect();
    for (i, c) in customers.iter().enumerate() {
        sender.retail(c).await?;
        if i % 10 == 3 {
            sender.retail(c).await?;
        }
    }
    // One customer whose e-mail cannot be corrected: it must end in the dead-letter queue.
    sender.retail(&json!({"id": 4999, "first_name": "Bad", "last_name": "Email", "email": "not-an-email", "updated_at": "2026-11-26T08:00:00Z"})).await?;
    wait_idle(&store, "customers → NetSuite").await?;

    // 2. Payments captured through GP-API, and refunds of some of them.
    for i in 0..args.payments {
        let p = payment(&mut rng, i, args.customers);
        sender.gpapi(&p, GP_APP_KEY).await?;
        if i % 12 == 5 {
            sender.gpapi(&p, GP_APP_KEY).await?;
        }
        if i % 10 == 9 {
            let mut r = p.clone();
            r["id"] = json!(format!("TRN_DEMOR{:05}", i));
            r["type"] = json!("REFUND");
            r["amount"] = json!((p["amount"].as_str().unwrap_or("0").parse::<i64>().unwrap_or(0) / 2).to_string());
            sender.gpapi(&r, GP_APP_KEY).await?;
        }
    }
    // 3. What a careless or hostile sender does.
    let forged = payment(&mut rng, 99_999, args.customers);
    sender.gpapi(&forged, "a-guessed-key").await?;
    sender.shop(r#"{"event_id":"web-1","type":"order.created","note":"card 4263 9700 0000 5262 exp 12/30"}"#, SHOP_SECRET).await?;
    sender.shop(r#"{"event_id":"web-2","type":"order.created"}"#, "wrong-secret").await?;
    sender.shop(r#"{"event_id": "web-3", "total": }"#, SHOP_SECRET).await?;
    wait_idle(&store, "payments and refunds → NetSuite").await?;

    let summary = Summary::collect(&store, &netsuite, &sender.sent, running.alerts.sent(), started.elapsed()).await?;
    println!("{}", summary.text());
    let html_path = args.html.clone().unwrap_or_else(|| data_dir.join("demo-report.html"));
    std::fs::write(&html_path, summary.html())?;
    println!("The same summary as a page: {}", html_path.display());
    running.shutdown().await;
    netsuite.shutdown().await;
    Ok(())
}

/// Waits until no job is pending, running or retrying soon; shows a progress bar on a terminal.
async fn wait_idle(store: &DynStore, label: &str) -> Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("  {msg:32} [{bar:30}] {pos}/{len} jobs").unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message(label.to_string());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let counts: BTreeMap<JobState, i64> = store.job_counts().await?.into_iter().collect();
        // A job waiting minutes for its next retry (a dependency not there yet, a parked
        // circuit) is reported, not waited for.
        let soon = SystemClock.now_micros() + 3_000_000;
        let retrying_soon = store.jobs(Some(JobState::Retrying), 10_000).await?.iter().filter(|j| j.run_at <= soon).count() as i64;
        let open = counts.get(&JobState::Pending).copied().unwrap_or(0)
            + counts.get(&JobState::Running).copied().unwrap_or(0)
            + retrying_soon;
        let total: i64 = counts.values().sum();
        bar.set_length(total as u64);
        bar.set_position((total - open) as u64);
        if open == 0 || Instant::now() > deadline {
            bar.finish_and_clear();
            if open > 0 {
                println!("  {label}: {open} job(s) still open after 5 minutes (see `heartsuite status`)");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Summary {
    sent_accepted: usize,
    sent_duplicates: usize,
    refused: BTreeMap<String, usize>,
    jobs: BTreeMap<JobState, i64>,
    records: BTreeMap<String, u64>,
    ns_requests: u64,
    ns_429: u64,
    dead: Vec<String>,
    waiting: Vec<String>,
    alerts: Vec<String>,
    audit: String,
    masked_note: Option<String>,
    elapsed: Duration,
}

impl Summary {
    async fn collect(
        store: &DynStore,
        ns: &heartsuite_sandbox::netsuite::SandboxHandle,
        sent: &Sent,
        alerts: Vec<String>,
        elapsed: Duration,
    ) -> Result<Self> {
        let stats = ns.stats().await;
        let seeded = ["account", "subsidiary", "location", "paymentMethod", "currency", "inventoryItem"];
        let records = stats.records.into_iter().filter(|(k, n)| *n > 0 && !seeded.contains(&k.as_str())).collect();
        let dead = store
            .jobs(Some(JobState::Dead), 20)
            .await?
            .into_iter()
            .map(|j| format!("job {} ({}): {}", j.id, j.flow, j.last_error.map(|e| e.to_string()).unwrap_or_default()))
            .collect();
        let waiting = store
            .jobs(Some(JobState::Retrying), 20)
            .await?
            .into_iter()
            .map(|j| format!("job {} ({}), attempt {}: {}", j.id, j.flow, j.attempts, j.last_error.map(|e| e.to_string()).unwrap_or_default()))
            .collect();
        let report = heartsuite_engine::admin::audit_verify(store).await?;
        let audit = match report.first_break {
            None => format!("intact ({} entries)", report.entries),
            Some(b) => format!("BROKEN at entry {}: {}", b.seq, b.reason),
        };
        // The shop order with the card number, to show what was stored.
        let masked_note = store.event_by_key("shop", "web-1").await?.and_then(|e| e.payload["note"].as_str().map(String::from));
        Ok(Self {
            sent_accepted: sent.accepted,
            sent_duplicates: sent.duplicates,
            refused: sent.refused.clone(),
            jobs: store.job_counts().await?.into_iter().collect(),
            records,
            ns_requests: stats.requests,
            ns_429: stats.rate_limited,
            dead,
            waiting,
            alerts,
            audit,
            masked_note,
            elapsed,
        })
    }

    fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\nWhat happened ({:.1} s)", self.elapsed.as_secs_f64());
        let _ = writeln!(s, "  Webhooks accepted and stored:        {}", self.sent_accepted);
        let _ = writeln!(s, "  Redeliveries recognised (no effect): {}", self.sent_duplicates);
        for (why, n) in &self.refused {
            let _ = writeln!(s, "  Refused ({why}):{:>width$}", n, width = 22usize.saturating_sub(why.len()));
        }
        if let Some(n) = &self.masked_note {
            let _ = writeln!(s, "  A card number sent in a note was stored as: \"{n}\"");
        }
        let _ = writeln!(s, "\n  Jobs:");
        for (st, n) in &self.jobs {
            let _ = writeln!(s, "    {:<10} {n}", st.as_str());
        }
        let _ = writeln!(s, "\n  Records in NetSuite (sandbox), by type:");
        for (t, n) in &self.records {
            let _ = writeln!(s, "    {t:<18} {n}");
        }
        let _ = writeln!(s, "  NetSuite requests spent: {} ({} answered 429)", self.ns_requests, self.ns_429);
        if !self.waiting.is_empty() {
            let _ = writeln!(s, "\n  Waiting to retry (they run on their own when the cause clears):");
            for w in &self.waiting {
                let _ = writeln!(s, "    {w}");
            }
        }
        let _ = writeln!(s, "\n  Dead-lettered (kept until someone acts; `heartsuite dlq list`):");
        if self.dead.is_empty() {
            let _ = writeln!(s, "    none");
        }
        for d in &self.dead {
            let _ = writeln!(s, "    {d}");
        }
        let _ = writeln!(s, "\n  Alerts sent: {}", self.alerts.len());
        for a in &self.alerts {
            let _ = writeln!(s, "    {a}");
        }
        let _ = writeln!(s, "  Audit chain: {}", self.audit);
        s
    }

    fn html(&self) -> String {
        fn esc(s: &str) -> String {
            s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
        }
        let mut h = String::from("<!doctype html><meta charset=utf-8><title>heartsuite demo</title>");
        h.push_str("<style>body{font:14px system-ui;margin:2em;max-width:60em}td,th{padding:2px 12px;text-align:left}</style>");
        let _ = write!(h, "<h1>heartsuite demo</h1><p>Run time {:.1} s</p>", self.elapsed.as_secs_f64());
        let _ = write!(h, "<h2>Webhooks</h2><table><tr><td>accepted</td><td>{}</td></tr><tr><td>redeliveries (no effect)</td><td>{}</td></tr>", self.sent_accepted, self.sent_duplicates);
        for (why, n) in &self.refused {
            let _ = write!(h, "<tr><td>refused: {}</td><td>{n}</td></tr>", esc(why));
        }
        h.push_str("</table><h2>Jobs</h2><table>");
        for (st, n) in &self.jobs {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", st.as_str());
        }
        h.push_str("</table><h2>Records created in NetSuite</h2><table>");
        for (t, n) in &self.records {
            let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", esc(t));
        }
        let _ = write!(h, "</table><p>NetSuite requests spent: {} ({} answered 429)</p><h2>Dead-lettered</h2><ul>", self.ns_requests, self.ns_429);
        for d in &self.dead {
            let _ = write!(h, "<li>{}</li>", esc(d));
        }
        let _ = write!(h, "</ul><p>Audit chain: {}</p>", esc(&self.audit));
        h
    }
}
