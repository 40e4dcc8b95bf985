//! The client against an in-test NetSuite fake: every operation, every error class, governance
//! under 429s, OAuth 2.0 token caching, and "applied but lost" writes.

mod common;

use common::{AuthMode, Fake, envelope};
use heartsuite_core::{ErrorClass, Failure, ManualClock, Secret};
use heartsuite_netsuite::*;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn tba() -> Auth {
    Auth::Tba {
        consumer_key: Secret::new("ck"),
        consumer_secret: Secret::new("cs"),
        token_id: Secret::new("tk"),
        token_secret: Secret::new("ts"),
    }
}

fn oauth2() -> Auth {
    Auth::OAuth2 {
        client_id: "sandbox-client-id".into(),
        certificate_id: "sandbox-cert".into(),
        private_key_pem: Secret::new(common::PRIVATE_KEY),
        scope: "rest_webservices".into(),
    }
}

fn config(fake: &Fake, auth: Auth) -> Config {
    let mut c = Config::new(common::ACCOUNT, auth).with_base_url(fake.base.clone());
    c.timeout = Duration::from_millis(400);
    c.backoff_base = Duration::from_millis(5);
    c.max_backoff = Duration::from_millis(200);
    c
}

fn client(fake: &Fake) -> NetSuiteClient {
    NetSuiteClient::new(config(fake, tba())).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    let cust = Customer {
        company_name: Some("Acme".into()),
        email: Some("ap@acme.test".into()),
        subsidiary: Some(RecordRef::id("1")),
        ..Default::default()
    };
    let id = c.create(Customer::TYPE, &cust).await.unwrap();
    assert_eq!(fake.count("customer"), 1);
    let stored = fake.record("customer", id.parse().unwrap()).unwrap();
    assert_eq!(stored["companyName"], "Acme");
    assert_eq!(stored["subsidiary"], json!({"id": "1"}));

    let got: Customer = c.get(Customer::TYPE, &id, true).await.unwrap();
    assert_eq!(got.id.as_deref(), Some(id.as_str()));
    assert_eq!(got.company_name.as_deref(), Some("Acme"));

    c.update(Customer::TYPE, &id, &json!({"email": "billing@acme.test", "phone": null}), &[]).await.unwrap();
    let got: Customer = c.get(Customer::TYPE, &id, false).await.unwrap();
    assert_eq!(got.email.as_deref(), Some("billing@acme.test"));

    c.delete(Customer::TYPE, &id).await.unwrap();
    assert_eq!(fake.count("customer"), 0);
    let gone = c.get::<Customer>(Customer::TYPE, &id, false).await.unwrap_err();
    assert_eq!(gone.class(), ErrorClass::Dependency);
    assert_eq!(gone.code(), Some("NONEXISTENT_ID"));
}

#[tokio::test]
async fn get_expands_sublists_only_when_asked() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    let so = SalesOrder {
        external_id: Some("hs-order-1".into()),
        entity: Some(RecordRef::id("7")),
        item: Some(Sublist::new(vec![TransactionLine {
            item: Some(RecordRef::id("9")),
            quantity: Some(Decimal::from(3)),
            rate: Some(Decimal::from_str("19.99").unwrap()),
            ..Default::default()
        }])),
        ..Default::default()
    };
    let id = c.create(SalesOrder::TYPE, &so).await.unwrap();
    // The wire carried an exact decimal number.
    let raw = fake.record("salesOrder", id.parse().unwrap()).unwrap();
    assert_eq!(raw["item"]["items"][0]["rate"].to_string(), "19.99");

    let expanded: SalesOrder = c.get(SalesOrder::TYPE, &id, true).await.unwrap();
    let line = &expanded.item.unwrap().items[0];
    assert_eq!(line.rate, Some(Decimal::from_str("19.99").unwrap()));
    let collapsed: Value = c.get(SalesOrder::TYPE, &id, false).await.unwrap();
    assert!(collapsed["item"].get("items").is_none());
    assert!(collapsed["item"]["links"].is_array());
}

#[tokio::test]
async fn upsert_creates_then_updates_the_same_record() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    let id1 = c.upsert(Customer::TYPE, "hs-cust-1", &json!({"companyName": "One"})).await.unwrap();
    let id2 = c.upsert(Customer::TYPE, "hs-cust-1", &json!({"companyName": "One Ltd"})).await.unwrap();
    assert_eq!(id1, id2);
    assert_eq!(fake.count("customer"), 1);
    let r = fake.record("customer", id1.parse().unwrap()).unwrap();
    assert_eq!(r["companyName"], "One Ltd");
    assert_eq!(r["externalId"], "hs-cust-1");

    let by_eid: Option<Customer> = c.get_by_external_id(Customer::TYPE, "hs-cust-1", false).await.unwrap();
    assert_eq!(by_eid.and_then(|c| c.id), Some(id1));
    let none: Option<Customer> = c.get_by_external_id(Customer::TYPE, "hs-missing", false).await.unwrap();
    assert!(none.is_none());

    let bad = c.upsert(Customer::TYPE, "has space", &json!({})).await.unwrap_err();
    assert_eq!(bad.class(), ErrorClass::Data);
}

#[tokio::test]
async fn transform_returns_new_record_id() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    let so = fake.insert("salesOrder", obj(json!({"entity": {"id": "7"}})));
    let body = ItemFulfillment {
        ship_status: Some(RecordRef::id("C")),
        item: Some(Sublist::new(vec![FulfillmentLine {
            order_line: Some(1),
            quantity: Some(Decimal::from(2)),
            item_receive: Some(false),
            ..Default::default()
        }])),
        ..Default::default()
    };
    let ff = c.transform(SalesOrder::TYPE, &so.to_string(), ItemFulfillment::TYPE, Some(&body)).await.unwrap();
    let rec = fake.record("itemFulfillment", ff.parse().unwrap()).unwrap();
    assert_eq!(rec["createdFrom"], json!({"id": so.to_string()}));
    assert_eq!(rec["shipStatus"], json!({"id": "C"}));
    let inv = c.transform::<Value>(SalesOrder::TYPE, &so.to_string(), Invoice::TYPE, None).await.unwrap();
    assert!(fake.record("invoice", inv.parse().unwrap()).is_some());

    let missing = c.transform::<Value>(SalesOrder::TYPE, "999999", Invoice::TYPE, None).await.unwrap_err();
    assert_eq!(missing.class(), ErrorClass::Dependency);
}

#[tokio::test]
async fn list_with_q_and_paging() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    for i in 0..7 {
        fake.insert("customer", obj(json!({"companyName": format!("C{i}"), "email": if i % 2 == 0 { "even@x.test" } else { "odd@x.test" }})));
    }
    let page = c.list(Customer::TYPE, None, 3, 3).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.has_more);
    assert_eq!(page.total_results, Some(7));
    let all = c.list_all(Customer::TYPE, None, 2).await.unwrap();
    assert_eq!(all.len(), 7);
    let even = c.list_all(Customer::TYPE, Some("email IS \"even@x.test\""), 2).await.unwrap();
    assert_eq!(even.len(), 4);
    // offset must be a multiple of limit; we refuse before NetSuite does.
    assert_eq!(c.list(Customer::TYPE, None, 3, 4).await.unwrap_err().class(), ErrorClass::Data);
    // An unparseable q is NetSuite's INVALID_PARAMETER → data.
    let e = c.list(Customer::TYPE, Some("nonsense"), 10, 0).await.unwrap_err();
    assert_eq!(e.code(), Some("INVALID_PARAMETER"));
    assert_eq!(e.class(), ErrorClass::Data);
}

#[tokio::test]
async fn suiteql_pages_until_has_more_is_false() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    let rows: Vec<Map<String, Value>> = (1..=25)
        .map(|i| obj(json!({"id": i.to_string(), "companyname": format!("C{i}"), "lastmodifieddate": "2026-11-26 10:00:00"})))
        .collect();
    fake.tables.lock().unwrap().insert("customer".into(), rows);
    let got = c.suiteql("SELECT id, companyname FROM customer ORDER BY id", 10).await.unwrap();
    assert_eq!(got.len(), 25);
    assert!(got.iter().all(|r| !r.contains_key("links")));
    let ids: Vec<&str> = got.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.first(), Some(&"1"));
    assert_eq!(ids.last(), Some(&"25"));
    let reqs = fake.suiteql_requests.lock().unwrap().clone();
    assert_eq!(reqs.iter().map(|(l, o, _)| (*l, *o)).collect::<Vec<_>>(), vec![(10, 0), (10, 10), (10, 20)]);
    assert!(fake.saw_prefer_transient.load(Ordering::SeqCst));
    assert_eq!(c.suiteql("SELECT 1 FROM dual", 1001).await.unwrap_err().class(), ErrorClass::Data);
}

#[tokio::test]
async fn poll_changes_moves_a_durable_cursor_without_skips_or_repeats() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    // Five rows share one second: the id tie-break must carry the cursor through them.
    let mut rows = Vec::new();
    for (id, ts) in [(3, "2026-11-26 10:00:00"), (1, "2026-11-26 10:00:00"), (2, "2026-11-26 10:00:00"), (9, "2026-11-26 10:00:00"), (5, "2026-11-26 10:00:00"), (4, "2026-11-26 10:00:01"), (8, "2026-11-26 09:59:59")] {
        rows.push(obj(json!({"id": id.to_string(), "type": "SalesOrd", "lastmodifieddate": ts})));
    }
    fake.tables.lock().unwrap().insert("transaction".into(), rows);
    let mut cursor = None;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (page, next) = poll_changes(&c, "transaction", cursor.clone(), 2).await.unwrap();
        if page.is_empty() {
            assert_eq!(next, cursor, "an empty poll keeps the cursor");
            break;
        }
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().parse::<u64>().unwrap()));
        cursor = next;
    }
    assert_eq!(seen, vec![8, 1, 2, 3, 5, 9, 4]);
    assert!(cursor.as_deref().is_some_and(|c| c.starts_with("2026-11-26 10:00:01|4|")), "{cursor:?}");

    // A later change to row 2 shows up once, after the cursor.
    fake.tables.lock().unwrap().get_mut("transaction").unwrap().push(obj(
        json!({"id": "2", "type": "SalesOrd", "lastmodifieddate": "2026-11-26 10:05:00"}),
    ));
    let (page, next) = poll_changes(&c, "transaction", cursor, 100).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], "2");
    assert!(next.as_deref().is_some_and(|c| c.starts_with("2026-11-26 10:05:00|2|")), "{next:?}");
}

#[tokio::test]
async fn poll_changes_returns_same_second_saves_of_lower_ids_and_edits() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    let t = "2026-11-26 10:00:00";
    let rec = |id: u64, memo: &str| obj(json!({"id": id.to_string(), "memo": memo, "lastmodifieddate": t}));
    fake.tables.lock().unwrap().insert("transaction".into(), vec![rec(3, "a"), rec(8, "b")]);
    let ids = |rows: &[Map<String, Value>]| rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let (rows, cursor) = poll_changes(&c, "transaction", None, 100).await.unwrap();
    assert_eq!(ids(&rows), ["3", "8"]);
    let (rows, same) = poll_changes(&c, "transaction", cursor.clone(), 100).await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(same, cursor);

    // Later in the same second: a lower id is saved, and row 8 is saved again.
    {
        let mut tables = fake.tables.lock().unwrap();
        let table = tables.get_mut("transaction").unwrap();
        table.retain(|r| r["id"] != "8");
        table.push(rec(1, "late"));
        table.push(rec(8, "b2"));
    }
    let (rows, cursor) = poll_changes(&c, "transaction", cursor, 100).await.unwrap();
    assert_eq!(ids(&rows), ["1", "8"], "the late lower id and the new save, nothing unchanged");
    assert_eq!(rows[1]["memo"], "b2");
    let (rows, cursor) = poll_changes(&c, "transaction", cursor, 100).await.unwrap();
    assert!(rows.is_empty(), "settled: {rows:?}");

    // Row 3 saved again a second later: it leaves that second and comes once, alone.
    fake.tables.lock().unwrap().get_mut("transaction").unwrap().retain(|r| r["id"] != "3");
    fake.tables
        .lock()
        .unwrap()
        .get_mut("transaction")
        .unwrap()
        .push(obj(json!({"id": "3", "memo": "a2", "lastmodifieddate": "2026-11-26 10:00:01"})));
    let (rows, cursor) = poll_changes(&c, "transaction", cursor, 100).await.unwrap();
    assert_eq!(ids(&rows), ["3"]);
    let (rows, _) = poll_changes(&c, "transaction", cursor, 100).await.unwrap();
    assert!(rows.is_empty(), "settled: {rows:?}");
}

#[tokio::test]
async fn poll_changes_checks_a_crowded_second_page_by_page() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    let t = "2026-11-26 10:00:00";
    let rec = |id: u64, memo: &str| obj(json!({"id": id.to_string(), "memo": memo, "lastmodifieddate": t}));
    fake.tables.lock().unwrap().insert("transaction".into(), (10..2510).map(|i| rec(i, "x")).collect());
    let mut cursor = None;
    let mut n = 0;
    for _ in 0..3 {
        let (rows, next) = poll_changes(&c, "transaction", cursor, 1000).await.unwrap();
        n += rows.len();
        cursor = next;
    }
    assert_eq!(n, 2500);
    assert!(cursor.as_deref().unwrap().len() < 64, "fixed-size cursor: {cursor:?}");
    fake.suiteql_requests.lock().unwrap().clear();
    let (rows, next) = poll_changes(&c, "transaction", cursor.clone(), 1000).await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(next, cursor);
    // 2500 rows re-checked in pages of 1000 (keyset, offset 0), then one page asked for new rows.
    let reqs = fake.suiteql_requests.lock().unwrap().clone();
    assert_eq!(reqs.iter().map(|(l, o, _)| (*l, *o)).collect::<Vec<_>>(), vec![(1000, 0), (1000, 0), (1000, 0), (1000, 0)]);

    // Over MAX_LISTED rows in one second the cursor keeps only a sum: a late save of a lower id
    // there brings the second again from its start (repeats the caller recognises).
    fake.tables.lock().unwrap().get_mut("transaction").unwrap().push(rec(5, "late"));
    let (rows, _) = poll_changes(&c, "transaction", cursor, 1000).await.unwrap();
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[0]["id"], "5");
}

#[tokio::test]
async fn error_envelope_maps_to_failure_classes() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);

    // INVALID_CONTENT with o:errorPath → data + field path.
    let bad_ref = json!({"entity": {"id": "7"}, "item": {"items": [{"item": {"id": "9999"}, "quantity": 1}]}});
    let f: Failure = c.create(SalesOrder::TYPE, &bad_ref).await.unwrap_err().into();
    assert_eq!(f.class, ErrorClass::Data);
    assert_eq!(f.code.as_deref(), Some("INVALID_CONTENT"));
    assert_eq!(f.field_path.as_deref(), Some("item.items[0].item"));
    assert_eq!(f.system.as_deref(), Some("netsuite"));

    // USER_ERROR (missing required fields) → data.
    let f: Failure = c.create(Customer::TYPE, &json!({"email": "x@y.z"})).await.unwrap_err().into();
    assert_eq!((f.class, f.code.as_deref()), (ErrorClass::Data, Some("USER_ERROR")));

    // NONEXISTENT_FIELD → data, path named.
    let f: Failure = c.create(Customer::TYPE, &json!({"companyName": "A", "bogusField": 1})).await.unwrap_err().into();
    assert_eq!((f.class, f.field_path.as_deref()), (ErrorClass::Data, Some("bogusField")));

    // NONEXISTENT_ID → dependency.
    let f: Failure = c.update(Customer::TYPE, "424242", &json!({"email": "a@b.c"}), &[]).await.unwrap_err().into();
    assert_eq!((f.class, f.code.as_deref()), (ErrorClass::Dependency, Some("NONEXISTENT_ID")));

    // 5xx → transient.
    fake.inject("/record/v1/customer", 503, json!({"title": "Service Unavailable"}), None);
    let f: Failure = c.list(Customer::TYPE, None, 10, 0).await.unwrap_err().into();
    assert_eq!(f.class, ErrorClass::Transient);

    // 403 → auth.
    fake.inject("/record/v1/customer", 403, envelope(403, "INSUFFICIENT_PERMISSION", "Permission Violation", None), None);
    let f: Failure = c.list(Customer::TYPE, None, 10, 0).await.unwrap_err().into();
    assert_eq!(f.class, ErrorClass::Auth);

    // SSS_REQUEST_LIMIT_EXCEEDED on a 400 → rate_limited (retried in-client, then succeeds).
    fake.inject("/record/v1/customer", 400, envelope(400, "SSS_REQUEST_LIMIT_EXCEEDED", "limit", None), None);
    c.list(Customer::TYPE, None, 10, 0).await.unwrap();

    // 429 with Retry-After and no retries left → rate_limited carrying the delay.
    let mut cfg = config(&fake, tba());
    cfg.rate_limit_retries = 0;
    let strict = NetSuiteClient::new(cfg).unwrap();
    fake.inject("/record/v1/customer", 429, envelope(429, "CONCURRENCY_LIMIT_EXCEEDED", "Too Many Requests", None), Some("7"));
    let f: Failure = strict.list(Customer::TYPE, None, 10, 0).await.unwrap_err().into();
    assert_eq!(f.class, ErrorClass::RateLimited);
    assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
    // A Retry-After longer than max_backoff is handed back rather than slept on.
    fake.inject("/record/v1/customer", 429, json!({}), Some("120"));
    let t0 = std::time::Instant::now();
    let e = c.list(Customer::TYPE, None, 10, 0).await.unwrap_err();
    assert!(e.is_rate_limited() && t0.elapsed() < Duration::from_secs(5));

    // Connect error → transient.
    let dead = NetSuiteClient::new(config(&fake, tba()).with_base_url("http://127.0.0.1:1")).unwrap();
    let f: Failure = dead.list(Customer::TYPE, None, 10, 0).await.unwrap_err().into();
    assert_eq!(f.class, ErrorClass::Transient);

    // Messages come from status and envelope, never from the signed request.
    assert!(!f.message.contains("oauth_signature") && !f.message.contains("OAuth realm"));
}

#[tokio::test]
async fn invalid_login_is_auth() {
    let fake = Fake::start(AuthMode::Bearer).await;
    // TBA credentials against a server that wants bearer tokens: INVALID_LOGIN 401.
    let c = client(&fake);
    let f: Failure = c.get::<Value>(Customer::TYPE, "1", false).await.unwrap_err().into();
    assert_eq!((f.class, f.code.as_deref()), (ErrorClass::Auth, Some("INVALID_LOGIN")));
}

#[tokio::test]
async fn duplicate_external_id_on_create_resolves_to_existing_id() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    let existing = fake.insert("customer", obj(json!({"companyName": "A", "externalId": "hs-cust-9"})));
    let id = c.create(Customer::TYPE, &json!({"companyName": "A", "externalId": "hs-cust-9"})).await.unwrap();
    assert_eq!(id, existing.to_string());
    assert_eq!(fake.count("customer"), 1);
}

/// The fake applies the write, then stalls past the client timeout: the client sees a transient
/// timeout although the record exists. Retrying the upsert must not create a second record.
#[tokio::test]
async fn applied_but_lost_upsert_retry_creates_no_duplicate() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    *fake.stall_after_write.lock().unwrap() = Some(("eid:hs-order-42".into(), Duration::from_secs(2)));
    let body = json!({"entity": {"id": "7"}, "memo": "first try"});
    let e = c.upsert(SalesOrder::TYPE, "hs-order-42", &body).await.unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    assert_eq!(Failure::from(e).class, ErrorClass::Transient);
    assert_eq!(fake.count("salesOrder"), 1, "the write was applied");

    let id = c.upsert(SalesOrder::TYPE, "hs-order-42", &body).await.unwrap();
    assert_eq!(fake.count("salesOrder"), 1, "the retry created no duplicate");
    assert_eq!(fake.record("salesOrder", id.parse().unwrap()).unwrap()["externalId"], "hs-order-42");
}

/// Same with a plain create carrying an externalId: the retry hits "already exists" and is
/// resolved by lookup to the record the lost attempt made.
#[tokio::test]
async fn applied_but_lost_create_retry_resolves_duplicate() {
    let fake = Fake::start(AuthMode::Tba).await;
    let c = client(&fake);
    *fake.stall_after_write.lock().unwrap() = Some(("/record/v1/customer".into(), Duration::from_secs(2)));
    let body = json!({"companyName": "Lost Co", "externalId": "hs-cust-lost"});
    assert_eq!(c.create(Customer::TYPE, &body).await.unwrap_err().class(), ErrorClass::Transient);
    let id = c.create(Customer::TYPE, &body).await.unwrap();
    assert_eq!(fake.count("customer"), 1);
    assert_eq!(fake.record("customer", id.parse().unwrap()).unwrap()["companyName"], "Lost Co");
}

async fn burst(c: &NetSuiteClient, id: &str, n: usize) -> Vec<Result<Value, Error>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let c = c.clone();
        let id = id.to_string();
        tasks.push(tokio::spawn(async move { c.get::<Value>(Customer::TYPE, &id, false).await }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The fake allows 3 concurrent requests and answers 429 above that. The client starts with 8
/// permits; after the 429s it must have adapted so that a second burst stays within 3 in flight
/// and draws no 429 at all.
#[tokio::test]
async fn governor_adapts_to_429_and_then_stays_within_the_limit() {
    let fake = Fake::start(AuthMode::Tba).await;
    fake.limit.store(3, Ordering::SeqCst);
    fake.latency_ms.store(25, Ordering::SeqCst);
    let id = fake.insert("customer", obj(json!({"companyName": "A"}))).to_string();
    let mut cfg = config(&fake, tba());
    cfg.concurrency = Concurrency::Fixed(8);
    cfg.increase_after = 10_000; // no climbing during this test
    cfg.rate_limit_retries = 20;
    let c = NetSuiteClient::new(cfg).unwrap();

    let mut rounds = 0;
    while c.governor().window() > 3 && rounds < 5 {
        let results = burst(&c, &id, 40).await;
        assert!(results.iter().all(|r| r.is_ok()), "every request eventually succeeds");
        rounds += 1;
    }
    assert!(fake.rejected_429.load(Ordering::SeqCst) > 0, "the fake did push back");
    assert!(c.governor().window() <= 3, "window {}", c.governor().window());

    fake.rejected_429.store(0, Ordering::SeqCst);
    fake.max_seen.store(0, Ordering::SeqCst);
    let results = burst(&c, &id, 40).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(fake.rejected_429.load(Ordering::SeqCst), 0);
    assert!(fake.max_seen.load(Ordering::SeqCst) <= 3, "max in flight {}", fake.max_seen.load(Ordering::SeqCst));
    assert_eq!(c.governor().in_flight(), 0);
}

/// After the account frees up, successes earn the permits back, one per `increase_after`, and
/// never above the configured limit.
#[tokio::test]
async fn governor_climbs_back_after_429s() {
    let fake = Fake::start(AuthMode::Tba).await;
    fake.limit.store(1, Ordering::SeqCst);
    fake.latency_ms.store(20, Ordering::SeqCst);
    let id = fake.insert("customer", obj(json!({"companyName": "A"}))).to_string();
    let mut cfg = config(&fake, tba());
    cfg.concurrency = Concurrency::Fixed(4);
    cfg.increase_after = 3;
    cfg.rate_limit_retries = 20;
    let c = NetSuiteClient::new(cfg).unwrap();
    let results = burst(&c, &id, 8).await;
    assert!(results.iter().all(|r| r.is_ok()));
    let low = c.governor().window();
    assert!(low < 4, "window after 429s: {low}");

    fake.limit.store(100, Ordering::SeqCst);
    fake.latency_ms.store(0, Ordering::SeqCst);
    for _ in 0..12 {
        c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    }
    assert_eq!(c.governor().window(), 4);
    for _ in 0..6 {
        c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    }
    assert_eq!(c.governor().window(), 4, "never above the limit");
}

/// Two clients (think: two processes) with their own governors but one permit store: together
/// they never exceed the account's 3 slots, so the fake never needs to say 429.
#[tokio::test]
async fn shared_permit_store_bounds_several_clients() {
    let fake = Fake::start(AuthMode::Tba).await;
    fake.limit.store(3, Ordering::SeqCst);
    fake.latency_ms.store(15, Ordering::SeqCst);
    let id = fake.insert("customer", obj(json!({"companyName": "A"}))).to_string();
    let store: Arc<dyn PermitStore> = Arc::new(LocalPermitStore::default());
    let mk = |owner: &str| {
        let mut cfg = config(&fake, tba());
        cfg.governor = Some(Arc::new(Governor::new("netsuite:1234567_SB1", 3, 20).with_store(store.clone(), owner)));
        cfg.rate_limit_retries = 0;
        NetSuiteClient::new(cfg).unwrap()
    };
    let (a, b) = (mk("proc-a"), mk("proc-b"));
    let (ra, rb) = tokio::join!(burst(&a, &id, 15), burst(&b, &id, 15));
    assert!(ra.iter().chain(rb.iter()).all(|r| r.is_ok()));
    assert_eq!(fake.rejected_429.load(Ordering::SeqCst), 0);
    assert!(fake.max_seen.load(Ordering::SeqCst) <= 3);
}

#[tokio::test]
async fn governance_limits_set_the_ceiling_when_allowed() {
    let fake = Fake::start(AuthMode::Tba).await;
    *fake.governance.lock().unwrap() = Some((
        200,
        json!({"accountConcurrencyLimit": 15, "accountUnallocatedConcurrencyLimit": 4, "limitType": "accountUnallocated"}),
    ));
    let id = fake.insert("customer", obj(json!({"companyName": "A"}))).to_string();
    let mut cfg = config(&fake, tba());
    cfg.concurrency = Concurrency::FromAccount { fallback: 2 };
    let c = NetSuiteClient::new(cfg).unwrap();
    assert_eq!(c.governor().limit(), 2);
    c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    assert_eq!(c.governor().limit(), 4);

    // Not an administrator: 403 on governanceLimits, the fallback stays and requests still work.
    let fake2 = Fake::start(AuthMode::Tba).await;
    let id2 = fake2.insert("customer", obj(json!({"companyName": "A"}))).to_string();
    let mut cfg = config(&fake2, tba());
    cfg.concurrency = Concurrency::FromAccount { fallback: 2 };
    let c2 = NetSuiteClient::new(cfg).unwrap();
    c2.get::<Value>(Customer::TYPE, &id2, false).await.unwrap();
    assert_eq!(c2.governor().limit(), 2);
}

/// Ten concurrent first requests share one token fetch (the fake's token endpoint is slow and
/// counts overlapping calls); later requests reuse the cached token.
#[tokio::test]
async fn oauth2_token_is_fetched_once_for_concurrent_callers() {
    let fake = Fake::start(AuthMode::Bearer).await;
    fake.token_delay_ms.store(150, Ordering::SeqCst);
    let id = fake.insert("customer", obj(json!({"companyName": "A"}))).to_string();
    let mut cfg = config(&fake, oauth2());
    cfg.concurrency = Concurrency::Fixed(10);
    let c = NetSuiteClient::new(cfg).unwrap();
    let results = burst(&c, &id, 10).await;
    assert!(results.iter().all(|r| r.is_ok()), "{:?}", results.iter().find(|r| r.is_err()));
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    assert_eq!(fake.token_max_in_flight.load(Ordering::SeqCst), 1);
    c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    assert_eq!(c.token_fetches(), 1);
}

/// With an injected clock: the token is reused while fresh and replaced shortly before expiry.
#[tokio::test]
async fn oauth2_token_refreshes_before_expiry() {
    let fake = Fake::start(AuthMode::Bearer).await;
    let id = fake.insert("customer", obj(json!({"companyName": "A"}))).to_string();
    let clock = Arc::new(ManualClock::new(1_764_151_200_000_000));
    let mut cfg = config(&fake, oauth2());
    cfg.clock = clock.clone();
    let c = NetSuiteClient::new(cfg).unwrap();
    c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    clock.advance(3_000 * 1_000_000); // 50 min into a 60 min token
    c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    clock.advance(500 * 1_000_000); // 58 min 20 s: inside the refresh skew
    c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
}

/// A token the server stops honouring (401) is replaced once and the request retried.
#[tokio::test]
async fn oauth2_revoked_token_is_replaced_once() {
    let fake = Fake::start(AuthMode::Bearer).await;
    let id = fake.insert("customer", obj(json!({"companyName": "A"}))).to_string();
    let c = NetSuiteClient::new(config(&fake, oauth2())).unwrap();
    c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    fake.valid_tokens.lock().unwrap().clear();
    c.get::<Value>(Customer::TYPE, &id, false).await.unwrap();
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oauth2_refused_assertion_is_auth() {
    let fake = Fake::start(AuthMode::Bearer).await;
    let c = NetSuiteClient::new(config(
        &fake,
        Auth::OAuth2 {
            client_id: "someone-else".into(),
            certificate_id: "sandbox-cert".into(),
            private_key_pem: Secret::new(common::PRIVATE_KEY),
            scope: "rest_webservices".into(),
        },
    ))
    .unwrap();
    let f: Failure = c.get::<Value>(Customer::TYPE, "1", false).await.unwrap_err().into();
    assert_eq!(f.class, ErrorClass::Auth);
    assert!(f.message.contains("invalid_client"), "{}", f.message);
    assert!(!f.message.contains("PRIVATE KEY"));
}

#[test]
fn config_errors() {
    let bad = Config::new("", tba());
    assert!(matches!(NetSuiteClient::new(bad), Err(Error::Config(_))));
    let bad = Config::new("1234567_SB1", tba()).with_base_url("ftp://x");
    assert!(matches!(NetSuiteClient::new(bad), Err(Error::Config(_))));
    let c = NetSuiteClient::new(Config::new("1234567_SB1", tba())).unwrap();
    assert_eq!(c.rest_root(), "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest");
}
