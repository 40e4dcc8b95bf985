//! Flow 4, settlement → NetSuite, end to end: the Heartland sandbox generates a small business day
//! (batch closed, deposit funded), the payment and refund flows post each captured sale and refund
//! first, then the deposit poller finds the funded deposit and the settlement flow posts it — as
//! one journal entry, or as a NetSuite deposit made of those payments. Every amount is checked to
//! the cent against figures computed here from what GP-API reports, and polling again (even from a
//! lost cursor) creates nothing new.

use heartsuite::config::{Config, GpApiConfig, NetSuiteConfig, SecretResolver, SourceConfig, SourceKind};
use heartsuite::server::{self, FlowRouter, Running, StartOptions};
use heartsuite_core::{Clock, Secret, SystemClock};
use heartsuite_heartland::gpapi::TransactionType;
use heartsuite_heartland::{DepositWithTransactions, GpApiClient};
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_sandbox::heartland::{self, DayOptions};
use heartsuite_store::{DynStore, JobState};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GP_HOOK_KEY: &str = "settlement-test-gp-key";
const CUSTOMER: &str = "CUS_SETTLE";
/// The sandbox chart of accounts (crates/sandbox-netsuite/src/store.rs) the flow's tables name.
const UNDEPOSITED: &str = "1";
const BANK: &str = "2";
const FEES: &str = "3";
const CHARGEBACKS: &str = "4";
/// The flow's default refunds account: Undeposited Funds, which POS returns are refunded out of.
const REFUNDS: &str = "1";

struct Env {
    hl: heartland::SandboxHandle,
    ns: heartsuite_sandbox::netsuite::SandboxHandle,
    running: Running,
    store: DynStore,
    nsc: NetSuiteClient,
    gp: GpApiClient,
    router: Arc<dyn FlowRouter>,
    dir: PathBuf,
}

impl Env {
    async fn stop(self) {
        self.running.shutdown().await;
        self.ns.shutdown().await;
        self.hl.shutdown().await;
        let _ = std::fs::remove_dir_all(self.dir);
    }

    async fn poll(&self) -> usize {
        heartsuite::pollers::poll_gp_deposits_once(&self.store, &self.gp, self.router.as_ref(), &SystemClock).await.expect("deposit poll")
    }

    /// Waits until no job is pending, running or retrying; none may be dead.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let c: BTreeMap<JobState, i64> = self.store.job_counts().await.unwrap().into_iter().collect();
            if c[&JobState::Dead] > 0 {
                let dead = self.store.jobs(Some(JobState::Dead), 10).await.unwrap();
                let why: Vec<_> = dead.iter().map(|j| format!("{}: {:?}", j.flow, j.last_error)).collect();
                panic!("dead-lettered jobs: {why:#?}");
            }
            if c[&JobState::Pending] + c[&JobState::Running] + c[&JobState::Retrying] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "jobs did not finish: {c:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Puts a deposit event in the inbox as the poller would, and waits for its flow.
    async fn deliver(&self, payload: Value) {
        let key = payload["deposit"]["id"].as_str().expect("deposit id").to_string();
        let kind = heartsuite_heartland::events::GPAPI_DEPOSIT_FUNDED;
        let item = heartsuite_store::IngestItem {
            flows: self.router.flows_for(kind, &payload),
            event: heartsuite_core::NewEvent {
                source: "gpapi-poller".into(),
                source_event_key: key,
                kind: kind.into(),
                payload,
                received_at: SystemClock.now_micros(),
            },
            run_at: SystemClock.now_micros(),
        };
        self.store.ingest(&[item]).await.unwrap();
        self.settle().await;
    }

    async fn netsuite_count(&self, tran_type: &str) -> usize {
        let rows = self.nsc.suiteql(&format!("SELECT id FROM transaction WHERE type = '{tran_type}'"), 1000).await.unwrap();
        rows.len()
    }
}

/// Both sandboxes, the engine with the payment, refund and settlement flows (the settlement flow
/// with its `posting_mode` default set to `mode`), and a generated day whose batch is funded.
async fn start(mode: &str, seed: u64) -> Env {
    let gp_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Chargebacks are rare in a real day; a high rate makes sure the deposit has some.
    let hl = heartland::spawn(gp_l, rt_l, heartland::Config { chargeback_ppm: 300_000, ..heartland::Config::default() }).await.unwrap();
    let ns_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ns = heartsuite_sandbox::netsuite::spawn(ns_l, Default::default()).await.unwrap();

    let day = hl
        .sandbox()
        .generate_day(&DayOptions {
            seed,
            tickets: 14,
            web_orders: 4,
            include_cad: false,
            decline_per_mille: 0,
            return_per_mille: 250,
            cash_per_mille: 0,
            close_batch: true,
            fund: true,
            emit_webhooks: false,
            ..DayOptions::default()
        })
        .unwrap();
    assert!(!day.summary.deposits.is_empty(), "the generated day funds a deposit");

    let dir = std::env::temp_dir().join(format!("hs-settle-{}-{:x}", std::process::id(), rand::random::<u64>()));
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let repo_flows = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/flows"));
    for f in ["gpapi_payment_to_customer_payment.toml", "gpapi_refund_to_credit_memo.toml"] {
        std::fs::copy(repo_flows.join(f), flows.join(f)).unwrap();
    }
    let settlement = std::fs::read_to_string(repo_flows.join("gpapi_settlement_to_deposit.toml")).unwrap();
    let default_mode = "[tables.posting_mode]\nargs = [\"mid\"]\ndefault = \"journal\"";
    assert!(settlement.contains(default_mode), "the flow file's posting_mode table changed; update this test");
    let settlement = settlement.replace(default_mode, &default_mode.replace("\"journal\"", &format!("\"{mode}\"")));
    std::fs::write(flows.join("gpapi_settlement_to_deposit.toml"), settlement).unwrap();

    let mut cfg = Config::default();
    cfg.server.data_dir = dir.clone();
    cfg.flows.dir = flows;
    cfg.sources
        .insert("gpapi".into(), SourceConfig { kind: SourceKind::Gpapi, secrets: vec![], app_key: Some(GP_HOOK_KEY.into()), token: None, tolerance_secs: 300 });
    cfg.netsuite = Some(NetSuiteConfig { concurrency: 5, timeout_secs: 10, ..NetSuiteConfig::sandbox(ns.base_url()) });
    cfg.gpapi = Some(GpApiConfig { base_url: Some(hl.gpapi_url()), app_id: "sandbox-app-id".into(), app_key: "sandbox-app-key".into() });

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets = SecretResolver::new(&cfg);
    let store = heartsuite::cli::open_store(&cfg).await.unwrap();
    let (alerts, breakers) = heartsuite::cli::engine_parts(&cfg, clock.clone(), &secrets).unwrap();
    let wired = heartsuite::wiring::build(&cfg, &secrets, clock.clone(), breakers.clone(), Some(store.clone())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut worker = heartsuite::cli::worker_config(&cfg);
    worker.idle_poll = Duration::from_millis(50);
    let running = server::start(
        listener,
        StartOptions {
            store: store.clone(),
            clock: clock.clone(),
            sources: heartsuite::sources::build(&cfg, &secrets).unwrap(),
            router: wired.router.clone(),
            handler: wired.handler.clone(),
            alerts,
            breakers,
            worker: Some(worker),
            admin_token: None,
            max_body: 1 << 20,
            max_batch: 64,
        },
    )
    .await
    .unwrap();

    let nsc = NetSuiteClient::new(
        heartsuite_netsuite::Config::new(
            "1234567_SB1",
            heartsuite_netsuite::Auth::Tba {
                consumer_key: Secret::new("sandbox-consumer-key"),
                consumer_secret: Secret::new("sandbox-consumer-secret"),
                token_id: Secret::new("sandbox-token-id"),
                token_secret: Secret::new("sandbox-token-secret"),
            },
        )
        .with_base_url(ns.base_url()),
    )
    .unwrap();
    // What the other flows need in NetSuite: the customer the card payments belong to, and the
    // refund item stand-alone credit memos are written on (the first item: id 501).
    let customer =
        nsc.upsert("customer", &format!("hs-cust-{CUSTOMER}"), &json!({"companyName": "Settlement Test Co", "subsidiary": {"id": "1"}})).await.unwrap();
    let item = nsc.upsert("inventoryItem", "hs-refund-item", &json!({"itemId": "REFUND", "displayName": "Customer refund"})).await.unwrap();
    assert_eq!(item, "501");

    let gp = GpApiClient::new(heartsuite_heartland::GpApiConfig::new("sandbox-app-id", Secret::new("sandbox-app-key")).with_base_url(hl.gpapi_url())).unwrap();
    let router = wired.router.clone();
    let env = Env { hl, ns, running, store, nsc, gp, router, dir };

    // The card payments and refunds reach NetSuite first, as GP-API status notifications.
    let deposits = funded(&env).await;
    let http = reqwest::Client::new();
    for t in deposits.iter().flat_map(|d| &d.transactions) {
        let amount = t.amount.expect("settled transactions have amounts");
        let card = t.payment_method.as_ref().and_then(|p| p.card.clone()).unwrap_or_default();
        if let Some(ticket) = pos_ticket(t) {
            // A POS card sale is the POS flow's cash sale hs-sale-<ticket> (in Undeposited Funds);
            // made here directly, on the refund item, for the settled amount.
            let rate = dec(amount.minor, heartsuite_core::money::exponent_of(amount.currency)).to_string();
            let body = json!({"entity": {"id": customer}, "undepFunds": true, "memo": format!("POS ticket {ticket}"),
                              "item": {"items": [{"item": {"id": item}, "quantity": 1, "rate": rate}]}});
            env.nsc.upsert("cashSale", &format!("hs-sale-{ticket}"), &body).await.unwrap();
            continue;
        }
        let body = json!({
            "id": t.id,
            "time_created": t.time_created,
            "type": t.kind.as_ref().map(|k| k.as_str()),
            "status": "CAPTURED",
            "amount": amount.minor.to_string(),
            "currency": amount.currency.code(),
            "payment_method": {"result": "00", "card": {"brand": card.brand, "authcode": card.authcode, "masked_number_last4": card.masked_number_last4}},
            "customer": {"id": CUSTOMER},
        })
        .to_string();
        let r = http
            .post(format!("http://{}/hooks/gpapi", env.running.addr))
            .header("x-gp-signature", heartsuite_engine::ingress::gp_signature(GP_HOOK_KEY, body.as_bytes()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
    env.settle().await;
    env
}

/// The Retail ticket of a POS card sale: GP-API's reference is `POS-<ticket id>`.
fn pos_ticket(t: &heartsuite_heartland::gpapi::Transaction) -> Option<&str> {
    t.reference.as_deref().and_then(|r| r.strip_prefix("POS-")).filter(|_| t.kind == Some(TransactionType::Sale))
}

/// The funded deposits as GP-API reports them (read directly, not through the engine).
async fn funded(env: &Env) -> Vec<DepositWithTransactions> {
    let (deposits, _) = heartsuite_heartland::poll_funded_deposits(&env.gp, None).await.unwrap();
    deposits
}

fn dec(minor: i64, places: u32) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(minor, places)
}

/// What the flow must post for one deposit, computed here from GP-API's figures (minor units).
struct Expected {
    places: u32,
    net: i64,
    sales: i64,
    sales_count: usize,
    refunds: Vec<(String, i64)>,
    chargebacks: i64,
    /// Fees by brand: the deposit's fee split by share of sales, rounded down, the remainder to
    /// the brand with the most sales.
    fees: BTreeMap<String, i64>,
    fee_total: i64,
    /// The NetSuite record each sale is in Undeposited Funds as, in the deposit's line order
    /// (customer payments, then POS cash sales): (record type, external id, settled minor units).
    sale_docs: Vec<(&'static str, String, i64)>,
}

fn expected(d: &DepositWithTransactions) -> Expected {
    let places = heartsuite_core::money::exponent_of(d.deposit.amount.currency);
    let mut by_brand: BTreeMap<String, i64> = BTreeMap::new();
    let (mut refunds, mut payments, mut cash_sales) = (Vec::new(), Vec::new(), Vec::new());
    for t in &d.transactions {
        let minor = t.amount.expect("amount").minor;
        match t.kind {
            Some(TransactionType::Sale) => {
                let brand = t.payment_method.as_ref().and_then(|p| p.card.as_ref()).and_then(|c| c.brand.clone()).unwrap_or_default();
                *by_brand.entry(brand.to_uppercase()).or_default() += minor;
                match pos_ticket(t) {
                    Some(ticket) => cash_sales.push(("cashSale", format!("hs-sale-{ticket}"), minor)),
                    None => payments.push(("customerPayment", format!("hs-pay-{}", t.id), minor)),
                }
            }
            Some(TransactionType::Refund) => refunds.push((t.id.clone(), minor.abs())),
            _ => {}
        }
    }
    let sales: i64 = by_brand.values().sum();
    let fee_total = d.deposit.fees.map(|f| f.minor).unwrap_or(0);
    let mut fees: BTreeMap<String, i64> = by_brand.iter().map(|(b, s)| (b.clone(), fee_total * s / sales)).collect();
    let top = by_brand.iter().fold(None::<(&String, i64)>, |best, (b, s)| match best {
        Some((_, bs)) if bs >= *s => best,
        _ => Some((b, *s)),
    });
    let left = fee_total - fees.values().sum::<i64>();
    if let Some((b, _)) = top {
        *fees.get_mut(b).unwrap() += left;
    }
    Expected {
        places,
        net: d.deposit.amount.minor,
        sales,
        sales_count: payments.len() + cash_sales.len(),
        refunds,
        chargebacks: d.deposit.chargebacks.map(|c| c.amount.minor).unwrap_or(0),
        fees,
        fee_total,
        sale_docs: payments.into_iter().chain(cash_sales).collect(),
    }
}

/// Each card refund is a credit memo hs-cm-<TRN> and a customer refund hs-crf-<TRN> paying it out
/// of Undeposited Funds (which the settlement debits for the refund, so it nets to zero), applied
/// to that memo for the refunded amount to the cent. Running the refund flow again for the same
/// transactions (new inbox events, same payloads) writes nothing new.
async fn customer_refunds_pay_out_their_credit_memos(env: &Env, deposits: &[DepositWithTransactions]) {
    let mut refunds = 0;
    for d in deposits {
        let p = expected(d).places;
        for (trn, minor) in &expected(d).refunds {
            refunds += 1;
            let memo: Value = env.nsc.get("creditMemo", &format!("eid:hs-cm-{trn}"), false).await.expect("the refund's credit memo exists");
            let crf: Value = env.nsc.get("customerRefund", &format!("eid:hs-crf-{trn}"), true).await.expect("the refund's customer refund exists");
            assert_eq!(amount(&crf["total"]), dec(*minor, p), "{crf}");
            assert_eq!(crf["account"]["id"], json!(UNDEPOSITED), "{crf}");
            assert_eq!(crf["customer"]["id"], memo["entity"]["id"], "{crf}");
            assert_eq!(crf["currency"]["id"], json!("1"), "{crf}");
            let brand = d.transactions.iter().find(|t| &t.id == trn).and_then(|t| t.payment_method.as_ref()?.card.as_ref()?.brand.clone()).unwrap_or_default();
            let method = match brand.to_lowercase().as_str() {
                "visa" => "5",
                "mastercard" => "4",
                "amex" => "6",
                "discover" => "3",
                other => panic!("a card brand the flow's table lacks: {other}"),
            };
            assert_eq!(crf["paymentMethod"]["id"], json!(method), "{brand}: {crf}");
            let apply = lines(&crf, "apply");
            assert_eq!(apply.len(), 1, "one apply line, the credit memo: {crf}");
            assert_eq!(apply[0]["doc"]["id"], memo["id"], "{crf}");
            assert_eq!(amount(&apply[0]["amount"]), dec(*minor, p), "{crf}");
            // Fully paid out: nothing is left open on the memo.
            let memo: Value = env.nsc.get("creditMemo", &format!("eid:hs-cm-{trn}"), false).await.unwrap();
            assert_eq!(memo["status"]["id"].as_str().or(memo["status"].as_str()), Some("B"), "{memo}");
        }
    }
    assert!(refunds > 0, "the day should have card refunds (seed choice)");
    assert_eq!(env.netsuite_count("CustRfnd").await, refunds);
    assert_eq!(env.netsuite_count("CustCred").await, refunds);

    // The same refunds again, as new events: the idempotency keys make every write a no-op.
    let kind = "gpapi.transaction.captured";
    let mut items = Vec::new();
    for t in deposits.iter().flat_map(|d| &d.transactions).filter(|t| t.kind == Some(TransactionType::Refund)) {
        let a = t.amount.expect("amount");
        let brand = t.payment_method.as_ref().and_then(|p| p.card.as_ref()).and_then(|c| c.brand.clone());
        let payload = json!({"id": t.id, "time_created": t.time_created, "type": "REFUND", "status": "CAPTURED", "amount": a.minor.to_string(),
                             "currency": a.currency.code(), "payment_method": {"card": {"brand": brand}}, "customer": {"id": CUSTOMER}});
        let flows = env.router.flows_for(kind, &payload);
        assert_eq!(flows, ["gpapi_refund_to_credit_memo"]);
        items.push(heartsuite_store::IngestItem {
            flows,
            event: heartsuite_core::NewEvent { source: "rerun".into(), source_event_key: format!("{}:rerun", t.id), kind: kind.into(), payload, received_at: SystemClock.now_micros() },
            run_at: SystemClock.now_micros(),
        });
    }
    env.store.ingest(&items).await.unwrap();
    env.settle().await;
    assert_eq!(env.netsuite_count("CustRfnd").await, refunds, "a rerun creates no customer refund");
    assert_eq!(env.netsuite_count("CustCred").await, refunds, "a rerun creates no credit memo");

    // The invoiced branch: a paid invoice of 42.50 is transformed into the memo (nothing open on
    // the invoice to apply it to), and the customer refund pays that memo out in full.
    let customer = env.nsc.get::<Value>("customer", &format!("eid:hs-cust-{CUSTOMER}"), false).await.unwrap()["id"].clone();
    let inv = json!({"entity": {"id": customer}, "item": {"items": [{"item": {"id": "501"}, "quantity": 1, "rate": "42.50"}]}});
    let inv = env.nsc.upsert("invoice", "hs-inv-refund-test", &inv).await.unwrap();
    let pay = json!({"customer": {"id": customer}, "payment": "42.50", "apply": {"items": [{"doc": {"id": inv}, "apply": true, "amount": "42.50"}]}});
    env.nsc.upsert("customerPayment", "hs-pay-refund-test", &pay).await.unwrap();
    let payload = json!({"id": "TRN_INV_REFUND", "time_created": "2026-11-27T04:30:00Z", "type": "REFUND", "status": "CAPTURED", "amount": "4250",
                         "currency": "USD", "reference": "INV-TEST", "payment_method": {"card": {"brand": "DISCOVER"}}, "customer": {"id": CUSTOMER},
                         "order": {"invoice_internal_id": inv}});
    let flows = env.router.flows_for(kind, &payload);
    let item = |key: &str| heartsuite_store::IngestItem {
        flows: flows.clone(),
        event: heartsuite_core::NewEvent { source: "rerun".into(), source_event_key: key.into(), kind: kind.into(), payload: payload.clone(), received_at: SystemClock.now_micros() },
        run_at: SystemClock.now_micros(),
    };
    env.store.ingest(&[item("TRN_INV_REFUND:1")]).await.unwrap();
    env.settle().await;
    let memo: Value = env.nsc.get("creditMemo", "eid:hs-cm-TRN_INV_REFUND", false).await.unwrap();
    assert_eq!(memo["createdFrom"]["id"], json!(inv), "{memo}");
    assert_eq!(amount(&memo["total"]), dec(4250, 2), "{memo}");
    let crf: Value = env.nsc.get("customerRefund", "eid:hs-crf-TRN_INV_REFUND", true).await.unwrap();
    assert_eq!((amount(&crf["total"]), crf["paymentMethod"]["id"].clone(), crf["tranDate"].clone()), (dec(4250, 2), json!("3"), json!("2026-11-26")), "{crf}");
    let apply = lines(&crf, "apply");
    assert_eq!((apply.len(), apply[0]["doc"]["id"].clone(), amount(&apply[0]["amount"])), (1, memo["id"].clone(), dec(4250, 2)), "{crf}");
    let memo: Value = env.nsc.get("creditMemo", "eid:hs-cm-TRN_INV_REFUND", false).await.unwrap();
    assert_eq!(memo["status"]["id"], json!("B"), "fully applied: {memo}");
    env.store.ingest(&[item("TRN_INV_REFUND:2")]).await.unwrap();
    env.settle().await;
    assert_eq!(env.netsuite_count("CustRfnd").await, refunds + 1, "a rerun creates no customer refund");
    assert_eq!(env.netsuite_count("CustCred").await, refunds + 1, "a rerun creates no credit memo");
}

fn amount(v: &Value) -> rust_decimal::Decimal {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not an amount: {other}"),
    };
    text.parse().unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

fn lines<'a>(record: &'a Value, sublist: &str) -> &'a [Value] {
    record[sublist]["items"].as_array().map(Vec::as_slice).unwrap_or_default()
}

#[tokio::test]
async fn journal_mode_posts_one_balanced_entry_per_deposit_to_the_cent() {
    let env = start("journal", 11).await;
    let deposits = funded(&env).await;
    let before = env.netsuite_count("Journal").await;
    assert_eq!(before, 0);

    assert_eq!(env.poll().await, deposits.len());
    env.settle().await;
    assert_eq!(env.netsuite_count("Journal").await, deposits.len(), "one journal entry per deposit");

    let mut saw_refund = false;
    let mut saw_chargeback = false;
    for d in &deposits {
        let x = expected(d);
        assert_eq!(x.sales - x.refunds.iter().map(|r| r.1).sum::<i64>() - x.fee_total - x.chargebacks, x.net, "the sandbox's deposit is exact");
        saw_refund |= !x.refunds.is_empty();
        saw_chargeback |= x.chargebacks > 0;
        let je: Value = env.nsc.get("journalEntry", &format!("eid:hs-dep-{}", d.deposit.id), true).await.unwrap();
        assert_eq!(je["externalId"], json!(format!("hs-dep-{}", d.deposit.id)));
        assert_eq!(je["tranDate"], json!(d.deposit.time_created));
        assert_eq!(je["currency"]["id"], json!("1"), "USD");
        let memo = je["memo"].as_str().unwrap();
        assert!(memo.starts_with(&format!("Heartland deposit {}: sales {}", d.deposit.id, x.sales_count)) && !memo.contains("VARIANCE"), "{memo}");

        // Every line, by account, signed (debit positive), to the cent.
        let mut got: Vec<(String, rust_decimal::Decimal, String)> = Vec::new();
        for l in lines(&je, "line") {
            let acct = l["account"]["id"].as_str().unwrap().to_string();
            let signed = match (l.get("debit").filter(|v| !v.is_null()), l.get("credit").filter(|v| !v.is_null())) {
                (Some(dr), None) => amount(dr),
                (None, Some(cr)) => -amount(cr),
                other => panic!("a line with debit and credit {other:?}: {l}"),
            };
            got.push((acct, signed, l["memo"].as_str().unwrap_or_default().to_string()));
        }
        let p = x.places;
        let mut want = vec![(BANK.to_string(), dec(x.net, p), format!("Heartland deposit {} net", d.deposit.id))];
        for (brand, fee) in x.fees.iter().filter(|f| *f.1 != 0) {
            want.push((FEES.into(), dec(*fee, p), format!("Merchant fees {brand}")));
        }
        if x.chargebacks != 0 {
            want.push((CHARGEBACKS.into(), dec(x.chargebacks, p), "Chargebacks".into()));
        }
        if !x.refunds.is_empty() {
            let r: i64 = x.refunds.iter().map(|r| r.1).sum();
            want.push((REFUNDS.into(), dec(r, p), format!("Card refunds ({})", x.refunds.len())));
        }
        want.push((UNDEPOSITED.into(), -dec(x.sales, p), format!("Card sales ({}) out of undeposited funds", x.sales_count)));
        assert_eq!(got, want, "journal entry of {}", d.deposit.id);
        let total: rust_decimal::Decimal = got.iter().map(|g| g.1).sum();
        assert!(total.is_zero(), "balanced");
    }
    assert!(saw_refund && saw_chargeback, "the day should exercise refunds and chargebacks (seed choice)");
    customer_refunds_pay_out_their_credit_memos(&env, &deposits).await;

    // Polling again finds nothing; losing the cursor re-reads every deposit, and the inbox key
    // (the deposit id) makes that a no-op too.
    let events = env.store.event_count().await.unwrap();
    assert_eq!(env.poll().await, 0);
    env.store.set_cursor(heartsuite::pollers::GP_DEPOSITS_CURSOR, "", SystemClock.now_micros()).await.unwrap();
    assert_eq!(env.poll().await, 0);
    env.settle().await;
    assert_eq!(env.store.event_count().await.unwrap(), events);
    assert_eq!(env.netsuite_count("Journal").await, deposits.len(), "nothing new in NetSuite");

    // A deposit whose net is 3 cents short of its transactions (the same transactions, replayed
    // under another deposit id) posts the difference to the variance account and flags it.
    let mut short = serde_json::to_value(&deposits[0]).unwrap();
    short["deposit"]["id"] = json!("DEP_SHORT_BY_3");
    let net = short["deposit"]["amount"]["minor"].as_i64().unwrap();
    short["deposit"]["amount"]["minor"] = json!(net - 3);
    env.deliver(short).await;
    let je: Value = env.nsc.get("journalEntry", "eid:hs-dep-DEP_SHORT_BY_3", true).await.unwrap();
    assert!(je["memo"].as_str().unwrap().ends_with("; VARIANCE -0.03 posted to the variance account, to be explained"), "{}", je["memo"]);
    let var = lines(&je, "line").iter().find(|l| l["account"]["id"] == json!("6")).expect("a variance line");
    assert_eq!(amount(&var["debit"]), dec(3, 2));
    assert!(var["memo"].as_str().unwrap().starts_with("VARIANCE: deposit net "), "{var}");
    let job = env.store.jobs(Some(JobState::Succeeded), 1).await.unwrap().remove(0);
    let audit = env.store.audit_for_subject(&format!("job:{}", job.id)).await.unwrap();
    assert!(
        audit.iter().any(|a| a.entry.action == "flow.warning" && a.entry.details["path"] == json!("variance")),
        "the variance is a warning in the audit chain: {audit:?}"
    );

    // A yen deposit (GP-API settles one currency per merchant account): whole yen, currency 5.
    let yen = |id: &str, minor: i64, brand: &str| json!({"id": id, "kind": "SALE", "status": "FUNDED", "amount": {"minor": minor, "currency": "JPY"}, "payment_method": {"card": {"brand": brand}}});
    env.deliver(json!({
        "deposit": {
            "id": "DEP_JPY_1", "time_created": "2026-11-27", "status": "FUNDED", "funding_type": "CREDIT",
            "amount": {"minor": 12_655, "currency": "JPY"}, "system": {"mid": "8800000001"},
            "sales": {"count": 2, "amount": {"minor": 13_000, "currency": "JPY"}},
            "fees": {"minor": 345, "currency": "JPY"}
        },
        "transactions": [yen("TRN_JPY_1", 10_000, "VISA"), yen("TRN_JPY_2", 3_000, "MASTERCARD")]
    }))
    .await;
    let je: Value = env.nsc.get("journalEntry", "eid:hs-dep-DEP_JPY_1", true).await.unwrap();
    assert_eq!(je["currency"]["id"], json!("5"), "{je}");
    let got: Vec<(String, String, String)> = lines(&je, "line")
        .iter()
        .map(|l| {
            let side = if l.get("debit").is_some_and(|v| !v.is_null()) { "debit" } else { "credit" };
            (l["account"]["id"].as_str().unwrap().to_string(), side.to_string(), amount(&l[side]).to_string())
        })
        .collect();
    // 345 yen by share of 13,000: MASTERCARD 79 (79.6 down), VISA 265 (265.3 down) + the yen left.
    let want = [(BANK, "debit", "12655"), (FEES, "debit", "79"), (FEES, "debit", "266"), (UNDEPOSITED, "credit", "13000")];
    assert_eq!(got, want.map(|(a, s, v)| (a.to_string(), s.to_string(), v.to_string())));
    env.stop().await;
}

#[tokio::test]
async fn deposit_mode_deposits_the_very_payments_with_fee_chargeback_and_refund_lines() {
    let env = start("deposit", 11).await;
    let deposits = funded(&env).await;
    assert_eq!(env.poll().await, deposits.len());
    env.settle().await;
    assert_eq!(env.netsuite_count("Deposit").await, deposits.len(), "one NetSuite deposit per Heartland deposit");
    let mut kinds = std::collections::BTreeSet::new();

    for d in &deposits {
        let x = expected(d);
        let p = x.places;
        let dep: Value = env.nsc.get("deposit", &format!("eid:hs-dep-{}", d.deposit.id), true).await.unwrap();
        assert_eq!(dep["tranDate"], json!(d.deposit.time_created));
        assert_eq!(dep["account"]["id"], json!(BANK));
        assert_eq!(dep["currency"]["id"], json!("1"));
        // The bank statement line and the NetSuite deposit agree to the cent.
        assert_eq!(amount(&dep["total"]), dec(x.net, p), "{dep}");

        // Payment lines: exactly the customer payments hs-pay-<TRN> and POS cash sales
        // hs-sale-<ticket> of the deposit's sales, each for the amount GP-API settled, now deposited.
        let pay = lines(&dep, "payment");
        assert_eq!(pay.len(), x.sale_docs.len());
        kinds.extend(x.sale_docs.iter().map(|d| d.0));
        for (line, (rtype, eid, settled)) in pay.iter().zip(&x.sale_docs) {
            let doc: Value = env.nsc.get(rtype, &format!("eid:{eid}"), false).await.unwrap();
            let line_doc = line["doc"]["id"].as_str().or(line["doc"].as_str()).map(str::to_string).unwrap_or_else(|| line["doc"].to_string());
            assert_eq!(json!(line_doc), doc["id"], "line {line} is {eid}");
            assert_eq!(amount(&line["paymentAmount"]), dec(*settled, p), "{eid}");
            assert_eq!(line["deposit"], json!(true));
            assert_eq!(
                doc["status"]["refName"].as_str().or(doc["status"].as_str()).map(|s| s.contains("Deposited") && !s.contains("Not")),
                Some(true),
                "{doc}"
            );
        }

        // Cash back: fees by brand, chargebacks, one line per refund naming its credit memo.
        let mut want: Vec<(String, rust_decimal::Decimal, String)> = Vec::new();
        for (brand, fee) in x.fees.iter().filter(|f| *f.1 != 0) {
            want.push((FEES.into(), dec(*fee, p), format!("Merchant fees {brand}")));
        }
        if x.chargebacks != 0 {
            want.push((CHARGEBACKS.into(), dec(x.chargebacks, p), "Chargebacks".into()));
        }
        for (trn, minor) in &x.refunds {
            env.nsc.get::<Value>("creditMemo", &format!("eid:hs-cm-{trn}"), false).await.expect("the refund's credit memo exists");
            want.push((REFUNDS.into(), dec(*minor, p), format!("Refund {trn} (credit memo hs-cm-{trn})")));
        }
        let got: Vec<_> = lines(&dep, "cashBack")
            .iter()
            .map(|l| (l["account"]["id"].as_str().unwrap().to_string(), amount(&l["amount"]), l["memo"].as_str().unwrap_or_default().to_string()))
            .collect();
        assert_eq!(got, want, "cash-back lines of {}", d.deposit.id);
        assert!(lines(&dep, "other").is_empty(), "no reversal or variance: {dep}");
    }

    assert_eq!(kinds.len(), 2, "the deposits hold both customer payments and POS cash sales (seed choice): {kinds:?}");

    // Nothing new on a second poll or after a lost cursor.
    assert_eq!(env.poll().await, 0);
    env.store.set_cursor(heartsuite::pollers::GP_DEPOSITS_CURSOR, "", SystemClock.now_micros()).await.unwrap();
    assert_eq!(env.poll().await, 0);
    env.settle().await;
    assert_eq!(env.netsuite_count("Deposit").await, deposits.len());
    env.stop().await;
}
