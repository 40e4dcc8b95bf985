//! The real NetSuite client (`crates/netsuite`) against the real NetSuite simulator
//! (`crates/sandbox-netsuite`) on a random loopback port. The two were written independently from
//! `shared/reference/netsuite.md`; every operation and error class the connector relies on is
//! exercised here, so a disagreement between them shows up as a failing test.

#[path = "../src/bench_netsuite.rs"]
mod bench_netsuite;

use heartsuite_core::{ErrorClass, Secret};
use heartsuite_netsuite::{Auth, Concurrency, Config, Error, NetSuiteClient, poll_changes};
use heartsuite_sandbox::netsuite as ns;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const PRIVATE_KEY: &str = include_str!("../testdata/netsuite/sandbox-cert-es256-private.pk8.pem");

async fn sandbox() -> ns::SandboxHandle {
    sandbox_with(ns::Config::default()).await
}

async fn sandbox_with(cfg: ns::Config) -> ns::SandboxHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ns::spawn(listener, cfg).await.unwrap()
}

fn tba(consumer_secret: &str) -> Auth {
    let d = ns::Config::default();
    Auth::Tba {
        consumer_key: Secret::new(d.consumer_key),
        consumer_secret: Secret::new(consumer_secret),
        token_id: Secret::new(d.token_id),
        token_secret: Secret::new(d.token_secret),
    }
}

fn oauth2(client_id: &str) -> Auth {
    Auth::OAuth2 {
        client_id: client_id.into(),
        certificate_id: "sandbox-cert".into(),
        private_key_pem: Secret::new(PRIVATE_KEY),
        scope: "rest_webservices".into(),
    }
}

fn client_with(sb: &ns::SandboxHandle, auth: Auth, tweak: impl FnOnce(&mut Config)) -> NetSuiteClient {
    let mut cfg = Config::new("1234567_SB1", auth).with_base_url(sb.base_url());
    cfg.timeout = Duration::from_secs(10);
    cfg.backoff_base = Duration::from_millis(10);
    cfg.max_backoff = Duration::from_secs(1);
    tweak(&mut cfg);
    NetSuiteClient::new(cfg).unwrap()
}

fn client(sb: &ns::SandboxHandle) -> NetSuiteClient {
    client_with(sb, tba("sandbox-consumer-secret"), |_| {})
}

/// A JSON number or numeric string as f64 (amounts in these tests have ≤ 2 decimals).
fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.to_string().parse().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a number: {other}"),
    }
}

async fn count(sb: &ns::SandboxHandle, rtype: &str) -> u64 {
    sb.stats().await.records.get(rtype).copied().unwrap_or(0)
}

async fn new_customer(c: &NetSuiteClient, name: &str) -> String {
    c.create("customer", &json!({"companyName": name, "subsidiary": {"id": "1"}})).await.unwrap()
}

async fn new_item(c: &NetSuiteClient, item_id: &str, price: f64) -> String {
    c.create("inventoryItem", &json!({"itemId": item_id, "displayName": item_id, "basePrice": price, "subsidiary": {"id": "1"}}))
        .await
        .unwrap()
}

/// A sales order with two lines: 3 × 10.00 and 2 × 5.50 (total 41).
fn order_body(customer: &str, i1: &str, i2: &str) -> Value {
    json!({
        "entity": {"id": customer},
        "subsidiary": {"id": "1"},
        "location": {"id": "1"},
        "orderStatus": "B",
        "item": {"items": [
            {"item": {"id": i1}, "quantity": 3, "rate": 10},
            {"item": {"id": i2}, "quantity": 2, "rate": 5.5},
        ]},
    })
}

fn failure(e: &Error) -> heartsuite_core::Failure {
    e.to_failure()
}

// ------------------------------------------------------------------------------------- auth

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tba_oauth2_and_refused_credentials() {
    let sb = sandbox().await;

    // TBA (HMAC-SHA256, realm = raw account id, signed over the URL as sent).
    let c = client(&sb);
    let id = new_customer(&c, "TBA Co").await;
    let got: Value = c.get("customer", &id, false).await.unwrap();
    assert_eq!(got["companyName"], "TBA Co");
    assert_eq!(got["id"], json!(id));
    // A query string with characters that need RFC 3986 encoding is signed as sent.
    let page = c.list("customer", Some("companyName IS \"TBA Co\""), 10, 0).await.unwrap();
    assert_eq!(page.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![id.clone()]);

    // OAuth 2.0 client credentials with an ES256 assertion; the token is cached.
    let o = client_with(&sb, oauth2("sandbox-client-id"), |_| {});
    let id2 = new_customer(&o, "OAuth Co").await;
    let got: Value = o.get("customer", &id2, false).await.unwrap();
    assert_eq!(got["companyName"], "OAuth Co");
    assert_eq!(o.token_fetches(), 1, "one token for several calls");

    let before = sb.stats().await.auth_failures;
    // Wrong TBA consumer secret: INVALID_LOGIN → auth class, nothing written.
    let bad = client_with(&sb, tba("not-the-secret"), |_| {});
    let e = bad.create("customer", &json!({"companyName": "Nope", "subsidiary": {"id": "1"}})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert_eq!(e.code(), Some("INVALID_LOGIN"));
    assert!(!e.to_string().contains("not-the-secret"), "no secret in the message: {e}");
    assert_eq!(count(&sb, "customer").await, 2);

    // Unknown OAuth 2.0 client: the token endpoint refuses the assertion → auth class.
    let bad2 = client_with(&sb, oauth2("someone-else"), |_| {});
    let e = bad2.get::<Value>("customer", &id, false).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert!(matches!(e, Error::Token { status: 400, .. }), "{e:?}");

    assert!(sb.stats().await.auth_failures >= before + 2);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_limits_feed_the_governor() {
    let sb = sandbox_with(ns::Config { concurrency_limit: 4, ..Default::default() }).await;
    let c = client_with(&sb, tba("sandbox-consumer-secret"), |cfg| cfg.concurrency = Concurrency::FromAccount { fallback: 1 });
    let g = c.governance_limits().await.unwrap();
    assert_eq!(g.effective(), Some(4));
    // The first record call loads the limit into the governor.
    new_customer(&c, "Gov Co").await;
    assert_eq!(c.governor().limit(), 4);
    sb.shutdown().await;
}

// ------------------------------------------------------------------------- record service

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_expand_update_delete() {
    let sb = sandbox().await;
    let c = client(&sb);
    let cust = new_customer(&c, "Crud Co").await;
    let (i1, i2) = (new_item(&c, "CRUD-A", 10.0).await, new_item(&c, "CRUD-B", 5.5).await);

    let so = c.create("salesOrder", &order_body(&cust, &i1, &i2)).await.unwrap();
    // Without expandSubResources the sublist is a link, with it the lines are there.
    let flat: Value = c.get("salesOrder", &so, false).await.unwrap();
    assert!(flat["item"].get("items").is_none(), "sublist not expanded: {}", flat["item"]);
    assert!(flat["item"]["links"].is_array(), "{}", flat["item"]);
    let full: Value = c.get("salesOrder", &so, true).await.unwrap();
    let lines = full["item"]["items"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["item"]["id"], json!(i1));
    assert_eq!(lines[0]["item"]["refName"], "CRUD-A");
    assert_eq!(num(&lines[1]["amount"]), 11.0);
    assert_eq!(num(&full["total"]), 41.0);
    assert_eq!(full["entity"]["id"], json!(cust));
    assert_eq!(full["entity"]["refName"], "Crud Co");

    // The typed shapes read the simulator's JSON too.
    let typed: heartsuite_netsuite::SalesOrder = c.get("salesOrder", &so, true).await.unwrap();
    assert_eq!(typed.id.as_deref(), Some(so.as_str()));
    assert_eq!(typed.total.map(|d| d.to_string()).as_deref(), Some("41"));
    assert_eq!(typed.item.as_ref().map(|s| s.items.len()), Some(2));
    assert_eq!(typed.status.as_ref().and_then(|s| s.id.as_deref()), Some("B"));

    // PATCH: omitted fields stay, null clears.
    c.update("customer", &cust, &json!({"email": "ap@crud.example", "phone": "555-0100"}), &[]).await.unwrap();
    c.update("customer", &cust, &json!({"phone": null}), &[]).await.unwrap();
    let got: Value = c.get("customer", &cust, false).await.unwrap();
    assert_eq!(got["email"], "ap@crud.example");
    assert_eq!(got["companyName"], "Crud Co");
    assert!(got.get("phone").is_none() || got["phone"].is_null(), "phone cleared: {got}");

    // PATCH with replace=item swaps the sublist.
    c.update("salesOrder", &so, &json!({"item": {"items": [{"item": {"id": i2}, "quantity": 1, "rate": 5.5}]}}), &["item"])
        .await
        .unwrap();
    let full: Value = c.get("salesOrder", &so, true).await.unwrap();
    assert_eq!(full["item"]["items"].as_array().unwrap().len(), 1);
    assert_eq!(num(&full["total"]), 5.5);

    // A customer referenced by an order cannot be deleted (data error); the order can, then it.
    let e = c.delete("customer", &cust).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    c.delete("salesOrder", &so).await.unwrap();
    c.delete("customer", &cust).await.unwrap();
    let e = c.get::<Value>("customer", &cust, false).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.class(), ErrorClass::Dependency);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_by_external_id_creates_then_updates() {
    let sb = sandbox().await;
    let c = client(&sb);
    let id = c.upsert("customer", "hs-cust-1", &json!({"companyName": "Upsert Co", "subsidiary": {"id": "1"}})).await.unwrap();
    let again = c.upsert("customer", "hs-cust-1", &json!({"companyName": "Upsert Co Renamed", "subsidiary": {"id": "1"}})).await.unwrap();
    assert_eq!(id, again);
    assert_eq!(count(&sb, "customer").await, 1);
    let got: Value = c.get("customer", "eid:hs-cust-1", false).await.unwrap();
    assert_eq!(got["companyName"], "Upsert Co Renamed");
    assert_eq!(got["externalId"], "hs-cust-1");
    assert_eq!(c.find_id_by_external_id("customer", "hs-cust-1").await.unwrap(), Some(id.clone()));
    assert_eq!(c.find_id_by_external_id("customer", "hs-cust-missing").await.unwrap(), None);
    let none: Option<Value> = c.get_by_external_id("customer", "hs-cust-missing", false).await.unwrap();
    assert!(none.is_none());
    // Record types are matched case-insensitively (Oracle's samples use lowercase).
    let lower: Value = c.get("CUSTOMER", &id, false).await.unwrap();
    assert_eq!(lower["id"], json!(id));
    // An external id outside letters, digits, `_` and `-` (reference §1): the client refuses it
    // before sending, and the simulator refuses it in a POST body.
    let e = c.upsert("customer", "bad id/with slash", &json!({})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    let e = c.upsert("customer", "hs.dotted", &json!({})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    let e = c.create("customer", &json!({"companyName": "Dot Co", "subsidiary": {"id": "1"}, "externalId": "hs.dotted"})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    assert_eq!(failure(&e).field_path.as_deref(), Some("externalId"));
    assert_eq!(count(&sb, "customer").await, 1);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_order_to_fulfillment_invoice_and_payment() {
    let sb = sandbox().await;
    let c = client(&sb);
    let cust = new_customer(&c, "Transform Co").await;
    let (i1, i2) = (new_item(&c, "TR-A", 10.0).await, new_item(&c, "TR-B", 5.5).await);
    let so = c.create("salesOrder", &order_body(&cust, &i1, &i2)).await.unwrap();

    // Partial fulfilment: one of three on line 1, nothing of line 2.
    let partial = json!({"item": {"items": [
        {"orderLine": 1, "quantity": 1, "itemReceive": true},
        {"orderLine": 2, "itemReceive": false},
    ]}});
    let f1 = c.transform("salesOrder", &so, "itemFulfillment", Some(&partial)).await.unwrap();
    let ful: Value = c.get("itemFulfillment", &f1, true).await.unwrap();
    assert_eq!(ful["createdFrom"]["id"], json!(so));
    let fl = ful["item"]["items"].as_array().unwrap();
    assert_eq!(fl.len(), 1, "{ful}");
    assert_eq!(num(&fl[0]["quantity"]), 1.0);
    assert_eq!(num(&fl[0]["orderLine"]), 1.0);
    let order: Value = c.get("salesOrder", &so, false).await.unwrap();
    assert_eq!(order["status"]["id"], "D", "partially fulfilled: {}", order["status"]);

    // More than remains on the line: a data error naming the line's quantity.
    let over = json!({"item": {"items": [{"orderLine": 1, "quantity": 5, "itemReceive": true}]}});
    let e = c.transform("salesOrder", &so, "itemFulfillment", Some(&over)).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    assert_eq!(failure(&e).field_path.as_deref(), Some("item.items[0].quantity"));

    // The rest (no body: every open line), then bill it.
    let f2 = c.transform::<Value>("salesOrder", &so, "itemFulfillment", None).await.unwrap();
    assert_ne!(f1, f2);
    let inv = c.transform::<Value>("salesOrder", &so, "invoice", None).await.unwrap();
    let invoice: Value = c.get("invoice", &inv, true).await.unwrap();
    assert_eq!(num(&invoice["total"]), 41.0);
    assert_eq!(invoice["createdFrom"]["id"], json!(so));
    let order: Value = c.get("salesOrder", &so, false).await.unwrap();
    assert_eq!(order["status"]["id"], "G", "billed: {}", order["status"]);

    // invoice → customerPayment pays the open amount.
    let pay = c.transform::<Value>("invoice", &inv, "customerPayment", None).await.unwrap();
    let payment: Value = c.get("customerPayment", &pay, true).await.unwrap();
    assert_eq!(num(&payment["payment"]), 41.0);
    assert_eq!(payment["customer"]["id"], json!(cust));
    assert_eq!(payment["apply"]["items"][0]["doc"]["id"], json!(inv));
    let rows = c.suiteql(&format!("SELECT status, foreignamountremaining FROM transaction WHERE id = {inv}"), 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(num(&rows[0]["foreignamountremaining"]), 0.0);
    assert_eq!(rows[0]["status"], "B", "paid in full");
    // Nothing left to pay: a second payment transform is refused as a data error.
    let e = c.transform::<Value>("invoice", &inv, "customerPayment", None).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_with_q_and_paging_and_suiteql_paging() {
    let sb = sandbox().await;
    let c = client(&sb);
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(new_customer(&c, &format!("Paging Co {i}")).await);
    }
    new_customer(&c, "Other Co").await;

    let q = "companyName START_WITH \"Paging\"";
    let first = c.list("customer", Some(q), 3, 0).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert!(first.has_more);
    assert_eq!(first.total_results, Some(7));
    let last = c.list("customer", Some(q), 3, 6).await.unwrap();
    assert_eq!(last.items.len(), 1);
    assert!(!last.has_more);
    let all = c.list_all("customer", Some(q), 3).await.unwrap();
    assert_eq!(all.iter().collect::<BTreeSet<_>>(), made.iter().collect::<BTreeSet<_>>());
    assert_eq!(all.len(), 7, "no repeats: {all:?}");
    assert_eq!(c.list_all("customer", None, 1000).await.unwrap().len(), 8);
    // NetSuite requires offset to be a multiple of limit; the client refuses before sending.
    let e = c.list("customer", Some(q), 3, 4).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    // A malformed q is NetSuite's INVALID_PARAMETER: a data error.
    let e = c.list("customer", Some("companyName FROBNICATE \"x\""), 10, 0).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    assert_eq!(e.code(), Some("INVALID_PARAMETER"));

    // SuiteQL: lowercase keys, string values, pages of 3 until hasMore is false.
    let query = "SELECT id, companyname FROM customer WHERE companyname LIKE 'Paging%' ORDER BY id";
    let page = c.suiteql_page(query, 3, 3).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.has_more);
    assert_eq!(page.total_results, Some(7));
    assert!(page.items[0].get("links").is_none(), "links stripped");
    let rows = c.suiteql(query, 3).await.unwrap();
    let ids: Vec<String> = rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, made);
    assert_eq!(rows[0]["companyname"], "Paging Co 0");
    // A SuiteQL error is a data error too.
    let e = c.suiteql_page("SELECT nope FROM customer", 10, 0).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    sb.shutdown().await;
}

// --------------------------------------------------------------------------- error classes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_classes() {
    let sb = sandbox().await;
    let c = client_with(&sb, tba("sandbox-consumer-secret"), |cfg| cfg.rate_limit_retries = 0);
    let cust = new_customer(&c, "Errors Co").await;

    // INVALID_CONTENT: a reference that does not resolve → data, naming the field.
    let e = c
        .create("salesOrder", &json!({"entity": {"id": cust}, "item": {"items": [{"item": {"id": "9999"}, "quantity": 1, "rate": 1}]}}))
        .await
        .unwrap_err();
    let f = failure(&e);
    assert_eq!(f.class, ErrorClass::Data, "{e}");
    assert_eq!(f.code.as_deref(), Some("INVALID_CONTENT"));
    assert_eq!(f.field_path.as_deref(), Some("item.items[0].item"));
    assert_eq!(f.system.as_deref(), Some("netsuite"));
    assert!(f.message.contains("9999"), "{}", f.message);

    // USER_ERROR: a missing mandatory value → data, naming the field.
    let e = c.create("salesOrder", &json!({"entity": {"id": cust}, "item": {"items": [{"item": {"id": "9999"}}]}})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    let e = c.create("customer", &json!({"subsidiary": {"id": "1"}})).await.unwrap_err();
    let f = failure(&e);
    assert_eq!(f.class, ErrorClass::Data, "{e}");
    assert_eq!(f.code.as_deref(), Some("USER_ERROR"));
    assert!(f.field_path.is_some(), "{f:?}");

    // An unknown field name fails loudly (the client sends PropertyNameValidation: Error).
    let e = c.create("customer", &json!({"companyName": "X", "subsidiary": {"id": "1"}, "colour": "red"})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    assert_eq!(e.code(), Some("NONEXISTENT_FIELD"));

    // NONEXISTENT_ID → dependency (the record may not be there yet).
    for e in [
        c.get::<Value>("customer", "99999", false).await.unwrap_err(),
        c.update("customer", "99999", &json!({"email": "x@example.com"}), &[]).await.unwrap_err(),
        c.delete("invoice", "99999").await.unwrap_err(),
        c.transform::<Value>("salesOrder", "99999", "invoice", None).await.unwrap_err(),
    ] {
        assert_eq!(e.class(), ErrorClass::Dependency, "{e}");
        assert_eq!(e.code(), Some("NONEXISTENT_ID"));
    }

    // 429 (no in-client retries configured) → rate_limited; nothing applied.
    let before = count(&sb, "customer").await;
    sb.state().inject_fault(ns::Fault { count: Some(1), ..ns::Fault::new(ns::FaultKind::RateLimit) });
    let e = c.create("customer", &json!({"companyName": "Limited", "subsidiary": {"id": "1"}})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited, "{e}");
    assert!(e.is_rate_limited());

    // Injected 5xx → transient; nothing applied.
    sb.state().inject_fault(ns::Fault { status: Some(503), ..ns::Fault::new(ns::FaultKind::ServerError) });
    let e = c.create("customer", &json!({"companyName": "Broken", "subsidiary": {"id": "1"}})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert!(matches!(e, Error::Remote { status: 503, .. }), "{e:?}");
    assert_eq!(count(&sb, "customer").await, before);

    // A duplicate external id on create is resolved to the existing record.
    let first = c.create("customer", &json!({"companyName": "Dup Co", "subsidiary": {"id": "1"}, "externalId": "hs-dup-1"})).await.unwrap();
    let second = c.create("customer", &json!({"companyName": "Dup Co", "subsidiary": {"id": "1"}, "externalId": "hs-dup-1"})).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(count(&sb, "customer").await, before + 1);

    // Unknown record type: NONEXISTENT_ID too.
    let e = c.get::<Value>("bad-path", "1", false).await.unwrap_err();
    assert_eq!(e.code(), Some("NONEXISTENT_ID"), "{e}");
    assert_eq!(sb.stats().await.faults_injected, 2);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_entry_must_balance() {
    let sb = sandbox().await;
    let c = client(&sb);
    let unbalanced = json!({"subsidiary": {"id": "1"}, "tranDate": "2026-11-26", "line": {"items": [
        {"account": {"id": "2"}, "debit": 100.00, "memo": "cash"},
        {"account": {"id": "8"}, "credit": 99.99, "memo": "sales"},
    ]}});
    let e = c.create("journalEntry", &unbalanced).await.unwrap_err();
    let f = failure(&e);
    assert_eq!(f.class, ErrorClass::Data, "{e}");
    assert_eq!(f.code.as_deref(), Some("USER_ERROR"));
    assert_eq!(f.field_path.as_deref(), Some("line"));
    assert_eq!(count(&sb, "journalEntry").await, 0);

    // Exact decimals: 0.1 + 0.2 debits balance a 0.3 credit.
    let balanced = json!({"subsidiary": {"id": "1"}, "tranDate": "2026-11-26", "externalId": "hs-je-1", "line": {"items": [
        {"account": {"id": "2"}, "debit": 0.1},
        {"account": {"id": "3"}, "debit": 0.2},
        {"account": {"id": "8"}, "credit": 0.3},
    ]}});
    let je = c.create("journalEntry", &balanced).await.unwrap();
    let got: Value = c.get("journalEntry", &je, true).await.unwrap();
    assert_eq!(got["line"]["items"].as_array().unwrap().len(), 3);
    let rows = c.suiteql(&format!("SELECT type FROM transaction WHERE id = {je}"), 10).await.unwrap();
    assert_eq!(rows[0]["type"], "Journal");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_applied_customer_payment_is_refused() {
    let sb = sandbox().await;
    let c = client(&sb);
    let cust = new_customer(&c, "Payer Co").await;
    let item = new_item(&c, "PAY-A", 20.0).await;
    let inv = c
        .create("invoice", &json!({"entity": {"id": cust}, "subsidiary": {"id": "1"}, "item": {"items": [{"item": {"id": item}, "quantity": 1, "rate": 20}]}}))
        .await
        .unwrap();

    // 50 applied to an invoice with 20 open: a data error on the apply line's amount.
    let over = json!({"customer": {"id": cust}, "payment": 50, "undepFunds": true,
        "apply": {"items": [{"doc": {"id": inv}, "apply": true, "amount": 50}]}});
    let e = c.create("customerPayment", &over).await.unwrap_err();
    let f = failure(&e);
    assert_eq!(f.class, ErrorClass::Data, "{e}");
    assert_eq!(f.code.as_deref(), Some("USER_ERROR"));
    assert_eq!(f.field_path.as_deref(), Some("apply.items[0].amount"));

    // Applying more than the payment itself is refused as well.
    let beyond = json!({"customer": {"id": cust}, "payment": 5,
        "apply": {"items": [{"doc": {"id": inv}, "apply": true, "amount": 20}]}});
    let e = c.create("customerPayment", &beyond).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    assert_eq!(count(&sb, "customerPayment").await, 0);

    // Two partial payments that together cover the invoice are fine; a third is over-applied.
    for amount in [12, 8] {
        c.create("customerPayment", &json!({"customer": {"id": cust}, "payment": amount,
            "apply": {"items": [{"doc": {"id": inv}, "apply": true, "amount": amount}]}}))
            .await
            .unwrap();
    }
    let e = c
        .create("customerPayment", &json!({"customer": {"id": cust}, "payment": 1,
            "apply": {"items": [{"doc": {"id": inv}, "apply": true, "amount": 1}]}}))
        .await
        .unwrap_err();
    assert_eq!(failure(&e).field_path.as_deref(), Some("apply.items[0].amount"), "{e}");
    let invoice: Value = c.get("invoice", &inv, false).await.unwrap();
    assert_eq!(invoice["status"]["id"], "B", "paid in full: {}", invoice["status"]);
    sb.shutdown().await;
}

// ------------------------------------------------------------------ lost responses, retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_response_then_retried_upsert_creates_no_duplicate() {
    let sb = sandbox().await;
    let c = client(&sb);
    let cust = new_customer(&c, "Lost Co").await;
    let (i1, i2) = (new_item(&c, "LOST-A", 10.0).await, new_item(&c, "LOST-B", 5.5).await);
    let mut body = order_body(&cust, &i1, &i2);
    body["memo"] = json!("order hs-42");

    // The upsert is applied, then the connection drops without an answer.
    sb.state().inject_fault(ns::Fault {
        method: Some("PUT".into()),
        path_contains: Some("/record/v1/salesOrder".into()),
        ..ns::Fault::new(ns::FaultKind::LostResponse)
    });
    let e = c.upsert("salesOrder", "hs-order-42", &body).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "a lost response is retryable: {e}");
    assert_eq!(sb.stats().await.faults_injected, 1);
    assert_eq!(count(&sb, "salesOrder").await, 1, "the write was applied");

    // The caller retries the same upsert: same record, same lines, nothing doubled.
    let id = c.upsert("salesOrder", "hs-order-42", &body).await.unwrap();
    assert_eq!(count(&sb, "salesOrder").await, 1, "no duplicate");
    let so: Value = c.get("salesOrder", &id, true).await.unwrap();
    assert_eq!(so["externalId"], "hs-order-42");
    assert_eq!(so["item"]["items"].as_array().unwrap().len(), 2, "lines not appended twice: {}", so["item"]);
    assert_eq!(num(&so["total"]), 41.0);
    let rows = c.suiteql("SELECT id FROM transaction WHERE externalid = 'hs-order-42'", 10).await.unwrap();
    assert_eq!(rows.len(), 1);

    // Same story for a POST create carrying an externalId: the retry resolves to the record.
    sb.state().inject_fault(ns::Fault {
        method: Some("POST".into()),
        path_contains: Some("/record/v1/customer".into()),
        ..ns::Fault::new(ns::FaultKind::LostResponse)
    });
    let before = count(&sb, "customer").await;
    let new = json!({"companyName": "Lost Create Co", "subsidiary": {"id": "1"}, "externalId": "hs-lost-create"});
    let e = c.create("customer", &new).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    let id = c.create("customer", &new).await.unwrap();
    assert_eq!(count(&sb, "customer").await, before + 1);
    assert_eq!(c.find_id_by_external_id("customer", "hs-lost-create").await.unwrap(), Some(id));
    sb.shutdown().await;
}

// ---------------------------------------------------------------------------- governance

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governor_backs_off_on_429_and_then_stays_under_the_limit() {
    let limit = 3u32;
    let sb = sandbox_with(ns::Config { concurrency_limit: limit, latency: Duration::from_millis(40), ..Default::default() }).await;
    // The client believes the account allows 8: the simulator's 429s must teach it otherwise.
    let c = client_with(&sb, tba("sandbox-consumer-secret"), |cfg| {
        cfg.concurrency = Concurrency::Fixed(8);
        cfg.rate_limit_retries = 30;
        cfg.increase_after = 10_000;
    });
    let wave = |tag: &'static str| {
        let c = c.clone();
        async move {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..24 {
                let c = c.clone();
                set.spawn(async move {
                    c.upsert("customer", &format!("gov-{tag}-{i}"), &json!({"companyName": format!("Gov {tag} {i}"), "subsidiary": {"id": "1"}}))
                        .await
                });
            }
            let mut ok = 0;
            while let Some(r) = set.join_next().await {
                r.unwrap().unwrap();
                ok += 1;
            }
            ok
        }
    };
    assert_eq!(wave("a").await, 24, "every upsert succeeds despite the 429s");
    let after_a = sb.stats().await.rate_limited;
    assert!(after_a > 0, "an 8-wide client against a 3-wide account draws 429s");
    assert!(c.governor().window() <= limit, "window {} shrank to the account limit", c.governor().window());
    assert_eq!(c.governor().limit(), 8);

    // Having backed off, the client stays within the limit: no new 429s.
    assert_eq!(wave("b").await, 24);
    assert_eq!(sb.stats().await.rate_limited, after_a, "no 429 once the window fits");
    assert_eq!(count(&sb, "customer").await, 48);
    assert_eq!(c.governor().in_flight(), 0);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_benchmark_reports_counts() {
    let r = bench_netsuite::governance(3, 20, 30).await.unwrap();
    assert_eq!(r.requests, 30);
    assert_eq!(r.succeeded, 30, "{r}");
    assert_eq!(r.failed, 0);
    assert!(r.tasks > 3, "more tasks than the limit");
    assert_eq!(r.records_created, 30);
    assert_eq!(r.simulator_requests, 30, "one request per upsert: {r}");
    assert_eq!(r.simulator_429s, 0, "{r}");
    assert_eq!(r.bound_rps(), Some(150.0));
    assert!(r.p50 <= r.p99 && r.p99 <= r.max_latency);
    let text = r.to_string();
    assert!(text.contains("0 sent by the simulator"), "{text}");
    assert!(text.contains("30 upserts"), "{text}");
    assert!(text.contains("of the bound"), "{text}");
}

// ------------------------------------------------------------------------------- polling

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_changes_moves_the_cursor_without_skips_or_repeats() {
    let sb = sandbox().await;
    let c = client(&sb);
    // TO_CHAR(lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') is what the poller relies on.
    let probe = c.suiteql("SELECT TO_CHAR(SYSDATE, 'YYYY-MM-DD HH24:MI:SS') AS ts FROM subsidiary", 10).await.unwrap();
    let ts = probe[0]["ts"].as_str().unwrap();
    assert_eq!(ts.len(), 19, "{ts}");
    assert_eq!(&ts[10..11], " ", "{ts}");

    // Five customers, most within one second: ties on the timestamp across page boundaries.
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(new_customer(&c, &format!("Poll Co {i}")).await);
    }
    let mut cursor = None;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (rows, next) = poll_changes(&c, "customer", cursor.clone(), 2).await.unwrap();
        assert!(rows.len() <= 2);
        if rows.is_empty() {
            assert_eq!(next, cursor, "no rows: cursor unchanged");
            break;
        }
        assert_ne!(next, cursor);
        seen.extend(rows.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        cursor = next;
    }
    assert_eq!(seen, made, "every row once, in order");
    let c1 = cursor.clone().unwrap();

    // A later edit of an early record (and a new one) shows up once on the next poll.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.update("customer", &made[1], &json!({"email": "poll@example.com"}), &[]).await.unwrap();
    let newer = new_customer(&c, "Poll Co late").await;
    let (rows, next) = poll_changes(&c, "customer", cursor.clone(), 10).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![made[1].as_str(), newer.as_str()]);
    assert_eq!(rows[0]["email"], "poll@example.com");
    assert!(next.as_deref().unwrap() > c1.as_str(), "{next:?} after {c1}");
    let (rows, again) = poll_changes(&c, "customer", next.clone(), 10).await.unwrap();
    assert!(rows.is_empty(), "nothing new: {rows:?}");
    assert_eq!(again, next);

    // Transactions too: a payment bumps the invoice it pays (status change) into the feed.
    let item = new_item(&c, "POLL-A", 7.0).await;
    let inv = c
        .create("invoice", &json!({"entity": {"id": newer}, "item": {"items": [{"item": {"id": item}, "quantity": 1, "rate": 7}]}}))
        .await
        .unwrap();
    let (rows, tcur) = poll_changes(&c, "transaction", None, 100).await.unwrap();
    assert_eq!(rows.iter().map(|r| r["id"].as_str().unwrap()).collect::<Vec<_>>(), vec![inv.as_str()]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let pay = c.transform::<Value>("invoice", &inv, "customerPayment", None).await.unwrap();
    let (rows, _) = poll_changes(&c, "transaction", tcur, 100).await.unwrap();
    let ids: BTreeSet<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from([inv.as_str(), pay.as_str()]));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_get_then_patch_round_trip_loses_nothing() {
    // records.rs keeps unknown fields in `extra` "so a GET → PATCH round trip loses nothing":
    // the record as read (server-maintained fields like lastModifiedDate included) goes back.
    let sb = sandbox().await;
    let c = client(&sb);
    let cust = new_customer(&c, "Round Trip Co").await;
    let (i1, i2) = (new_item(&c, "RT-A", 10.0).await, new_item(&c, "RT-B", 5.5).await);
    let so = c.create("salesOrder", &order_body(&cust, &i1, &i2)).await.unwrap();

    let mut customer: heartsuite_netsuite::Customer = c.get("customer", &cust, true).await.unwrap();
    assert!(customer.last_modified_date.is_some());
    customer.email = Some("rt@example.com".into());
    c.update("customer", &cust, &customer, &[]).await.unwrap();
    let got: Value = c.get("customer", &cust, false).await.unwrap();
    assert_eq!(got["email"], "rt@example.com");
    assert_eq!(got["companyName"], "Round Trip Co");

    let mut order: heartsuite_netsuite::SalesOrder = c.get("salesOrder", &so, true).await.unwrap();
    order.memo = Some("edited".into());
    c.update("salesOrder", &so, &order, &[]).await.unwrap();
    let got: Value = c.get("salesOrder", &so, true).await.unwrap();
    assert_eq!(got["memo"], "edited");
    assert_eq!(got["item"]["items"].as_array().unwrap().len(), 2, "keyed lines updated in place, not appended");
    assert_eq!(num(&got["total"]), 41.0);

    let mut item: heartsuite_netsuite::InventoryItem = c.get("inventoryItem", &i1, true).await.unwrap();
    item.display_name = Some("Widget A".into());
    c.update("inventoryItem", &i1, &item, &[]).await.unwrap();
    let got: Value = c.get("inventoryItem", &i1, false).await.unwrap();
    assert_eq!(got["displayName"], "Widget A");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_transient_and_oauth2_token_is_refreshed_after_401() {
    let sb = sandbox().await;
    let c = client_with(&sb, oauth2("sandbox-client-id"), |cfg| cfg.timeout = Duration::from_millis(600));
    new_customer(&c, "Timeout Co").await;
    assert_eq!(c.token_fetches(), 1);

    // The simulator hangs past the client's timeout and applies nothing.
    sb.state().inject_fault(ns::Fault { hang_ms: Some(3_000), ..ns::Fault::new(ns::FaultKind::Timeout) });
    let e = c.create("customer", &json!({"companyName": "Hung", "subsidiary": {"id": "1"}})).await.unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(count(&sb, "customer").await, 1);

    // A reset forgets issued tokens: the cached one now gets 401, and the client fetches a new
    // token once and succeeds.
    sb.state().reset().await.unwrap();
    let id = new_customer(&c, "After Reset Co").await;
    assert_eq!(c.token_fetches(), 2);
    let got: Value = c.get("customer", &id, false).await.unwrap();
    assert_eq!(got["companyName"], "After Reset Co");
    assert_eq!(sb.stats().await.auth_failures, 1);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_transaction_shapes_read_the_simulator_json() {
    let sb = sandbox().await;
    let c = client(&sb);
    let cust = new_customer(&c, "Typed Co").await;
    let (i1, i2) = (new_item(&c, "TY-A", 10.0).await, new_item(&c, "TY-B", 5.5).await);
    let so = c.create("salesOrder", &order_body(&cust, &i1, &i2)).await.unwrap();
    let f = c.transform::<Value>("salesOrder", &so, "itemFulfillment", None).await.unwrap();
    let inv = c.transform::<Value>("salesOrder", &so, "invoice", None).await.unwrap();

    let ful: heartsuite_netsuite::ItemFulfillment = c.get("itemFulfillment", &f, true).await.unwrap();
    assert_eq!(ful.created_from.and_then(|r| r.id).as_deref(), Some(so.as_str()));
    let lines = ful.item.unwrap().items;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].order_line, Some(1));
    assert_eq!(lines[0].quantity.map(|d| d.to_string()).as_deref(), Some("3"));

    let invoice: heartsuite_netsuite::Invoice = c.get("invoice", &inv, true).await.unwrap();
    assert_eq!(invoice.total.map(|d| d.to_string()).as_deref(), Some("41"));
    assert_eq!(invoice.amount_remaining.map(|d| d.to_string()).as_deref(), Some("41"));
    assert_eq!(invoice.entity.and_then(|r| r.ref_name).as_deref(), Some("Typed Co"));

    // A typed payment (decimals as exact JSON numbers) is accepted and reads back the same.
    let pay: heartsuite_netsuite::CustomerPayment = serde_json::from_value(json!({
        "customer": {"id": cust}, "payment": 12.34, "undepFunds": true, "externalId": "hs-typed-pay",
        "apply": {"items": [{"doc": {"id": inv}, "apply": true, "amount": 12.34}]},
    }))
    .unwrap();
    let pid = c.create("customerPayment", &pay).await.unwrap();
    let back: heartsuite_netsuite::CustomerPayment = c.get("customerPayment", &pid, true).await.unwrap();
    assert_eq!(back.payment.map(|d| d.to_string()).as_deref(), Some("12.34"));
    assert_eq!(back.external_id.as_deref(), Some("hs-typed-pay"));
    let apply = back.apply.unwrap().items;
    assert_eq!(apply[0].doc.as_ref().and_then(|d| d.id.as_deref()), Some(inv.as_str()));
    let invoice: heartsuite_netsuite::Invoice = c.get("invoice", &inv, false).await.unwrap();
    assert_eq!(invoice.amount_remaining.map(|d| d.to_string()).as_deref(), Some("28.66"));
    sb.shutdown().await;
}

/// A full-size run to read, not to assert: `cargo test --test netsuite_against_sandbox --
/// --ignored governance_benchmark_sample --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn governance_benchmark_sample() {
    let r = bench_netsuite::governance(15, 200, 300).await.unwrap();
    println!("{r}");
    assert_eq!(r.succeeded, 300);
}

/// An edit saved in the same second as the cursor (here of a record the poller already returned,
/// with a lower id than the cursor's) must still be delivered, once, and nothing unchanged with
/// it: the poller re-reads the cursor's second and compares content. Retried until the edit does
/// land in the cursor's second (the simulator stamps with the wall clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_changes_sees_a_same_second_edit_of_a_lower_id() {
    let sb = sandbox().await;
    let c = client(&sb);
    let mut cursor = None;
    let mut same_second = false;
    for attempt in 0..5 {
        let a = new_customer(&c, &format!("Same Second A{attempt}")).await;
        let b = new_customer(&c, &format!("Same Second B{attempt}")).await;
        loop {
            let (rows, next) = poll_changes(&c, "customer", cursor.clone(), 1000).await.unwrap();
            cursor = next;
            if rows.is_empty() {
                break;
            }
        }
        let at = cursor.clone().unwrap();
        assert!(at.contains(&format!("|{b}|")), "cursor {at} is at {b}");
        c.update("customer", &a, &json!({"email": "late@example.com"}), &[]).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            let (rows, next) = poll_changes(&c, "customer", cursor.clone(), 1000).await.unwrap();
            got.extend(rows);
            cursor = next;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let ids: Vec<&str> = got.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec![a.as_str()], "the edit of {a} once, nothing else");
        assert_eq!(got[0]["email"], "late@example.com");
        if at.starts_with(got[0]["hs_cursor_ts"].as_str().unwrap()) {
            same_second = true;
            break;
        }
    }
    assert!(same_second, "no edit landed in the cursor's second in 5 tries");
    sb.shutdown().await;
}
