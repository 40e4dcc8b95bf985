//! `heartsuite demo`: the product tour on the embedded default. It starts the NetSuite and
//! Heartland sandboxes and the engine (SQLite in a fresh data directory), generates a business
//! day from a fixed seed inside the Heartland sandbox (stores, customers, POS tickets paid by
//! card and cash, declines, returns, the batch close and the next day's funded deposits), sets up
//! the NetSuite catalogue, delivers the day's webhooks through the real HTTP ingress, lets the
//! deposit poller and every built-in flow run, delivers the whole day a second time to show that
//! nothing posts twice, and prints what happened in words a finance person can follow. A careless
//! or hostile sender is played too (a forged signature, a malformed body, a card number in a
//! note). The same summary is written as HTML.

use crate::cli::Global;
use crate::day::{self, DayPlan, Engine, Sandboxes, Sender};
use anyhow::Result;
use heartsuite_sandbox::heartland::DaySummary;
use heartsuite_store::{DynStore, JobState};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Seed of the generated day: the same seed, the same day.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// POS tickets across all stores (about 3 % are later returned).
    #[arg(long, default_value_t = 300)]
    pub tickets: usize,
    /// Latency the NetSuite sandbox adds to each request.
    #[arg(long, default_value_t = 20)]
    pub netsuite_latency_ms: u64,
    /// Web-store orders placed that day (every seventh is paid with a card that declines).
    #[arg(long, default_value_t = 12)]
    pub orders: usize,
    /// Where to write the HTML summary (default: the data directory).
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// The NetSuite record types a merchant's day creates (the rest are the account's set-up).
const POSTED: &[&str] = &[
    "customer", "cashSale", "cashRefund", "customerPayment", "creditMemo", "customerRefund", "salesOrder", "itemFulfillment",
    "invoice", "deposit", "journalEntry",
];

pub async fn run(args: DemoArgs, g: &Global) -> Result<()> {
    let started = Instant::now();
    let data_dir = g.data_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("heartsuite-demo-{}", std::process::id())));
    std::fs::create_dir_all(&data_dir)?;
    let db = data_dir.join("heartsuite.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let plan = DayPlan {
        seed: args.seed,
        date: jiff::civil::date(2026, 11, 26),
        tickets: args.tickets,
        netsuite_latency: Duration::from_millis(args.netsuite_latency_ms),
        netsuite_concurrency: 15,
        include_cad: true,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandboxes = Sandboxes::start(&plan, listener.local_addr()?).await?;
    let mut cfg = sandboxes.engine_config(&data_dir, &format!("sqlite://{}", db.display()), 15);
    cfg.flows.dir = PathBuf::from("flows");
    let engine = Engine::start(&cfg, listener, "demo-admin").await?;
    let store = engine.store.clone();
    println!("heartsuite demo — seed {}, business day {}, data in {}", args.seed, plan.date, data_dir.display());
    println!("  engine            http://{}  (SQLite, WAL, synchronous=FULL)", engine.running.addr);
    println!("  NetSuite sandbox  {}  ({} ms latency, 15 concurrent requests)", sandboxes.netsuite.base_url(), args.netsuite_latency_ms);
    println!("  Heartland sandbox GP-API {}  Retail {}", sandboxes.heartland.gpapi_url(), sandboxes.heartland.retail_url());

    // The day happens in Heartland first; NetSuite's catalogue mirrors the stores' items.
    let generated = sandboxes.generate(&plan)?;
    let items = sandboxes.mirror_catalogue().await?;
    println!("  set-up: {items} items in the NetSuite catalogue, the refund item, the webhook receivers");

    let mut sender = Sender::new(engine.running.addr);
    // Master data first (the initial sync a merchant runs once), then the day's sales.
    let mut delivered = sender.deliver_phase(&generated, false).await?;
    day::wait_idle(&store, "customers → NetSuite", Duration::from_secs(1), Duration::from_secs(300)).await?;
    delivered += sender.deliver_phase(&generated, true).await?;
    // What a careless or hostile sender does.
    let forged = json!({"id": "TRN_FORGED", "type": "SALE", "status": "CAPTURED", "amount": "100", "currency": "USD"});
    sender.gpapi(&forged, "a-guessed-key").await?;
    sender.shop(r#"{"event_id":"web-1","type":"note.added","note":"card 4263 9700 0000 5262 exp 12/30"}"#, day::SHOP_SECRET).await?;
    sender.shop(r#"{"event_id":"web-2","type":"order.created"}"#, "wrong-secret").await?;
    sender.shop(r#"{"event_id": "web-3", "total": }"#, day::SHOP_SECRET).await?;
    // Tickets, returns and customers post first; the deposit poller then finds the funded
    // deposits (a few seconds of quiet lets it run).
    day::wait_idle(&store, "tickets, returns, deposits → NetSuite", Duration::from_secs(3), Duration::from_secs(300)).await?;

    // The web store's day (order-to-cash): orders authorize and become sales orders; then the
    // warehouse ships them in NetSuite and each fulfilment captures, invoices and applies.
    let orders = sandboxes.web_orders(&plan, args.orders).await?;
    sender.shop_orders(&orders).await?;
    day::wait_idle(&store, "web orders → sales orders", Duration::from_secs(1), Duration::from_secs(300)).await?;
    let warehouse = sandboxes.ship(&orders).await?;
    // The fulfilment events come from NetSuite's emitter, so the wait settles a few seconds.
    day::wait_idle(&store, "shipments → captures, invoices", Duration::from_secs(3), Duration::from_secs(300)).await?;
    let invoiced = sandboxes.invoiced(&warehouse.shipments).await?;
    let captured = sandboxes.captured(&orders).await?;
    let web = WebTour::new(&orders, warehouse, invoiced, captured);
    let first = sandboxes.netsuite.stats().await;
    let first_records = posted(&first.records);

    // The same day again: every webhook and web order redelivered.
    let before = sender.sent.clone();
    sender.deliver(&generated).await?;
    let resent_orders = sender.shop_orders(&orders).await?;
    day::wait_idle(&store, "the same day, redelivered", Duration::from_secs(2), Duration::from_secs(120)).await?;
    let second = sandboxes.netsuite.stats().await;
    let redelivery = Redelivery {
        sent: delivered + resent_orders,
        recognised: sender.sent.duplicates - before.duplicates,
        new_records: posted(&second.records).values().sum::<u64>() as i64 - first_records.values().sum::<u64>() as i64,
    };

    let summary = Summary::collect(&store, &generated.summary, web, &second, &sender.sent, redelivery, engine.running.alerts.sent(), started.elapsed()).await?;
    println!("{}", summary.text());
    let html_path = args.html.clone().unwrap_or_else(|| data_dir.join("demo-report.html"));
    std::fs::write(&html_path, summary.html())?;
    println!("The same summary as a page: {}", html_path.display());
    engine.shutdown().await;
    sandboxes.netsuite.shutdown().await;
    sandboxes.heartland.shutdown().await;
    Ok(())
}

fn posted(records: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    records.iter().filter(|(k, n)| **n > 0 && POSTED.contains(&k.as_str())).map(|(k, n)| (k.clone(), *n)).collect()
}

/// Running the same day twice must create nothing new.
struct Redelivery {
    sent: usize,
    recognised: usize,
    new_records: i64,
}

fn money(minor: i64, currency: &str) -> String {
    match heartsuite_core::money::parse_currency(currency) {
        Ok(c) => heartsuite_core::Money::new(minor, c).to_string(),
        Err(_) => format!("{minor} {currency} (minor units)"),
    }
}

/// The web store's orders through order-to-cash, as found in NetSuite afterwards.
struct WebTour {
    placed: usize,
    paid_with_declining_card: usize,
    warehouse: day::Warehouse,
    /// Invoices found for the shipments, and their total (= the captures) in minor units.
    invoices: usize,
    invoiced_minor: i64,
    /// Captures read back from GP-API, and their total in minor units.
    captures: usize,
    captured_minor: i64,
    shipped_minor: i64,
    currency: String,
}

impl WebTour {
    fn new(
        orders: &[day::WebOrder],
        warehouse: day::Warehouse,
        (invoices, invoiced_minor): (usize, i64),
        (captures, captured_minor): (usize, i64),
    ) -> Self {
        Self {
            placed: orders.len(),
            paid_with_declining_card: orders.iter().filter(|o| o.declines).count(),
            shipped_minor: warehouse.shipments.iter().map(|s| s.value_minor).sum(),
            warehouse,
            invoices,
            invoiced_minor,
            captures,
            captured_minor,
            currency: orders.first().map(|o| o.currency.clone()).unwrap_or_else(|| "USD".into()),
        }
    }

    fn rows(&self) -> Vec<(String, String)> {
        let w = &self.warehouse;
        let partial = w.shipments.iter().filter(|s| s.partial).count();
        let mut rows = vec![
            ("Web orders placed".to_string(), format!("{} ({} paid with a card that declines)", self.placed, self.paid_with_declining_card)),
            ("Web orders authorized".into(), format!("{} (sales order pending fulfilment)", w.authorized)),
            (
                "Web orders declined".into(),
                format!("{} (sales order on hold; dead-lettered by design so someone calls the customer)", w.declined),
            ),
            ("Web orders shipped".into(), format!("{} ({} in full, {partial} in part)", w.shipments.len(), w.shipments.len() - partial)),
            (
                format!("Web orders captured {}", self.currency),
                format!(
                    "{} in {} GP-API captures; invoiced {} on {} invoices; the shipped lines are worth {}",
                    money(self.captured_minor, &self.currency),
                    self.captures,
                    money(self.invoiced_minor, &self.currency),
                    self.invoices,
                    money(self.shipped_minor, &self.currency)
                ),
            ),
        ];
        if !w.missing.is_empty() {
            rows.push(("Web orders with no sales order".into(), w.missing.join(", ")));
        }
        rows
    }
}

struct Summary {
    day: DaySummary,
    web: WebTour,
    sent: day::Sent,
    redelivery: Redelivery,
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
        day: &DaySummary,
        web: WebTour,
        stats: &heartsuite_sandbox::netsuite::Stats,
        sent: &day::Sent,
        redelivery: Redelivery,
        alerts: Vec<String>,
        elapsed: Duration,
    ) -> Result<Self> {
        let describe = |j: heartsuite_store::Job| {
            format!("job {} ({}), attempt {}: {}", j.id, j.flow, j.attempts, j.last_error.map(|e| e.to_string()).unwrap_or_default())
        };
        let dead = store.jobs(Some(JobState::Dead), 30).await?.into_iter().map(describe).collect();
        let waiting = store.jobs(Some(JobState::Retrying), 30).await?.into_iter().map(describe).collect();
        let report = heartsuite_engine::admin::audit_verify(store).await?;
        let audit = match report.first_break {
            None => format!("intact ({} entries)", report.entries),
            Some(b) => format!("BROKEN at entry {}: {}", b.seq, b.reason),
        };
        // The shop note with the card number, to show what was stored.
        let masked_note = store.event_by_key("shop", "web-1").await?.and_then(|e| e.payload["note"].as_str().map(String::from));
        Ok(Self {
            day: day.clone(),
            web,
            sent: sent.clone(),
            redelivery,
            jobs: store.job_counts().await?.into_iter().collect(),
            records: posted(&stats.records),
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

    /// (label, value) rows of the business day as Heartland saw it.
    fn day_rows(&self) -> Vec<(String, String)> {
        let d = &self.day;
        let mut rows = vec![
            ("Stores".to_string(), d.locations.to_string()),
            ("POS tickets".into(), format!("{} ({} by card, {} in cash)", d.tickets, d.card_tickets, d.cash_tickets)),
            ("Returns".into(), d.returns.to_string()),
            ("Card declines (paid again another way)".into(), d.declines.to_string()),
            ("Card refunds".into(), d.refunds.to_string()),
        ];
        for (cur, t) in &d.by_currency {
            rows.push((format!("Sales {cur} (incl. tax)"), money(t.gross_minor, cur)));
            rows.push((format!("Returns {cur}"), money(t.returns_minor, cur)));
            rows.push((format!("Card captured {cur}"), money(t.card_captured_minor, cur)));
        }
        for dep in &d.deposits {
            rows.push((
                format!("Deposit {} ({}, {})", dep.id, dep.date, dep.currency),
                format!("{} sales, {} refunds, fees {}", dep.sales_count, dep.refunds_count, money(dep.fees_amount, &dep.currency)),
            ));
        }
        rows
    }

    fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\nThe business day {} (seed {}) — {:.1} s", self.day.date, self.day.seed, self.elapsed.as_secs_f64());
        for (k, v) in self.day_rows() {
            let _ = writeln!(s, "  {k:<44} {v}");
        }
        let _ = writeln!(s, "\n  The web store's day (order to cash):");
        for (k, v) in self.web.rows() {
            let _ = writeln!(s, "  {k:<44} {v}");
        }
        let _ = writeln!(s, "\n  Webhooks accepted and stored:        {}", self.sent.accepted);
        let _ = writeln!(s, "  Redeliveries recognised (no effect): {}", self.sent.duplicates);
        for (why, n) in &self.sent.refused {
            let _ = writeln!(s, "  Refused ({why}):{:>width$}", n, width = 22usize.saturating_sub(why.len()));
        }
        if let Some(n) = &self.masked_note {
            let _ = writeln!(s, "  A card number sent in a note was stored as: \"{n}\"");
        }
        let _ = writeln!(s, "\n  Posted to NetSuite (sandbox), by record type:");
        for (t, n) in &self.records {
            let _ = writeln!(s, "    {t:<18} {n}");
        }
        let per_ticket = if self.day.tickets > 0 { self.ns_requests as f64 / self.day.tickets as f64 } else { 0.0 };
        let _ = writeln!(s, "  NetSuite requests spent: {} ({per_ticket:.2} per ticket; {} answered 429)", self.ns_requests, self.ns_429);
        let r = &self.redelivery;
        let _ = writeln!(
            s,
            "\n  The same day delivered twice: {} webhooks sent again, {} recognised as already seen, {} new NetSuite records",
            r.sent, r.recognised, r.new_records
        );
        let _ = writeln!(s, "\n  Jobs:");
        for (st, n) in &self.jobs {
            let _ = writeln!(s, "    {:<10} {n}", st.as_str());
        }
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
        fn table(h: &mut String, rows: impl IntoIterator<Item = (String, String)>) {
            h.push_str("<table>");
            for (k, v) in rows {
                let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
            }
            h.push_str("</table>");
        }
        let mut h = String::from("<!doctype html><meta charset=utf-8><title>heartsuite demo</title>");
        h.push_str("<style>body{font:14px system-ui;margin:2em;max-width:64em}td,th{padding:2px 12px;text-align:left}</style>");
        let _ = write!(h, "<h1>heartsuite demo — business day {}</h1><p>Seed {}, run time {:.1} s</p>", esc(&self.day.date), self.day.seed, self.elapsed.as_secs_f64());
        h.push_str("<h2>The day in Heartland</h2>");
        table(&mut h, self.day_rows());
        h.push_str("<h2>The web store's orders</h2>");
        table(&mut h, self.web.rows());
        h.push_str("<h2>Posted to NetSuite</h2>");
        table(&mut h, self.records.iter().map(|(k, v)| (k.clone(), v.to_string())));
        let _ = write!(h, "<p>NetSuite requests spent: {} ({} answered 429)</p>", self.ns_requests, self.ns_429);
        h.push_str("<h2>Webhooks</h2>");
        let mut rows = vec![("accepted".to_string(), self.sent.accepted.to_string()), ("redeliveries (no effect)".into(), self.sent.duplicates.to_string())];
        rows.extend(self.sent.refused.iter().map(|(k, v)| (format!("refused: {k}"), v.to_string())));
        table(&mut h, rows);
        let r = &self.redelivery;
        let _ = write!(h, "<p>The same day delivered twice: {} webhooks sent again, {} recognised, {} new NetSuite records.</p>", r.sent, r.recognised, r.new_records);
        h.push_str("<h2>Jobs</h2>");
        table(&mut h, self.jobs.iter().map(|(k, v)| (k.as_str().to_string(), v.to_string())));
        h.push_str("<h2>Dead-lettered</h2><ul>");
        for d in &self.dead {
            let _ = write!(h, "<li>{}</li>", esc(d));
        }
        if self.dead.is_empty() {
            h.push_str("<li>none</li>");
        }
        let _ = write!(h, "</ul><h2>Alerts</h2><p>{}</p><p>Audit chain: {}</p>", self.alerts.len(), esc(&self.audit));
        h
    }
}
