//! HTTP-level behaviour of the NetSuite sandbox: records, errors, transforms, business rules,
//! paging, SuiteQL, governance and faults.

mod common;

use std::time::Duration;

use common::{Api, customer, item, start};
use heartsuite_sandbox_netsuite::Config;
use serde_json::json;

#[tokio::test]
async fn customer_crud_shapes_and_case_insensitive_type() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let r = api.post("/record/v1/customer", json!({"companyname": "Acme", "subsidiary": {"id": "1"}, "externalId": "hs-c-1"})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let loc = r.location.clone().unwrap_or_default();
    assert!(loc.starts_with(&format!("{}/services/rest/record/v1/customer/", h.base_url())), "{loc}");
    let id = r.new_id();

    let g = api.get(&format!("/record/v1/CUSTOMER/{id}")).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["id"], id.as_str());
    assert_eq!(g.body["companyName"], "Acme");
    assert_eq!(g.body["entityId"], "Acme");
    assert_eq!(g.body["subsidiary"]["id"], "1");
    assert_eq!(g.body["subsidiary"]["refName"], "Heartsuite Sandbox Inc.");
    assert!(g.body["subsidiary"]["links"][0]["href"].as_str().unwrap_or_default().ends_with("/subsidiary/1"));
    assert_eq!(g.body["links"][0]["rel"], "self");
    assert!(g.body["lastModifiedDate"].as_str().unwrap_or_default().ends_with('Z'));
    // Sublists are links unless expanded.
    assert!(g.body["addressBook"]["items"].is_null());
    assert!(g.body["addressBook"]["links"].is_array());

    let by_eid = api.get("/record/v1/customer/eid:hs-c-1").await;
    assert_eq!(by_eid.body["id"], id.as_str());

    assert_eq!(api.patch(&format!("/record/v1/customer/{id}"), json!({"email": "a@b.c", "phone": null})).await.status, 204);
    let g = api.get(&format!("/record/v1/customer/{id}")).await;
    assert_eq!(g.body["email"], "a@b.c");
    assert_eq!(g.body["companyName"], "Acme");

    assert_eq!(api.delete(&format!("/record/v1/customer/{id}")).await.status, 204);
    let g = api.get(&format!("/record/v1/customer/{id}")).await;
    assert_eq!((g.status, g.code()), (404, "NONEXISTENT_ID"));
    let bad = api.get("/record/v1/notAType/1").await;
    assert_eq!((bad.status, bad.code()), (404, "NONEXISTENT_ID"));
    h.shutdown().await;
}

#[tokio::test]
async fn upsert_creates_then_updates_and_duplicate_external_id_is_refused() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let r = api.put("/record/v1/customer/eid:shop-42", json!({"firstName": "Ada", "lastName": "Lovelace", "subsidiary": {"id": "1"}})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let id = r.new_id();
    let r2 = api.put("/record/v1/customer/eid:shop-42", json!({"email": "ada@example.com"})).await;
    assert_eq!((r2.status, r2.new_id()), (204, id.clone()));
    let g = api.get("/record/v1/customer/eid:shop-42").await;
    assert_eq!(g.body["externalId"], "shop-42");
    assert_eq!(g.body["email"], "ada@example.com");
    assert_eq!(g.body["isPerson"], true);
    assert_eq!(g.body["entityId"], "Ada Lovelace");
    assert_eq!(h.stats().await.records["customer"], 1);

    let dup = api.post("/record/v1/customer", json!({"companyName": "X", "subsidiary": {"id": "1"}, "externalId": "shop-42"})).await;
    assert_eq!((dup.status, dup.code(), dup.path()), (400, "DUP_RCRD", "externalId"));
    let put_by_id = api.put(&format!("/record/v1/customer/{id}"), json!({})).await;
    assert_eq!((put_by_id.status, put_by_id.code()), (400, "INVALID_PARAMETER"));
    h.shutdown().await;
}

#[tokio::test]
async fn validation_errors_carry_netsuite_codes_and_paths() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let r = api.post("/record/v1/customer", json!({"subsidiary": {"id": "1"}})).await;
    assert_eq!((r.status, r.code()), (400, "USER_ERROR"));
    assert!(r.body["o:errorDetails"][0]["detail"].as_str().unwrap_or_default().contains("Company Name"));
    let r = api.post("/record/v1/customer", json!({"isPerson": true, "firstName": "A", "subsidiary": {"id": "1"}})).await;
    assert!(r.body["o:errorDetails"][0]["detail"].as_str().unwrap_or_default().contains("Last Name"), "{}", r.body);
    let r = api.post("/record/v1/customer", json!({"companyName": "NoSub"})).await;
    assert_eq!((r.code(), r.path()), ("USER_ERROR", "subsidiary"));
    let r = api.post("/record/v1/customer", json!({"companyName": "X", "subsidiary": {"id": "77"}})).await;
    assert_eq!((r.status, r.code(), r.path()), (400, "INVALID_CONTENT", "subsidiary"));
    assert_eq!(r.body["type"], "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1");

    let c = customer(&api, "Buyer").await;
    let i = item(&api, "SKU-1", "10.00").await;
    let r = api.post("/record/v1/salesOrder", json!({"item": {"items": [{"item": {"id": i}, "quantity": 1}]}})).await;
    assert_eq!((r.code(), r.path()), ("USER_ERROR", "entity"));
    let r = api.post("/record/v1/salesOrder", json!({"entity": {"id": c}, "item": {"items": [{"item": {"id": i}, "quantity": 1}, {"item": {"id": "9999"}, "quantity": 1}]}})).await;
    assert_eq!((r.code(), r.path()), ("INVALID_CONTENT", "item.items[1].item"));
    assert!(r.body["o:errorDetails"][0]["detail"].as_str().unwrap_or_default().contains("Invalid Field Value 9999"));
    let r = api.post("/record/v1/salesOrder", json!({"entity": {"id": c}, "item": {"items": [{"item": {"id": i}}]}})).await;
    assert_eq!((r.code(), r.path()), ("USER_ERROR", "item.items[0].quantity"));
    let r = api.post("/record/v1/salesOrder", json!({"entity": {"id": c}})).await;
    assert_eq!(r.code(), "USER_ERROR");
    // nslib sends X-NetSuite-PropertyNameValidation: error; unknown fields are then refused.
    let url = format!("{}/services/rest/record/v1/customer", api.base);
    let body = json!({"companyName": "Y", "subsidiary": {"id": "1"}, "bogusField": 1}).to_string().into_bytes();
    let auth = common::oauth_header("POST", &url, Some(&body), "strict-1", jiff::Timestamp::now().as_second());
    let r = api.send("POST", &url, Some(body), Some(auth), &[("X-NetSuite-PropertyNameValidation", "error")]).await;
    assert_eq!((r.status, r.code()), (400, "NONEXISTENT_FIELD"));
    h.shutdown().await;
}

#[tokio::test]
async fn sales_order_totals_are_exact_and_sublists_expand() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let c = customer(&api, "Buyer").await;
    let i1 = item(&api, "SKU-1", "0.10").await;
    let i2 = item(&api, "SKU-2", "19.99").await;
    let so = api
        .create("salesorder", json!({"entity": {"id": c}, "externalId": "so-1", "shippingCost": "5.01", "item": {"items": [
            {"item": {"id": i1}, "quantity": 3},
            {"item": {"id": i2}, "quantity": "2", "rate": "19.99"},
            {"item": {"id": i2}, "quantity": 1, "amount": "7.50"}
        ]}}))
        .await;
    let g = api.get(&format!("/record/v1/salesOrder/{so}?expandSubResources=true")).await;
    assert_eq!(g.body["subtotal"].to_string(), "47.78");
    assert_eq!(g.body["total"].to_string(), "52.79");
    let lines = &g.body["item"]["items"];
    assert_eq!(lines[0]["amount"].to_string(), "0.3");
    assert_eq!(lines[1]["amount"].to_string(), "39.98");
    assert_eq!(lines[2]["rate"].to_string(), "7.5");
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(g.body["item"]["count"], 3);
    assert_eq!(g.body["status"]["id"], "B");
    assert_eq!(g.body["currency"]["refName"], "USD");
    assert_eq!(g.body["entity"]["refName"], "Buyer");
    h.shutdown().await;
}

#[tokio::test]
async fn transforms_fulfil_partially_bill_and_pay_with_over_application_refused() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let c = customer(&api, "Buyer").await;
    let i = item(&api, "SKU-1", "12.50").await;
    // Stock at location 2.
    api.create("inventoryAdjustment", json!({"account": {"id": "11"}, "adjLocation": {"id": "2"}, "inventory": {"items": [{"item": {"id": i}, "adjustQtyBy": 10}]}})).await;
    let so = api.create("salesOrder", json!({"entity": {"id": c}, "location": {"id": "2"}, "item": {"items": [{"item": {"id": i}, "quantity": 4}]}})).await;

    // Partial fulfilment: 3 of 4.
    let f = api.post(&format!("/record/v1/salesOrder/{so}/!transform/itemFulfillment"), json!({"item": {"items": [{"orderLine": 1, "quantity": 3}]}})).await;
    assert_eq!(f.status, 204, "{}", f.body);
    assert!(f.location.as_deref().unwrap_or_default().contains("/itemFulfillment/"));
    let g = api.get(&format!("/record/v1/salesOrder/{so}")).await;
    assert_eq!(g.body["status"]["id"], "D");
    // Over-fulfilment refused.
    let over = api.post(&format!("/record/v1/salesOrder/{so}/!transform/itemFulfillment"), json!({"item": {"items": [{"orderLine": 1, "quantity": 2}]}})).await;
    assert_eq!((over.status, over.code(), over.path()), (400, "USER_ERROR", "item.items[0].quantity"));
    // The rest.
    assert_eq!(api.post(&format!("/record/v1/salesOrder/{so}/!transform/itemFulfillment"), json!({})).await.status, 204);
    let stock = api.suiteql(&format!("SELECT item, location, quantityonhand FROM aggregateItemLocation WHERE item = {i}"), 10, 0).await;
    assert_eq!(stock.body["items"][0]["quantityonhand"], "6");
    assert_eq!(stock.body["items"][0]["location"], "2");

    let inv = api.post(&format!("/record/v1/salesOrder/{so}/!transform/invoice"), json!({"memo": "billed"})).await;
    assert_eq!(inv.status, 204, "{}", inv.body);
    let inv = inv.new_id();
    let g = api.get(&format!("/record/v1/invoice/{inv}?expandSubResources=true")).await;
    assert_eq!(g.body["entity"]["id"], c.as_str());
    assert_eq!(g.body["total"].to_string(), "50");
    assert_eq!(g.body["memo"], "billed");
    assert_eq!(g.body["createdFrom"]["id"], so.as_str());
    assert_eq!(g.body["amountRemaining"].to_string(), "50");
    assert_eq!(api.get(&format!("/record/v1/salesOrder/{so}")).await.body["status"]["id"], "G");

    // Over-application refused with the path of the offending line.
    let over = api.post("/record/v1/customerPayment", json!({"customer": {"id": c}, "payment": "60", "apply": {"items": [{"doc": {"id": inv}, "apply": true, "amount": "50.01"}]}})).await;
    assert_eq!((over.status, over.code(), over.path()), (400, "USER_ERROR", "apply.items[0].amount"));
    // Partial payment via transform with a body override, then the remainder.
    let p1 = api.post(&format!("/record/v1/invoice/{inv}/!transform/customerPayment"), json!({"payment": "20.25"})).await;
    assert_eq!(p1.status, 204, "{}", p1.body);
    let g = api.get(&format!("/record/v1/invoice/{inv}")).await;
    assert_eq!(g.body["amountRemaining"].to_string(), "29.75");
    let p2 = api.post("/record/v1/customerPayment", json!({"customer": {"id": c}, "apply": {"items": [{"doc": {"id": inv}, "amount": "29.75"}]}})).await;
    assert_eq!(p2.status, 204, "{}", p2.body);
    let g = api.get(&format!("/record/v1/invoice/{inv}")).await;
    assert_eq!((g.body["status"]["id"].as_str(), g.body["amountRemaining"].to_string().as_str()), (Some("B"), "0"));
    let p3 = api.post(&format!("/record/v1/invoice/{inv}/!transform/customerPayment"), json!({})).await;
    assert_eq!(p3.code(), "USER_ERROR");
    // A payment applied to an invoice cannot be removed from under it.
    assert_eq!(api.delete(&format!("/record/v1/invoice/{inv}")).await.code(), "USER_ERROR");
    // Deleting a payment reopens the invoice.
    assert_eq!(api.delete(&format!("/record/v1/customerPayment/{}", p2.new_id())).await.status, 204);
    assert_eq!(api.get(&format!("/record/v1/invoice/{inv}")).await.body["amountRemaining"].to_string(), "29.75");

    // Deposit the first payment; a second deposit of it is refused.
    let d = api.post("/record/v1/deposit", json!({"account": {"id": "2"}, "payment": {"items": [{"doc": {"id": p1.new_id()}, "deposit": true}]}, "cashBack": {"items": [{"account": {"id": "3"}, "amount": "0.61"}]}})).await;
    assert_eq!(d.status, 204, "{}", d.body);
    assert_eq!(api.get(&format!("/record/v1/deposit/{}", d.new_id())).await.body["total"].to_string(), "19.64");
    let d2 = api.post("/record/v1/deposit", json!({"account": {"id": "2"}, "payment": {"items": [{"doc": {"id": p1.new_id()}}]}})).await;
    assert_eq!((d2.code(), d2.path()), ("USER_ERROR", "payment.items[0].doc"));

    // Credit memo from a paid-down invoice is capped by what is open; unsupported transform.
    let cm = api.post(&format!("/record/v1/invoice/{inv}/!transform/creditMemo"), json!({})).await;
    assert_eq!(cm.status, 204, "{}", cm.body);
    let g = api.get(&format!("/record/v1/creditMemo/{}?expandSubResources=true", cm.new_id())).await;
    assert_eq!(g.body["apply"]["items"][0]["amount"].to_string(), "29.75");
    assert_eq!(api.get(&format!("/record/v1/invoice/{inv}")).await.body["amountRemaining"].to_string(), "0");
    let bad = api.post(&format!("/record/v1/invoice/{inv}/!transform/salesOrder"), json!({})).await;
    assert_eq!(bad.code(), "INVALID_PARAMETER");
    h.shutdown().await;
}

#[tokio::test]
async fn cash_sale_reduces_stock_and_journal_must_balance() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let c = customer(&api, "Walk-in").await;
    let i = item(&api, "SKU-9", "3.33").await;
    let cs = api.create("cashSale", json!({"entity": {"id": c}, "location": {"id": "1"}, "paymentMethod": {"id": "5"}, "item": {"items": [{"item": {"id": i}, "quantity": 3}]}})).await;
    let g = api.get(&format!("/record/v1/cashSale/{cs}")).await;
    assert_eq!(g.body["total"].to_string(), "9.99");
    assert_eq!(g.body["account"]["refName"], "Undeposited Funds");
    let s = api.suiteql(&format!("SELECT quantityonhand FROM aggregateitemlocation WHERE item = {i} AND location = 1"), 10, 0).await;
    assert_eq!(s.body["items"][0]["quantityonhand"], "-3");
    assert_eq!(api.post(&format!("/record/v1/cashSale/{cs}/!transform/cashRefund"), json!({})).await.status, 204);

    let je = |dr: &str, cr: &str| json!({"subsidiary": {"id": "1"}, "line": {"items": [
        {"account": {"id": "5"}, "debit": dr}, {"account": {"id": "3"}, "debit": "0.01"}, {"account": {"id": "2"}, "credit": cr}
    ]}});
    let bad = api.post("/record/v1/journalEntry", je("100.10", "100.10")).await;
    assert_eq!((bad.status, bad.code(), bad.path()), (400, "USER_ERROR", "line"));
    let ok = api.post("/record/v1/journalEntry", je("100.10", "100.11")).await;
    assert_eq!(ok.status, 204, "{}", ok.body);
    let q = api.suiteql(&format!("SELECT SUM(debitforeignamount) AS dr, SUM(creditforeignamount) AS cr FROM transactionline WHERE transaction = {} AND mainline = 'F'", ok.new_id()), 10, 0).await;
    assert_eq!((q.body["items"][0]["dr"].as_str(), q.body["items"][0]["cr"].as_str()), (Some("100.11"), Some("100.11")));
    h.shutdown().await;
}

#[tokio::test]
async fn list_filters_and_paging() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    for n in 0..5 {
        api.create("customer", json!({"companyName": format!("C{n}"), "subsidiary": {"id": "1"}, "email": if n % 2 == 0 { "even@x" } else { "odd@x" }})).await;
    }
    let all = api.get("/record/v1/customer?limit=2&offset=2").await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!((all.body["count"].as_u64(), all.body["totalResults"].as_u64(), all.body["hasMore"].as_bool(), all.body["offset"].as_u64()), (Some(2), Some(5), Some(true), Some(2)));
    assert_eq!(all.body["items"][0]["id"], "103");
    assert!(all.body["items"][0]["links"][0]["href"].as_str().unwrap_or_default().ends_with("/customer/103"));
    let rels: Vec<&str> = all.body["links"].as_array().into_iter().flatten().filter_map(|l| l["rel"].as_str()).collect();
    assert!(rels.contains(&"next") && rels.contains(&"self") && rels.contains(&"last"), "{rels:?}");
    let r = api.get("/record/v1/customer?limit=2&offset=3").await;
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER"));
    let r = api.get("/record/v1/customer?limit=1001").await;
    assert_eq!((r.status, r.code()), (400, "INVALID_PARAMETER"));

    let q = |s: &str| format!("/record/v1/customer?q={}", heartsuite_sandbox_netsuite::pct(s));
    assert_eq!(api.get(&q("email IS \"even@x\"")).await.body["totalResults"], 3);
    assert_eq!(api.get(&q("id ANY_OF [101, 103]")).await.body["totalResults"], 2);
    assert_eq!(api.get(&q("id GREATER 102 AND email IS \"odd@x\"")).await.body["totalResults"], 1);
    assert_eq!(api.get(&q("id EQUAL 101 OR id LESS 101 OR (id GREATER_OR_EQUAL 105)")).await.body["totalResults"], 2);
    assert_eq!(api.get(&q("lastModifiedDate AFTER \"01/01/2020\"")).await.body["totalResults"], 5);
    assert_eq!(api.get(&q("lastModifiedDate BEFORE \"2020-01-01\"")).await.body["totalResults"], 0);
    let bad = api.get(&q("lastModifiedDate AFTER \"yesterday\"")).await;
    assert_eq!((bad.status, bad.code()), (400, "INVALID_PARAMETER"));
    let bad = api.get(&q("nosuchfield IS 1")).await;
    assert_eq!(bad.code(), "INVALID_PARAMETER");
    h.shutdown().await;
}

#[tokio::test]
async fn suiteql_joins_builtin_df_and_paging() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let c = customer(&api, "Joiner").await;
    let i = item(&api, "SKU-J", "2.5").await;
    for _ in 0..3 {
        api.create("salesOrder", json!({"entity": {"id": c}, "item": {"items": [{"item": {"id": i}, "quantity": 2}]}})).await;
    }
    let q = "SELECT t.id, t.tranid, t.type, BUILTIN.DF(t.entity) AS customer, BUILTIN.DF(t.status) AS status, tl.quantity, tl.netamount, t.memo \
             FROM transaction t JOIN transactionline tl ON tl.transaction = t.id \
             WHERE t.type = 'SalesOrd' AND tl.mainline = 'F' ORDER BY t.id";
    let r = api.suiteql(q, 2, 0).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.body["count"].as_u64(), r.body["totalResults"].as_u64(), r.body["hasMore"].as_bool()), (Some(2), Some(3), Some(true)));
    let row = &r.body["items"][0];
    assert_eq!(row["customer"], "Joiner");
    assert_eq!(row["status"], "Sales Order : Pending Fulfillment");
    assert_eq!(row["netamount"], "5");
    assert_eq!(row["type"], "SalesOrd");
    assert!(row.get("memo").is_none(), "NULL columns are omitted");
    assert!(row["links"].is_array());
    let r2 = api.suiteql(q, 2, 2).await;
    assert_eq!((r2.body["count"].as_u64(), r2.body["hasMore"].as_bool()), (Some(1), Some(false)));
    let r = api.suiteql("SELECT id, companyname, lastmodifieddate FROM customer WHERE lastmodifieddate >= TO_DATE('2020-01-01', 'YYYY-MM-DD')", 10, 0).await;
    assert_eq!(r.body["items"][0]["companyname"], "Joiner");
    let r = api.suiteql("SELECT acctname FROM account WHERE accttype = 'Bank'", 10, 0).await;
    assert_eq!(r.body["items"][0]["acctname"], "Operating Bank");
    let bad = api.suiteql("SELECT nope FROM nowhere", 10, 0).await;
    assert_eq!((bad.status, bad.code()), (400, "INVALID_PARAMETER"));
    let bad = api.suiteql("DELETE FROM customer", 10, 0).await;
    assert_eq!(bad.code(), "INVALID_PARAMETER");
    h.shutdown().await;
}

#[tokio::test]
async fn auth_rejects_bad_signature_replay_skew_and_missing() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let url = format!("{}/services/rest/record/v1/customer?limit=5", api.base);
    let now = jiff::Timestamp::now().as_second();
    let good = common::oauth_header("GET", &url, None, "fixed-nonce", now);
    assert_eq!(api.send("GET", &url, None, Some(good.clone()), &[]).await.status, 200);
    let replay = api.send("GET", &url, None, Some(good), &[]).await;
    assert_eq!((replay.status, replay.code()), (401, "INVALID_LOGIN"));
    let old = common::oauth_header("GET", &url, None, "old-nonce", now - 301);
    assert_eq!(api.send("GET", &url, None, Some(old), &[]).await.code(), "INVALID_LOGIN");
    // Signed for a different query string.
    let other = common::oauth_header("GET", &url.replace("limit=5", "limit=6"), None, "n-x", now);
    assert_eq!(api.send("GET", &url, None, Some(other), &[]).await.status, 401);
    // Body changed after signing (oauth_body_hash).
    let purl = format!("{}/services/rest/record/v1/customer", api.base);
    let signed = common::oauth_header("POST", &purl, Some(b"{\"companyName\":\"A\"}"), "n-b", now);
    let r = api.send("POST", &purl, Some(b"{\"companyName\":\"B\"}".to_vec()), Some(signed), &[]).await;
    assert_eq!(r.status, 401);
    let none = api.send("GET", &url, None, None, &[]).await;
    assert_eq!((none.status, none.body["title"].as_str()), (401, Some("Unauthorized")));
    assert_eq!(h.stats().await.auth_failures, 5);
    h.shutdown().await;
}

#[tokio::test]
async fn concurrency_limit_answers_429_and_latency_applies() {
    let cfg = Config { concurrency_limit: 2, latency: Duration::from_millis(300), ..Config::default() };
    let h = start(cfg).await;
    let api = std::sync::Arc::new(Api::new(&h));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move { api.get("/record/v1/account?limit=1").await }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        let r = t.await.expect("join");
        if r.status == 429 {
            assert_eq!(r.body["status"], 429);
            assert_eq!(r.code(), "CONCURRENCY_LIMIT_EXCEEDED");
        }
        codes.push(r.status);
    }
    codes.sort();
    assert_eq!(codes, vec![200, 200, 429, 429, 429]);
    let st = h.stats().await;
    assert_eq!((st.requests, st.rate_limited, st.in_flight), (5, 3, 0));
    let g = api.get("/system/v1/governanceLimits").await;
    assert_eq!(g.body["accountConcurrencyLimit"], 2);
    h.shutdown().await;
}

#[tokio::test]
async fn control_api_faults_stats_and_reset() {
    let h = start(Config::default()).await;
    let api = Api::new(&h);
    // 5xx for the next 2 requests, then normal.
    let (s, _) = api.control("POST", "/_sandbox/faults", Some(json!({"kind": "server_error", "count": 2, "status": 503}))).await;
    assert_eq!(s, 201);
    assert_eq!(api.get("/record/v1/account").await.status, 503);
    assert_eq!(api.get("/record/v1/account").await.status, 503);
    assert_eq!(api.get("/record/v1/account").await.status, 200);
    // A 429 storm restricted to POSTs.
    api.control("POST", "/_sandbox/faults", Some(json!({"kind": "rate_limit", "count": 3, "method": "POST"}))).await;
    assert_eq!(api.get("/record/v1/account").await.status, 200);
    for _ in 0..3 {
        assert_eq!(api.post("/record/v1/customer", json!({"companyName": "X", "subsidiary": {"id": "1"}})).await.status, 429);
    }
    // Lost response: the record is written but the client gets no answer.
    api.control("POST", "/_sandbox/faults", Some(json!({"kind": "lost_response", "path_contains": "/record/v1/customer"}))).await;
    let url = format!("{}/services/rest/record/v1/customer/eid:lost-1", api.base);
    let body = json!({"companyName": "Lost", "subsidiary": {"id": "1"}}).to_string().into_bytes();
    let auth = common::oauth_header("PUT", &url, Some(&body), "lost-nonce", jiff::Timestamp::now().as_second());
    let res = api.http.put(&url).header("authorization", auth).header("content-type", "application/json").body(body).send().await;
    assert!(res.is_err(), "the response must be lost: {res:?}");
    let g = api.get("/record/v1/customer/eid:lost-1").await;
    assert_eq!((g.status, g.body["companyName"].as_str()), (200, Some("Lost")));
    // Timeout: hang, then drop; nothing applied.
    api.control("POST", "/_sandbox/faults", Some(json!({"kind": "timeout", "hang_ms": 200, "method": "POST"}))).await;
    let url = format!("{}/services/rest/record/v1/customer", api.base);
    let body = json!({"companyName": "Never", "subsidiary": {"id": "1"}}).to_string().into_bytes();
    let auth = common::oauth_header("POST", &url, Some(&body), "to-nonce", jiff::Timestamp::now().as_second());
    let started = std::time::Instant::now();
    let res = api.http.post(&url).header("authorization", auth).body(body).send().await;
    assert!(res.is_err() && started.elapsed() >= Duration::from_millis(200));
    let (_, stats) = api.control("GET", "/_sandbox/stats", None).await;
    assert_eq!(stats["faults_injected"], 7);
    assert_eq!(stats["rate_limited"], 3);
    assert_eq!(stats["records"]["customer"], 1);
    assert_eq!(stats["records"]["account"], 11);
    // Latency and concurrency via the control API.
    assert_eq!(api.control("PUT", "/_sandbox/latency", Some(json!({"ms": 150}))).await.0, 200);
    let t = std::time::Instant::now();
    api.get("/record/v1/location").await;
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(api.control("PUT", "/_sandbox/concurrency", Some(json!({"limit": 4}))).await.0, 200);
    assert_eq!(h.stats().await.concurrency_limit, 4);
    // Probability 1.0 affects every request until cleared.
    api.control("POST", "/_sandbox/faults", Some(json!({"kind": "server_error", "probability": 1.0}))).await;
    assert_eq!(api.get("/record/v1/location").await.status, 500);
    assert_eq!(api.get("/record/v1/location").await.status, 500);
    api.control("DELETE", "/_sandbox/faults", None).await;
    assert_eq!(api.get("/record/v1/location").await.status, 200);
    // Reset.
    assert_eq!(api.control("POST", "/_sandbox/reset", None).await.0, 204);
    let st = h.stats().await;
    assert_eq!((st.records["customer"], st.requests, st.latency_ms, st.concurrency_limit), (0, 0, 0, 15));
    let q = api.suiteql("SELECT COUNT(*) AS n FROM customer", 10, 0).await;
    assert_eq!(q.body["items"][0]["n"], "0");
    h.shutdown().await;
}

#[tokio::test]
async fn events_are_signed_and_posted() {
    use std::sync::{Arc, Mutex};
    // A tiny receiver standing in for heartsuite's /hooks/netsuite.
    let got: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let g2 = got.clone();
    let app = axum::Router::new().route(
        "/hooks/netsuite",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let g2 = g2.clone();
            async move {
                let hv = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                if let Ok(mut v) = g2.lock() {
                    v.push((hv("x-heartsuite-timestamp"), hv("x-heartsuite-signature"), body));
                }
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook = format!("http://{}/hooks/netsuite", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    let sink = heartsuite_sandbox_netsuite::EventSink { url: hook, secret: "whsec".into(), record_types: vec!["customer".into()] };
    let h = start(Config { emit_events_to: Some(sink), ..Config::default() }).await;
    let api = Api::new(&h);
    let id = api.create("customer", json!({"companyName": "Evented", "subsidiary": {"id": "1"}, "externalId": "ev-1"})).await;
    api.patch(&format!("/record/v1/customer/{id}"), json!({"email": "e@x"})).await;
    api.create("inventoryItem", json!({"itemId": "not-emitted"})).await;
    api.delete(&format!("/record/v1/customer/{id}")).await;
    for _ in 0..50 {
        if got.lock().map(|v| v.len()).unwrap_or(0) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = got.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(v.len(), 3, "{v:?}");
    let kinds: Vec<String> = v.iter().map(|(_, _, b)| serde_json::from_str::<serde_json::Value>(b).map(|j| j["type"].as_str().unwrap_or("").to_string()).unwrap_or_default()).collect();
    assert_eq!(kinds, vec!["create", "edit", "delete"]);
    for (ts, sig, body) in &v {
        let ts: i64 = ts.parse().expect("timestamp");
        assert_eq!(sig, &heartsuite_sandbox_netsuite::sign_event("whsec", ts, body.as_bytes()));
    }
    let first: serde_json::Value = serde_json::from_str(&v[0].2).expect("json");
    assert_eq!((first["record_type"].as_str(), first["id"].as_str(), first["external_id"].as_str()), (Some("customer"), Some(id.as_str()), Some("ev-1")));
    assert_eq!(first["record"]["companyName"], "Evented");
    assert!(first["event_id"].as_str().unwrap_or_default().starts_with(&format!("customer:{id}:create:")));
    assert!(serde_json::from_str::<serde_json::Value>(&v[2].2).expect("json")["record"].is_null());
    // The counter is bumped after the receiver answers; give it a moment.
    for _ in 0..50 {
        if h.stats().await.events_sent == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!((h.stats().await.events_sent, h.stats().await.events_failed), (3, 0));
    h.shutdown().await;
}

#[tokio::test]
async fn oauth2_client_credentials_issue_bearer_tokens() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use p256::ecdsa::{Signature, SigningKey, signature::Signer};
    use p256::pkcs8::DecodePrivateKey;

    let h = start(Config::default()).await;
    let api = Api::new(&h);
    let pem = include_str!("../../../testdata/netsuite/sandbox-cert-es256-private.pk8.pem");
    let key = SigningKey::from_pkcs8_pem(pem).expect("private key");
    let token_url = format!("{}/services/rest/auth/oauth2/v1/token", api.base);
    let now = jiff::Timestamp::now().as_second();
    let jwt = |claims: serde_json::Value, kid: &str| {
        let hdr = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": "JWT", "kid": kid}).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig: Signature = key.sign(format!("{hdr}.{body}").as_bytes());
        format!("{hdr}.{body}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    };
    let ask = |assertion: String| {
        let http = api.http.clone();
        let url = token_url.clone();
        async move {
            let form = format!(
                "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
                heartsuite_sandbox_netsuite::pct("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                assertion
            );
            let r = http.post(url).header("content-type", "application/x-www-form-urlencoded").body(form).send().await.expect("token");
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let good = json!({"iss": "sandbox-client-id", "scope": ["rest_webservices"], "aud": token_url, "iat": now, "exp": now + 3600});
    let (s, tok) = ask(jwt(good.clone(), "sandbox-cert")).await;
    assert_eq!(s, 200, "{tok}");
    assert_eq!((tok["token_type"].as_str(), tok["expires_in"].as_u64()), (Some("Bearer"), Some(3600)));
    let bearer = format!("Bearer {}", tok["access_token"].as_str().unwrap_or_default());
    let r = api.send("GET", &format!("{}/services/rest/record/v1/account/2", api.base), None, Some(bearer), &[]).await;
    assert_eq!((r.status, r.body["acctName"].as_str()), (200, Some("Operating Bank")));
    let r = api.send("GET", &format!("{}/services/rest/record/v1/account/2", api.base), None, Some("Bearer nope".into()), &[]).await;
    assert_eq!(r.code(), "INVALID_LOGIN");

    let mut too_long = good.clone();
    too_long["exp"] = json!(now + 3601);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("https://example.com/token");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("someone-else");
    let mut no_scope = good.clone();
    no_scope["scope"] = json!("restlets");
    for bad in [jwt(too_long, "sandbox-cert"), jwt(wrong_aud, "sandbox-cert"), jwt(wrong_iss, "sandbox-cert"), jwt(no_scope, "sandbox-cert"), jwt(good.clone(), "other-cert")] {
        let (s, e) = ask(bad).await;
        assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")), "{e}");
    }
    // A tampered payload no longer verifies.
    let t = jwt(good, "sandbox-cert");
    let parts: Vec<&str> = t.split('.').collect();
    let forged_claims = URL_SAFE_NO_PAD.encode(json!({"iss": "sandbox-client-id", "scope": "rest_webservices", "aud": token_url, "iat": now, "exp": now + 60}).to_string());
    let (s, _) = ask(format!("{}.{}.{}", parts[0], forged_claims, parts[2])).await;
    assert_eq!(s, 400);
    h.shutdown().await;
}
