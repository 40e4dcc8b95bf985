//! Issue #6, flow 1 end to end: tickets rung up in the Heartland Retail sandbox reach the engine
//! as Retail's own webhooks, are fetched back, and become NetSuite cash sales, an invoice with
//! its payment, and a cash refund in the NetSuite sandbox, with items found by SKU, amounts to
//! the cent, and stock moved once at the right location. Redelivered webhooks change nothing.

mod common;

use common::engine::{retail_to_netsuite_config, sandbox_netsuite_client, start_engine};
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_sandbox::heartland;
use heartsuite_store::{DynStore, JobState};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const HOOK_TOKEN: &str = "pos-sale-test-token-0123456789";
const RETAIL_TOKEN: &str = "sandbox-retail-token";

/// The Retail sandbox's REST API, as a POS would drive it.
struct Retail {
    http: reqwest::Client,
    base: String,
}

impl Retail {
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(RETAIL_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("retail");
        let status = r.status();
        let v: Value = r.json().await.expect("retail json");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }
    async fn create(&self, path: &str, body: Value) -> i64 {
        self.send(reqwest::Method::POST, path, body).await["id"]
            .as_i64()
            .expect("id")
    }
    /// Rings up a ticket (or return) and completes it, which fires `sales_transaction_completed`.
    async fn ticket(&self, head: Value, lines: &[Value], payments: &[Value]) -> Value {
        let id = self.create("/sales/tickets", head).await;
        for l in lines {
            self.create(&format!("/sales/tickets/{id}/lines"), l.clone())
                .await;
        }
        for p in payments {
            self.create(&format!("/sales/tickets/{id}/payments"), p.clone())
                .await;
        }
        self.send(
            reqwest::Method::PUT,
            &format!("/sales/tickets/{id}"),
            json!({"status": "complete"}),
        )
        .await
    }
}

async fn on_hand(ns: &NetSuiteClient, item: &str, location: u32) -> String {
    let rows = ns
        .suiteql(&format!("SELECT quantityonhand FROM aggregateitemlocation WHERE item = {item} AND location = {location}"), 10)
        .await
        .expect("suiteql");
    rows.first()
        .and_then(|r| r.get("quantityonhand"))
        .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()))
        .unwrap_or_default()
}

async fn counts(store: &DynStore) -> BTreeMap<JobState, i64> {
    store
        .job_counts()
        .await
        .expect("counts")
        .into_iter()
        .collect()
}

/// Waits until `n` jobs succeeded; any dead job fails at once with its error.
async fn wait_succeeded(store: &DynStore, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = counts(store).await;
        if c.get(&JobState::Dead).copied().unwrap_or(0) > 0 {
            let dead = store.jobs(Some(JobState::Dead), 10).await.expect("jobs");
            panic!(
                "dead-lettered: {:?}",
                dead.iter()
                    .map(|j| (&j.flow, &j.last_error))
                    .collect::<Vec<_>>()
            );
        }
        if c.get(&JobState::Succeeded).copied().unwrap_or(0) >= n {
            return;
        }
        assert!(Instant::now() < deadline, "jobs did not finish: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn line(v: &Value, i: usize) -> &Value {
    &v["item"]["items"][i]
}

#[tokio::test]
async fn pos_tickets_become_cash_sales_invoice_and_cash_refund_once() {
    let gp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hl = heartland::spawn(gp, rt, heartland::Config::default())
        .await
        .unwrap();
    let ns_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nss = heartsuite_sandbox::netsuite::spawn(ns_l, Default::default())
        .await
        .unwrap();
    let ns = sandbox_netsuite_client(nss.base_url());

    // NetSuite, the book of record for items: made there, not by us, found by SKU (itemId).
    // The walk-in customer, by the externalId the flows' walk_in_customer table names.
    let walk_in = ns
        .create(
            "customer",
            &json!({"externalId": "hs-walk-in", "companyName": "Walk-in customer", "isPerson": false, "subsidiary": {"id": "1"}}),
        )
        .await
        .unwrap();
    let mut items = BTreeMap::new();
    for (sku, price) in [
        ("TEE-BLK-M", "20.00"),
        ("MUG-01", "12.50"),
        // A quote in a SKU must not end the SuiteQL string literal it is looked up with.
        ("CAP-O'NEIL", "8.00"),
        ("POS-SALES-TAX", "0"),
        ("POS-DISCOUNT", "0"),
    ] {
        let id = ns
            .create(
                "inventoryItem",
                &json!({"itemId": sku, "displayName": sku, "basePrice": price}),
            )
            .await
            .unwrap();
        items.insert(sku, id);
    }
    // Stock: Main Store (1) 10 tees and 5 mugs, Outlet (3) 5 mugs and 3 caps, Warehouse (2) 5 tees.
    for (loc, lines) in [
        (1, vec![("TEE-BLK-M", 10), ("MUG-01", 5)]),
        (3, vec![("MUG-01", 5), ("CAP-O'NEIL", 3)]),
        (2, vec![("TEE-BLK-M", 5)]),
    ] {
        let lines: Vec<Value> = lines.iter().map(|(s, q)| json!({"item": {"id": items[s]}, "location": {"id": loc.to_string()}, "adjustQtyBy": q})).collect();
        ns.create("inventoryAdjustment", &json!({"account": {"id": "11"}, "adjLocation": {"id": loc.to_string()}, "inventory": {"items": lines}}))
            .await
            .unwrap();
    }

    // Heartland Retail: the two items by the same SKUs, a known customer.
    let retail = Retail {
        http: reqwest::Client::new(),
        base: hl.retail_url(),
    };
    // Retail: the sandbox merchant's stores, in the order the flows' location table lists them.
    let mut stores = Vec::new();
    for name in [
        "Chicago Loop",
        "Austin Domain",
        "Portland Pearl",
        "Toronto Queen West",
        "Wholesale counter",
    ] {
        stores.push(retail.create("/locations", json!({"name": name})).await);
    }
    assert_eq!(
        stores,
        [100001, 100002, 100003, 100004, 100005],
        "the flows' location table rows"
    );
    // Chicago -> NetSuite Main Store (1), Austin -> Outlet (3), the wholesale counter invoices
    // from the Warehouse (2).
    let (main, outlet, wholesale) = (stores[0], stores[1], stores[4]);
    let mut retail_items = Vec::new();
    for (sku, description, price) in [
        ("TEE-BLK-M", "Black tee M", 20.00),
        ("MUG-01", "Mug", 12.50),
        ("CAP-O'NEIL", "O'Neil cap", 8.00),
    ] {
        retail_items.push(
            retail
                .create(
                    "/items",
                    json!({"public_id": sku, "description": description, "price": price}),
                )
                .await,
        );
    }
    let (tee, mug, cap) = (retail_items[0], retail_items[1], retail_items[2]);
    let dana = retail
        .create(
            "/customers",
            json!({"first_name": "Dana", "last_name": "Whitfield", "email": "dana@example.com"}),
        )
        .await;
    // The customer flow already put Dana in NetSuite.
    let dana_ns = ns
        .create("customer", &json!({"externalId": format!("hs-cust-{dana}"), "firstName": "Dana", "lastName": "Whitfield", "isPerson": true, "subsidiary": {"id": "1"}}))
        .await
        .unwrap();

    // The engine, with the built-in flows from the repository.
    let cfg = retail_to_netsuite_config(HOOK_TOKEN, hl.retail_url(), nss.base_url());
    let engine = start_engine(&cfg).await;
    let (running, store) = (engine.running, engine.store);
    let hook = format!("http://{}/hooks/retail/{HOOK_TOKEN}", running.addr);
    retail
        .send(
            reqwest::Method::POST,
            "/webhooks",
            json!({"url": hook, "events": ["sales_transaction_completed"]}),
        )
        .await;

    // Ticket A, Main Store, Dana, Visa: 2 tees discounted 20.00 -> 19.00, a mug, 8.25% tax.
    let a = retail
        .ticket(
            json!({"type": "Ticket", "source_location_id": main, "customer_id": dana}),
            &[
                json!({"type": "ItemLine", "item_id": tee, "qty": 2, "original_unit_price": 20.00, "adjusted_unit_price": 19.00}),
                json!({"type": "ItemLine", "item_id": mug, "qty": 1}),
                json!({"type": "TaxLine", "value": 4.17, "description": "Sales Tax"}),
            ],
            &[json!({"type": "CreditCardPayment", "amount": 54.67, "payment_type_id": 3})],
        )
        .await;
    // Ticket B, Outlet, no customer, cash: a mug and a cap, 20.50 + 1.69 tax.
    let b = retail
        .ticket(
            json!({"type": "Ticket", "source_location_id": outlet}),
            &[
                json!({"type": "ItemLine", "item_id": mug, "qty": 1}),
                json!({"type": "ItemLine", "item_id": cap, "qty": 1}),
                json!({"type": "TaxLine", "value": 1.69, "description": "Sales Tax"}),
            ],
            &[json!({"type": "CashPayment", "amount": 22.19})],
        )
        .await;
    // Ticket C, the wholesale counter (invoice mode), Dana, Mastercard, no tax.
    let c = retail
        .ticket(
            json!({"type": "Ticket", "source_location_id": wholesale, "customer_id": dana}),
            &[json!({"type": "ItemLine", "item_id": tee, "qty": 3})],
            &[json!({"type": "CreditCardPayment", "amount": 60.00, "payment_type_id": 4})],
        )
        .await;
    // Return R of one discounted tee from ticket A, back on the Visa.
    let r = retail
        .ticket(
            json!({"type": "Return", "source_location_id": main, "customer_id": dana, "parent_transaction_id": a["id"]}),
            &[
                json!({"type": "ItemLine", "item_id": tee, "qty": -1, "original_unit_price": 20.00, "adjusted_unit_price": 19.00}),
                json!({"type": "TaxLine", "value": -1.57, "description": "Sales Tax"}),
            ],
            &[json!({"type": "CreditCardPayment", "amount": -20.57, "payment_type_id": 3})],
        )
        .await;
    wait_succeeded(&store, 4).await;

    let (aid, bid, cid, rid) = (
        a["id"].as_i64().unwrap(),
        b["id"].as_i64().unwrap(),
        c["id"].as_i64().unwrap(),
        r["id"].as_i64().unwrap(),
    );
    let day = a["local_completed_at"].as_str().unwrap()[..10].to_string();

    // A: a cash sale for Dana at the Main Store, Visa, list prices + discount + tax = 54.67.
    let sale: Value = ns
        .get("cashSale", &format!("eid:hs-sale-{aid}"), true)
        .await
        .unwrap();
    assert_eq!(sale["entity"]["id"], json!(dana_ns), "{sale}");
    assert_eq!(sale["location"]["id"], json!("1"));
    assert_eq!(sale["paymentMethod"]["id"], json!("5"));
    assert_eq!(sale["undepFunds"], json!(true));
    assert_eq!(sale["tranDate"], json!(day));
    assert_eq!(sale["total"], json!(54.67), "{sale}");
    assert_eq!(sale["item"]["items"].as_array().unwrap().len(), 4, "{sale}");
    assert_eq!(
        (
            &line(&sale, 0)["item"]["id"],
            &line(&sale, 0)["quantity"],
            &line(&sale, 0)["amount"]
        ),
        (&json!(items["TEE-BLK-M"]), &json!(2), &json!(40))
    );
    assert_eq!(
        (
            &line(&sale, 1)["item"]["id"],
            &line(&sale, 1)["quantity"],
            &line(&sale, 1)["amount"]
        ),
        (&json!(items["MUG-01"]), &json!(1), &json!(12.5))
    );
    assert_eq!(
        (&line(&sale, 2)["item"]["id"], &line(&sale, 2)["amount"]),
        (&json!(items["POS-DISCOUNT"]), &json!(-2))
    );
    assert_eq!(
        (&line(&sale, 3)["item"]["id"], &line(&sale, 3)["amount"]),
        (&json!(items["POS-SALES-TAX"]), &json!(4.17))
    );

    // B: walk-in, Outlet, cash, 22.19; the cap found by its quoted SKU.
    let sale_b: Value = ns
        .get("cashSale", &format!("eid:hs-sale-{bid}"), true)
        .await
        .unwrap();
    assert_eq!(sale_b["entity"]["id"], json!(walk_in));
    assert_eq!(sale_b["location"]["id"], json!("3"));
    assert_eq!(sale_b["paymentMethod"]["id"], json!("1"));
    assert_eq!(sale_b["total"], json!(22.19), "{sale_b}");
    assert_eq!(
        line(&sale_b, 1)["item"]["id"],
        json!(items["CAP-O'NEIL"]),
        "{sale_b}"
    );

    // C: an invoice at the Warehouse, paid in full by a Mastercard payment applied to it.
    let inv: Value = ns
        .get("invoice", &format!("eid:hs-sale-{cid}"), true)
        .await
        .unwrap();
    assert_eq!(inv["entity"]["id"], json!(dana_ns));
    assert_eq!(inv["total"], json!(60), "{inv}");
    assert_eq!(inv["amountRemaining"], json!(0), "{inv}");
    let pay: Value = ns
        .get("customerPayment", &format!("eid:hs-sale-pay-{cid}"), true)
        .await
        .unwrap();
    assert_eq!(pay["payment"], json!(60), "{pay}");
    assert_eq!(pay["paymentOption"]["id"], json!("4"), "{pay}");

    // R: a cash refund for Dana of 1 tee at 20.00, less its 1.00 discount, plus 1.57 tax = 20.57.
    let refund: Value = ns
        .get("cashRefund", &format!("eid:hs-ret-{rid}"), true)
        .await
        .unwrap();
    assert_eq!(refund["entity"]["id"], json!(dana_ns));
    assert_eq!(refund["location"]["id"], json!("1"));
    assert_eq!(refund["paymentMethod"]["id"], json!("5"));
    assert_eq!(
        refund["account"]["id"],
        json!("1"),
        "paid out of Undeposited Funds"
    );
    assert_eq!(refund["total"], json!(20.57), "{refund}");
    assert_eq!(
        (
            &line(&refund, 0)["item"]["id"],
            &line(&refund, 0)["quantity"]
        ),
        (&json!(items["TEE-BLK-M"]), &json!(1))
    );
    assert_eq!(line(&refund, 1)["amount"], json!(-1));
    assert_eq!(line(&refund, 2)["amount"], json!(1.57));

    // Stock moved once, at each ticket's store: Main Store tees 10 - 2 + 1, mugs 5 - 1; Outlet
    // mugs 5 - 1, caps 3 - 1; Warehouse tees 5 - 3. Tax and discount lines move none.
    let stock = || async {
        (
            on_hand(&ns, &items["TEE-BLK-M"], 1).await,
            on_hand(&ns, &items["MUG-01"], 1).await,
            on_hand(&ns, &items["MUG-01"], 3).await,
            on_hand(&ns, &items["CAP-O'NEIL"], 3).await,
            on_hand(&ns, &items["TEE-BLK-M"], 2).await,
            on_hand(&ns, &items["POS-SALES-TAX"], 1).await,
        )
    };
    let expected = (
        "9".to_string(),
        "4".to_string(),
        "4".to_string(),
        "2".to_string(),
        "2".to_string(),
        String::new(),
    );
    assert_eq!(stock().await, expected);

    // Found by SKU once, then remembered: the crosswalk has the NetSuite ids.
    for sku in [
        "TEE-BLK-M",
        "MUG-01",
        "CAP-O'NEIL",
        "POS-SALES-TAX",
        "POS-DISCOUNT",
    ] {
        let e = store
            .effect("netsuite", "item", sku)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{sku} not in the crosswalk"));
        assert_eq!(e.remote_id, items[sku]);
    }

    // Redelivery: the same webhooks again (deduplicated at the door), then the same tickets
    // re-saved (new events, the flows run again): nothing new in NetSuite, no request made.
    let requests = nss.stats().await.requests;
    let records = nss.stats().await.records;
    let http = reqwest::Client::new();
    for t in [&a, &b, &c, &r] {
        assert!(
            http.post(&hook)
                .json(t)
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    for t in [&a, &b, &c, &r] {
        let mut resaved = t.clone();
        resaved["updated_at"] = json!("2099-01-01T00:00:00Z");
        assert!(
            http.post(&hook)
                .json(&resaved)
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    wait_succeeded(&store, 8).await;
    let c8 = counts(&store).await;
    assert_eq!(
        c8.get(&JobState::Succeeded).copied(),
        Some(8),
        "exact redeliveries make no job: {c8:?}"
    );
    assert_eq!(
        nss.stats().await.records,
        records,
        "no new NetSuite records"
    );
    assert_eq!(
        nss.stats().await.requests,
        requests,
        "the reruns answered from the crosswalk, no NetSuite call"
    );
    assert_eq!(stock().await, expected, "stock moved once");
    assert_eq!(records.get("cashSale"), Some(&2));
    assert_eq!(records.get("cashRefund"), Some(&1));
    assert_eq!(records.get("invoice"), Some(&1));

    // Two NetSuite items with one SKU: the sale is not posted to either; it is dead-lettered as
    // a data error naming the SKU, for a person to fix the catalogue and replay.
    for _ in 0..2 {
        ns.create(
            "inventoryItem",
            &json!({"itemId": "TWIN-1", "displayName": "Twin", "basePrice": "5.00"}),
        )
        .await
        .unwrap();
    }
    let twin = retail
        .create(
            "/items",
            json!({"public_id": "TWIN-1", "description": "Twin", "price": 5.00}),
        )
        .await;
    let t = retail
        .ticket(
            json!({"type": "Ticket", "source_location_id": main}),
            &[json!({"type": "ItemLine", "item_id": twin, "qty": 1})],
            &[json!({"type": "CashPayment", "amount": 5.00})],
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = store.jobs(Some(JobState::Dead), 10).await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "the twin-SKU sale was not dead-lettered: {:?}",
            counts(&store).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let failure = dead[0].last_error.clone().expect("the failure is kept");
    assert_eq!(
        failure.class,
        heartsuite_core::ErrorClass::Data,
        "{failure:?}"
    );
    assert_eq!(failure.field_path.as_deref(), Some("sku"), "{failure:?}");
    assert!(
        failure
            .message
            .contains("2 items with SKU (itemId) `TWIN-1`"),
        "{failure:?}"
    );
    assert!(
        ns.find_id_by_external_id("cashSale", &format!("hs-sale-{}", t["id"]))
            .await
            .unwrap()
            .is_none(),
        "nothing posted for it"
    );

    running.shutdown().await;
    nss.shutdown().await;
    hl.shutdown().await;
    let _ = std::fs::remove_dir_all(&cfg.server.data_dir);
}
