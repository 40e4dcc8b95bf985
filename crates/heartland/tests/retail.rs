//! Heartland Retail client against a small in-test fake written from reference/heartland.md §5.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use heartsuite_core::{ErrorClass, Money, Secret};
use heartsuite_heartland::retail::{
    Address, CustomerInput, InventoryQuery, Item, ItemInput, Ticket,
};
use heartsuite_heartland::{ListQuery, RetailClient, RetailConfig};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "retail-api-token-xyz";

#[derive(Default)]
struct Fake {
    items: Vec<Value>,
    customers: Vec<Value>,
    addresses: Vec<(i64, Value)>,
    tickets: Vec<Value>,
    lines: Vec<(i64, Value)>,
    payments: Vec<Value>,
    inventory: Vec<Value>,
    locations: Vec<Value>,
    webhooks: Vec<Value>,
    next_id: i64,
    /// Retry-After values for the next requests to answer 429.
    throttle: VecDeque<Option<&'static str>>,
    inject: VecDeque<(u16, Value)>,
    /// (method, path, query, raw body)
    log: Vec<(String, String, String, String)>,
}

type Shared = Arc<Mutex<Fake>>;

fn query_map(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn q<'a>(qs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    qs.iter().find(|(a, _)| a == k).map(|(_, b)| b.as_str())
}

fn json_resp(status: u16, v: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(v)).into_response()
}

/// `_filter` support for `{"field": {"$eq"|"$gte": value}}`, enough to prove it is sent.
fn matches(filter: Option<&str>, r: &Value) -> bool {
    let Some(f) = filter else { return true };
    let f: Value = serde_json::from_str(f).unwrap();
    f.as_object().unwrap().iter().all(|(field, cond)| {
        cond.as_object()
            .unwrap()
            .iter()
            .all(|(op, v)| match op.as_str() {
                "$eq" => &r[field] == v,
                "$gte" => r[field].as_str().unwrap_or("") >= v.as_str().unwrap_or(""),
                _ => panic!("unsupported {op}"),
            })
    })
}

fn collection(rows: Vec<Value>, qs: &[(String, String)]) -> Response {
    let page: usize = q(qs, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let per: usize = q(qs, "per_page").and_then(|p| p.parse().ok()).unwrap_or(20);
    let rows: Vec<Value> = rows
        .into_iter()
        .filter(|r| matches(q(qs, "_filter"), r))
        .collect();
    let total = rows.len();
    let pages = total.div_ceil(per).max(1);
    let results: Vec<Value> = rows.into_iter().skip((page - 1) * per).take(per).collect();
    json_resp(
        200,
        json!({"results": results, "total": total, "pages": pages}),
    )
}

fn find(rows: &[Value], id: &str) -> Response {
    match rows
        .iter()
        .find(|r| id.parse::<i64>().ok() == r["id"].as_i64())
    {
        Some(r) => json_resp(200, r.clone()),
        None => json_resp(
            404,
            json!({"error": "not_found", "message": "Record not found"}),
        ),
    }
}

fn created(path: &str, id: i64) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    r.headers_mut()
        .insert("location", format!("/api/{path}/{id}").parse().unwrap());
    r
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut f = s.lock().unwrap();
    let path = uri.path().strip_prefix("/api").unwrap_or("").to_string();
    let raw = String::from_utf8_lossy(&body).to_string();
    f.log.push((
        method.to_string(),
        path.clone(),
        uri.query().unwrap_or("").to_string(),
        raw.clone(),
    ));
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return json_resp(
            401,
            json!({"error": "unauthorized", "message": "Invalid token"}),
        );
    }
    if let Some(ra) = f.throttle.pop_front() {
        let mut r = json_resp(429, json!({"error": "too_many_requests"}));
        if let Some(ra) = ra {
            r.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return r;
    }
    if let Some((status, v)) = f.inject.pop_front() {
        return json_resp(status, v);
    }
    let qs = query_map(&uri);
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        (Method::GET, ["items"]) => collection(f.items.clone(), &qs),
        (Method::GET, ["items", id]) => find(&f.items, id),
        (Method::POST, ["items"]) => {
            f.next_id += 1;
            let id = f.next_id;
            let mut item = body.clone();
            item["id"] = json!(id);
            f.items.push(item);
            created("items", id)
        }
        (Method::PUT, ["items", id]) => {
            let Some(item) = f
                .items
                .iter_mut()
                .find(|r| id.parse::<i64>().ok() == r["id"].as_i64())
            else {
                return json_resp(404, json!({"error": "not_found"}));
            };
            for (k, v) in body.as_object().unwrap() {
                item[k] = v.clone();
            }
            json_resp(200, item.clone())
        }
        (Method::GET, ["inventory", "values"]) => {
            let groups: Vec<&str> = qs
                .iter()
                .filter(|(k, _)| k == "group[]")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(groups, vec!["item_id", "location_id"]);
            let rows = f
                .inventory
                .iter()
                .filter(|r| {
                    q(&qs, "item_id").is_none_or(|i| i.parse::<i64>().ok() == r["item_id"].as_i64())
                })
                .filter(|r| {
                    q(&qs, "exclude_empty_locations") != Some("true") || r["qty"] != json!(0)
                })
                .cloned()
                .collect();
            collection(rows, &qs)
        }
        (Method::GET, ["customers"]) => collection(f.customers.clone(), &qs),
        (Method::GET, ["customers", id]) => find(&f.customers, id),
        (Method::POST, ["customers"]) => {
            f.next_id += 1;
            let id = f.next_id;
            let mut c = body.clone();
            c["id"] = json!(id);
            f.customers.push(c);
            created("customers", id)
        }
        (Method::PUT, ["customers", id]) => {
            let id = id.to_string();
            match f
                .customers
                .iter_mut()
                .find(|r| id.parse::<i64>().ok() == r["id"].as_i64())
            {
                Some(c) => {
                    for (k, v) in body.as_object().unwrap() {
                        c[k] = v.clone();
                    }
                    json_resp(200, c.clone())
                }
                None => json_resp(404, json!({"error": "not_found"})),
            }
        }
        (Method::GET, ["customers", id, "addresses"]) => {
            let id: i64 = id.parse().unwrap();
            collection(
                f.addresses
                    .iter()
                    .filter(|(c, _)| *c == id)
                    .map(|(_, a)| a.clone())
                    .collect(),
                &qs,
            )
        }
        (Method::POST, ["customers", id, "addresses"]) => {
            let cid: i64 = id.parse().unwrap();
            f.next_id += 1;
            let id = f.next_id;
            let mut a = body.clone();
            a["id"] = json!(id);
            f.addresses.push((cid, a));
            created(&format!("customers/{cid}/addresses"), id)
        }
        (Method::GET, ["sales", "tickets"]) => collection(f.tickets.clone(), &qs),
        (Method::GET, ["sales", "tickets", id]) => find(&f.tickets, id),
        (Method::GET, ["sales", "tickets", id, "lines"]) => {
            let id: i64 = id.parse().unwrap();
            collection(
                f.lines
                    .iter()
                    .filter(|(t, _)| *t == id)
                    .map(|(_, l)| l.clone())
                    .collect(),
                &qs,
            )
        }
        (Method::GET, ["sales", "tickets", id, "payments"]) => {
            let rows = f
                .payments
                .iter()
                .filter(|p| id.parse::<i64>().ok() == p["ticket_id"].as_i64())
                .cloned()
                .collect();
            collection(rows, &qs)
        }
        (Method::GET, ["payments"]) => collection(f.payments.clone(), &qs),
        (Method::GET, ["locations"]) => collection(f.locations.clone(), &qs),
        (Method::GET, ["locations", id]) => find(&f.locations, id),
        (Method::POST, ["webhooks"]) => {
            f.next_id += 1;
            let w = json!({"id": f.next_id, "url": body["url"], "events": body["events"]});
            f.webhooks.push(w.clone());
            json_resp(201, w)
        }
        (Method::GET, ["webhooks"]) => collection(f.webhooks.clone(), &qs),
        (Method::DELETE, ["webhooks", id]) => {
            let before = f.webhooks.len();
            let id = id.to_string();
            f.webhooks
                .retain(|w| id.parse::<i64>().ok() != w["id"].as_i64());
            if f.webhooks.len() == before {
                json_resp(404, json!({"error": "not_found"}))
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        _ => json_resp(404, json!({"error": "not_found"})),
    }
}

struct Harness {
    state: Shared,
    base: String,
}

async fn start() -> Harness {
    let state: Shared = Arc::new(Mutex::new(Fake::default()));
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Harness {
        state,
        base: format!("http://{addr}/api"),
    }
}

impl Harness {
    fn config(&self) -> RetailConfig {
        RetailConfig::new(&self.base, Secret::new(TOKEN))
    }
    fn client(&self) -> RetailClient {
        RetailClient::new(self.config()).unwrap()
    }
    fn fake(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.state.lock().unwrap()
    }
}

fn usd(d: &str) -> Money {
    Money::from_decimal_str(d, "USD").unwrap()
}

#[tokio::test]
async fn items_create_get_update_list_with_exact_money() {
    let h = start().await;
    let c = h.client();
    let id = c
        .create_item(&ItemInput {
            public_id: Some("SKU-1".into()),
            description: Some("Mug".into()),
            price: Some(usd("19.99")),
            cost: Some(usd("0.10")),
            active: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(id, 1, "id read from the 201 Location header");
    let raw = h.fake().log.last().unwrap().3.clone();
    assert!(
        raw.contains(r#""price":19.99"#) && raw.contains(r#""cost":0.1"#),
        "decimals as exact JSON numbers: {raw}"
    );
    assert!(raw.contains(r#""active?":true"#), "{raw}");

    let item = c.get_item(id).await.unwrap();
    assert_eq!(item.public_id.as_deref(), Some("SKU-1"));
    assert_eq!(item.price, Some(Decimal::from_str("19.99").unwrap()));
    assert_eq!(c.money(item.price.unwrap()).unwrap(), usd("19.99"));
    assert_eq!(c.money(item.price.unwrap()).unwrap().minor, 1999);
    assert_eq!(item.active, Some(true));

    c.update_item(
        id,
        &ItemInput {
            price: Some(usd("24.50")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(h.fake().log.last().unwrap().0, "PUT");
    assert_eq!(
        c.get_item(id).await.unwrap().price,
        Some(Decimal::from_str("24.5").unwrap())
    );

    c.create_item(&ItemInput {
        public_id: Some("SKU-2".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let only: Vec<Item> = c
        .list_items(&ListQuery::filter(json!({"public_id": {"$eq": "SKU-2"}})))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].public_id.as_deref(), Some("SKU-2"));
    assert!(h.fake().log.last().unwrap().2.contains("_filter="));

    // Money in a currency the account does not use is refused before sending.
    let eur = Money::from_decimal_str("1.00", "EUR").unwrap();
    let e = c
        .update_item(
            id,
            &ItemInput {
                price: Some(eur),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    // More places than the currency has is an error, not a rounding.
    assert!(c.money(Decimal::from_str("1.005").unwrap()).is_err());
}

#[tokio::test]
async fn paging_collects_all_and_walks_page_by_page() {
    let h = start().await;
    h.fake().items = (1..=45)
        .map(|i| json!({"id": i, "public_id": format!("S{i}"), "price": "1.00"}))
        .collect();
    let mut cfg = h.config();
    cfg.per_page = 20;
    let c = RetailClient::new(cfg).unwrap();
    let all = c.list_items(&ListQuery::default()).await.unwrap();
    assert_eq!(all.len(), 45);
    assert_eq!(
        all.iter().map(|i| i.id).collect::<Vec<_>>(),
        (1..=45).collect::<Vec<_>>()
    );
    let log = h.fake().log.clone();
    assert_eq!(log.len(), 3);
    assert!(log[2].2.contains("page=3") && log[2].2.contains("per_page=20"));

    let mut pager = c.pages::<Item>(
        &["items"],
        ListQuery {
            per_page: Some(40),
            ..Default::default()
        },
    );
    let p1 = pager.next_page().await.unwrap().unwrap();
    assert_eq!(
        (p1.results.len(), p1.total, p1.pages),
        (40, Some(45), Some(2))
    );
    let p2 = pager.next_page().await.unwrap().unwrap();
    assert_eq!(p2.results.len(), 5);
    assert!(pager.next_page().await.unwrap().is_none());
}

#[tokio::test]
async fn inventory_values_by_item_and_location() {
    let h = start().await;
    h.fake().inventory = vec![
        json!({"item_id": 1, "location_id": 10, "qty": 5, "qty_on_hand": 5, "qty_available": 4, "qty_committed": 1, "unit_cost": 2.5}),
        json!({"item_id": 1, "location_id": 11, "qty": 0}),
        json!({"item_id": 2, "location_id": 10, "qty": 7.5}),
    ];
    let c = h.client();
    let rows = c
        .inventory_values(&InventoryQuery {
            item_id: Some(1),
            exclude_empty_locations: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].location_id, Some(10));
    assert_eq!(rows[0].qty_available, Some(Decimal::from(4)));
    assert_eq!(rows[0].unit_cost, Some(Decimal::from_str("2.5").unwrap()));
    let all = c
        .inventory_values(&InventoryQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].qty, Some(Decimal::from_str("7.5").unwrap()));
}

#[tokio::test]
async fn customers_with_addresses() {
    let h = start().await;
    let c = h.client();
    let id = c
        .create_customer(&CustomerInput {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            email: Some("ada@example.com".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let aid = c
        .add_customer_address(
            id,
            &Address {
                address_1: Some("1 Main St".into()),
                city: Some("Austin".into()),
                zip: Some("78701".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(aid > id);
    c.update_customer(
        id,
        &CustomerInput {
            phone: Some("555-0100".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got = c.get_customer_with_addresses(id).await.unwrap();
    assert_eq!(got.email.as_deref(), Some("ada@example.com"));
    assert_eq!(got.phone.as_deref(), Some("555-0100"));
    assert_eq!(got.addresses.len(), 1);
    assert_eq!(got.addresses[0].city.as_deref(), Some("Austin"));
    assert_eq!(
        c.list_customers(&ListQuery::default()).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn tickets_with_lines_and_payments_locations_payments() {
    let h = start().await;
    {
        let mut f = h.fake();
        f.tickets = vec![
            json!({"id": 500, "public_id": "T-500", "type": "Ticket", "status": "Complete", "completed?": true, "voided?": false,
                "total": 21.64, "total_tax": 1.65, "total_discounts": 0, "balance": 0, "customer_id": 3, "source_location_id": 10,
                "completed_at": "2025-01-02T15:00:00Z", "local_completed_at": "2025-01-02T09:00:00"}),
            json!({"id": 501, "type": "Return", "parent_transaction_id": 500, "total": -5.00, "local_completed_at": "2025-01-03T09:00:00"}),
        ];
        f.lines = vec![
            (
                500,
                json!({"id": 1, "type": "ItemLine", "item_id": 7, "qty": 2, "value": 19.99, "original_unit_price": 9.995, "adjusted_unit_price": 9.995}),
            ),
            (500, json!({"id": 2, "type": "TaxLine", "value": 1.65})),
        ];
        f.payments = vec![
            json!({"id": 900, "ticket_id": 500, "type": "CreditCardPayment", "status": "complete", "amount": 21.64, "payment_type_id": 4}),
        ];
        f.locations = vec![json!({"id": 10, "public_id": "STORE1", "name": "Downtown"})];
    }
    let c = h.client();
    let d = c.ticket_detail(500).await.unwrap();
    assert_eq!(d.ticket.kind.as_deref(), Some("Ticket"));
    assert_eq!(d.ticket.completed, Some(true));
    assert_eq!(c.money(d.ticket.total.unwrap()).unwrap(), usd("21.64"));
    assert_eq!(d.lines.len(), 2);
    assert_eq!(
        d.lines[0].original_unit_price,
        Some(Decimal::from_str("9.995").unwrap()),
        "unit prices keep their precision"
    );
    assert_eq!(d.payments.len(), 1);
    assert_eq!(
        c.money(d.payments[0].amount.unwrap()).unwrap(),
        usd("21.64")
    );

    let returns: Vec<Ticket> = c
        .list_tickets(&ListQuery::filter(json!({"type": {"$eq": "Return"}})))
        .await
        .unwrap();
    assert_eq!(returns.len(), 1);
    assert!(returns[0].is_return());
    assert_eq!(c.money(returns[0].total.unwrap()).unwrap(), usd("-5"));

    assert_eq!(
        c.list_payments(&ListQuery::default()).await.unwrap()[0].id,
        900
    );
    assert_eq!(
        c.list_locations().await.unwrap()[0].name.as_deref(),
        Some("Downtown")
    );
    assert_eq!(
        c.get_location(10).await.unwrap().public_id.as_deref(),
        Some("STORE1")
    );
}

#[tokio::test]
async fn webhooks_register_list_delete() {
    let h = start().await;
    let c = h.client();
    let w = c
        .register_webhook(
            "https://hs.example/hooks/retail/tok123",
            &["sales_transaction_completed", "item_updated"],
        )
        .await
        .unwrap();
    assert_eq!(
        w.events,
        vec!["sales_transaction_completed", "item_updated"]
    );
    let sent: Value = serde_json::from_str(&h.fake().log.last().unwrap().3).unwrap();
    assert_eq!(
        sent,
        json!({"url": "https://hs.example/hooks/retail/tok123", "events": ["sales_transaction_completed", "item_updated"]})
    );
    assert_eq!(c.list_webhooks().await.unwrap(), vec![w.clone()]);
    c.delete_webhook(w.id).await.unwrap();
    assert!(c.list_webhooks().await.unwrap().is_empty());
    assert_eq!(
        c.delete_webhook(w.id).await.unwrap_err().class(),
        ErrorClass::Dependency
    );
}

#[tokio::test]
async fn rate_limit_is_waited_out_briefly_then_reported_with_retry_after() {
    let h = start().await;
    h.fake().locations = vec![json!({"id": 1, "name": "A"})];
    let c = h.client();
    // Short Retry-After: retried inside the call.
    h.fake().throttle.push_back(Some("0"));
    assert_eq!(c.list_locations().await.unwrap().len(), 1);
    assert_eq!(h.fake().log.len(), 2);

    // Longer than we hold a caller: returned as rate_limited with the delay.
    h.fake().throttle.push_back(Some("7"));
    let f = c.list_locations().await.unwrap_err().failure();
    assert_eq!(f.class, ErrorClass::RateLimited);
    assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(f.system.as_deref(), Some("retail"));

    // Retries are bounded even when every answer is a short 429.
    let mut cfg = h.config();
    cfg.max_rate_limit_retries = 2;
    let c = RetailClient::new(cfg).unwrap();
    let before = h.fake().log.len();
    for _ in 0..5 {
        h.fake().throttle.push_back(Some("0"));
    }
    assert_eq!(
        c.list_locations().await.unwrap_err().class(),
        ErrorClass::RateLimited
    );
    assert_eq!(h.fake().log.len() - before, 3, "one call and two retries");
}

#[tokio::test]
async fn error_classes() {
    let h = start().await;
    let c = h.client();
    let bad = RetailClient::new(RetailConfig::new(&h.base, Secret::new("wrong"))).unwrap();
    assert_eq!(bad.get_item(1).await.unwrap_err().class(), ErrorClass::Auth);
    let nf = c.get_item(404).await.unwrap_err().failure();
    assert_eq!(
        (nf.class, nf.code.as_deref()),
        (ErrorClass::Dependency, Some("not_found"))
    );
    h.fake().inject.push_back((
        400,
        json!({"error": "invalid_request", "message": "Cannot filter on completed?"}),
    ));
    let d = c
        .list_tickets(&ListQuery::default())
        .await
        .unwrap_err()
        .failure();
    assert_eq!(
        (d.class, d.code.as_deref()),
        (ErrorClass::Data, Some("invalid_request"))
    );
    h.fake()
        .inject
        .push_back((422, json!({"errors": {"public_id": ["taken"]}})));
    assert_eq!(
        c.create_item(&ItemInput::default())
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Data
    );
    h.fake().inject.push_back((503, json!({})));
    assert_eq!(
        c.get_item(1).await.unwrap_err().class(),
        ErrorClass::Transient
    );
    h.fake().inject.push_back((200, json!({"results": "nope"})));
    assert_eq!(
        c.list_locations().await.unwrap_err().class(),
        ErrorClass::Bug
    );
}

#[tokio::test]
async fn debug_never_shows_the_token() {
    let h = start().await;
    let cfg = h.config();
    assert!(!format!("{cfg:?}").contains(TOKEN));
    let c = RetailClient::new(cfg).unwrap();
    assert!(!format!("{c:?}").contains(TOKEN));
    assert!(RetailClient::new(RetailConfig::new("not a url", Secret::new(TOKEN))).is_err());
    assert_eq!(
        RetailConfig::for_subdomain("acme", Secret::new(TOKEN)).base_url,
        "https://acme.retail.heartland.us/api"
    );
}
