//! The GP-API deposit poller against the Heartland sandbox: every funded deposit becomes one
//! inbox event with its transactions, once, however often the poller runs.

mod common;

use common::StaticRouter;
use heartsuite_core::{Secret, SystemClock};
use heartsuite_heartland::{GpApiClient, GpApiConfig};
use heartsuite_sandbox::heartland;

#[tokio::test]
async fn funded_deposits_become_events_exactly_once() {
    let gp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sb = heartland::spawn(gp, rt, heartland::Config::default()).await.unwrap();
    let day = sb
        .sandbox()
        .generate_day(&heartland::DayOptions { seed: 3, tickets: 120, web_orders: 10, emit_webhooks: false, ..Default::default() })
        .unwrap();
    let expected = day.summary.deposits.len();
    assert!(expected > 0, "the generated day funds at least one deposit");

    let dir = common::fresh_dir();
    let store = heartsuite_store::open(&format!("sqlite://{}", dir.join("p.db").display())).await.unwrap();
    let client = GpApiClient::new(GpApiConfig::new("sandbox-app-id", Secret::new("sandbox-app-key")).with_base_url(sb.gpapi_url())).unwrap();
    let router = StaticRouter(vec!["settlement".into()]);
    let clock = SystemClock;

    let first = heartsuite::pollers::poll_gp_deposits_once(&store, &client, &router, &clock).await.unwrap();
    assert_eq!(first, expected);
    let again = heartsuite::pollers::poll_gp_deposits_once(&store, &client, &router, &clock).await.unwrap();
    assert_eq!(again, 0, "a second poll finds nothing new");
    assert_eq!(store.event_count().await.unwrap(), expected as i64);
    assert!(store.cursor(heartsuite::pollers::GP_DEPOSITS_CURSOR).await.unwrap().is_some());

    // Each event carries its deposit and transactions; the deposit id is the inbox key.
    for d in &day.summary.deposits {
        let ev = store.event_by_key("gpapi-poller", &d.id).await.unwrap().expect("event for every funded deposit");
        assert_eq!(ev.kind, "gpapi.deposit.funded");
        assert!(ev.payload["transactions"].as_array().is_some_and(|t| !t.is_empty()), "{}", ev.payload);
    }
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn netsuite_changes_become_events_once_and_edits_again() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ns = heartsuite_sandbox::netsuite::spawn(l, Default::default()).await.unwrap();
    let client = heartsuite_netsuite::NetSuiteClient::new(
        heartsuite_netsuite::Config::new(
            "1234567_SB1",
            heartsuite_netsuite::Auth::Tba {
                consumer_key: Secret::new("sandbox-consumer-key"),
                consumer_secret: Secret::new("sandbox-consumer-secret"),
                token_id: Secret::new("sandbox-token-id"),
                token_secret: Secret::new("sandbox-token-secret"),
            },
        )
        .with_base_url(ns.base_url()),
    )
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = serde_json::json!({"companyName": format!("Polled {i}"), "subsidiary": {"id": "1"}});
        ids.push(client.upsert("customer", &format!("hs-poll-{i}"), &body).await.unwrap());
    }
    let dir = common::fresh_dir();
    let store = heartsuite_store::open(&format!("sqlite://{}", dir.join("n.db").display())).await.unwrap();
    let router = StaticRouter(vec![]);
    let clock = SystemClock;
    let poll = || heartsuite::pollers::poll_netsuite_once(&store, &client, "customer", &router, &clock);
    assert_eq!(poll().await.unwrap(), 3);
    assert_eq!(poll().await.unwrap(), 0, "nothing changed: nothing new");
    // An edit (even within the same second) is a new event.
    client.update("customer", &ids[1], &serde_json::json!({"email": "edited@example.com"}), &[]).await.unwrap();
    assert_eq!(poll().await.unwrap(), 1);
    assert_eq!(store.event_count().await.unwrap(), 4);
    ns.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
