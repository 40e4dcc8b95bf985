//! Order-to-cash end to end (issue #6, flow 5), with both sandboxes and the real engine:
//! a signed web-store order → NetSuite customer + GP-API authorization + sales order; each
//! NetSuite item fulfilment (its event posted as the user-event script does, `record: null`, so
//! the engine must read it back) → GP-API capture of what shipped + invoice + customer payment.
//! Amounts are checked to the cent in NetSuite and in GP-API; redeliveries create nothing.

mod common;

use heartsuite::config::{Config, GpApiConfig, NetSuiteConfig, SourceConfig, SourceKind};
use heartsuite::server::Running;
use heartsuite_core::{Clock, Secret, SystemClock};
use heartsuite_engine::alerts::Alerts;
use heartsuite_engine::ingress;
use heartsuite_heartland::{GpApiClient, GpApiConfig as GpClientConfig};
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_sandbox::{heartland, netsuite};
use heartsuite_store::{DynStore, JobState};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHOP_SECRET: &str = "order-to-cash-shop-secret";
const NS_SECRET: &str = "order-to-cash-netsuite-secret";
const APPROVE_CARD: &str = "4263970000005262";
const DECLINE_CARD: &str = "4000120000001154";
const GP_KEY: &str = "sandbox-app-key";

struct World {
    running: Running,
    store: DynStore,
    alerts: Arc<Alerts>,
    ns: netsuite::SandboxHandle,
    hl: heartland::SandboxHandle,
    nsc: NetSuiteClient,
    gp: GpApiClient,
    http: reqwest::Client,
    dir: std::path::PathBuf,
}

async fn start() -> World {
    let gp_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hl = heartland::spawn(gp_l, rt_l, heartland::Config::default())
        .await
        .unwrap();
    let ns_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ns = netsuite::spawn(ns_l, Default::default()).await.unwrap();

    let dir = common::fresh_dir();
    let mut cfg = Config::default();
    cfg.server.data_dir = dir.clone();
    cfg.flows.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/flows").into();
    let source = |kind, secret: &str| SourceConfig {
        kind,
        secrets: vec![secret.into()],
        app_key: None,
        token: None,
        tolerance_secs: 300,
    };
    cfg.sources
        .insert("shop".into(), source(SourceKind::Shop, SHOP_SECRET));
    cfg.sources
        .insert("netsuite".into(), source(SourceKind::Netsuite, NS_SECRET));
    cfg.sources.insert(
        "gpapi".into(),
        SourceConfig {
            kind: SourceKind::Gpapi,
            secrets: vec![],
            app_key: Some(GP_KEY.into()),
            token: None,
            tolerance_secs: 300,
        },
    );
    cfg.netsuite = Some(NetSuiteConfig {
        concurrency: 5,
        timeout_secs: 10,
        ..NetSuiteConfig::sandbox(ns.base_url())
    });
    cfg.gpapi = Some(GpApiConfig {
        base_url: Some(hl.gpapi_url()),
        app_id: "sandbox-app-id".into(),
        app_key: "sandbox-app-key".into(),
    });

    let engine = common::engine::start_engine(&cfg).await;
    let nsc = common::engine::sandbox_netsuite_client(ns.base_url());
    let gp = GpApiClient::new(
        GpClientConfig::new("sandbox-app-id", Secret::new(GP_KEY)).with_base_url(hl.gpapi_url()),
    )
    .unwrap();
    World {
        running: engine.running,
        store: engine.store,
        alerts: engine.alerts,
        ns,
        hl,
        nsc,
        gp,
        http: reqwest::Client::new(),
        dir,
    }
}

impl World {
    /// The web store's payment page: the card goes to GP-API once, the store keeps the token.
    async fn token(&self, card: &str) -> String {
        let base = self.hl.gpapi_url();
        let nonce = format!("n-{:x}", rand::random::<u64>());
        let secret = heartsuite_heartland::gpapi::access_token_secret(
            &nonce,
            &Secret::new("sandbox-app-key"),
        );
        let tok: Value = self
            .http
            .post(format!("{base}/accesstoken"))
            .header("X-GP-Version", "2021-03-22")
            .json(&json!({"app_id": "sandbox-app-id", "nonce": nonce, "secret": secret, "grant_type": "client_credentials"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let pm: Value = self
            .http
            .post(format!("{base}/payment-methods"))
            .header("X-GP-Version", "2021-03-22")
            .bearer_auth(tok["token"].as_str().unwrap())
            .json(&json!({"card": {"number": card, "expiry_month": "12", "expiry_year": "30"}, "name": "Web Shopper"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = pm["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("PMT_"), "{pm}");
        id
    }

    async fn post_signed(&self, source: &str, secret: &str, body: &Value) -> Value {
        let body = body.to_string();
        let ts = (SystemClock.now_micros() / 1_000_000).to_string();
        let sig = ingress::hmac_signature(secret.as_bytes(), &ts, body.as_bytes());
        let r = self
            .http
            .post(format!("http://{}/hooks/{source}", self.running.addr))
            .header(ingress::TIMESTAMP_HEADER, ts)
            .header(ingress::SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap_or(Value::Null)
    }

    async fn jobs(&self) -> BTreeMap<JobState, i64> {
        self.store.job_counts().await.unwrap().into_iter().collect()
    }

    /// Waits until no job is pending, running or retrying, and `want` succeeded+dead jobs exist.
    async fn settle(&self, want_finished: i64) -> BTreeMap<JobState, i64> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let c = self.jobs().await;
            let get = |s| c.get(&s).copied().unwrap_or(0);
            let finished = get(JobState::Succeeded) + get(JobState::Dead);
            if finished >= want_finished
                && get(JobState::Pending) + get(JobState::Running) + get(JobState::Retrying) == 0
            {
                return c;
            }
            assert!(Instant::now() < deadline, "jobs did not finish: {c:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn record(&self, record_type: &str, eid: &str) -> Value {
        self.nsc
            .get::<Value>(record_type, &format!("eid:{eid}"), true)
            .await
            .unwrap_or_else(|e| panic!("{record_type} {eid}: {e}"))
    }

    async fn count(&self, sql: &str) -> usize {
        self.nsc.suiteql(sql, 1000).await.unwrap().len()
    }

    /// A warehouse ships: fulfil these (order line, quantity) pairs of the sales order. The
    /// user-event script then posts the event as it really does, with `record: null`, so the
    /// flow can only work from what the engine reads back from NetSuite.
    async fn fulfil(&self, so_id: &str, lines: &[(i64, &str)]) -> String {
        let items: Vec<Value> = lines
            .iter()
            .map(|(l, q)| json!({"orderLine": l, "quantity": q, "itemReceive": true}))
            .collect();
        let id = self
            .nsc
            .transform(
                "salesOrder",
                so_id,
                "itemFulfillment",
                Some(&json!({"item": {"items": items}})),
            )
            .await
            .unwrap();
        self.fulfilment_event(&id, &format!("itemFulfillment:{id}:create"))
            .await;
        id
    }

    async fn fulfilment_event(&self, id: &str, event_id: &str) {
        let ev = json!({"event_id": event_id, "type": "create", "record_type": "itemFulfillment", "id": id,
                        "external_id": null, "occurred_at": "2026-11-27T10:00:00Z", "record": null});
        self.post_signed("netsuite", NS_SECRET, &ev).await;
    }

    async fn stop(self) {
        self.running.shutdown().await;
        self.ns.shutdown().await;
        self.hl.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn order(id: &str, event_id: &str, token: &str) -> Value {
    json!({
        "event_id": event_id, "type": "order.created", "id": id,
        "created_at": "2026-11-26T15:04:05Z", "currency": "USD",
        "customer": {
            "email": format!(" Shopper.{id}@Example.COM "), "phone": "(512) 555-0100",
            "first_name": "pat", "last_name": "SHOPPER",
            "billing_address": {"line1": "123 Main St", "city": "Austin", "state": "TX", "zip": "78701", "country": "US"}
        },
        "lines": [
            {"sku": "O2C-TEE", "quantity": 2, "unit_price": "19.99"},
            {"sku": "O2C-MUG", "quantity": 3, "unit_price": "12.50"}
        ],
        "totals": {"subtotal": "77.48", "shipping": "0.00", "tax": "0.00", "total": "77.48"},
        "payment": {"token": token}
    })
}

fn dec(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => panic!("not an amount: {other}"),
    }
}

fn cents(v: &Value) -> i64 {
    let d: rust_decimal::Decimal = dec(v).parse().unwrap();
    (d * rust_decimal::Decimal::from(100)).try_into().unwrap()
}

#[tokio::test]
async fn order_to_cash_partial_then_rest_and_a_decline() {
    let w = start().await;
    for (sku, price) in [("O2C-TEE", "19.99"), ("O2C-MUG", "12.50")] {
        w.nsc
            .upsert(
                "inventoryItem",
                &format!("hs-item-{sku}"),
                &json!({"itemId": sku, "displayName": sku, "basePrice": price}),
            )
            .await
            .unwrap();
    }
    let good = w.token(APPROVE_CARD).await;
    let bad = w.token(DECLINE_CARD).await;

    // ------------------------------------------------ the approved order
    w.post_signed("shop", SHOP_SECRET, &order("5001", "evt-5001", &good))
        .await;
    w.settle(1).await;
    let so = w.record("salesOrder", "hs-so-5001").await;
    let so_id = so["id"].as_str().unwrap().to_string();
    assert_eq!(so["orderStatus"]["id"], "B", "{so}");
    assert_eq!(cents(&so["total"]), 7748, "{so}");
    let auth_id = so["custbody_hs_auth_id"]
        .as_str()
        .expect("authorization on the sales order")
        .to_string();
    assert!(
        so["custbody_hs_auth_code"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{so}"
    );
    let lines = so["item"]["items"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (dec(&lines[0]["quantity"]), cents(&lines[0]["rate"])),
        ("2".into(), 1999)
    );
    assert_eq!(
        (dec(&lines[1]["quantity"]), cents(&lines[1]["rate"])),
        ("3".into(), 1250)
    );
    let cust = w
        .record("customer", "hs-shopcust-shopper_d5001_aexample_dcom")
        .await;
    assert_eq!(so["entity"]["id"], cust["id"]);
    assert_eq!(
        (cust["email"].as_str(), cust["phone"].as_str()),
        (Some("shopper.5001@example.com"), Some("+15125550100"))
    );
    let auth = w.gp.get_transaction(&auth_id).await.unwrap();
    assert_eq!(
        (auth.status.as_str(), auth.amount.map(|m| m.minor)),
        ("PREAUTHORIZED", Some(7748))
    );

    // Partial shipment: 1 tee + 2 mugs = 19.99 + 25.00 = 44.99.
    let f1 = w.fulfil(&so_id, &[(1, "1"), (2, "2")]).await;
    w.settle(2).await;
    let inv1 = w.record("invoice", &format!("hs-inv-{f1}")).await;
    assert_eq!(cents(&inv1["total"]), 4499, "{inv1}");
    let pays = w.nsc.suiteql(&format!("SELECT externalid FROM transaction WHERE recordtype = 'customerpayment' AND memo LIKE '%web order 5001'"), 100).await.unwrap();
    assert_eq!(pays.len(), 1, "{pays:?}");
    let pay1_eid = pays[0]["externalid"].as_str().unwrap().to_string();
    let cap1_id = pay1_eid.strip_prefix("hs-pay-").unwrap().to_string();
    let cap1 = w.gp.get_transaction(&cap1_id).await.unwrap();
    assert_eq!(
        (cap1.status.as_str(), cap1.amount.map(|m| m.minor)),
        ("CAPTURED", Some(4499))
    );
    assert_eq!(cap1.parent_resource_id.as_deref(), Some(auth_id.as_str()));
    let pay1 = w.record("customerPayment", &pay1_eid).await;
    assert_eq!(cents(&pay1["payment"]), 4499, "{pay1}");
    assert_eq!(pay1["apply"]["items"][0]["doc"]["id"], inv1["id"], "{pay1}");
    assert_eq!(cents(&pay1["apply"]["items"][0]["amount"]), 4499, "{pay1}");
    let inv1 = w.record("invoice", &format!("hs-inv-{f1}")).await;
    assert_eq!(
        cents(&inv1["amountRemaining"]),
        0,
        "the payment settles the first invoice: {inv1}"
    );

    // The rest: 1 tee + 1 mug = 32.49; together exactly the authorized 77.48.
    let f2 = w.fulfil(&so_id, &[(1, "1"), (2, "1")]).await;
    w.settle(3).await;
    let inv2 = w.record("invoice", &format!("hs-inv-{f2}")).await;
    assert_eq!(cents(&inv2["total"]), 3249, "{inv2}");
    let pays = w.nsc.suiteql("SELECT externalid FROM transaction WHERE recordtype = 'customerpayment' AND memo LIKE '%web order 5001'", 100).await.unwrap();
    assert_eq!(pays.len(), 2, "{pays:?}");
    let pay2_eid = pays
        .iter()
        .filter_map(|p| p["externalid"].as_str())
        .find(|e| *e != pay1_eid)
        .unwrap()
        .to_string();
    let cap2 =
        w.gp.get_transaction(pay2_eid.strip_prefix("hs-pay-").unwrap())
            .await
            .unwrap();
    assert_eq!(
        (cap2.status.as_str(), cap2.amount.map(|m| m.minor)),
        ("CAPTURED", Some(3249))
    );
    let pay2 = w.record("customerPayment", &pay2_eid).await;
    assert_eq!(
        (
            cents(&pay2["payment"]),
            &pay2["apply"]["items"][0]["doc"]["id"]
        ),
        (3249, &inv2["id"]),
        "{pay2}"
    );

    // Both shipments together captured exactly the authorization; GP-API refuses a cent more.
    let cent = heartsuite_core::Money::from_decimal_str("0.01", "USD").unwrap();
    let over =
        w.gp.capture(&auth_id, Some(cent), "o2c-test-over-capture")
            .await;
    assert!(over.is_err(), "{over:?}");

    // ------------------------------------------------ the declined order
    // Its shopper is already a NetSuite customer, made elsewhere, found by e-mail: reused.
    let known = json!({"firstName": "Pat", "lastName": "Shopper", "email": "shopper.5002@example.com", "subsidiary": {"id": "1"}});
    let known_id = w.nsc.upsert("customer", "crm-5002", &known).await.unwrap();
    w.post_signed("shop", SHOP_SECRET, &order("5002", "evt-5002", &bad))
        .await;
    let c = w.settle(4).await;
    assert_eq!(
        c.get(&JobState::Dead).copied(),
        Some(1),
        "the decline is dead-lettered for a person: {c:?}"
    );
    let held = w.record("salesOrder", "hs-so-5002").await;
    assert_eq!(held["entity"]["id"], json!(known_id), "{held}");
    assert!(
        w.nsc
            .find_id_by_external_id("customer", "hs-shopcust-shopper_d5002_aexample_dcom")
            .await
            .unwrap()
            .is_none(),
        "no second customer for a known e-mail"
    );
    assert_eq!(
        held["orderStatus"]["id"], "A",
        "on hold (Pending Approval): {held}"
    );
    let memo = held["memo"].as_str().unwrap_or_default();
    assert!(memo.starts_with("ON HOLD: payment declined (101"), "{memo}");
    assert!(
        held.get("custbody_hs_auth_id").is_none(),
        "nothing to capture from: {held}"
    );
    let declined =
        w.gp.get_transaction(held["custbody_hs_declined_auth_id"].as_str().unwrap())
            .await
            .unwrap();
    assert_eq!(declined.status.as_str(), "DECLINED");
    assert!(
        w.alerts
            .sent()
            .iter()
            .any(|a| a.contains("shop_order_to_sales_order") && a.contains("declined")),
        "{:?}",
        w.alerts.sent()
    );

    // ------------------------------------------------ redeliveries create nothing new
    let before = (
        w.count("SELECT id FROM transaction").await,
        w.count("SELECT id FROM customer").await,
        w.gp.list_all_transactions(&Default::default())
            .await
            .unwrap()
            .len(),
    );
    // The same deliveries (same event ids) are duplicates at the door...
    let dup = w
        .post_signed("shop", SHOP_SECRET, &order("5001", "evt-5001", &good))
        .await;
    assert_eq!(dup["status"], "duplicate", "{dup}");
    // ...and the shop re-sending an order, or NetSuite re-sending a fulfilment, under a new
    // event id runs the flows again, which find every key done.
    w.post_signed(
        "shop",
        SHOP_SECRET,
        &order("5001", "evt-5001-resent", &good),
    )
    .await;
    w.post_signed("shop", SHOP_SECRET, &order("5002", "evt-5002-resent", &bad))
        .await;
    for f in [&f1, &f2] {
        w.fulfilment_event(f, &format!("itemFulfillment:{f}:create:resent"))
            .await;
    }
    // GP-API's own `captured` notification of each capture (had a status_url been set): the
    // payment flow leaves `hs-order-` transactions to this chain, so no job, no second payment.
    for cap in [&cap1, &cap2] {
        let body = json!({"id": cap.id, "status": "CAPTURED", "type": "SALE", "amount": cap.amount.map(|m| m.minor.to_string()),
                          "currency": "USD", "reference": cap.reference, "time_created": "2026-11-27T10:00:00.000Z"})
        .to_string();
        let sig = heartsuite_heartland::gp_signature(body.as_bytes(), &Secret::new(GP_KEY));
        let r = w
            .http
            .post(format!("http://{}/hooks/gpapi", w.running.addr))
            .header("x-gp-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(cap.reference.as_deref(), Some("hs-order-5001"));
    }
    let c = w.settle(8).await;
    assert_eq!(
        c.get(&JobState::Dead).copied(),
        Some(2),
        "the resent decline is dead-lettered again, nothing else: {c:?}"
    );
    let after = (
        w.count("SELECT id FROM transaction").await,
        w.count("SELECT id FROM customer").await,
        w.gp.list_all_transactions(&Default::default())
            .await
            .unwrap()
            .len(),
    );
    assert_eq!(
        before, after,
        "(NetSuite transactions, customers, GP-API transactions) unchanged"
    );
    let auth = w.gp.get_transaction(&auth_id).await.unwrap();
    assert_eq!(
        auth.status.as_str(),
        "PREAUTHORIZED",
        "the authorization itself is never captured twice"
    );
    w.stop().await;
}
