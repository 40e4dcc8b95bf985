//! Heartland Retail webhooks are unsigned, so the engine trusts the record it fetches back from
//! the Retail API, not the webhook body. And when Retail is down, the circuit opens, jobs park,
//! and they finish once it is back, with nothing lost.

use heartsuite::config::{Config, NetSuiteConfig, RetailConfig, SecretResolver, SourceConfig, SourceKind};
use heartsuite::server::{self, StartOptions};
use heartsuite_core::{Clock, Secret, SystemClock};
use heartsuite_heartland::RetailClient;
use heartsuite_heartland::retail::CustomerInput;
use heartsuite_sandbox::heartland::{self, FaultSpec, Service};
use heartsuite_store::JobState;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "fetch-back-test-token-0123456789";

#[tokio::test]
async fn retail_records_are_fetched_back_and_downtime_parks_then_completes() {
    let gp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hl = heartland::spawn(gp, rt, heartland::Config::default()).await.unwrap();
    let ns_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ns = heartsuite_sandbox::netsuite::spawn(ns_l, Default::default()).await.unwrap();

    // Customers as they really are in Heartland Retail.
    let retail = RetailClient::new(heartsuite_heartland::RetailConfig::new(hl.retail_url(), Secret::new("sandbox-retail-token"))).unwrap();
    let mut ids = Vec::new();
    for i in 0..8 {
        let input = CustomerInput {
            first_name: Some(format!("Real{i}")),
            last_name: Some("Customer".into()),
            email: Some(format!("real{i}@example.com")),
            phone: None,
            custom: None,
        };
        ids.push(retail.create_customer(&input).await.unwrap());
    }

    let dir = std::env::temp_dir().join(format!("hs-fetch-{}-{:x}", std::process::id(), rand::random::<u32>()));
    let mut cfg = Config::default();
    cfg.server.data_dir = dir.clone();
    cfg.engine.breaker_threshold = 3;
    cfg.engine.breaker_open_secs = 1;
    cfg.flows.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/flows").into();
    cfg.sources.insert(
        "retail".into(),
        SourceConfig { kind: SourceKind::Retail, secrets: vec![], app_key: None, token: Some(TOKEN.into()), tolerance_secs: 300 },
    );
    cfg.retail = Some(RetailConfig { base_url: hl.retail_url(), token: "sandbox-retail-token".into() });
    cfg.netsuite = Some(NetSuiteConfig { concurrency: 5, timeout_secs: 10, ..NetSuiteConfig::sandbox(ns.base_url()) });
    // Fast retries so the test is short: transient 1 s doubling to 2 s.
    let mut transient = heartsuite_engine::policy::ClassPolicy::default_for(heartsuite_core::ErrorClass::Transient);
    transient.base_delay = Duration::from_secs(1);
    transient.max_delay = Duration::from_secs(2);
    cfg.retry.insert("transient".into(), transient);

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets = SecretResolver::new(&cfg);
    let store = heartsuite::cli::open_store(&cfg).await.unwrap();
    let (alerts, breakers) = heartsuite::cli::engine_parts(&cfg, clock.clone(), &secrets).unwrap();
    let wired = heartsuite::wiring::build(&cfg, &secrets, clock.clone(), breakers.clone(), Some(store.clone())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut worker = heartsuite::cli::worker_config(&cfg);
    worker.idle_poll = Duration::from_millis(50);
    let running = server::start(
        listener,
        StartOptions {
            store: store.clone(),
            clock: clock.clone(),
            sources: heartsuite::sources::build(&cfg, &secrets).unwrap(),
            router: wired.router.clone(),
            handler: wired.handler.clone(),
            alerts: alerts.clone(),
            breakers: breakers.clone(),
            worker: Some(worker),
            admin_token: None,
            max_body: 1 << 20,
            max_batch: 64,
        },
    )
    .await
    .unwrap();

    // Retail goes down; the webhooks arrive anyway, each claiming a forged e-mail.
    hl.sandbox().set_faults(&FaultSpec { downtime_secs: Some(4), ..Default::default() }, Service::Retail).unwrap();
    let http = reqwest::Client::new();
    for id in &ids {
        let forged = json!({"id": id, "first_name": "Forged", "last_name": "Name", "email": "attacker@evil.example", "updated_at": "2026-11-26T10:00:00Z"});
        let r = http.post(format!("http://{}/hooks/retail/{TOKEN}", running.addr)).json(&forged).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !alerts.sent().iter().any(|a| a.contains("circuit for retail opened")) {
        assert!(Instant::now() < deadline, "the retail circuit should open: {:?}", alerts.sent());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts: std::collections::BTreeMap<_, _> = store.job_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts[&JobState::Succeeded], 0);
    assert_eq!(counts[&JobState::Dead], 0, "downtime must not dead-letter anything");

    // Retail comes back (the downtime ends by itself): every job finishes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c: std::collections::BTreeMap<_, _> = store.job_counts().await.unwrap().into_iter().collect();
        if c[&JobState::Succeeded] == ids.len() as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not finish after recovery: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alerts.sent().iter().any(|a| a.contains("circuit for retail closed")), "{:?}", alerts.sent());

    // NetSuite has the customers as Retail knows them, not as the webhooks claimed.
    let nsc = heartsuite_netsuite::NetSuiteClient::new(
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
    for (i, id) in ids.iter().enumerate() {
        let c: serde_json::Value = nsc.get("customer", &format!("eid:hs-cust-{id}"), false).await.unwrap();
        assert_eq!(c["email"], json!(format!("real{i}@example.com")), "{c}");
        assert_eq!(c["firstName"], json!(format!("Real{i}")), "{c}");
    }
    running.shutdown().await;
    ns.shutdown().await;
    hl.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
