//! Black-box tests of webhook ingress against the real server and a fresh SQLite database.

mod common;

use common::*;
use heartsuite_engine::ingress;
use heartsuite_store::JobState;
use serde_json::{Value, json};
use std::sync::Arc;

async fn app() -> TestApp {
    spawn_app(Arc::new(StaticRouter(vec!["flow.a".into(), "flow.b".into()])), Arc::new(Noop), false).await
}

#[tokio::test]
async fn signed_event_is_accepted_once_and_a_redelivery_changes_nothing() {
    let app = app().await;
    let body = r#"{"event_id":"order-1","type":"order.created","total":"10.00"}"#;
    let r = app.post_signed("shop", body, SHOP_SECRET).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "accepted");
    assert_eq!(v["jobs"], 2);
    let event_id = v["event_id"].as_i64().unwrap();

    let r = app.post_signed("shop", body, SHOP_SECRET).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"status": "duplicate", "event_id": event_id}));

    assert_eq!(app.store.event_count().await.unwrap(), 1);
    let pending = app.store.jobs(Some(JobState::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 2, "one job per flow, none added by the redelivery");
    let ev = app.store.event(event_id).await.unwrap().unwrap();
    assert_eq!(ev.kind, "shop.order.created");
    assert_eq!(ev.source_event_key, "order-1");
    app.stop().await;
}

#[tokio::test]
async fn bad_signature_is_refused_and_nothing_is_stored() {
    let app = app().await;
    let r = app.post_signed("shop", r#"{"event_id":"x"}"#, "wrong-secret").await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    // Unsigned.
    let r = app.http.post(app.url("/hooks/shop")).body(r#"{"event_id":"y"}"#).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("missing"));
    // A GP-API notification signed with another key.
    let body = r#"{"id":"TRN_1","status":"CAPTURED"}"#;
    let r = app
        .http
        .post(app.url("/hooks/gpapi"))
        .header("X-GP-Signature", ingress::gp_signature("not-the-key", body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Retail with the wrong path token.
    let r = app.http.post(app.url("/hooks/retail/guess")).body(r#"{"id":1,"type":"Ticket"}"#).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(app.store.event_count().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn card_numbers_are_masked_before_the_event_is_stored() {
    let app = app().await;
    let body = r#"{"event_id":"o-2","payment":{"card":"4263 9700 0000 5262","note":"call 555-0100"},"raw":5425230000004415}"#;
    let r = app.post_signed("shop", body, SHOP_SECRET).await;
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["event_id"].as_i64().unwrap();
    let ev = app.store.event(id).await.unwrap().unwrap();
    let text = ev.payload.to_string();
    assert!(!text.contains("4263970000005262") && !text.contains("4263 9700 0000 5262"), "{text}");
    assert!(!text.contains("5425230000004415"), "{text}");
    assert_eq!(ev.payload["payment"]["card"], "426397******5262");
    assert_eq!(ev.payload["raw"], "542523******4415");
    assert_eq!(ev.payload["payment"]["note"], "call 555-0100");
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_refused_with_a_reason() {
    let app = app().await;
    let r = app.post_signed("shop", r#"{"event_id": "x", "total": }"#, SHOP_SECRET).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_payload");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("not valid JSON") && msg.contains("line 1, column"), "{msg}");

    let r = app.post_signed("shop", r#"{"type":"order.created"}"#, SHOP_SECRET).await;
    assert_eq!(r.status(), 400);
    let msg = r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("event_id"), "{msg}");
    assert_eq!(app.store.event_count().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn unknown_sources_and_oversized_bodies_are_refused() {
    let app = app().await;
    let r = app.http.post(app.url("/hooks/nope")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "unknown_source");
    let big = format!(r#"{{"event_id":"big","pad":"{}"}}"#, "x".repeat(70 * 1024));
    let r = app.post_signed("shop", &big, SHOP_SECRET).await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "payload_too_large");
    assert_eq!(app.store.event_count().await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn gpapi_and_retail_sources_name_their_events() {
    let app = app().await;
    let body = r#"{"id":"TRN_42","status":"CAPTURED","type":"SALE","amount":"1999"}"#;
    let r = app
        .http
        .post(app.url("/hooks/gpapi"))
        .header("X-GP-Signature", ingress::gp_signature(GP_KEY, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["event_id"].as_i64().unwrap();
    assert_eq!(app.store.event(id).await.unwrap().unwrap().kind, "gpapi.transaction.captured");

    let ticket = r#"{"id":1001,"type":"Ticket","completed_at":"2026-11-26T12:00:00Z","total":12.5}"#;
    let r = app.http.post(app.url(&format!("/hooks/retail/{RETAIL_TOKEN}"))).body(ticket).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["event_id"].as_i64().unwrap();
    let ev = app.store.event(id).await.unwrap().unwrap();
    assert_eq!(ev.kind, "retail.ticket.completed");
    // Money in Retail payloads is a decimal; it must survive exactly (no float round trip).
    assert_eq!(ev.payload["total"].to_string(), "12.5");
    app.stop().await;
}

#[tokio::test]
async fn health_metrics_and_admin_api() {
    let app = app().await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    app.post_signed("shop", r#"{"event_id":"m1"}"#, SHOP_SECRET).await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("heartsuite_events_received_total"), "{text}");
    assert!(text.contains("heartsuite_queue_depth 2"), "{text}");
    assert!(text.contains("heartsuite_dlq_size 0"), "{text}");

    let r = app.http.get(app.url("/admin/jobs")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app.http.get(app.url("/admin/jobs?state=pending")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["jobs"].as_array().unwrap().len(), 2);
    let r = app.http.get(app.url("/admin/audit/verify")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["intact"], true);
    app.stop().await;
}
