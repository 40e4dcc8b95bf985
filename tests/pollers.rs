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
