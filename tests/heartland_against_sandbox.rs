//! The real Heartland connector (`heartsuite-heartland`) against the real Heartland simulator
//! (`heartsuite-sandbox-heartland`), both started on random local ports. Neither crate knows the
//! other; each was written from `reference/heartland.md`, so every check here is a check that the
//! two readings of the reference agree.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use heartsuite_core::{ErrorClass, ManualClock, Money, Secret};
use heartsuite_heartland::events::{
    RETAIL_CUSTOMER_CHANGED, RETAIL_ITEM_CHANGED, RETAIL_TICKET_COMPLETED,
};
use heartsuite_heartland::gpapi::{
    DepositQuery, DepositStatus, Transaction, TransactionQuery, TransactionStatus, TransactionType,
};
use heartsuite_heartland::retail::{
    Address, CustomerInput, InventoryQuery, Item, ItemInput, ListQuery,
};
use heartsuite_heartland::{
    CardData, Error, GpApiClient, GpApiConfig, PaymentMethod, PaymentRequest, RetailClient,
    RetailConfig, classify_retail_webhook, poll_funded_deposits, verify_gp_signature,
};
use heartsuite_sandbox::heartland::{
    self as sim, Config, DayOptions, FaultSpec, SandboxHandle, Service,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APP_ID: &str = "sandbox-app-id";
const APP_KEY: &str = "sandbox-app-key";
const RETAIL_TOKEN: &str = "sandbox-retail-token";

const VISA: &str = "4263970000005262";
const MASTERCARD: &str = "5425230000004415";
const AMEX: &str = "374101000000608";
const DISCOVER: &str = "6011000000000087";

// ---------------------------------------------------------------- harness

async fn start_with(cfg: Config) -> SandboxHandle {
    let gp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::spawn(gp, rt, cfg).await.unwrap()
}

async fn start() -> SandboxHandle {
    start_with(Config::default()).await
}

fn gp_config(h: &SandboxHandle) -> GpApiConfig {
    GpApiConfig::new(APP_ID, Secret::new(APP_KEY)).with_base_url(h.gpapi_url())
}

fn gp(h: &SandboxHandle) -> GpApiClient {
    GpApiClient::new(gp_config(h)).unwrap()
}

fn retail(h: &SandboxHandle) -> RetailClient {
    RetailClient::new(RetailConfig::new(h.retail_url(), Secret::new(RETAIL_TOKEN))).unwrap()
}

fn usd(minor: i64) -> Money {
    Money::from_minor_str(&minor.to_string(), "USD").unwrap()
}

fn card(number: &str) -> PaymentMethod {
    PaymentMethod::Card(CardData::new(number, 12, 2030).with_cvv("123"))
}

fn pay(minor: i64, number: &str, key: &str) -> PaymentRequest {
    PaymentRequest::new(usd(minor), card(number), key)
}

/// (HTTP status, error_code, detailed code) of an API error; panics on anything else.
fn api(e: &Error) -> (u16, String, Option<String>) {
    match e {
        Error::Api {
            status,
            code,
            detailed_code,
            ..
        } => (*status, code.clone(), detailed_code.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn minor(m: Option<Money>) -> i64 {
    m.expect("an amount").minor
}

/// The simulator's control API (`/_sandbox/stats`) on the GP-API port; it has object counts the
/// `Stats` struct does not.
async fn control_stats(h: &SandboxHandle) -> Value {
    reqwest::get(format!("http://{}/_sandbox/stats", h.gpapi_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (bounded) until `cond` holds; the bound is a hang guard, not an assertion on timing.
async fn eventually<F: FnMut() -> bool>(mut cond: F) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A tiny HTTP receiver recording every POST (headers and raw body); answers 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State(r): State<Receiver>, h: HeaderMap, b: Bytes| async move {
                        r.got.lock().unwrap().push((h, b));
                        "ok"
                    },
                ),
            )
            .with_state(r.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (r, url)
    }

    fn all(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------- token

#[tokio::test]
async fn token_scope_and_refused_credentials() {
    let h = start().await;
    let accounts = gp(&h).accounts().await.unwrap();
    let names: BTreeMap<&str, Option<&str>> = accounts
        .iter()
        .map(|a| (&a.id[..4], a.name.as_deref()))
        .collect();
    assert_eq!(names.get("TRA_"), Some(&Some("Transaction_Processing")));
    assert_eq!(names.get("DAA_"), Some(&Some("Settlement Reporting")));

    // A wrong app key: the secret (SHA-512 of nonce + key) does not match.
    let bad = GpApiClient::new(
        GpApiConfig::new(APP_ID, Secret::new("not-the-key")).with_base_url(h.gpapi_url()),
    )
    .unwrap();
    let e = bad.accounts().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    assert_eq!(
        api(&e),
        (403, "ACTION_NOT_AUTHORIZED".into(), Some("40004".into()))
    );
    // A money-moving call with refused credentials fails the same way and moves nothing.
    let e = bad.sale(&pay(100, VISA, "k")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    // A wrong app id too.
    let bad_id = GpApiClient::new(
        GpApiConfig::new("someone-else", Secret::new(APP_KEY)).with_base_url(h.gpapi_url()),
    )
    .unwrap();
    assert_eq!(
        bad_id.accounts().await.unwrap_err().class(),
        ErrorClass::Auth
    );
    assert_eq!(control_stats(&h).await["counts"]["transactions"], 0);

    // A lifetime the API refuses (reference: 10 s → 40213) is a data error.
    let mut cfg = gp_config(&h);
    cfg.seconds_to_expire = Some(10);
    let e = GpApiClient::new(cfg).unwrap().accounts().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    assert_eq!(api(&e).2.as_deref(), Some("40213"));
    h.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_is_replaced_and_the_call_retried_once() {
    let h = start().await;
    let c = gp(&h);
    let first = c.sale(&pay(1000, VISA, "t-1")).await.unwrap();
    assert_eq!(control_stats(&h).await["counts"]["tokens"], 1);

    h.sandbox().expire_tokens();
    let before_401 = h
        .sandbox()
        .stats()
        .responses_by_status
        .get(&401)
        .copied()
        .unwrap_or(0);
    let got = c.get_transaction(&first.id).await.unwrap();
    assert_eq!(got.id, first.id);
    let s = h.sandbox().stats();
    assert_eq!(
        s.responses_by_status.get(&401).copied().unwrap_or(0),
        before_401 + 1
    );
    assert_eq!(
        control_stats(&h).await["counts"]["tokens"],
        2,
        "one new sign-in"
    );

    // A money-moving call behind an expired token moves money exactly once.
    h.sandbox().expire_tokens();
    let sale = c.sale(&pay(2500, VISA, "t-2")).await.unwrap();
    assert_eq!(sale.status, TransactionStatus::Captured);
    let listed = c
        .list_transactions(&TransactionQuery {
            amount: Some(usd(2500)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.total, Some(1));
    h.shutdown().await;
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires_by_the_client_clock() {
    let h = start().await;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let mut cfg = gp_config(&h);
    cfg.seconds_to_expire = Some(60);
    let c = GpApiClient::with_clock(cfg, clock.clone()).unwrap();
    c.accounts().await.unwrap();
    c.list_transactions(&TransactionQuery::default())
        .await
        .unwrap();
    assert_eq!(
        control_stats(&h).await["counts"]["tokens"],
        1,
        "token reused"
    );
    // 45 s later the 60 s token is inside its refresh buffer: sign in before calling.
    clock.advance(45_000_000);
    c.list_transactions(&TransactionQuery::default())
        .await
        .unwrap();
    assert_eq!(control_stats(&h).await["counts"]["tokens"], 2);
    assert_eq!(
        h.sandbox().stats().responses_by_status.get(&401),
        None,
        "refreshed proactively, never refused"
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------- transactions

#[tokio::test]
async fn sale_and_declines_and_gateway_errors() {
    let h = start().await;
    let c = gp(&h);
    let mut req = pay(1999, VISA, "sale-1");
    req.description = Some("order 42".into());
    req.order_reference = Some("SO-42".into());
    let t = c.sale(&req).await.unwrap();
    assert!(t.id.starts_with("TRN_"));
    assert_eq!(t.status, TransactionStatus::Captured);
    assert_eq!(t.kind, Some(TransactionType::Sale));
    assert_eq!(t.amount, Some(usd(1999)));
    assert_eq!(t.capture_mode.as_deref(), Some("AUTO"));
    assert!(!t.is_declined());
    assert_eq!(t.result_code(), Some("00"));
    assert!(t.batch_id.as_deref().is_some_and(|b| b.starts_with("BAT_")));
    let cr = t
        .payment_method
        .as_ref()
        .and_then(|p| p.card.clone())
        .unwrap();
    assert_eq!(cr.brand.as_deref(), Some("VISA"));
    assert!(
        cr.masked_number_last4
            .as_deref()
            .is_some_and(|m| m.ends_with("5262"))
    );
    assert!(cr.authcode.is_some());
    assert_eq!(
        t.action.as_ref().and_then(|a| a.result_code.as_deref()),
        Some("SUCCESS")
    );

    // Declines are HTTP 200 with status DECLINED: an Ok result, not an error.
    for (n, pan, code) in [
        (1, "4000120000001154", "101"),
        (2, "5114610000004778", "101"),
        (3, "4000130000001724", "102"),
        (4, "4000160000004147", "103"),
    ] {
        let d = c.sale(&pay(500, pan, &format!("decl-{n}"))).await.unwrap();
        assert_eq!(d.status, TransactionStatus::Declined, "{pan}");
        assert!(d.is_declined());
        assert_eq!(d.result_code(), Some(code), "{pan}");
        assert_eq!(d.batch_id, None, "a decline is never batched");
    }
    // Every answer so far was HTTP 200 (the token, the sale, four declines): no error status.
    assert_eq!(
        h.sandbox().stats().responses_by_status,
        BTreeMap::from([(200u16, 6u64)])
    );
    let declined = c
        .list_transactions(&TransactionQuery {
            status: Some(TransactionStatus::Declined),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(declined.total, Some(4));

    // Issuer did not answer → 502 SYSTEM_ERROR_DOWNSTREAM → transient.
    let e = c
        .sale(&pay(500, "4009830000001985", "comm"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(
        api(&e),
        (502, "SYSTEM_ERROR_DOWNSTREAM".into(), Some("50018".into()))
    );
    // Not Luhn-valid → 40085 data error.
    let e = c
        .sale(&pay(500, "4263970000005263", "luhn"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    assert_eq!(api(&e).2.as_deref(), Some("40085"));
    // Unknown id → 404 RESOURCE_NOT_FOUND 40118.
    let e = c.get_transaction("TRN_doesnotexist").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Dependency);
    assert_eq!(
        api(&e),
        (404, "RESOURCE_NOT_FOUND".into(), Some("40118".into()))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn authorize_capture_refund_and_reversal() {
    let h = start().await;
    let c = gp(&h);
    let auth = c.authorize(&pay(1000, MASTERCARD, "ord-1")).await.unwrap();
    assert_eq!(auth.status, TransactionStatus::Preauthorized);
    assert_eq!(auth.capture_mode.as_deref(), Some("LATER"));
    assert_eq!(auth.batch_id, None, "batch_id is \"\" before capture");

    // Partial capture.
    let cap = c.capture(&auth.id, Some(usd(800)), "ord-1").await.unwrap();
    assert_eq!(cap.id, auth.id);
    assert_eq!(cap.status, TransactionStatus::Captured);
    assert_eq!(cap.amount, Some(usd(800)));
    assert!(cap.batch_id.is_some());
    // Capturing again is refused (not PREAUTHORIZED any more).
    let e = c.capture(&auth.id, None, "ord-1-again").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);

    // Partial refund: a new REFUND transaction linked to the sale.
    let r1 = c.refund(&auth.id, Some(usd(300)), "ret-1").await.unwrap();
    assert_ne!(r1.id, auth.id);
    assert_eq!(r1.kind, Some(TransactionType::Refund));
    assert_eq!(r1.status, TransactionStatus::Captured);
    assert_eq!(r1.amount, Some(usd(300)));
    assert_eq!(r1.parent_resource_id.as_deref(), Some(auth.id.as_str()));
    // Over-refund (600 > 800 − 300) → 40087 data error, nothing moves.
    let e = c
        .refund(&auth.id, Some(usd(600)), "ret-2")
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    assert_eq!(
        api(&e),
        (400, "INVALID_REQUEST_DATA".into(), Some("40087".into()))
    );
    // The rest (no amount = all that is left) works, then nothing is left.
    let r2 = c.refund(&auth.id, None, "ret-3").await.unwrap();
    assert_eq!(r2.amount, Some(usd(500)));
    let e = c.refund(&auth.id, Some(usd(1)), "ret-4").await.unwrap_err();
    assert_eq!(api(&e).2.as_deref(), Some("40087"));

    // Capture above 115 % of the authorization → 50020.
    let a2 = c.authorize(&pay(1000, VISA, "ord-2")).await.unwrap();
    let e = c
        .capture(&a2.id, Some(usd(1200)), "ord-2")
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    assert_eq!(api(&e).2.as_deref(), Some("50020"));
    // 115 % exactly is allowed (tips).
    let cap2 = c.capture(&a2.id, Some(usd(1150)), "ord-2b").await.unwrap();
    assert_eq!(cap2.amount, Some(usd(1150)));

    // Reversal of an authorization and of an unbatched sale.
    let a3 = c.authorize(&pay(700, AMEX, "ord-3")).await.unwrap();
    let rev = c.reverse(&a3.id, "ord-3-void").await.unwrap();
    assert_eq!(rev.id, a3.id);
    assert_eq!(rev.status, TransactionStatus::Reversed);
    let s = c.sale(&pay(900, DISCOVER, "ord-4")).await.unwrap();
    assert!(s.batch_id.is_some());
    let rev = c.reverse(&s.id, "ord-4-void").await.unwrap();
    assert_eq!(rev.status, TransactionStatus::Reversed);
    assert_eq!(rev.batch_id, None, "a reversed sale leaves its batch");
    assert_eq!(
        c.get_transaction(&s.id).await.unwrap().status,
        TransactionStatus::Reversed
    );
    // A reversed transaction cannot be captured or refunded.
    assert_eq!(
        c.refund(&s.id, None, "ord-4-ref")
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Data
    );

    // Closing the batch proves what moved: 800 + 1150 in sales, 300 + 500 in refunds.
    let batch = cap.batch_id.clone().unwrap();
    let closed = c.close_batch(&batch).await.unwrap();
    assert_eq!(closed.status, "CLOSED");
    assert_eq!(
        closed.sales.map(|s| (s.count, s.amount.minor)),
        Some((2, 1950))
    );
    assert_eq!(
        closed.refunds.map(|s| (s.count, s.amount.minor)),
        Some((2, 800))
    );
    assert_eq!(closed.amount, Some(usd(1150)));
    assert_eq!(closed.transaction_count, Some(4));
    h.shutdown().await;
}

#[tokio::test]
async fn retried_money_moves_return_the_original_and_move_money_once() {
    let h = start().await;
    let c = gp(&h);
    // A retried sale (same engine key) is the same transaction.
    let s1 = c.sale(&pay(4200, VISA, "evt-sale")).await.unwrap();
    let s2 = c.sale(&pay(4200, VISA, "evt-sale")).await.unwrap();
    assert_eq!(s1.id, s2.id);

    let auth = c.authorize(&pay(5000, VISA, "evt-auth")).await.unwrap();
    let a2 = c.authorize(&pay(5000, VISA, "evt-auth")).await.unwrap();
    assert_eq!(auth.id, a2.id);
    let cap1 = c
        .capture(&auth.id, Some(usd(4000)), "evt-cap")
        .await
        .unwrap();
    let cap2 = c
        .capture(&auth.id, Some(usd(4000)), "evt-cap")
        .await
        .unwrap();
    assert_eq!(
        (cap1.id.as_str(), cap1.amount),
        (cap2.id.as_str(), cap2.amount)
    );
    assert_eq!(cap2.status, TransactionStatus::Captured);

    let r1 = c
        .refund(&auth.id, Some(usd(1000)), "evt-ref")
        .await
        .unwrap();
    let r2 = c
        .refund(&auth.id, Some(usd(1000)), "evt-ref")
        .await
        .unwrap();
    assert_eq!(r1.id, r2.id, "the retry returns the original refund");
    assert_eq!(r2.kind, Some(TransactionType::Refund));
    // The same engine key for a different operation is a different effect.
    let r3 = c.refund(&s1.id, Some(usd(200)), "evt-ref").await.unwrap();
    assert_ne!(r3.id, r1.id);

    // The simulator saw 409 DUPLICATE_ACTION for each retry...
    assert_eq!(h.sandbox().stats().responses_by_status.get(&409), Some(&4));
    // ...and money moved once: only 1000 was refunded from the capture, so 3000 is left.
    let e = c
        .refund(&auth.id, Some(usd(3001)), "evt-ref-2")
        .await
        .unwrap_err();
    assert_eq!(api(&e).2.as_deref(), Some("40087"));
    c.refund(&auth.id, Some(usd(3000)), "evt-ref-3")
        .await
        .unwrap();
    let all = c
        .list_all_transactions(&TransactionQuery {
            page_size: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5, "sale, auth, refunds 1000, 200, 3000");
    let closed = h
        .sandbox()
        .close_open_batches("2025-03-16T12:00:00Z".parse().unwrap());
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].sales_count, closed[0].sales_amount), (2, 8200));
    assert_eq!(
        (closed[0].refunds_count, closed[0].refunds_amount),
        (3, 4200)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn get_and_list_with_filters_ordering_and_paging() {
    let h = start().await;
    let c = gp(&h);
    let mut ids = Vec::new();
    for (i, (pan, amount)) in [
        (VISA, 1000),
        (MASTERCARD, 1100),
        (AMEX, 1200),
        (DISCOVER, 1300),
        (VISA, 1400),
        (VISA, 1500),
        (MASTERCARD, 1600),
    ]
    .iter()
    .enumerate()
    {
        let mut r = pay(*amount, pan, &format!("l-{i}"));
        r.reference = Some(format!("REF-{i}"));
        ids.push(c.sale(&r).await.unwrap().id);
    }
    let decl = c.sale(&pay(999, "4000120000001154", "l-d")).await.unwrap();
    let auth = c.authorize(&pay(777, VISA, "l-a")).await.unwrap();
    let refund = c.refund(&ids[0], Some(usd(250)), "l-r").await.unwrap();

    let got = c.get_transaction(&ids[3]).await.unwrap();
    assert_eq!(got.amount, Some(usd(1300)));
    assert_eq!(got.reference.as_deref(), Some("REF-3"));

    let list = |q: TransactionQuery| {
        let c = c.clone();
        async move { c.list_transactions(&q).await.unwrap() }
    };
    let p = list(TransactionQuery::default()).await;
    assert_eq!(p.total, Some(10));
    let p = list(TransactionQuery {
        status: Some(TransactionStatus::Captured),
        ..Default::default()
    })
    .await;
    assert_eq!(p.total, Some(8), "7 sales and the refund");
    let p = list(TransactionQuery {
        status: Some(TransactionStatus::Declined),
        ..Default::default()
    })
    .await;
    assert_eq!(
        p.items.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![decl.id.clone()]
    );
    let p = list(TransactionQuery {
        status: Some(TransactionStatus::Preauthorized),
        ..Default::default()
    })
    .await;
    assert_eq!(p.items[0].id, auth.id);
    let p = list(TransactionQuery {
        kind: Some(TransactionType::Refund),
        ..Default::default()
    })
    .await;
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].id, refund.id);
    let p = list(TransactionQuery {
        brand: Some("VISA".into()),
        status: Some(TransactionStatus::Captured),
        kind: Some(TransactionType::Sale),
        ..Default::default()
    })
    .await;
    assert_eq!(p.total, Some(3));
    let p = list(TransactionQuery {
        amount: Some(usd(1200)),
        ..Default::default()
    })
    .await;
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.items[0].id, ids[2]);
    let p = list(TransactionQuery {
        reference: Some("REF-5".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(p.items[0].id, ids[5]);
    let p = list(TransactionQuery {
        number_last4: Some("0608".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(p.items[0].id, ids[2]);
    let p = list(TransactionQuery {
        id: Some(ids[4].clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(p.total, Some(1));

    // Dates: today's transactions are in "from today"; nothing is older than 2000-01-01.
    let today = got.time_created.as_deref().unwrap()[..10].to_string();
    let p = list(TransactionQuery {
        from_time_created: Some(today.parse().unwrap()),
        to_time_created: Some(today.parse().unwrap()),
        ..Default::default()
    })
    .await;
    assert_eq!(p.total, Some(10));
    let p = list(TransactionQuery {
        to_time_created: Some("2000-01-01".parse().unwrap()),
        ..Default::default()
    })
    .await;
    assert_eq!(p.total, Some(0));
    assert!(p.items.is_empty());

    // Paging: ASC by creation, pages of 3 are disjoint and cover everything once.
    let mut seen = Vec::new();
    for page in 1..=4 {
        let p = list(TransactionQuery {
            page: Some(page),
            page_size: Some(3),
            order_by: Some("TIME_CREATED".into()),
            order: Some("ASC".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(p.page, page);
        assert_eq!(p.page_size, 3);
        assert_eq!(p.total, Some(10));
        assert_eq!(p.has_more(), page < 4, "page {page}");
        seen.extend(p.items.into_iter().map(|t| t.id));
    }
    let mut expected = ids.clone();
    expected.extend([decl.id.clone(), auth.id.clone(), refund.id.clone()]);
    assert_eq!(seen, expected, "ASC order is creation order");
    let all = c
        .list_all_transactions(&TransactionQuery {
            page_size: Some(4),
            order: Some("DESC".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let rev: Vec<String> = all.into_iter().map(|t| t.id).collect();
    expected.reverse();
    assert_eq!(rev, expected);
    // A filter value the API refuses is a data error.
    let e = c
        .list_transactions(&TransactionQuery {
            order: Some("SIDEWAYS".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    h.shutdown().await;
}

// ---------------------------------------------------------------- settlement

fn fee(h: &SandboxHandle, t: &Transaction) -> i64 {
    let brand = t
        .payment_method
        .as_ref()
        .and_then(|p| p.card.as_ref())
        .and_then(|c| c.brand.clone())
        .unwrap();
    h.sandbox().config().fees.fee_for(&brand, minor(t.amount))
}

/// Checks a deposit against its own settlement transactions: sales and refunds are the sums of
/// the transactions, fees follow the fee model per sale, and net = sales − refunds − fees −
/// chargebacks, exactly.
fn reconcile(h: &SandboxHandle, d: &heartsuite_heartland::gpapi::Deposit, txns: &[Transaction]) {
    let cur = d.amount.code();
    assert!(
        txns.iter()
            .all(|t| t.deposit_id.as_deref() == Some(d.id.as_str()))
    );
    assert!(txns.iter().all(|t| t.amount.map(|a| a.code()) == Some(cur)));
    assert!(txns.iter().all(|t| t.status == TransactionStatus::Funded));
    let sales: Vec<&Transaction> = txns
        .iter()
        .filter(|t| t.kind == Some(TransactionType::Sale))
        .collect();
    let refunds: Vec<&Transaction> = txns
        .iter()
        .filter(|t| t.kind == Some(TransactionType::Refund))
        .collect();
    assert_eq!(sales.len() + refunds.len(), txns.len());
    let sales_sum: i64 = sales.iter().map(|t| minor(t.amount)).sum();
    let refunds_sum: i64 = refunds.iter().map(|t| minor(t.amount)).sum();
    let fees_sum: i64 = sales.iter().map(|t| fee(h, t)).sum();
    let s = d.sales.unwrap();
    assert_eq!(
        (s.count, s.amount.minor),
        (sales.len() as u64, sales_sum),
        "{}",
        d.id
    );
    let r = d.refunds.unwrap();
    // Deposits report refunds negative (reference: `refunds{count, amount:"-1000"}`).
    assert_eq!(
        (r.count, r.amount.minor),
        (refunds.len() as u64, -refunds_sum),
        "{}",
        d.id
    );
    assert_eq!(d.fees.map(|f| f.minor), Some(fees_sum), "{}", d.id);
    let cb = d.chargebacks.map(|c| c.amount.minor).unwrap_or(0);
    let net = sales_sum - refunds_sum - fees_sum - cb;
    let signed = if d.funding_type.as_deref() == Some("DEBIT") {
        -d.amount.minor
    } else {
        d.amount.minor
    };
    assert_eq!(signed, net, "deposit {} net", d.id);
    for t in txns {
        assert_eq!(t.deposit_amount.map(|a| a.minor), Some(d.amount.minor));
        assert!(
            t.batch_time_created
                .as_deref()
                .is_some_and(|b| !b.is_empty())
        );
        assert_eq!(
            t.deposit_time_created.as_deref(),
            Some(d.time_created.as_str())
        );
    }
    // The simulator's own books agree.
    let view = h
        .sandbox()
        .deposits()
        .into_iter()
        .find(|v| v.id == d.id)
        .unwrap();
    assert_eq!(view.net_amount, net);
    assert_eq!(view.chargebacks_amount, cb);
}

#[tokio::test]
async fn settlement_close_fund_deposits_and_poll_each_deposit_once() {
    // Enough chargebacks that a generated day certainly has some.
    let h = start_with(Config {
        chargeback_ppm: 50_000,
        ..Config::default()
    })
    .await;
    let c = gp(&h);

    // 1. A generated business day (closed and funded by the generator, deposits dated 2025-03-15).
    let day = h
        .sandbox()
        .generate_day(&DayOptions {
            tickets: 300,
            web_orders: 30,
            ..DayOptions::default()
        })
        .unwrap();
    assert_eq!(day.summary.deposits.len(), 2, "USD and CAD");
    let (polled, cursor) = poll_funded_deposits(&c, None).await.unwrap();
    let polled_ids: HashSet<&str> = polled.iter().map(|d| d.deposit.id.as_str()).collect();
    let day_ids: HashSet<&str> = day.summary.deposits.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(polled_ids, day_ids);
    let mut chargebacks = 0;
    for dw in &polled {
        assert_eq!(dw.deposit.status, DepositStatus::Funded);
        assert_eq!(dw.deposit.time_created, "2025-03-15");
        assert!(!dw.transactions.is_empty());
        reconcile(&h, &dw.deposit, &dw.transactions);
        chargebacks += dw.deposit.chargebacks.map(|c| c.count).unwrap_or(0);
        let line = day
            .summary
            .deposits
            .iter()
            .find(|l| l.id == dw.deposit.id)
            .unwrap();
        assert_eq!(line.net_amount.abs(), dw.deposit.amount.minor);
        assert_eq!(line.currency, dw.deposit.amount.code());
    }
    assert!(chargebacks > 0, "the reconciliation covered chargebacks");
    let (again, cursor) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert!(again.is_empty(), "a second poll returns nothing new");

    // 2. Transactions made through the client, closed through the client, funded a day later.
    let s1 = c.sale(&pay(10_000, VISA, "st-1")).await.unwrap();
    let s2 = c.sale(&pay(2_500, AMEX, "st-2")).await.unwrap();
    let a = c.authorize(&pay(6_000, MASTERCARD, "st-3")).await.unwrap();
    c.capture(&a.id, Some(usd(5_000)), "st-3").await.unwrap();
    c.refund(&s1.id, Some(usd(1_234)), "st-4").await.unwrap();
    c.sale(&pay(100, "4000120000001154", "st-5")).await.unwrap(); // declined: not settled
    let batch = s2.batch_id.clone().unwrap();
    assert_eq!(s1.batch_id.as_deref(), Some(batch.as_str()));
    let closed = c.close_batch(&batch).await.unwrap();
    assert_eq!(closed.transaction_count, Some(4));
    assert_eq!(closed.amount, Some(usd(10_000 + 2_500 + 5_000 - 1_234)));
    // Closing twice: ACTION_FAILED 500010, which means the goal is already reached.
    let e = c.close_batch(&batch).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Duplicate);
    assert_eq!(api(&e).2.as_deref(), Some("500010"));
    let e = c.close_batch("BAT_nope").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);

    // Batched, not yet funded: in settlement transactions without a deposit.
    let st = c
        .list_settlement_transactions(&TransactionQuery {
            batch_id: Some(batch.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(st.total, Some(4));
    assert!(
        st.items
            .iter()
            .all(|t| t.status == TransactionStatus::Batched && t.deposit_id.is_none())
    );

    let funded = h.sandbox().fund_deposits("2025-03-16".parse().unwrap());
    assert_eq!(funded.len(), 1);
    let dep_id = funded[0].id.clone();

    let deps = c
        .list_deposits(&DepositQuery {
            from_time_created: Some("2025-03-16".parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(deps.items.len(), 1);
    let d = &deps.items[0];
    assert_eq!(d.id, dep_id);
    assert_eq!(d.status, DepositStatus::Funded);
    assert_eq!(d.time_created, "2025-03-16");
    assert_eq!(d.funding_type.as_deref(), Some("CREDIT"));
    assert_eq!(
        d.masked_account_number_last4
            .as_deref()
            .map(|m| &m[m.len() - 4..]),
        Some("4321")
    );
    assert_eq!(c.get_deposit(&dep_id).await.unwrap(), *d);
    let e = c.get_deposit("DEP_nope").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Dependency);
    assert_eq!(
        api(&e),
        (404, "RESOURCE_NOT_FOUND".into(), Some("40118".into()))
    );
    let all = c
        .list_all_deposits(&DepositQuery {
            page_size: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let by_status = c
        .list_deposits(&DepositQuery {
            status: Some(DepositStatus::Delayed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_status.total, Some(0));

    let txns = c
        .list_all_settlement_transactions(&TransactionQuery {
            deposit_id: Some(dep_id.clone()),
            page_size: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(txns.len(), 4);
    reconcile(&h, d, &txns);
    let one = c
        .list_settlement_transactions(&TransactionQuery {
            deposit_id: Some(dep_id.clone()),
            kind: Some(TransactionType::Refund),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(
        one.items[0].parent_resource_id.as_deref(),
        Some(s1.id.as_str())
    );
    assert!(
        one.items[0]
            .payment_method
            .as_ref()
            .and_then(|p| p.card.as_ref())
            .and_then(|c| c.arn.as_ref())
            .is_some()
    );

    let (new, cursor) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].deposit.id, dep_id);
    assert_eq!(new[0].transactions.len(), 4);
    let (again, cursor) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert!(again.is_empty());

    // 3. A deposit held DELAYED is not returned until it is released, then exactly once.
    h.sandbox()
        .set_faults(
            &FaultSpec {
                delay_deposits: Some(true),
                ..Default::default()
            },
            Service::GpApi,
        )
        .unwrap();
    c.sale(&pay(3_000, DISCOVER, "st-6")).await.unwrap();
    h.sandbox()
        .close_open_batches("2025-03-16T23:30:00Z".parse().unwrap());
    let held = h.sandbox().fund_deposits("2025-03-17".parse().unwrap());
    assert_eq!(held[0].status, "DELAYED");
    let (none, cursor) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert!(none.is_empty(), "a DELAYED deposit is not funded yet");
    h.sandbox().clear_faults();
    h.sandbox().fund_deposits("2025-03-17".parse().unwrap());
    let (released, cursor) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].deposit.id, held[0].id);
    reconcile(&h, &released[0].deposit, &released[0].transactions);
    let (again, _) = poll_funded_deposits(&c, Some(cursor)).await.unwrap();
    assert!(again.is_empty());
    h.shutdown().await;
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn gpapi_downtime_is_transient_and_429_is_rate_limited() {
    let h = start().await;
    let c = gp(&h);
    c.accounts().await.unwrap();
    h.sandbox()
        .set_faults(
            &FaultSpec {
                downtime_secs: Some(30),
                ..Default::default()
            },
            Service::GpApi,
        )
        .unwrap();
    let e = c
        .list_transactions(&TransactionQuery::default())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert_eq!(api(&e).0, 503);
    let ra = e.retry_after().expect("Retry-After on the 503");
    assert!(
        ra >= Duration::from_secs(1) && ra <= Duration::from_secs(30),
        "{ra:?}"
    );
    assert_eq!(e.failure().retry_after, Some(ra));
    // A sale during downtime fails transiently and moves nothing; its retry later succeeds once.
    let e = c.sale(&pay(1000, VISA, "down-1")).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    h.sandbox().clear_faults();
    let t = c.sale(&pay(1000, VISA, "down-1")).await.unwrap();
    assert_eq!(t.status, TransactionStatus::Captured);
    assert_eq!(control_stats(&h).await["counts"]["transactions"], 1);

    h.sandbox()
        .set_faults(
            &FaultSpec {
                rate_limit_requests: Some(1),
                retry_after_secs: Some(7),
                ..Default::default()
            },
            Service::GpApi,
        )
        .unwrap();
    let e = c.get_transaction(&t.id).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited);
    assert_eq!(api(&e).0, 429);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(e.failure().retry_after, Some(Duration::from_secs(7)));
    // Only one request was limited.
    assert_eq!(c.get_transaction(&t.id).await.unwrap().id, t.id);
    assert_eq!(h.sandbox().stats().faults_429, 1);
    h.shutdown().await;
}

#[tokio::test]
async fn retail_downtime_is_transient_and_429_is_waited_out_or_returned() {
    let h = start().await;
    let r = retail(&h);
    r.list_items(&ListQuery::default()).await.unwrap();
    h.sandbox()
        .set_faults(
            &FaultSpec {
                downtime_secs: Some(20),
                ..Default::default()
            },
            Service::Retail,
        )
        .unwrap();
    let e = r.list_items(&ListQuery::default()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(api(&e).0, 503);
    assert!(e.retry_after().is_some_and(|d| d >= Duration::from_secs(1)));
    h.sandbox().clear_faults();

    // A long Retry-After is returned to the caller as rate_limited, not slept on.
    h.sandbox()
        .set_faults(
            &FaultSpec {
                rate_limit_requests: Some(1),
                retry_after_secs: Some(60),
                ..Default::default()
            },
            Service::Retail,
        )
        .unwrap();
    let e = r.list_items(&ListQuery::default()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    // With in-call retries off, even a short one is returned.
    let mut cfg = RetailConfig::new(h.retail_url(), Secret::new(RETAIL_TOKEN));
    cfg.max_rate_limit_retries = 0;
    let r0 = RetailClient::new(cfg).unwrap();
    h.sandbox()
        .set_faults(
            &FaultSpec {
                rate_limit_requests: Some(1),
                retry_after_secs: Some(1),
                ..Default::default()
            },
            Service::Retail,
        )
        .unwrap();
    let e = r0.list_items(&ListQuery::default()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    // The default client waits a short Retry-After out itself and succeeds.
    h.sandbox()
        .set_faults(
            &FaultSpec {
                rate_limit_requests: Some(1),
                retry_after_secs: Some(1),
                ..Default::default()
            },
            Service::Retail,
        )
        .unwrap();
    let before = h.sandbox().stats().faults_429;
    r.list_items(&ListQuery::default()).await.unwrap();
    assert_eq!(h.sandbox().stats().faults_429, before + 1);

    // A wrong token is an auth failure.
    let bad = RetailClient::new(RetailConfig::new(h.retail_url(), Secret::new("nope"))).unwrap();
    let e = bad.list_items(&ListQuery::default()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    assert_eq!(api(&e).0, 401);
    h.shutdown().await;
}

// ---------------------------------------------------------------- status_url

#[tokio::test]
async fn status_url_notifications_verify_with_the_client_signature_check() {
    let h = start().await;
    let c = gp(&h);
    let (rx, url) = Receiver::start().await;
    let mut req = pay(3000, VISA, "n-1");
    req.status_url = Some(url.clone());
    let auth = c.authorize(&req).await.unwrap();
    c.capture(&auth.id, None, "n-1").await.unwrap();
    let refund = c.refund(&auth.id, Some(usd(1000)), "n-2").await.unwrap();
    // A transaction without status_url sends nothing.
    c.sale(&pay(100, VISA, "n-3")).await.unwrap();

    assert!(
        eventually(|| rx.all().len() >= 3).await,
        "three notifications arrive"
    );
    let got = rx.all();
    let key = Secret::new(APP_KEY);
    let mut statuses = Vec::new();
    for (headers, body) in &got {
        let sig = headers.get("x-gp-signature").unwrap().to_str().unwrap();
        assert!(
            verify_gp_signature(body, sig, &key),
            "signature over the raw body verifies"
        );
        assert!(!verify_gp_signature(body, sig, &Secret::new("other-key")));
        let mut tampered = body.to_vec();
        tampered.push(b' ');
        assert!(!verify_gp_signature(&tampered, sig, &key));
        let v: Value = serde_json::from_slice(body).unwrap();
        statuses.push((
            v["id"].as_str().unwrap().to_string(),
            v["status"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        statuses,
        vec![
            (auth.id.clone(), "PREAUTHORIZED".to_string()),
            (auth.id.clone(), "CAPTURED".to_string()),
            (refund.id.clone(), "CAPTURED".to_string()),
        ]
    );
    assert_eq!(got.len(), 3);
    h.shutdown().await;
}

// ---------------------------------------------------------------- Retail

/// Raw Retail calls for what the connector does not write (locations, tickets).
async fn retail_post(h: &SandboxHandle, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", h.retail_url()))
        .bearer_auth(RETAIL_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "POST {path}");
    r.json().await.unwrap()
}

async fn retail_put(h: &SandboxHandle, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{}{path}", h.retail_url()))
        .bearer_auth(RETAIL_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn retail_items_crud_filter_and_paging() {
    let h = start().await;
    let r = retail(&h);
    let mut custom = serde_json::Map::new();
    custom.insert("color".into(), json!("red"));
    let id = r
        .create_item(&ItemInput {
            public_id: Some("MUG-1".into()),
            description: Some("Mug".into()),
            price: Some(usd(1299)),
            cost: Some(usd(410)),
            custom: Some(custom),
            ..Default::default()
        })
        .await
        .unwrap();
    let item = r.get_item(id).await.unwrap();
    assert_eq!(item.id, id);
    assert_eq!(item.public_id.as_deref(), Some("MUG-1"));
    assert_eq!(item.description.as_deref(), Some("Mug"));
    assert_eq!(item.price, Some("12.99".parse().unwrap()));
    assert_eq!(item.cost, Some("4.1".parse().unwrap()));
    assert_eq!(r.money(item.price.unwrap()).unwrap(), usd(1299));
    assert_eq!(item.active, Some(true));
    assert_eq!(
        item.custom.as_ref().and_then(|c| c.get("color")),
        Some(&json!("red"))
    );

    r.update_item(
        id,
        &ItemInput {
            price: Some(usd(1450)),
            active: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let item = r.get_item(id).await.unwrap();
    assert_eq!(item.price, Some("14.5".parse().unwrap()));
    assert_eq!(item.active, Some(false));
    assert_eq!(
        item.description.as_deref(),
        Some("Mug"),
        "PUT changes only what it names"
    );

    // Validation: an item needs a description (422 → data error).
    let e = r
        .create_item(&ItemInput {
            price: Some(usd(100)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    assert_eq!(api(&e).0, 422);
    // A missing item is a 404 dependency error; amounts in another currency are refused locally.
    assert_eq!(
        r.get_item(999_999).await.unwrap_err().class(),
        ErrorClass::Dependency
    );
    let cad = Money::from_minor_str("100", "CAD").unwrap();
    assert_eq!(
        r.create_item(&ItemInput {
            description: Some("x".into()),
            price: Some(cad),
            ..Default::default()
        })
        .await
        .unwrap_err()
        .class(),
        ErrorClass::Data
    );

    for i in 0..11 {
        r.create_item(&ItemInput {
            description: Some(format!("Thing {i}")),
            price: Some(usd(100 * (i + 1))),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let all = r
        .list_items(&ListQuery {
            per_page: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 12);
    let unique: HashSet<i64> = all.iter().map(|i| i.id).collect();
    assert_eq!(unique.len(), 12, "pages do not overlap");
    let mut pager = r.pages::<Item>(
        &["items"],
        ListQuery {
            per_page: Some(5),
            ..Default::default()
        },
    );
    let mut sizes = Vec::new();
    while let Some(p) = pager.next_page().await.unwrap() {
        assert_eq!(p.total, Some(12));
        assert_eq!(p.pages, Some(3));
        sizes.push(p.results.len());
    }
    assert_eq!(sizes, vec![5, 5, 2]);

    let cheap = r
        .list_items(&ListQuery::filter(json!({"price": {"$lte": 3}})))
        .await
        .unwrap();
    assert_eq!(cheap.len(), 3, "1.00, 2.00, 3.00");
    let sorted = r
        .list_items(&ListQuery {
            filter: Some(json!({"price": {"$gte": 10}})),
            sort: vec!["price,desc".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let prices: Vec<String> = sorted
        .iter()
        .map(|i| i.price.unwrap().normalize().to_string())
        .collect();
    assert_eq!(prices, vec!["14.5", "11", "10"]);
    let red = r
        .list_items(&ListQuery::filter(json!({"custom.color": "red"})))
        .await
        .unwrap();
    assert_eq!(red.iter().map(|i| i.id).collect::<Vec<_>>(), vec![id]);
    let inactive = r
        .list_items(&ListQuery::filter(json!({"active?": false})))
        .await
        .unwrap();
    assert_eq!(inactive.len(), 1);
    let e = r
        .list_items(&ListQuery {
            extra: vec![("_filter".into(), "{not json".into())],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    h.shutdown().await;
}

#[tokio::test]
async fn retail_customers_tickets_inventory_and_webhooks() {
    let h = start().await;
    let r = retail(&h);
    let (rx, hook_url) = Receiver::start().await;

    // Webhooks: register, list, receive, delete.
    let w = r
        .register_webhook(
            &hook_url,
            &[
                "item_created",
                "customer_created",
                "sales_transaction_completed",
            ],
        )
        .await
        .unwrap();
    assert_eq!(w.url.as_deref(), Some(hook_url.as_str()));
    let w2 = r
        .register_webhook(&hook_url, &["item_updated"])
        .await
        .unwrap();
    let listed = r.list_webhooks().await.unwrap();
    assert_eq!(
        listed.iter().map(|w| w.id).collect::<HashSet<_>>(),
        HashSet::from([w.id, w2.id])
    );
    assert_eq!(
        listed.iter().find(|x| x.id == w.id).unwrap().events,
        vec![
            "item_created",
            "customer_created",
            "sales_transaction_completed"
        ]
    );
    r.delete_webhook(w2.id).await.unwrap();
    assert_eq!(r.list_webhooks().await.unwrap().len(), 1);
    assert_eq!(
        r.delete_webhook(w2.id).await.unwrap_err().class(),
        ErrorClass::Dependency
    );

    // Customers with addresses.
    let cid = r
        .create_customer(&CustomerInput {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            email: Some("ada@example.com".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let aid = r
        .add_customer_address(
            cid,
            &Address {
                address_1: Some("1 Analytical Way".into()),
                city: Some("Chicago".into()),
                state: Some("IL".into()),
                zip: Some("60601".into()),
                country: Some("US".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cust = r.get_customer_with_addresses(cid).await.unwrap();
    assert_eq!(cust.email.as_deref(), Some("ada@example.com"));
    assert_eq!(cust.addresses.len(), 1);
    assert_eq!(cust.addresses[0].id, Some(aid));
    assert_eq!(cust.addresses[0].city.as_deref(), Some("Chicago"));
    assert_eq!(cust.addresses[0].zip.as_deref(), Some("60601"));
    r.update_customer(
        cid,
        &CustomerInput {
            phone: Some("555-0100".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        r.get_customer(cid).await.unwrap().phone.as_deref(),
        Some("555-0100")
    );
    let found = r
        .list_customers(&ListQuery::filter(
            json!({"email": {"$eq": "ada@example.com"}}),
        ))
        .await
        .unwrap();
    assert_eq!(found.iter().map(|c| c.id).collect::<Vec<_>>(), vec![cid]);
    assert_eq!(
        r.create_customer(&CustomerInput::default())
            .await
            .unwrap_err()
            .class(),
        ErrorClass::Data
    );

    // A location, an item with stock there, a ticket with lines and a payment.
    let loc = retail_post(
        &h,
        "/locations",
        json!({"name": "Chicago", "time_zone": "America/Chicago"}),
    )
    .await;
    let loc_id = loc["id"].as_i64().unwrap();
    let locs = r.list_locations().await.unwrap();
    assert_eq!(locs.iter().map(|l| l.id).collect::<Vec<_>>(), vec![loc_id]);
    assert_eq!(
        r.get_location(loc_id).await.unwrap().name.as_deref(),
        Some("Chicago")
    );
    let item_id = r
        .create_item(&ItemInput {
            description: Some("Lamp".into()),
            price: Some(usd(2500)),
            cost: Some(usd(900)),
            ..Default::default()
        })
        .await
        .unwrap();
    h.sandbox()
        .set_inventory(item_id, loc_id, "10".parse().unwrap());
    let inv = r
        .inventory_values(&InventoryQuery {
            item_id: Some(item_id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].location_id, Some(loc_id));
    assert_eq!(inv[0].qty_on_hand, Some("10".parse().unwrap()));
    assert_eq!(inv[0].qty_available, Some("10".parse().unwrap()));
    assert_eq!(inv[0].unit_cost, Some("9".parse().unwrap()));

    let t = retail_post(
        &h,
        "/sales/tickets",
        json!({"source_location_id": loc_id, "customer_id": cid}),
    )
    .await;
    let tid = t["id"].as_i64().unwrap();
    retail_post(
        &h,
        &format!("/sales/tickets/{tid}/lines"),
        json!({"type": "ItemLine", "item_id": item_id, "qty": 2, "adjusted_unit_price": 22.5}),
    )
    .await;
    retail_post(
        &h,
        &format!("/sales/tickets/{tid}/lines"),
        json!({"type": "TaxLine", "value": 4.61, "description": "IL tax"}),
    )
    .await;
    retail_post(
        &h,
        &format!("/sales/tickets/{tid}/payments"),
        json!({"amount": 49.61, "type": "CreditCardPayment"}),
    )
    .await;
    let resp = retail_put(
        &h,
        &format!("/sales/tickets/{tid}"),
        json!({"status": "complete"}),
    )
    .await;
    assert_eq!(resp.status(), 200);

    let d = r.ticket_detail(tid).await.unwrap();
    assert_eq!(d.ticket.kind.as_deref(), Some("Ticket"));
    assert!(!d.ticket.is_return());
    assert_eq!(d.ticket.completed, Some(true));
    assert_eq!(d.ticket.status.as_deref(), Some("Complete"));
    assert_eq!(d.ticket.customer_id, Some(cid));
    assert_eq!(d.ticket.customer_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(d.ticket.source_location_id, Some(loc_id));
    assert_eq!(d.ticket.total, Some("49.61".parse().unwrap()));
    assert_eq!(d.ticket.total_tax, Some("4.61".parse().unwrap()));
    assert_eq!(d.ticket.total_discounts, Some("5".parse().unwrap()));
    assert_eq!(d.ticket.balance, Some("0".parse().unwrap()));
    assert!(
        d.ticket
            .completed_at
            .as_deref()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(d.ticket.local_completed_at.is_some());
    assert_eq!(d.lines.len(), 2);
    let line = d
        .lines
        .iter()
        .find(|l| l.kind.as_deref() == Some("ItemLine"))
        .unwrap();
    assert_eq!(line.item_id, Some(item_id));
    assert_eq!(line.qty, Some("2".parse().unwrap()));
    assert_eq!(line.original_unit_price, Some("25".parse().unwrap()));
    assert_eq!(line.value, Some("45".parse().unwrap()));
    assert_eq!(d.payments.len(), 1);
    assert_eq!(d.payments[0].amount, Some("49.61".parse().unwrap()));
    assert_eq!(d.payments[0].status.as_deref(), Some("complete"));
    assert_eq!(r.money(d.ticket.total.unwrap()).unwrap(), usd(4961));
    let pays = r.list_payments(&ListQuery::default()).await.unwrap();
    assert_eq!(pays.len(), 1);

    // Completing moved the stock.
    let inv = r
        .inventory_values(&InventoryQuery {
            item_id: Some(item_id),
            location_id: Some(loc_id),
            exclude_empty_locations: true,
        })
        .await
        .unwrap();
    assert_eq!(inv[0].qty_on_hand, Some("8".parse().unwrap()));

    // Ticket filters: by type and date; `completed?` is not filterable on the real API.
    let returns = r
        .list_tickets(&ListQuery::filter(json!({"type": "Return"})))
        .await
        .unwrap();
    assert!(returns.is_empty());
    let done = r
        .list_tickets(&ListQuery::filter(
            json!({"completed_at": {"$gte": "2000-01-01T00:00:00Z"}}),
        ))
        .await
        .unwrap();
    assert_eq!(done.iter().map(|t| t.id).collect::<Vec<_>>(), vec![tid]);
    let e = r
        .list_tickets(&ListQuery::filter(json!({"completed?": true})))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    assert_eq!(e.code(), Some("invalid_request"));

    // The webhooks: bare resources, told apart by shape.
    assert!(
        eventually(|| rx.all().len() >= 3).await,
        "customer, item, ticket"
    );
    let kinds: Vec<(&'static str, String)> = rx
        .all()
        .iter()
        .map(|(_, b)| {
            let v: Value = serde_json::from_slice(b).unwrap();
            let e = classify_retail_webhook(&v).expect("a known shape");
            (e.kind, e.record_id)
        })
        .collect();
    assert!(
        kinds.contains(&(RETAIL_CUSTOMER_CHANGED, cid.to_string())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(RETAIL_ITEM_CHANGED, item_id.to_string())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(RETAIL_TICKET_COMPLETED, tid.to_string())),
        "{kinds:?}"
    );
    // The deleted registration (item_updated) received nothing: the update above sent nothing.
    r.update_item(
        item_id,
        &ItemInput {
            price: Some(usd(2600)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let n = rx.all().len();
    r.delete_webhook(w.id).await.unwrap();
    assert!(r.list_webhooks().await.unwrap().is_empty());
    r.create_item(&ItemInput {
        description: Some("After".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(h.sandbox().stats().webhooks_delivered as usize, n);
    assert_eq!(rx.all().len(), n, "no registration, no delivery");
    h.shutdown().await;
}

#[tokio::test]
async fn retail_reads_a_generated_day() {
    let h = start().await;
    let day = h
        .sandbox()
        .generate_day(&DayOptions {
            tickets: 120,
            web_orders: 5,
            emit_webhooks: false,
            ..DayOptions::default()
        })
        .unwrap();
    let r = retail(&h);
    let tickets = r
        .list_tickets(&ListQuery {
            per_page: Some(50),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        tickets.len() as u64,
        day.summary.tickets + day.summary.returns
    );
    let returns = r
        .list_tickets(&ListQuery {
            extra: vec![("_filter[type][$eq]".into(), "Return".into())],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(returns.len() as u64, day.summary.returns);
    assert!(
        returns
            .iter()
            .all(|t| t.is_return() && t.parent_transaction_id.is_some())
    );
    // Every completed ticket balances: lines sum to the total, payments to the total.
    for t in tickets.iter().take(15) {
        let d = r.ticket_detail(t.id).await.unwrap();
        // `reduce` sums exact decimals without naming the decimal crate.
        let lines = d.lines.iter().filter_map(|l| l.value).reduce(|a, b| a + b);
        let paid = d
            .payments
            .iter()
            .filter_map(|p| p.amount)
            .reduce(|a, b| a + b);
        assert_eq!(lines, d.ticket.total, "ticket {}", t.id);
        // A return's payments are negative (money handed back), so they still sum to its total.
        assert_eq!(paid, d.ticket.total, "ticket {}", t.id);
        assert_eq!(d.ticket.balance.map(|b| b.is_zero()), Some(true));
    }
    let locations = r.list_locations().await.unwrap();
    assert_eq!(locations.len(), day.summary.locations);
    let customers = r.list_customers(&ListQuery::default()).await.unwrap();
    assert_eq!(customers.len(), day.summary.customers);
    let items = r.list_items(&ListQuery::default()).await.unwrap();
    assert_eq!(items.len(), day.summary.items);
    let inv = r
        .inventory_values(&InventoryQuery {
            exclude_empty_locations: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!inv.is_empty());
    assert!(
        inv.iter()
            .all(|v| v.qty_on_hand.is_some_and(|q| !q.is_zero()))
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------- more GP-API paths

/// A raw GP-API token, for what the connector does not do itself (tokenizing a card).
async fn raw_token(h: &SandboxHandle) -> String {
    let nonce = "2025-03-14T10:00:00.000000Z";
    let secret = heartsuite_heartland::gpapi::access_token_secret(nonce, &Secret::new(APP_KEY));
    let v: Value = reqwest::Client::new()
        .post(format!("{}/accesstoken", h.gpapi_url()))
        .header("X-GP-Version", "2021-03-22")
        .json(&json!({"app_id": APP_ID, "nonce": nonce, "secret": secret, "grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn stored_payment_methods_accounts_and_more_retries() {
    let h = start().await;
    let c = gp(&h);
    // A card tokenized out of band, then charged by the connector through its PMT id only.
    let token = raw_token(&h).await;
    let pmt: Value = reqwest::Client::new()
        .post(format!("{}/payment-methods", h.gpapi_url()))
        .header("X-GP-Version", "2021-03-22")
        .bearer_auth(&token)
        .json(&json!({"card": {"number": MASTERCARD, "expiry_month": "12", "expiry_year": "30"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pmt_id = pmt["id"].as_str().unwrap().to_string();
    assert!(pmt_id.starts_with("PMT_"));
    let t = c
        .sale(&PaymentRequest::new(
            usd(1234),
            PaymentMethod::Token(pmt_id.clone()),
            "pmt-1",
        ))
        .await
        .unwrap();
    assert_eq!(t.status, TransactionStatus::Captured);
    let pm = t.payment_method.clone().unwrap();
    assert_eq!(pm.id.as_deref(), Some(pmt_id.as_str()));
    assert_eq!(pm.card.and_then(|c| c.brand).as_deref(), Some("MASTERCARD"));
    let e = c
        .sale(&PaymentRequest::new(
            usd(1234),
            PaymentMethod::Token("PMT_gone".into()),
            "pmt-2",
        ))
        .await
        .unwrap_err();
    assert_eq!(api(&e).0, 404);
    assert_eq!(api(&e).2.as_deref(), Some("40116"));

    // The configured account is what goes on the wire: a foreign one is refused.
    let mut cfg = gp_config(&h);
    cfg.transaction_account = Some("TRA_notours".into());
    let e = GpApiClient::new(cfg)
        .unwrap()
        .sale(&pay(100, VISA, "acct"))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    // Configured by name, it resolves to the scope's account.
    let mut cfg = gp_config(&h);
    cfg.transaction_account = Some("Transaction_Processing".into());
    let t2 = GpApiClient::new(cfg)
        .unwrap()
        .sale(&pay(100, VISA, "acct"))
        .await
        .unwrap();
    assert!(
        t2.account_id
            .as_deref()
            .is_some_and(|a| a.starts_with("TRA_"))
    );

    // A retried reversal returns the reversed transaction.
    let a = c.authorize(&pay(800, VISA, "rv")).await.unwrap();
    let r1 = c.reverse(&a.id, "rv-void").await.unwrap();
    let r2 = c.reverse(&a.id, "rv-void").await.unwrap();
    assert_eq!((r1.id.as_str(), &r1.status), (r2.id.as_str(), &r2.status));
    assert_eq!(r2.status, TransactionStatus::Reversed);
    // A retried decline is the same decline.
    let d1 = c.sale(&pay(500, "4000120000001154", "dd")).await.unwrap();
    let d2 = c.sale(&pay(500, "4000120000001154", "dd")).await.unwrap();
    assert_eq!(d1.id, d2.id);
    assert!(d2.is_declined());

    // Refund after funding: a new REFUND in a new batch; a funded sale cannot be reversed.
    h.sandbox()
        .close_open_batches("2025-03-16T23:30:00Z".parse().unwrap());
    h.sandbox().fund_deposits("2025-03-17".parse().unwrap());
    assert_eq!(
        c.get_transaction(&t.id).await.unwrap().status,
        TransactionStatus::Funded
    );
    assert_eq!(
        c.reverse(&t.id, "late-void").await.unwrap_err().class(),
        ErrorClass::Data
    );
    let late = c.refund(&t.id, Some(usd(234)), "late-ref").await.unwrap();
    assert_eq!(late.status, TransactionStatus::Captured);
    assert!(late.batch_id.is_some());
    assert_ne!(late.batch_id, t.batch_id);

    // A CAD sale lands in its own batch.
    let cad = c
        .sale(&PaymentRequest::new(
            Money::from_minor_str("5000", "CAD").unwrap(),
            card(VISA),
            "cad-1",
        ))
        .await
        .unwrap();
    assert_eq!(cad.amount.map(|m| m.code()), Some("CAD"));
    assert!(cad.batch_id.is_some());
    assert_ne!(cad.batch_id, late.batch_id);

    // The refund-only batch funds as a DEBIT deposit (net negative, amount its magnitude).
    h.sandbox()
        .close_open_batches("2025-03-17T23:30:00Z".parse().unwrap());
    h.sandbox().fund_deposits("2025-03-18".parse().unwrap());
    let deps = c
        .list_all_deposits(&DepositQuery {
            from_time_created: Some("2025-03-18".parse().unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(deps.len(), 2, "USD refunds and CAD sale");
    let debit = deps
        .iter()
        .find(|d| d.funding_type.as_deref() == Some("DEBIT"))
        .unwrap();
    assert_eq!(debit.amount, usd(234));
    let cad_dep = deps.iter().find(|d| d.amount.code() == "CAD").unwrap();
    for d in [debit, cad_dep] {
        let txns = c
            .list_all_settlement_transactions(&TransactionQuery {
                deposit_id: Some(d.id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(txns.len(), 1);
        reconcile(&h, d, &txns);
    }
    h.shutdown().await;
}

#[tokio::test]
async fn concurrent_callers_behind_an_expired_token_sign_in_once() {
    let h = start().await;
    let c = gp(&h);
    let t = c.sale(&pay(1000, VISA, "cc")).await.unwrap();
    h.sandbox().expire_tokens();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        let id = t.id.clone();
        tasks.push(tokio::spawn(async move { c.get_transaction(&id).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().id, t.id);
    }
    assert_eq!(
        control_stats(&h).await["counts"]["tokens"],
        2,
        "one sign-in for all eight"
    );
    h.shutdown().await;
}
