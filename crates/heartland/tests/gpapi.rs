//! GP-API client against a small in-test fake written from reference/heartland.md §1–3 (not the
//! sandbox crate: client and simulator must not share code or bugs).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use heartsuite_core::{ErrorClass, Failure, ManualClock, Money, Secret};
use heartsuite_heartland::gpapi::{
    DepositQuery, DepositStatus, TransactionQuery, TransactionStatus, TransactionType,
    idempotency_key,
};
use heartsuite_heartland::{
    CardData, GpApiClient, GpApiConfig, PaymentMethod, PaymentRequest, PollOptions,
    poll_funded_deposits, poll_funded_deposits_with,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APP_ID: &str = "APPID";
const APP_KEY: &str = "app-key-s3cr3t";
const PAN: &str = "4263970000005262";
const DECLINE_PAN: &str = "4000120000001154";

#[derive(Default)]
struct Fake {
    valid_tokens: HashSet<String>,
    nonces: HashSet<String>,
    sign_ins: usize,
    token_ttl: i64,
    /// Every token is refused (credentials revoked server-side).
    refuse_all_tokens: bool,
    txns: HashMap<String, Value>,
    order: Vec<String>,
    idem: HashMap<String, String>,
    /// Count of operations that actually moved money (sale/capture/refund).
    money_moves: usize,
    next: u64,
    /// Responses to return instead of handling the next non-token requests.
    inject: VecDeque<(u16, Value, Option<&'static str>)>,
    /// Process the next money-moving request, then answer 502 as if the response was lost.
    lose_next_response: bool,
    delay: Option<Duration>,
    deposits: Vec<Value>,
    /// Fail this many settlement-transaction lists with a 502.
    fail_settlement_txns: usize,
    settlement: Vec<Value>,
    closed_batches: HashSet<String>,
    /// (method, path, query, idempotency header, body)
    log: Vec<(String, String, String, Option<String>, Value)>,
}

type Shared = Arc<Mutex<Fake>>;

fn err(status: u16, code: &str, detailed: &str, desc: &str) -> Response {
    let body = json!({"error_code": code, "detailed_error_code": detailed, "detailed_error_description": desc});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn query_map(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn q<'a>(qs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    qs.iter().find(|(a, _)| a == k).map(|(_, b)| b.as_str())
}

fn paged(items: Vec<Value>, qs: &[(String, String)], key: &str) -> Response {
    let page: usize = q(qs, "page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: usize = q(qs, "page_size").and_then(|p| p.parse().ok()).unwrap_or(5);
    let total = items.len();
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    ok(
        json!({key: slice, "total_record_count": total, "current_page_size": size,
              "paging": {"page": page, "page_size": size}}),
    )
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = s.lock().unwrap().delay;
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut f = s.lock().unwrap();
    let path = uri.path().strip_prefix("/ucp").unwrap_or("").to_string();
    let qs = query_map(&uri);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let idem = headers
        .get("x-gp-idempotency")
        .map(|v| v.to_str().unwrap().to_string());
    f.log.push((
        method.to_string(),
        path.clone(),
        uri.query().unwrap_or("").to_string(),
        idem.clone(),
        body.clone(),
    ));
    if headers.get("x-gp-version").and_then(|v| v.to_str().ok()) != Some("2021-03-22") {
        return err(400, "INVALID_REQUEST_DATA", "40213", "X-GP-Version missing");
    }
    if path == "/accesstoken" && method == Method::POST {
        let nonce = body["nonce"].as_str().unwrap_or("").to_string();
        let expected = hex::encode(Sha512::digest(format!("{nonce}{APP_KEY}").as_bytes()));
        if body["app_id"] != APP_ID
            || body["secret"] != expected.as_str()
            || body["grant_type"] != "client_credentials"
        {
            return err(
                403,
                "ACTION_NOT_AUTHORIZED",
                "40004",
                "Credentials not recognized to create access token.",
            );
        }
        if !f.nonces.insert(nonce) {
            return err(400, "INVALID_REQUEST_DATA", "40213", "nonce reused");
        }
        f.sign_ins += 1;
        let token = format!("tok-{}", f.sign_ins);
        f.valid_tokens.insert(token.clone());
        let ttl = if f.token_ttl == 0 { 3600 } else { f.token_ttl };
        return ok(
            json!({"token": token, "type": "Bearer", "app_id": APP_ID, "seconds_to_expire": ttl,
            "scope": {"merchant_id": "MER_1", "accounts": [
                {"id": "TKA_1", "name": "Tokenization"},
                {"id": "TRA_1", "name": "Transaction_Processing"},
                {"id": "DAA_1", "name": "Settlement Reporting"}]}}),
        );
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if f.refuse_all_tokens || !bearer.is_some_and(|t| f.valid_tokens.contains(t)) {
        return err(401, "NOT_AUTHENTICATED", "40001", "Invalid access token");
    }
    if let Some((status, body, retry_after)) = f.inject.pop_front() {
        let mut r = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        if let Some(ra) = retry_after {
            r.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return r;
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();

    match (method.clone(), segs.as_slice()) {
        (Method::POST, ["transactions"]) => {
            if let Some(k) = &idem
                && let Some(id) = f.idem.get(k)
            {
                return err(
                    409,
                    "DUPLICATE_ACTION",
                    "40039",
                    &format!("Idempotency Key seen before: id={id}, status=OK"),
                );
            }
            if body["currency"].is_null() {
                return err(
                    400,
                    "MANDATORY_DATA_MISSING",
                    "40005",
                    "Request expects the following fields currency",
                );
            }
            if body["account_id"] != "TRA_1" {
                return err(400, "INVALID_REQUEST_DATA", "40213", "account");
            }
            let number = body["payment_method"]["card"]["number"]
                .as_str()
                .unwrap_or("");
            if !body["payment_method"]["card"].is_null() && number.len() < 12 {
                return err(
                    400,
                    "INVALID_REQUEST_DATA",
                    "40085",
                    &format!("bad card {number}"),
                );
            }
            f.next += 1;
            let id = format!("TRN_{}", f.next);
            let declined = number == DECLINE_PAN;
            let later = body["capture_mode"] == "LATER";
            let status = if declined {
                "DECLINED"
            } else if later {
                "PREAUTHORIZED"
            } else {
                "CAPTURED"
            };
            if status == "CAPTURED" {
                f.money_moves += 1;
            }
            let last4 = if number.len() >= 4 {
                &number[number.len() - 4..]
            } else {
                "0000"
            };
            let t = json!({"id": id, "time_created": "2025-01-02T10:00:00.000Z", "type": "SALE", "status": status,
                "channel": body["channel"], "capture_mode": body["capture_mode"], "amount": body["amount"],
                "currency": body["currency"], "country": body["country"], "merchant_id": "MER_1",
                "account_id": "TRA_1", "account_name": "Transaction_Processing", "reference": body["reference"], "batch_id": "",
                "payment_method": {"result": if declined {"101"} else {"00"}, "message": status,
                    "entry_mode": body["payment_method"]["entry_mode"], "id": body["payment_method"]["id"],
                    "card": {"brand": "VISA", "masked_number_last4": format!("XXXXXXXXXXXX{last4}"), "authcode": "12345"}},
                "action": {"id": format!("ACT_{}", f.next), "type": if later {"PREAUTHORIZE"} else {"AUTHORIZE"},
                    "result_code": if declined {"DECLINED"} else {"SUCCESS"}}});
            f.txns.insert(id.clone(), t.clone());
            f.order.push(id.clone());
            if let Some(k) = idem {
                f.idem.insert(k, id);
            }
            ok(t)
        }
        (Method::POST, ["transactions", id, op]) => {
            let (id, op) = (id.to_string(), op.to_string());
            if let Some(k) = &idem
                && let Some(prev) = f.idem.get(k)
            {
                return err(
                    409,
                    "DUPLICATE_ACTION",
                    "40039",
                    &format!("Idempotency Key seen before: id={prev}"),
                );
            }
            let Some(mut t) = f.txns.get(&id).cloned() else {
                return err(
                    404,
                    "RESOURCE_NOT_FOUND",
                    "40008",
                    &format!("Transaction {id} not found"),
                );
            };
            let result = match op.as_str() {
                "capture" => {
                    if t["status"] != "PREAUTHORIZED" {
                        return err(400, "INVALID_REQUEST_DATA", "40090", "not capturable");
                    }
                    t["status"] = json!("CAPTURED");
                    if let Some(a) = body["amount"].as_str() {
                        t["amount"] = json!(a);
                    }
                    f.money_moves += 1;
                    f.txns.insert(id.clone(), t.clone());
                    t
                }
                "refund" => {
                    let orig: i64 = t["amount"].as_str().unwrap().parse().unwrap();
                    let amt: i64 = body["amount"]
                        .as_str()
                        .map(|a| a.parse().unwrap())
                        .unwrap_or(orig);
                    if amt > orig {
                        return err(
                            400,
                            "INVALID_REQUEST_DATA",
                            "40087",
                            "You may only refund up to 100% of the original amount",
                        );
                    }
                    f.next += 1;
                    let rid = format!("TRN_{}", f.next);
                    let mut r = t.clone();
                    r["id"] = json!(rid);
                    r["type"] = json!("REFUND");
                    r["status"] = json!("CAPTURED");
                    r["amount"] = json!(amt.to_string());
                    f.money_moves += 1;
                    f.txns.insert(rid.clone(), r.clone());
                    f.order.push(rid);
                    r
                }
                "reversal" => {
                    t["status"] = json!("REVERSED");
                    f.txns.insert(id.clone(), t.clone());
                    t
                }
                _ => return err(404, "RESOURCE_NOT_FOUND", "40008", "no such action"),
            };
            if let Some(k) = idem {
                f.idem.insert(k, result["id"].as_str().unwrap().to_string());
            }
            if f.lose_next_response {
                f.lose_next_response = false;
                return err(
                    502,
                    "SYSTEM_ERROR_DOWNSTREAM",
                    "50018",
                    "downstream timeout",
                );
            }
            ok(result)
        }
        (Method::GET, ["transactions", id]) => match f.txns.get(*id) {
            Some(t) => ok(t.clone()),
            None => err(
                404,
                "RESOURCE_NOT_FOUND",
                "40118",
                &format!("Transactions {id} not found at this /ucp/transactions/{id}"),
            ),
        },
        (Method::GET, ["transactions"]) => {
            let items: Vec<Value> = f
                .order
                .iter()
                .map(|id| f.txns[id].clone())
                .filter(|t| q(&qs, "status").is_none_or(|s| t["status"] == s))
                .filter(|t| q(&qs, "type").is_none_or(|s| t["type"] == s))
                .collect();
            paged(items, &qs, "transactions")
        }
        (Method::GET, ["settlement", "transactions"]) => {
            if f.fail_settlement_txns > 0 {
                f.fail_settlement_txns -= 1;
                return err(502, "SYSTEM_ERROR_DOWNSTREAM", "50018", "downstream");
            }
            if q(&qs, "account_id") != Some("DAA_1") {
                return err(403, "ACTION_NOT_AUTHORIZED", "40003", "wrong account");
            }
            let items: Vec<Value> = f
                .settlement
                .iter()
                .filter(|t| q(&qs, "deposit_id").is_none_or(|d| t["deposit_id"] == d))
                .cloned()
                .collect();
            paged(items, &qs, "transactions")
        }
        (Method::GET, ["settlement", "deposits"]) => {
            if q(&qs, "account_id") != Some("DAA_1") {
                return err(403, "ACTION_NOT_AUTHORIZED", "40003", "wrong account");
            }
            let mut items: Vec<Value> = f
                .deposits
                .iter()
                .filter(|d| q(&qs, "status").is_none_or(|s| d["status"] == s))
                .filter(|d| {
                    q(&qs, "from_time_created")
                        .is_none_or(|from| d["time_created"].as_str().unwrap() >= from)
                })
                .cloned()
                .collect();
            items.sort_by_key(|d| {
                (
                    d["time_created"].as_str().unwrap().to_string(),
                    d["id"].as_str().unwrap().to_string(),
                )
            });
            paged(items, &qs, "deposits")
        }
        (Method::GET, ["settlement", "deposits", id]) => {
            match f.deposits.iter().find(|d| d["id"] == *id) {
                Some(d) => ok(d.clone()),
                None => err(
                    404,
                    "RESOURCE_NOT_FOUND",
                    "40118",
                    &format!("Deposits {id} not found"),
                ),
            }
        }
        (Method::POST, ["batches", id]) => {
            if !f.closed_batches.insert(id.to_string()) {
                return err(502, "ACTION_FAILED", "500010", "Batch already closed");
            }
            ok(
                json!({"id": id, "action": {"type": "CLOSE"}, "status": "CLOSED", "amount": "3000", "currency": "USD",
                "transaction_count": 2, "sales": {"count": 2, "amount": "3500"}, "refunds": {"count": 1, "amount": "-500"}}),
            )
        }
        _ => err(404, "RESOURCE_NOT_FOUND", "40008", "no route"),
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
        base: format!("http://{addr}/ucp"),
    }
}

impl Harness {
    fn config(&self) -> GpApiConfig {
        GpApiConfig::new(APP_ID, Secret::new(APP_KEY)).with_base_url(&self.base)
    }
    fn client(&self) -> GpApiClient {
        GpApiClient::new(self.config()).unwrap()
    }
    fn fake(&self) -> std::sync::MutexGuard<'_, Fake> {
        self.state.lock().unwrap()
    }
}

fn usd(minor: i64) -> Money {
    Money::from_minor_str(&minor.to_string(), "USD").unwrap()
}

fn card() -> PaymentMethod {
    PaymentMethod::Card(CardData::new(PAN, 12, 2030).with_cvv("123"))
}

#[tokio::test]
async fn sale_with_card_and_with_token() {
    let h = start().await;
    let c = h.client();
    let t = c
        .sale(&PaymentRequest::new(usd(1999), card(), "evt-1"))
        .await
        .unwrap();
    assert_eq!(t.status, TransactionStatus::Captured);
    assert_eq!(t.amount, Some(usd(1999)));
    assert_eq!(t.kind, Some(TransactionType::Sale));
    assert_eq!(t.result_code(), Some("00"));
    assert_eq!(t.batch_id, None, "empty batch_id reads as None");
    let (sent_card, sent_key) = {
        let f = h.fake();
        let (_, _, _, idem, body) = f
            .log
            .iter()
            .rev()
            .find(|l| l.1 == "/transactions")
            .unwrap()
            .clone();
        (body, idem)
    };
    assert_eq!(sent_card["amount"], "1999");
    assert_eq!(sent_card["currency"], "USD");
    assert_eq!(sent_card["capture_mode"], "AUTO");
    assert_eq!(sent_card["account_name"], "Transaction_Processing");
    assert_eq!(sent_card["payment_method"]["card"]["expiry_year"], "30");
    assert_eq!(sent_card["payment_method"]["entry_mode"], "ECOM");
    assert_eq!(
        sent_key.as_deref(),
        Some(idempotency_key("sale", "", "evt-1").as_str())
    );

    let t = c
        .sale(&PaymentRequest::new(
            usd(500),
            PaymentMethod::Token("PMT_abc".into()),
            "evt-2",
        ))
        .await
        .unwrap();
    assert_eq!(t.status, TransactionStatus::Captured);
    let f = h.fake();
    let body = &f.log.last().unwrap().4;
    assert_eq!(body["payment_method"]["id"], "PMT_abc");
    assert!(
        body["payment_method"].get("card").is_none(),
        "no card data is sent with a token"
    );
}

#[tokio::test]
async fn decline_is_a_business_outcome_not_an_error() {
    let h = start().await;
    let pm = PaymentMethod::Card(CardData::new(DECLINE_PAN, 1, 30));
    let t = h
        .client()
        .sale(&PaymentRequest::new(usd(1000), pm, "evt-d"))
        .await
        .unwrap();
    assert_eq!(t.status, TransactionStatus::Declined);
    assert!(t.is_declined());
    assert_eq!(t.result_code(), Some("101"));
    assert_eq!(h.fake().money_moves, 0);
}

#[tokio::test]
async fn authorize_capture_refund_reverse_get() {
    let h = start().await;
    let c = h.client();
    let auth = c
        .authorize(&PaymentRequest::new(usd(1000), card(), "evt-a"))
        .await
        .unwrap();
    assert_eq!(auth.status, TransactionStatus::Preauthorized);
    assert_eq!(h.fake().log.last().unwrap().4["capture_mode"], "LATER");

    let cap = c.capture(&auth.id, None, "evt-a-cap").await.unwrap();
    assert_eq!(cap.status, TransactionStatus::Captured);
    assert_eq!(
        h.fake().log.last().unwrap().4,
        json!({}),
        "capture without amount sends none"
    );

    let partial = c.refund(&auth.id, Some(usd(250)), "evt-r1").await.unwrap();
    assert_eq!(partial.kind, Some(TransactionType::Refund));
    assert_eq!(partial.amount, Some(usd(250)));
    assert_ne!(partial.id, auth.id);
    let full = c.refund(&auth.id, None, "evt-r2").await.unwrap();
    assert_eq!(full.amount, Some(usd(1000)));

    let auth2 = c
        .authorize(&PaymentRequest::new(usd(700), card(), "evt-b"))
        .await
        .unwrap();
    let partial_cap = c
        .capture(&auth2.id, Some(usd(600)), "evt-b-cap")
        .await
        .unwrap();
    assert_eq!(partial_cap.amount, Some(usd(600)));

    let auth3 = c
        .authorize(&PaymentRequest::new(usd(300), card(), "evt-c"))
        .await
        .unwrap();
    let rev = c.reverse(&auth3.id, "evt-c-rev").await.unwrap();
    assert_eq!(rev.status, TransactionStatus::Reversed);

    let got = c.get_transaction(&auth.id).await.unwrap();
    assert_eq!(got.id, auth.id);
    assert_eq!(got.status, TransactionStatus::Captured);

    let over = c
        .refund(&auth2.id, Some(usd(100_000)), "evt-over")
        .await
        .unwrap_err();
    assert_eq!(over.class(), ErrorClass::Data);
    assert_eq!(over.failure().code.as_deref(), Some("INVALID_REQUEST_DATA"));
}

#[tokio::test]
async fn retried_capture_and_refund_return_the_original_and_move_money_once() {
    let h = start().await;
    let c = h.client();
    let auth = c
        .authorize(&PaymentRequest::new(usd(1000), card(), "evt-1"))
        .await
        .unwrap();

    // First capture is processed but its response is lost (502): the engine sees a transient
    // failure and retries with the same key.
    h.fake().lose_next_response = true;
    let first = c.capture(&auth.id, None, "cap-key").await.unwrap_err();
    assert_eq!(first.class(), ErrorClass::Transient);
    let moves_after_first = h.fake().money_moves;
    let retried = c.capture(&auth.id, None, "cap-key").await.unwrap();
    assert_eq!(retried.id, auth.id);
    assert_eq!(retried.status, TransactionStatus::Captured);
    let again = c.capture(&auth.id, None, "cap-key").await.unwrap();
    assert_eq!(again, retried);
    assert_eq!(
        h.fake().money_moves,
        moves_after_first,
        "the retries moved no money"
    );

    let r1 = c.refund(&auth.id, Some(usd(400)), "ref-key").await.unwrap();
    let r2 = c.refund(&auth.id, Some(usd(400)), "ref-key").await.unwrap();
    assert_eq!(r1.id, r2.id, "the retried refund is the original refund");
    assert_eq!(r2.amount, Some(usd(400)));
    let f = h.fake();
    assert_eq!(
        f.money_moves, 2,
        "one capture and one refund, each exactly once"
    );
    let refunds = f.txns.values().filter(|t| t["type"] == "REFUND").count();
    assert_eq!(refunds, 1);
    // Both tries carried the same derived key.
    let keys: Vec<_> = f
        .log
        .iter()
        .filter(|l| l.1.ends_with("/refund"))
        .map(|l| l.3.clone())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
}

#[tokio::test]
async fn duplicate_without_an_earlier_id_is_a_duplicate_failure() {
    let h = start().await;
    let c = h.client();
    let auth = c
        .authorize(&PaymentRequest::new(usd(1000), card(), "e"))
        .await
        .unwrap();
    h.fake().inject.push_back((
        409,
        json!({"error_code": "DUPLICATE_ACTION", "detailed_error_code": "40039",
        "detailed_error_description": "Idempotency Key seen before"}),
        None,
    ));
    let e = c.capture(&auth.id, None, "k").await.unwrap_err();
    let f: Failure = e.into();
    assert_eq!(f.class, ErrorClass::Duplicate);
    assert_eq!(f.code.as_deref(), Some("DUPLICATE_ACTION"));
}

#[tokio::test]
async fn error_classes_over_http() {
    let h = start().await;
    let c = h.client();
    let cases: Vec<(u16, Value, ErrorClass)> = vec![
        (
            403,
            json!({"error_code": "ACTION_NOT_AUTHORIZED", "detailed_error_code": "40212"}),
            ErrorClass::Auth,
        ),
        (
            400,
            json!({"error_code": "MANDATORY_DATA_MISSING", "detailed_error_code": "40005",
            "detailed_error_description": "Request expects the following fields currency"}),
            ErrorClass::Data,
        ),
        (
            400,
            json!({"error_code": "INVALID_REQUEST_DATA", "detailed_error_code": "40213"}),
            ErrorClass::Data,
        ),
        (
            404,
            json!({"error_code": "RESOURCE_NOT_FOUND", "detailed_error_code": "40118"}),
            ErrorClass::Dependency,
        ),
        (
            409,
            json!({"error_code": "DUPLICATE_ACTION", "detailed_error_code": "40039"}),
            ErrorClass::Duplicate,
        ),
        (
            502,
            json!({"error_code": "SYSTEM_ERROR_DOWNSTREAM", "detailed_error_code": "50018"}),
            ErrorClass::Transient,
        ),
        (
            503,
            json!("<html>maintenance</html>"),
            ErrorClass::Transient,
        ),
    ];
    for (status, body, class) in cases {
        h.fake().inject.push_back((status, body.clone(), None));
        let e = c.get_transaction("TRN_x").await.unwrap_err();
        let f = e.failure();
        assert_eq!(f.class, class, "{status} {body}");
        assert_eq!(f.system.as_deref(), Some("gpapi"));
        if let Some(code) = body.get("error_code") {
            assert_eq!(f.code.as_deref(), code.as_str());
        }
    }
    // The field GP-API names is carried for the dead-letter queue.
    h.fake().inject.push_back((
        400,
        json!({"error_code": "MANDATORY_DATA_MISSING", "detailed_error_code": "40005",
        "detailed_error_description": "Request expects the following fields currency"}),
        None,
    ));
    assert_eq!(
        c.get_transaction("TRN_x")
            .await
            .unwrap_err()
            .failure()
            .field_path
            .as_deref(),
        Some("currency")
    );

    // A real unknown id from the fake.
    let nf = c.get_transaction("TRN_missing").await.unwrap_err();
    assert_eq!(nf.class(), ErrorClass::Dependency);

    // 429 with Retry-After.
    h.fake().inject.push_back((429, json!({}), Some("7")));
    let rl = c.get_transaction("TRN_x").await.unwrap_err().failure();
    assert_eq!(rl.class, ErrorClass::RateLimited);
    assert_eq!(rl.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(rl.system.as_deref(), Some("gpapi"));

    // Bad credentials at sign-in.
    let bad =
        GpApiClient::new(GpApiConfig::new(APP_ID, Secret::new("wrong")).with_base_url(&h.base))
            .unwrap();
    let e = bad.get_transaction("TRN_x").await.unwrap_err().failure();
    assert_eq!(e.class, ErrorClass::Auth);
    assert_eq!(e.code.as_deref(), Some("ACTION_NOT_AUTHORIZED"));
}

#[tokio::test]
async fn timeouts_and_connect_errors_are_transient() {
    let h = start().await;
    let mut cfg = h.config();
    cfg.timeout = Duration::from_millis(200);
    let c = GpApiClient::new(cfg).unwrap();
    h.fake().delay = Some(Duration::from_secs(2));
    let e = c.get_transaction("TRN_1").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(e.to_string().contains("timeout"), "{e}");

    // Nothing listens on port 9 of loopback.
    let dead = GpApiClient::new(
        GpApiConfig::new(APP_ID, Secret::new(APP_KEY)).with_base_url("http://127.0.0.1:9/ucp"),
    )
    .unwrap();
    assert_eq!(
        dead.get_transaction("TRN_1").await.unwrap_err().class(),
        ErrorClass::Transient
    );
}

#[tokio::test]
async fn token_is_cached_and_refreshed_before_expiry() {
    let h = start().await;
    h.fake().token_ttl = 120;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let c = GpApiClient::with_clock(h.config(), clock.clone()).unwrap();
    let auth = c
        .authorize(&PaymentRequest::new(usd(100), card(), "e"))
        .await
        .unwrap();
    c.get_transaction(&auth.id).await.unwrap();
    assert_eq!(h.fake().sign_ins, 1, "cached");
    // 120 s token, 30 s buffer: still used at +89 s, replaced at +91 s.
    clock.advance(89_000_000);
    c.get_transaction(&auth.id).await.unwrap();
    assert_eq!(h.fake().sign_ins, 1);
    clock.advance(2_000_000);
    c.get_transaction(&auth.id).await.unwrap();
    assert_eq!(h.fake().sign_ins, 2, "refreshed before expiry");
    // Each sign-in used a fresh nonce (the fake refuses reuse) and the right secret.
    let f = h.fake();
    let bodies: Vec<&Value> = f
        .log
        .iter()
        .filter(|l| l.1 == "/accesstoken")
        .map(|l| &l.4)
        .collect();
    assert_ne!(bodies[0]["nonce"], bodies[1]["nonce"]);
}

#[tokio::test]
async fn concurrent_calls_share_one_sign_in() {
    let h = start().await;
    let c = h.client();
    let auth = c
        .authorize(&PaymentRequest::new(usd(100), card(), "e"))
        .await
        .unwrap();
    let fresh = h.client();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (c, id) = (fresh.clone(), auth.id.clone());
        tasks.push(tokio::spawn(async move {
            c.get_transaction(&id).await.map(|t| t.id)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), auth.id);
    }
    assert_eq!(
        h.fake().sign_ins,
        2,
        "one for each client, not one per call"
    );
}

#[tokio::test]
async fn not_authenticated_signs_in_again_once_and_retries() {
    let h = start().await;
    let c = h.client();
    let auth = c
        .authorize(&PaymentRequest::new(usd(100), card(), "e"))
        .await
        .unwrap();
    // Server forgets every token (expired early, rotated...).
    h.fake().valid_tokens.clear();
    let t = c.get_transaction(&auth.id).await.unwrap();
    assert_eq!(t.id, auth.id);
    assert_eq!(h.fake().sign_ins, 2);

    // When the fresh token is refused as well, give up after one retry with an auth failure.
    h.fake().refuse_all_tokens = true;
    let before = h.fake().log.len();
    let e = c.get_transaction(&auth.id).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    assert_eq!(e.code(), Some("NOT_AUTHENTICATED"));
    let f = h.fake();
    assert_eq!(f.sign_ins, 3, "exactly one re-sign-in");
    assert_eq!(f.log.len() - before, 3, "call, sign-in, one retry");
}

#[tokio::test]
async fn list_transactions_pages_and_filters() {
    let h = start().await;
    let c = h.client();
    for i in 0..23 {
        c.sale(&PaymentRequest::new(
            usd(100 + i),
            card(),
            format!("evt-{i}"),
        ))
        .await
        .unwrap();
    }
    c.authorize(&PaymentRequest::new(usd(5), card(), "evt-auth"))
        .await
        .unwrap();
    let page = c
        .list_transactions(&TransactionQuery {
            page: Some(2),
            page_size: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.total, Some(24));
    assert!(page.has_more());
    let before = h.fake().log.len();
    let all = c
        .list_all_transactions(&TransactionQuery {
            page_size: Some(10),
            status: Some(TransactionStatus::Captured),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 23);
    assert_eq!(h.fake().log.len() - before, 3, "three pages");
    let last_query = h.fake().log.last().unwrap().2.clone();
    assert!(
        last_query.contains("status=CAPTURED") && last_query.contains("page=3"),
        "{last_query}"
    );
    let ids: HashSet<_> = all.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids.len(), 23, "no duplicates across pages");
}

fn deposit(id: &str, date: &str, amount: &str) -> Value {
    json!({"id": id, "time_created": date, "status": "FUNDED", "funding_type": "CREDIT", "amount": amount, "currency": "USD",
        "aggregation_model": "H-By Date", "bank_transfer": {"masked_account_number_last4": "XXXXXX9999", "bank": {"code": "1"}},
        "system": {"mid": "101023947262", "hierarchy": "055-70-024-011-019", "name": "XYZ LTD.", "dba": "XYZ"},
        "sales": {"count": 2, "amount": "12000"}, "refunds": {"count": 1, "amount": "-1000"},
        "discounts": {"count": 0, "amount": "0"}, "tax": {"count": 0, "amount": "0"},
        "disputes": {"chargebacks": {"count": 1, "amount": "-500"}, "reversals": {"count": 0, "amount": "0"}},
        "fees": {"amount": "-100"}, "action": {"type": "DEPOSIT_SINGLE"}})
}

fn settled(id: &str, dep: &str, amount: &str) -> Value {
    json!({"id": id, "time_created": "2025-01-01T10:00:00.000Z", "type": "SALE", "status": "FUNDED", "amount": amount,
        "currency": "USD", "deposit_id": dep, "deposit_status": "FUNDED", "batch_id": "BAT_1",
        "payment_method": {"result": "00", "card": {"brand": "VISA", "masked_number_first6last4": "426397XXXXXX5262", "arn": "74500"}}})
}

#[tokio::test]
async fn settlement_deposits_transactions_and_batch_close() {
    let h = start().await;
    {
        let mut f = h.fake();
        f.deposits = vec![
            deposit("DEP_1", "2025-01-02", "10400"),
            json!({"id": "DEP_2", "time_created": "2025-01-03",
            "status": "DELAYED", "amount": "50", "currency": "USD"}),
        ];
        f.settlement = (0..7)
            .map(|i| {
                settled(
                    &format!("TRN_S{i}"),
                    if i < 5 { "DEP_1" } else { "DEP_2" },
                    "2400",
                )
            })
            .collect();
    }
    let c = h.client();
    let d = c.get_deposit("DEP_1").await.unwrap();
    assert_eq!(d.amount, usd(10400));
    assert_eq!(d.status, DepositStatus::Funded);
    assert_eq!(d.sales.unwrap().amount, usd(12000));
    assert_eq!(d.sales.unwrap().count, 2);
    assert_eq!(d.refunds.unwrap().amount, usd(-1000));
    assert_eq!(d.chargebacks.unwrap().amount, usd(-500));
    assert_eq!(d.fees, Some(usd(-100)));
    assert_eq!(d.masked_account_number_last4.as_deref(), Some("XXXXXX9999"));
    assert_eq!(h.fake().log.last().unwrap().2, "account_id=DAA_1");

    let funded = c
        .list_deposits(&DepositQuery {
            status: Some(DepositStatus::Funded),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        funded
            .items
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        vec!["DEP_1"]
    );
    let all = c
        .list_all_deposits(&DepositQuery {
            page_size: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);

    let in_dep = c
        .list_all_settlement_transactions(&TransactionQuery {
            deposit_id: Some("DEP_1".into()),
            page_size: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(in_dep.len(), 5);
    assert!(
        in_dep
            .iter()
            .all(|t| t.deposit_id.as_deref() == Some("DEP_1") && t.amount == Some(usd(2400)))
    );
    assert_eq!(
        in_dep[0]
            .payment_method
            .as_ref()
            .unwrap()
            .card
            .as_ref()
            .unwrap()
            .masked_number_first6last4
            .as_deref(),
        Some("426397XXXXXX5262")
    );

    let missing = c.get_deposit("DEP_nope").await.unwrap_err();
    assert_eq!(missing.class(), ErrorClass::Dependency);

    let b = c.close_batch("BAT_1").await.unwrap();
    assert_eq!(b.status, "CLOSED");
    assert_eq!(b.amount, Some(usd(3000)));
    assert_eq!(b.transaction_count, Some(2));
    assert_eq!(b.refunds.unwrap().amount, usd(-500));
    let again = c.close_batch("BAT_1").await.unwrap_err();
    assert_eq!(
        again.class(),
        ErrorClass::Duplicate,
        "an already-closed batch is done, not a failure to retry"
    );
}

#[tokio::test]
async fn deposit_poller_never_skips_or_repeats() {
    let h = start().await;
    {
        let mut f = h.fake();
        f.deposits = vec![
            deposit("DEP_A", "2025-01-02", "100"),
            deposit("DEP_B", "2025-01-02", "200"),
        ];
        f.settlement = (0..12)
            .map(|i| {
                settled(
                    &format!("TRN_{i}"),
                    if i < 11 { "DEP_A" } else { "DEP_B" },
                    "10",
                )
            })
            .collect();
    }
    let c = h.client();
    let opts = PollOptions {
        page_size: 5,
        ..PollOptions::default()
    };
    let (first, cursor) = poll_funded_deposits_with(&c, None, &opts).await.unwrap();
    assert_eq!(
        first
            .iter()
            .map(|d| d.deposit.id.as_str())
            .collect::<Vec<_>>(),
        vec!["DEP_A", "DEP_B"]
    );
    assert_eq!(
        first[0].transactions.len(),
        11,
        "all pages of the deposit's transactions"
    );
    assert_eq!(first[1].transactions.len(), 1);

    // Nothing new: nothing returned, cursor still usable.
    let (none, cursor) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert!(none.is_empty());

    // A new deposit on the same date as the watermark (time tie) and one on a later date, plus a
    // late one dated before the watermark but inside the look-back window.
    {
        let mut f = h.fake();
        f.deposits.push(deposit("DEP_C", "2025-01-02", "300"));
        f.deposits.push(deposit("DEP_D", "2025-01-04", "400"));
        f.deposits.push(deposit("DEP_0", "2025-01-01", "50"));
    }
    let (second, cursor) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert_eq!(
        second
            .iter()
            .map(|d| d.deposit.id.as_str())
            .collect::<Vec<_>>(),
        vec!["DEP_0", "DEP_C", "DEP_D"]
    );
    let last_query = h
        .fake()
        .log
        .iter()
        .rev()
        .find(|l| l.1 == "/settlement/deposits")
        .unwrap()
        .2
        .clone();
    assert!(
        last_query.contains("status=FUNDED") && last_query.contains("from_time_created=2024-12-30"),
        "{last_query}"
    );

    let (third, cursor) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert!(third.is_empty(), "nothing is returned twice");

    // A failure part-way (fetching a deposit's transactions) fails the whole poll; the caller
    // keeps its old cursor, and the next poll returns the deposit: nothing is skipped.
    h.fake()
        .deposits
        .push(deposit("DEP_E", "2025-01-05", "500"));
    h.fake().fail_settlement_txns = 1;
    let e = poll_funded_deposits(&c, Some(cursor.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    let (later, _) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert_eq!(
        later
            .iter()
            .map(|d| d.deposit.id.as_str())
            .collect::<Vec<_>>(),
        vec!["DEP_E"]
    );

    assert_eq!(
        poll_funded_deposits(&c, Some("garbage".into()))
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Bug
    );
}

#[tokio::test]
async fn refused_inputs_never_reach_the_wire() {
    let h = start().await;
    let c = h.client();
    let e = c
        .sale(&PaymentRequest::new(usd(0), card(), "k"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    let e = c.capture("TRN_1", None, " ").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    assert!(h.fake().log.is_empty());
}

#[tokio::test]
async fn debug_and_errors_never_show_card_data_or_keys() {
    let h = start().await;
    let req = PaymentRequest::new(usd(100), card(), "k");
    let dbg = format!("{req:?}");
    assert!(!dbg.contains(PAN), "{dbg}");
    assert!(!dbg.contains("123"), "cvv hidden: {dbg}");
    assert!(dbg.contains("5262"), "last four are fine: {dbg}");
    let cfg = h.config();
    assert!(!format!("{cfg:?}").contains(APP_KEY));
    let c = GpApiClient::new(cfg).unwrap();
    assert!(!format!("{c:?}").contains(APP_KEY));

    // A remote that echoes the card number in its error description does not leak it.
    h.fake().inject.push_back((
        400,
        json!({"error_code": "INVALID_REQUEST_DATA", "detailed_error_code": "40085",
        "detailed_error_description": format!("card {PAN} is invalid")}),
        None,
    ));
    let e = c.sale(&req).await.unwrap_err();
    assert!(!e.to_string().contains(PAN));
    assert!(!format!("{e:?}").contains(PAN));
    assert!(!e.failure().message.contains(PAN));
}
