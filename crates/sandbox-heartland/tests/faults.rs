//! The control API and fault injection.

mod common;

use serde_json::{Value, json};

async fn control(
    h: &heartsuite_sandbox_heartland::SandboxHandle,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = common::client()
        .request(method, format!("http://{}/_sandbox{path}", h.gpapi_addr))
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn downtime_gives_503_then_recovers() {
    let h = common::start().await;
    let gp = common::Gp::new(&h).await;
    let (s, _) = control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"downtime_ms": 400}),
    )
    .await;
    assert_eq!(s, 200);
    let r = common::client()
        .get(format!("{}/transactions", h.gpapi_url()))
        .bearer_auth(&gp.token)
        .header("X-GP-Version", "2021-03-22")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_code"],
        "SYSTEM_ERROR_DOWNSTREAM"
    );
    // Retail is a separate service: still up.
    let (s, _) = common::Retail::new(&h).get("/items").await;
    assert_eq!(s, 200);
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    let (s, _) = gp.get("/transactions").await;
    assert_eq!(s, 200);
    let stats = h.sandbox().stats();
    assert_eq!(stats.faults_503, 1);
    assert_eq!(stats.responses_by_status.get(&503), Some(&1));
    h.shutdown().await;
}

#[tokio::test]
async fn rate_limit_429_with_retry_after_on_retail() {
    let h = common::start().await;
    let (s, _) = control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"service": "retail", "rate_limit_requests": 2, "retry_after_secs": 7}),
    )
    .await;
    assert_eq!(s, 200);
    let rt = common::Retail::new(&h);
    for _ in 0..2 {
        let r = rt
            .http
            .get(format!("{}/items", rt.base))
            .bearer_auth("sandbox-retail-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers().get("retry-after").unwrap(), "7");
    }
    let (s, _) = rt.get("/items").await;
    assert_eq!(s, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn latency_dropped_webhooks_delayed_deposits_stats_and_reset() {
    let h = common::start().await;
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"latency_ms": 150}),
    )
    .await;
    let t0 = std::time::Instant::now();
    let gp = common::Gp::new(&h).await;
    assert!(t0.elapsed() >= std::time::Duration::from_millis(150));
    control(&h, reqwest::Method::DELETE, "/faults", json!({})).await;

    // Dropped webhooks.
    let rx = common::receiver(200).await;
    let rt = common::Retail::new(&h);
    rt.post(
        "/webhooks",
        json!({"url": rx.url, "events": ["customer_created"]}),
    )
    .await;
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"drop_webhooks": 1}),
    )
    .await;
    rt.post("/customers", json!({"first_name": "Dropped"}))
        .await;
    rt.post("/customers", json!({"first_name": "Delivered"}))
        .await;
    let got = rx.got.clone();
    assert!(
        common::eventually(|| {
            let g = got.clone();
            async move { !g.lock().await.is_empty() }
        })
        .await
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let got = rx.got.lock().await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].1).unwrap()["first_name"],
        "Delivered"
    );
    assert_eq!(h.sandbox().stats().webhooks_dropped, 1);

    // Delayed deposits, then released.
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"delay_deposits": true}),
    )
    .await;
    gp.post(
        "/transactions",
        common::sale("4263970000005262", "1000", "AUTO"),
    )
    .await;
    let (_, closed) = control(&h, reqwest::Method::POST, "/batches/close", json!({})).await;
    assert_eq!(closed[0]["sales_amount"], 1000);
    let (_, deps) = control(
        &h,
        reqwest::Method::POST,
        "/deposits/fund",
        json!({"date": "2025-03-15"}),
    )
    .await;
    assert_eq!(deps[0]["status"], "DELAYED");
    let (_, list) = gp.get("/settlement/transactions").await;
    assert_eq!(list["transactions"][0]["deposit_status"], "DELAYED");
    assert_eq!(list["transactions"][0]["status"], "BATCHED");
    control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"delay_deposits": false}),
    )
    .await;
    let (_, deps) = control(&h, reqwest::Method::POST, "/deposits/fund", json!({})).await;
    assert_eq!(deps[0]["status"], "FUNDED");
    let (_, list) = gp.get("/settlement/transactions").await;
    assert_eq!(list["transactions"][0]["status"], "FUNDED");

    let (s, stats) = control(&h, reqwest::Method::GET, "/stats", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(stats["counts"]["transactions"], 1);
    assert!(stats["gpapi_requests"].as_u64().unwrap() >= 4);
    let (s, _) = control(&h, reqwest::Method::POST, "/reset", json!({})).await;
    assert_eq!(s, 200);
    let (_, stats) = control(&h, reqwest::Method::GET, "/stats", json!({})).await;
    assert_eq!(stats["counts"]["transactions"], 0);
    // Reset forgets tokens too.
    let (s, _) = gp.get("/transactions").await;
    assert_eq!(s, 401);
    let (s, _) = control(
        &h,
        reqwest::Method::POST,
        "/faults",
        json!({"service": "mars"}),
    )
    .await;
    assert_eq!(s, 400);
    h.shutdown().await;
}

#[tokio::test]
async fn control_generate_and_complete_ticket_and_inventory() {
    let h = common::start().await;
    let (s, v) = control(
        &h,
        reqwest::Method::POST,
        "/generate",
        json!({"seed": 3, "tickets": 50, "web_orders": 5}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["summary"]["tickets"], 50);
    let (s, v) = control(
        &h,
        reqwest::Method::PUT,
        "/inventory",
        json!({"item_id": 100001, "location_id": 100001, "qty": 5}),
    )
    .await;
    assert_eq!((s, v["qty"].to_string()), (200, "5".to_string()));
    let (_, v) = control(
        &h,
        reqwest::Method::POST,
        "/inventory/adjust",
        json!({"item_id": 100001, "location_id": 100001, "delta": 2.5}),
    )
    .await;
    assert_eq!(v["qty"].to_string(), "7.5");
    let (s, _) = control(
        &h,
        reqwest::Method::POST,
        "/tickets/999999/complete",
        json!({}),
    )
    .await;
    assert_eq!(s, 404);
    h.shutdown().await;
}
