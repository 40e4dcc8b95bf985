//! Reconciliation end to end: a generated business day in the Heartland sandbox (batch closed and
//! funded), NetSuite postings made directly through the NetSuite client (right ones, one with a
//! wrong amount, one posted twice, one dated in the wrong period, one missing, one with no sale
//! behind it, the deposit's journal entry), then the report's statuses and totals to the cent;
//! an accepted difference, a re-drive that posts the missing payment through the normal flow
//! exactly once, and the CLI in all four formats.

mod common;

use heartsuite::config::{Config, GpApiConfig, NetSuiteConfig};
use heartsuite::recon_cmd::{self, Redriven, Scope};
use heartsuite_core::{Clock, Money, NewEvent, Secret, SystemClock};
use heartsuite_heartland::gpapi::{Transaction, TransactionQuery, TransactionType};
use heartsuite_heartland::{GpApiClient, GpApiConfig as GpClientConfig};
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_recon::{Direction, MatchKey, Status};
use heartsuite_sandbox::heartland;
use heartsuite_store::{IngestItem, JobState};
use serde_json::{Value, json};
use std::sync::Arc;

const CUSTOMER: &str = "CUS_RECON";

fn brand_method(brand: &str) -> &'static str {
    match brand.to_ascii_uppercase().as_str() {
        "VISA" => "5",
        "MASTERCARD" => "4",
        "AMEX" => "6",
        _ => "3",
    }
}

fn local_date(t: &Transaction) -> jiff::civil::Date {
    let tz = jiff::tz::TimeZone::get("America/Chicago").unwrap();
    heartsuite_recon::fetch::local_date(t.time_created.as_deref().unwrap(), &tz, &t.id).unwrap()
}

fn brand(t: &Transaction) -> String {
    t.payment_method
        .as_ref()
        .and_then(|p| p.card.as_ref())
        .and_then(|c| c.brand.clone())
        .unwrap_or_default()
}

fn authcode(t: &Transaction) -> String {
    t.payment_method
        .as_ref()
        .and_then(|p| p.card.as_ref())
        .and_then(|c| c.authcode.clone())
        .unwrap_or_default()
}

fn dec(m: Money) -> String {
    m.to_decimal_string()
}

async fn post_payment(
    ns: &NetSuiteClient,
    rt: &str,
    eid: &str,
    customer: &str,
    t: &Transaction,
    amount: Money,
    date: jiff::civil::Date,
) -> String {
    let mut body = json!({
        "externalId": eid,
        "tranDate": date.to_string(),
        "currency": {"id": "1"},
        "memo": format!("GP-API {} auth {}", t.id, authcode(t)),
    });
    if rt != "creditMemo" {
        body["paymentMethod"] = json!({"id": brand_method(&brand(t))});
        body["undepFunds"] = json!(true);
    }
    if rt == "customerPayment" {
        body["customer"] = json!({"id": customer});
        body["payment"] = json!(dec(amount));
    } else {
        body["entity"] = json!({"id": customer});
        body["item"] = json!({"items": [{"item": {"id": "501"}, "quantity": 1, "rate": dec(amount), "amount": dec(amount)}]});
    }
    ns.create(rt, &body)
        .await
        .unwrap_or_else(|e| panic!("posting {rt} {eid}: {e}"))
}

/// GP-API's settlement transactions of one deposit.
async fn deposit_txns(gp: &GpApiClient, deposit_id: &str) -> Vec<Transaction> {
    gp.list_all_settlement_transactions(&TransactionQuery {
        deposit_id: Some(deposit_id.to_string()),
        ..Default::default()
    })
    .await
    .unwrap()
}

struct World {
    sb: heartland::SandboxHandle,
    ns_sb: heartsuite_sandbox::netsuite::SandboxHandle,
    gp: GpApiClient,
    ns: NetSuiteClient,
}

#[tokio::test]
async fn a_business_day_reconciles_with_every_status_and_exceptions_become_work() {
    let gp_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sb = heartland::spawn(gp_l, rt_l, heartland::Config::default())
        .await
        .unwrap();
    let day = sb
        .sandbox()
        .generate_day(&heartland::DayOptions {
            seed: 7,
            tickets: 40,
            web_orders: 0,
            include_cad: false,
            return_per_mille: 150,
            emit_webhooks: false,
            ..Default::default()
        })
        .unwrap();
    let ns_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ns_sb = heartsuite_sandbox::netsuite::spawn(ns_l, Default::default())
        .await
        .unwrap();
    let ns_cfg = NetSuiteConfig::sandbox(ns_sb.base_url());
    let gp = GpApiClient::new(
        GpClientConfig::new("sandbox-app-id", Secret::new("sandbox-app-key"))
            .with_base_url(sb.gpapi_url()),
    )
    .unwrap();
    let ns = NetSuiteClient::new(
        heartsuite_netsuite::Config::new(
            "1234567_SB1",
            heartsuite_netsuite::Auth::Tba {
                consumer_key: Secret::new("sandbox-consumer-key"),
                consumer_secret: Secret::new("sandbox-consumer-secret"),
                token_id: Secret::new("sandbox-token-id"),
                token_secret: Secret::new("sandbox-token-secret"),
            },
        )
        .with_base_url(ns_sb.base_url()),
    )
    .unwrap();
    let w = World { sb, ns_sb, gp, ns };
    run(&w, &day.summary, ns_cfg).await;
    w.sb.shutdown().await;
    w.ns_sb.shutdown().await;
}

async fn run(w: &World, summary: &heartland::DaySummary, ns_cfg: NetSuiteConfig) {
    let (gp, ns) = (&w.gp, &w.ns);
    // The USD deposit with the most transactions.
    let dep = summary
        .deposits
        .iter()
        .filter(|d| d.currency == "USD")
        .max_by_key(|d| d.sales_count + d.refunds_count)
        .expect("a funded USD deposit");
    let txns = deposit_txns(gp, &dep.id).await;
    let sales: Vec<&Transaction> = txns
        .iter()
        .filter(|t| t.kind == Some(TransactionType::Sale))
        .collect();
    let refunds: Vec<&Transaction> = txns
        .iter()
        .filter(|t| t.kind == Some(TransactionType::Refund))
        .collect();
    assert!(
        sales.len() >= 6,
        "the day has enough card sales ({})",
        sales.len()
    );
    let biz_date = local_date(sales[0]);
    assert!(!refunds.is_empty(), "the deposit holds card refunds too");

    // NetSuite: the customer the payment flow looks up, and the item credit memos and cash
    // sales below carry (the first item: 501).
    let customer = ns
        .upsert(
            "customer",
            &format!("hs-cust-{CUSTOMER}"),
            &json!({"companyName": "Recon Test", "subsidiary": {"id": "1"}}),
        )
        .await
        .unwrap();
    let item = ns
        .upsert(
            "inventoryItem",
            "recon-refund",
            &json!({"itemId": "REFUND", "subsidiary": {"id": "1"}}),
        )
        .await
        .unwrap();
    assert_eq!(item, "501");

    // Sales of the business date only, so the date run sees every exception.
    let same_day: Vec<&Transaction> = sales
        .iter()
        .copied()
        .filter(|t| local_date(t) == biz_date)
        .collect();
    assert!(
        same_day.len() >= 6,
        "enough sales on {biz_date}: {}",
        same_day.len()
    );
    let (wrong, dup, missing, late) = (same_day[0], same_day[1], same_day[2], same_day[3]);
    let mut posted_ids = std::collections::BTreeMap::new();
    for t in &sales {
        let amount = t.amount.unwrap();
        let eid = format!("hs-pay-{}", t.id);
        let date = local_date(t);
        let id = match t.id.as_str() {
            id if id == missing.id => continue,
            id if id == wrong.id => {
                post_payment(
                    ns,
                    "customerPayment",
                    &eid,
                    &customer,
                    t,
                    Money::new(amount.minor + 100, amount.currency),
                    date,
                )
                .await
            }
            id if id == late.id => {
                post_payment(
                    ns,
                    "customerPayment",
                    &eid,
                    &customer,
                    t,
                    amount,
                    date.checked_add(jiff::Span::new().days(5)).unwrap(),
                )
                .await
            }
            id if id == dup.id => {
                // Posted by the payment flow and again as a cash sale by hand.
                post_payment(ns, "cashSale", &eid, &customer, t, amount, date).await;
                post_payment(ns, "customerPayment", &eid, &customer, t, amount, date).await
            }
            _ => post_payment(ns, "customerPayment", &eid, &customer, t, amount, date).await,
        };
        posted_ids.insert(t.id.clone(), id);
    }
    for t in &refunds {
        post_payment(
            ns,
            "creditMemo",
            &format!("hs-cm-{}", t.id),
            &customer,
            t,
            t.amount.unwrap(),
            local_date(t),
        )
        .await;
    }
    // A payment nobody in Heartland made.
    let orphan = post_payment(
        ns,
        "customerPayment",
        "hs-pay-TRN_NOT_IN_HEARTLAND",
        &customer,
        sales[0],
        Money::from_minor_str("4242", "USD").unwrap(),
        biz_date,
    )
    .await;

    // The deposit as the settlement flow's summarized journal entry: Dr bank net, Dr fees,
    // Dr chargebacks, Dr refunds, Cr Undeposited Funds with the sales.
    let usd = |m: i64| Money::from_minor_str(&m.to_string(), "USD").unwrap();
    let gross = dep.sales_amount - dep.refunds_amount;
    let mut lines = vec![
        json!({"account": {"id": "2"}, "debit": dec(usd(dep.net_amount)), "memo": "Net deposit"}),
        json!({"account": {"id": "3"}, "debit": dec(usd(dep.fees_amount)), "memo": "Fees"}),
    ];
    for (account, amount, memo) in [
        ("4", dep.chargebacks_amount, "Chargebacks"),
        ("5", dep.refunds_amount, "Card refunds"),
    ] {
        if amount > 0 {
            lines
                .push(json!({"account": {"id": account}, "debit": dec(usd(amount)), "memo": memo}));
        }
    }
    lines.push(json!({"account": {"id": "1"}, "credit": dec(usd(dep.sales_amount)), "memo": "Card sales out of undeposited funds"}));
    ns.upsert(
        "journalEntry",
        &format!("hs-dep-{}", dep.id),
        &json!({"tranDate": dep.date, "currency": {"id": "1"}, "line": {"items": lines}}),
    )
    .await
    .unwrap();

    // The engine the re-drive goes through: the built-in flows against both sandboxes.
    let mut cfg = Config::default();
    cfg.netsuite = Some(ns_cfg);
    cfg.gpapi = Some(GpApiConfig {
        base_url: Some(w.sb.gpapi_url()),
        app_id: "sandbox-app-id".into(),
        app_key: "sandbox-app-key".into(),
    });
    cfg.recon.bank_accounts = vec!["2".into()];
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets = heartsuite::config::SecretResolver::new(&cfg);
    let (_, breakers) = heartsuite::cli::engine_parts(&cfg, clock.clone(), &secrets).unwrap();
    let wired = heartsuite::wiring::build(&cfg, &secrets, clock.clone(), breakers, None).unwrap();
    let app = common::spawn_app(wired.router.clone(), wired.handler.clone(), true).await;
    let store = app.store.clone();
    let rules = cfg.recon.clone();

    // ---------------------------------------------------------------- the deposit run
    let r = recon_cmd::run_report(gp, ns, &store, &rules, &Scope::Deposit(dep.id.clone()))
        .await
        .unwrap();
    let st = |key: &str| r.item(key).unwrap_or_else(|| panic!("no {key}")).status;
    assert_eq!(st(&format!("txn:{}", wrong.id)), Status::AmountDiffers);
    let wi = r.item(&format!("txn:{}", wrong.id)).unwrap();
    assert_eq!(wi.difference, Some(usd(100)));
    assert!(wi.reason.contains("1.00 USD more"), "{}", wi.reason);
    assert_eq!(st(&format!("txn:{}", dup.id)), Status::DuplicateInNetsuite);
    assert_eq!(
        r.item(&format!("txn:{}", dup.id))
            .unwrap()
            .netsuite_ids
            .len(),
        2
    );
    assert_eq!(
        st(&format!("txn:{}", missing.id)),
        Status::MissingInNetsuite
    );
    assert_eq!(st(&format!("txn:{}", late.id)), Status::DateDiffers);
    let refund_count = refunds.len() as u64;
    let sale_count = sales.len() as u64;
    assert_eq!(
        r.count(Status::Matched),
        sale_count - 4 + refund_count,
        "every other sale and every refund matches"
    );
    assert_eq!(
        (
            r.count(Status::AmountDiffers),
            r.count(Status::DuplicateInNetsuite),
            r.count(Status::MissingInNetsuite),
            r.count(Status::DateDiffers)
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        r.count(Status::MissingInHeartland),
        0,
        "a deposit run only explains its own lines"
    );
    for t in &sales {
        assert_eq!(
            r.item(&format!("txn:{}", t.id))
                .unwrap()
                .matched_by
                .is_some(),
            t.id != missing.id
        );
    }
    // Matched total to the cent: the sales and refunds that matched.
    let matched_minor: i64 = txns
        .iter()
        .filter(|t| ![&wrong.id, &dup.id, &missing.id, &late.id].contains(&&t.id))
        .map(|t| t.amount.unwrap().minor)
        .sum();
    assert_eq!(r.by_status["matched"].amounts["USD"], usd(matched_minor));
    // Per brand: Heartland's sales equal the day's settled card sales of that brand in the deposit.
    let mut hl_brand: std::collections::BTreeMap<String, i64> = Default::default();
    for t in &sales {
        *hl_brand.entry(brand(t).to_ascii_uppercase()).or_default() += t.amount.unwrap().minor;
    }
    for (b, minor) in &hl_brand {
        assert_eq!(
            r.by_brand[b].heartland_sales["USD"],
            usd(*minor),
            "brand {b}"
        );
    }
    // NetSuite's side of the wrong brand carries the extra dollar; the duplicate's brand twice.
    let wb = brand(wrong).to_ascii_uppercase();
    let ns_side: i64 = r.by_brand[&wb].netsuite_sales["USD"].minor;
    let expected_ns: i64 = sales
        .iter()
        .filter(|t| brand(t).eq_ignore_ascii_case(&wb) && t.id != missing.id)
        .map(|t| {
            t.amount.unwrap().minor * if t.id == dup.id { 2 } else { 1 }
                + if t.id == wrong.id { 100 } else { 0 }
        })
        .sum();
    assert_eq!(ns_side, expected_ns);
    // The deposit: Heartland's breakdown equals the journal entry, line for line.
    let d = &r.deposits[0];
    assert_eq!(d.status, Status::Matched, "{}", d.reason);
    assert_eq!(r.deposit_count(Status::Matched), 1);
    assert_eq!(d.heartland_gross, usd(gross));
    assert_eq!(d.netsuite_gross, Some(usd(gross)));
    assert_eq!(
        (d.heartland_fees, d.netsuite_fees),
        (usd(dep.fees_amount), Some(usd(dep.fees_amount)))
    );
    assert_eq!(
        (d.heartland_chargebacks, d.netsuite_chargebacks),
        (
            usd(dep.chargebacks_amount),
            Some(usd(dep.chargebacks_amount))
        )
    );
    assert_eq!(
        (d.heartland_net, d.netsuite_net),
        (usd(dep.net_amount), Some(usd(dep.net_amount)))
    );
    assert_eq!(
        d.heartland_net.minor,
        dep.sales_amount - dep.refunds_amount - dep.fees_amount - dep.chargebacks_amount
    );

    // ---------------------------------------------------------------- the date run
    let rd = recon_cmd::run_report(gp, ns, &store, &rules, &Scope::Date(biz_date))
        .await
        .unwrap();
    let orphan_item = rd
        .item(&format!("netsuite:{orphan}"))
        .expect("the orphan payment is reported");
    assert_eq!(orphan_item.status, Status::MissingInHeartland);
    assert_eq!(orphan_item.netsuite_amount, Some(usd(4242)));
    assert_eq!(
        rd.item(&format!("txn:{}", late.id)).unwrap().status,
        Status::DateDiffers
    );
    assert_eq!(
        rd.item(&format!("txn:{}", missing.id)).unwrap().status,
        Status::MissingInNetsuite
    );

    // ---------------------------------------------------------------- exceptions become work
    let wrong_key = format!("txn:{}", wrong.id);
    recon_cmd::accept(
        &store,
        clock.as_ref(),
        "cli:test",
        &wrong_key,
        "card surcharge agreed with the customer",
    )
    .await
    .unwrap();
    let r2 = recon_cmd::run_report(gp, ns, &store, &rules, &Scope::Deposit(dep.id.clone()))
        .await
        .unwrap();
    let acc = r2.item(&wrong_key).unwrap();
    assert_eq!(
        (acc.status, acc.original_status),
        (Status::Accepted, Some(Status::AmountDiffers))
    );
    assert!(
        acc.accepted_note
            .as_deref()
            .unwrap()
            .starts_with("card surcharge agreed with the customer")
    );
    let entries = store
        .audit_for_subject(&format!("recon:{wrong_key}"))
        .await
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.entry.action.as_str())
            .collect::<Vec<_>>(),
        vec!["recon.accept"]
    );

    // The missing payment's original notification is in the inbox (it carried the customer) but
    // no flow ran for it; the re-drive takes that payload through the normal flow.
    let original = json!({
        "id": missing.id, "time_created": missing.time_created, "type": "SALE", "status": "CAPTURED",
        "amount": missing.amount.unwrap().minor.to_string(), "currency": "USD",
        "payment_method": {"card": {"brand": brand(missing), "authcode": authcode(missing)}},
        "customer": {"id": CUSTOMER},
    });
    store
        .ingest(&[IngestItem {
            event: NewEvent {
                source: "gpapi".into(),
                source_event_key: format!("{}:captured", missing.id),
                kind: "gpapi.transaction.captured".into(),
                payload: original,
                received_at: clock.now_micros(),
            },
            flows: vec![],
            run_at: clock.now_micros(),
        }])
        .await
        .unwrap();
    let missing_key = format!("txn:{}", missing.id);
    let sources = vec!["gpapi".to_string()];
    let redrive = async |dry_run: bool| {
        recon_cmd::redrive(
            &store,
            wired.router.as_ref(),
            gp,
            &rules,
            &sources,
            clock.as_ref(),
            "cli:test",
            &missing_key,
            dry_run,
        )
        .await
    };
    let dry = redrive(true).await.unwrap();
    assert!(
        matches!(&dry, Redriven::WouldIngest { flows, payload, .. } if flows == &vec!["gpapi_payment_to_customer_payment".to_string()] && payload["customer"]["id"] == CUSTOMER),
        "{dry:?}"
    );
    let first = redrive(false).await.unwrap();
    let Redriven::Ingested { event_id, .. } = first else {
        panic!("{first:?}")
    };
    let again = redrive(false).await.unwrap();
    assert_eq!(again, Redriven::AlreadyRedriven { event_id });
    // Wait for the worker to run the job (bounded; the assertion is on the outcome).
    for _ in 0..600 {
        let counts = store.job_counts().await.unwrap();
        if counts.iter().all(|(s, n)| {
            *n == 0
                || matches!(
                    s,
                    JobState::Succeeded | JobState::Dead | JobState::Cancelled
                )
        }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let counts = store.job_counts().await.unwrap();
    assert!(
        counts
            .iter()
            .any(|(s, n)| *s == JobState::Succeeded && *n == 1),
        "{counts:?}"
    );
    let posted: Value = ns
        .get_by_external_id("customerPayment", &format!("hs-pay-{}", missing.id), false)
        .await
        .unwrap()
        .expect("the re-driven payment is in NetSuite");
    assert_eq!(
        Money::from_decimal_str(posted["payment"].to_string().trim_matches('"'), "USD").unwrap(),
        missing.amount.unwrap()
    );
    // Once posted, a re-drive refuses: the crosswalk knows the payment.
    let e = redrive(true).await.unwrap_err().to_string();
    assert!(e.contains("would be skipped"), "{e}");
    let r3 = recon_cmd::run_report(gp, ns, &store, &rules, &Scope::Deposit(dep.id.clone()))
        .await
        .unwrap();
    let fixed = r3.item(&missing_key).unwrap();
    assert_eq!(
        (fixed.status, fixed.matched_by),
        (Status::Matched, Some(MatchKey::ExternalId))
    );
    assert_eq!(fixed.direction, Some(Direction::Sale));
    let redrive_audit = store
        .audit_for_subject(&format!("recon:{missing_key}"))
        .await
        .unwrap();
    assert_eq!(
        redrive_audit
            .iter()
            .filter(|e| e.entry.action == "recon.redrive")
            .count(),
        1
    );
    assert_eq!(
        heartsuite_engine::admin::audit_verify(&store)
            .await
            .unwrap()
            .first_break,
        None
    );

    // ---------------------------------------------------------------- the CLI, four formats
    let toml_path = app.dir.join("recon.toml");
    std::fs::write(
        &toml_path,
        format!(
            "[netsuite]\naccount = \"1234567_SB1\"\nbase_url = \"{}\"\nauth = \"tba\"\nconsumer_key = \"sandbox-consumer-key\"\nconsumer_secret = \"sandbox-consumer-secret\"\ntoken_id = \"sandbox-token-id\"\ntoken_secret = \"sandbox-token-secret\"\n\n[gpapi]\nbase_url = \"{}\"\napp_id = \"sandbox-app-id\"\napp_key = \"sandbox-app-key\"\n\n[recon]\nbank_accounts = [\"2\"]\n",
            w.ns_sb.base_url(),
            w.sb.gpapi_url()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", app.dir.join("t.db").display());
    let before = store.audit_entries(0, 10_000).await.unwrap().len();
    for (fmt, check) in [
        ("table", "Exceptions ("),
        ("json", "\"by_status\""),
        ("csv", "section,key,level,status"),
        ("html", "<h2>Summary</h2>"),
    ] {
        let out = app.dir.join(format!("report.{fmt}"));
        let cli = <heartsuite::cli::Cli as clap::Parser>::try_parse_from([
            "heartsuite",
            "--config",
            toml_path.to_str().unwrap(),
            "--database-url",
            &db,
            "reconcile",
            "--deposit",
            &dep.id,
            "--format",
            fmt,
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        heartsuite::cli::run(cli)
            .await
            .unwrap_or_else(|e| panic!("reconcile --format {fmt}: {e:#}"));
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains(check), "{fmt}: {text}");
        assert!(
            text.contains(&wrong.id) && text.contains("accepted"),
            "{fmt} shows the accepted item"
        );
    }
    let html = std::fs::read_to_string(app.dir.join("report.html")).unwrap();
    assert!(
        html.find("<h2>Summary").unwrap() < html.find("<h2>Exceptions").unwrap()
            && html.find("<h2>Exceptions").unwrap() < html.find("<h2>Matched").unwrap()
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(app.dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["by_status"]["duplicate_in_netsuite"]["count"], 1);
    // Four runs, four `recon.run` entries; a dry run records none.
    let after = store.audit_entries(0, 10_000).await.unwrap();
    assert_eq!(after.len() - before, 4);
    assert!(
        after
            .iter()
            .rev()
            .take(4)
            .all(|e| e.entry.action == "recon.run")
    );
    let cli = <heartsuite::cli::Cli as clap::Parser>::try_parse_from([
        "heartsuite",
        "--config",
        toml_path.to_str().unwrap(),
        "--database-url",
        &db,
        "reconcile",
        "--date",
        &biz_date.to_string(),
        "--format",
        "csv",
        "--dry-run",
        "--out",
        app.dir.join("dry.csv").to_str().unwrap(),
    ])
    .unwrap();
    heartsuite::cli::run(cli).await.unwrap();
    assert_eq!(
        store.audit_entries(0, 10_000).await.unwrap().len(),
        after.len()
    );
    assert!(
        std::fs::read_to_string(app.dir.join("dry.csv"))
            .unwrap()
            .contains("missing_in_heartland")
    );
    // What `serve` runs at recon.daily_at: the date's report as HTML and JSON, and an audit entry.
    let daily_dir = app.dir.join("daily");
    let daily = recon_cmd::daily_once(gp, ns, &store, &rules, clock.as_ref(), &daily_dir, biz_date)
        .await
        .unwrap();
    assert_eq!(
        daily.count(Status::MissingInHeartland),
        1,
        "the orphan payment"
    );
    let daily_html =
        std::fs::read_to_string(daily_dir.join(format!("recon-{biz_date}.html"))).unwrap();
    assert!(daily_html.contains(&format!("netsuite:{orphan}")));
    assert!(daily_dir.join(format!("recon-{biz_date}.json")).exists());
    let last = store.audit_entries(0, 10_000).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.entry.action.as_str(), last.entry.actor.as_str()),
        ("recon.run", "engine:recon-daily")
    );
    detailed_deposit(w, &dep.id, &customer, &store, &rules).await;
    app.stop().await;
}

/// Detailed mode: a NetSuite deposit record whose payment lines are the payments and whose
/// cash-back lines are fees, chargebacks and refunds, as the settlement flow posts it.
async fn detailed_deposit(
    w: &World,
    done: &str,
    customer: &str,
    store: &heartsuite_store::DynStore,
    rules: &heartsuite_recon::Rules,
) {
    let (gp, ns) = (&w.gp, &w.ns);
    // The next business day, funded the day after.
    let next =
        w.sb.sandbox()
            .generate_day(&heartland::DayOptions {
                seed: 8,
                date: jiff::civil::date(2025, 3, 15),
                tickets: 30,
                web_orders: 0,
                include_cad: false,
                return_per_mille: 150,
                emit_webhooks: false,
                ..Default::default()
            })
            .unwrap();
    let dep = next
        .summary
        .deposits
        .iter()
        .find(|d| d.currency == "USD" && d.id != done)
        .expect("a USD deposit on the next day");
    let txns = deposit_txns(gp, &dep.id).await;
    let (mut payments, mut cash_back) = (Vec::new(), Vec::new());
    for t in &txns {
        let amount = t.amount.unwrap();
        if t.kind == Some(TransactionType::Sale) {
            let id = post_payment(
                ns,
                "customerPayment",
                &format!("hs-pay-{}", t.id),
                customer,
                t,
                amount,
                local_date(t),
            )
            .await;
            payments
                .push(json!({"doc": {"id": id}, "deposit": true, "paymentAmount": dec(amount)}));
        } else {
            post_payment(
                ns,
                "creditMemo",
                &format!("hs-cm-{}", t.id),
                customer,
                t,
                amount,
                local_date(t),
            )
            .await;
            cash_back.push(json!({"account": {"id": "5"}, "amount": dec(amount), "memo": format!("Refund {}", t.id)}));
        }
    }
    let usd = |m: i64| Money::from_minor_str(&m.to_string(), "USD").unwrap();
    cash_back.push(json!({"account": {"id": "3"}, "amount": dec(usd(dep.fees_amount)), "memo": "Merchant fees"}));
    if dep.chargebacks_amount > 0 {
        cash_back.push(json!({"account": {"id": "4"}, "amount": dec(usd(dep.chargebacks_amount)), "memo": "Chargebacks"}));
    }
    ns.upsert(
        "deposit",
        &format!("hs-dep-{}", dep.id),
        &json!({"tranDate": dep.date, "currency": {"id": "1"}, "account": {"id": "2"}, "payment": {"items": payments}, "cashBack": {"items": cash_back}}),
    )
    .await
    .unwrap();
    let r = recon_cmd::run_report(gp, ns, store, rules, &Scope::Deposit(dep.id.clone()))
        .await
        .unwrap();
    let d = &r.deposits[0];
    assert_eq!(d.status, Status::Matched, "{}", d.reason);
    assert_eq!(
        d.netsuite_kind,
        Some(heartsuite_recon::NsDepositKind::Deposit)
    );
    assert_eq!(
        (d.heartland_net, d.netsuite_net),
        (usd(dep.net_amount), Some(usd(dep.net_amount)))
    );
    assert_eq!(
        d.netsuite_gross,
        Some(usd(dep.sales_amount - dep.refunds_amount))
    );
    assert_eq!(d.netsuite_fees, Some(usd(dep.fees_amount)));
    assert_eq!(d.netsuite_chargebacks, Some(usd(dep.chargebacks_amount)));
    assert!(
        d.lines_missing.is_empty() && d.lines_extra.is_empty(),
        "{d:?}"
    );
    assert_eq!(r.count(Status::Matched), txns.len() as u64);
    assert_eq!(r.exceptions().count(), 0);
}
