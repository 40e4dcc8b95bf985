//! Flow 6, items and stock, end to end: the NetSuite sandbox's user-event emitter posts item
//! events to the real server, the engine reads each item back by id, and the flow
//! `netsuite_item_to_retail` creates or updates the Heartland Retail item and sets its stock per
//! location. Then the drift check (library and `heartsuite drift`) names a quantity changed behind
//! our back, per item and location, and an item that exists only in Retail.

use heartsuite::config::{Config, NetSuiteConfig, RetailConfig, SecretResolver, SourceConfig, SourceKind};
use heartsuite::server::{self, StartOptions};
use heartsuite_core::{Clock, Secret, SystemClock};
use heartsuite_heartland::retail::{InventoryQuery, ItemInput};
use heartsuite_heartland::{ListQuery, RetailClient};
use heartsuite_netsuite::NetSuiteClient;
use heartsuite_sandbox::heartland;
use heartsuite_store::JobState;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NS_SECRET: &str = "items-stock-netsuite-secret";

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn netsuite_client(base: &str) -> NetSuiteClient {
    NetSuiteClient::new(
        heartsuite_netsuite::Config::new(
            "1234567_SB1",
            heartsuite_netsuite::Auth::Tba {
                consumer_key: Secret::new("sandbox-consumer-key"),
                consumer_secret: Secret::new("sandbox-consumer-secret"),
                token_id: Secret::new("sandbox-token-id"),
                token_secret: Secret::new("sandbox-token-secret"),
            },
        )
        .with_base_url(base),
    )
    .unwrap()
}

/// Retail's available quantity of `item` by location id.
async fn retail_stock(retail: &RetailClient, item: i64) -> BTreeMap<i64, Decimal> {
    let rows = retail.inventory_values(&InventoryQuery { item_id: Some(item), ..Default::default() }).await.unwrap();
    rows.iter().filter_map(|r| Some((r.location_id?, r.qty_available?.normalize()))).filter(|(_, q)| !q.is_zero()).collect()
}

async fn wait_jobs_done(store: &heartsuite_store::DynStore, at_least: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c: BTreeMap<_, _> = store.job_counts().await.unwrap().into_iter().collect();
        let get = |s| c.get(&s).copied().unwrap_or(0);
        if get(JobState::Dead) > 0 {
            let dead = store.jobs(Some(JobState::Dead), 10).await.unwrap();
            panic!("a job was dead-lettered: {:?}", dead.iter().map(|j| j.last_error.clone()).collect::<Vec<_>>());
        }
        let open = get(JobState::Pending) + get(JobState::Running) + get(JobState::Retrying);
        if open == 0 && get(JobState::Succeeded) >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "jobs did not finish: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn inventory_adjustment(ns: &NetSuiteClient, item: &str, lines: &[(&str, i64)]) {
    let items: Vec<Value> = lines.iter().map(|(loc, qty)| json!({"item": {"id": item}, "location": {"id": loc}, "adjustQtyBy": qty})).collect();
    ns.create("inventoryAdjustment", &json!({"account": {"id": "11"}, "subsidiary": {"id": "1"}, "adjLocation": {"id": lines[0].0}, "inventory": {"items": items}}))
        .await
        .unwrap();
}

#[tokio::test]
async fn netsuite_items_and_stock_reach_retail_once_and_drift_is_reported_per_item_and_location() {
    // Heartsuite's address first: the NetSuite sandbox posts its record events there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rt = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hl = heartland::spawn(gp, rt, heartland::Config::default()).await.unwrap();
    let ns_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut sink = heartsuite_sandbox::netsuite::EventSink::new(format!("http://{addr}/hooks/netsuite"), NS_SECRET);
    sink.record_types = vec!["inventoryItem".into(), "inventoryAdjustment".into()];
    let ns_sb = heartsuite_sandbox::netsuite::spawn(ns_l, heartsuite_sandbox::netsuite::Config { emit_events_to: Some(sink), ..Default::default() })
        .await
        .unwrap();
    let ns = netsuite_client(&ns_sb.base_url());
    let retail = RetailClient::new(heartsuite_heartland::RetailConfig::new(hl.retail_url(), Secret::new("sandbox-retail-token"))).unwrap();

    // Stores in Retail named like NetSuite's locations 1 "Main Store" and 3 "Outlet"; NetSuite's
    // "Warehouse" (2) has no store, so it is neither pushed nor compared.
    let main_store = json!({"name": "Main Store"});
    let outlet = json!({"name": "Outlet"});
    let http = reqwest::Client::new();
    let mut store_ids = Vec::new();
    for body in [main_store, outlet] {
        let r = http.post(format!("{}/locations", hl.retail_url())).bearer_auth("sandbox-retail-token").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        store_ids.push(v["id"].as_i64().unwrap());
    }
    let (main_id, outlet_id) = (store_ids[0], store_ids[1]);

    // Only this flow, so the test does not depend on other flows' files.
    let dir = std::env::temp_dir().join(format!("hs-items-{}-{:x}", std::process::id(), rand::random::<u32>()));
    let flows_dir = dir.join("flows");
    std::fs::create_dir_all(&flows_dir).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/flows/netsuite_item_to_retail.toml"), flows_dir.join("netsuite_item_to_retail.toml")).unwrap();
    let mut cfg = Config::default();
    cfg.server.data_dir = dir.clone();
    cfg.flows.dir = flows_dir.clone();
    cfg.sources.insert(
        "netsuite".into(),
        SourceConfig { kind: SourceKind::Netsuite, secrets: vec![NS_SECRET.into()], app_key: None, token: None, tolerance_secs: 300 },
    );
    cfg.retail = Some(RetailConfig { base_url: hl.retail_url(), token: "sandbox-retail-token".into() });
    cfg.netsuite = Some(NetSuiteConfig { concurrency: 5, timeout_secs: 10, ..NetSuiteConfig::sandbox(ns_sb.base_url()) });

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets = SecretResolver::new(&cfg);
    let store = heartsuite::cli::open_store(&cfg).await.unwrap();
    let (alerts, breakers) = heartsuite::cli::engine_parts(&cfg, clock.clone(), &secrets).unwrap();
    let wired = heartsuite::wiring::build(&cfg, &secrets, clock.clone(), breakers.clone(), Some(store.clone())).unwrap();
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

    // 1. A new NetSuite item: created in Retail with SKU, description and price; no stock yet.
    let item = ns
        .create("inventoryItem", &json!({"itemId": "MUG-BLUE", "displayName": "Blue Mug", "basePrice": 12.5, "cost": 4.1}))
        .await
        .unwrap();
    wait_jobs_done(&store, 1).await;
    let found = retail.list_items(&ListQuery::filter(json!({"public_id": {"$eq": "MUG-BLUE"}}))).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let rid = found[0].id;
    assert_eq!(found[0].description.as_deref(), Some("Blue Mug"));
    assert_eq!(found[0].price, Some(dec("12.50")));
    assert_eq!(found[0].cost, Some(dec("4.10")));
    assert_eq!(found[0].track_inventory, Some(true));
    assert!(retail_stock(&retail, rid).await.is_empty());

    // The merchant's own custom field on the item survives our updates.
    let r = http.put(format!("{}/items/{rid}", hl.retail_url())).bearer_auth("sandbox-retail-token").json(&json!({"custom": {"season": "fall", "netsuite_id": item}})).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // 2. Stock arrives in NetSuite (40 at Main Store, 7 at Outlet, 100 in the Warehouse) and the
    //    item is edited (new price and name): Retail gets both.
    inventory_adjustment(&ns, &item, &[("1", 40), ("3", 7), ("2", 100)]).await;
    ns.update("inventoryItem", &item, &json!({"basePrice": 13.99, "displayName": "Blue Mug 12oz"}), &[]).await.unwrap();
    wait_jobs_done(&store, 3).await;
    let after = retail.get_item(rid).await.unwrap();
    assert_eq!(after.price, Some(dec("13.99")));
    assert_eq!(after.description.as_deref(), Some("Blue Mug 12oz"));
    assert_eq!(after.custom, Some(json!({"season": "fall", "netsuite_id": item}).as_object().unwrap().clone()));
    assert_eq!(retail_stock(&retail, rid).await, BTreeMap::from([(main_id, dec("40")), (outlet_id, dec("7"))]));

    // 3. No second item, ever: the same event delivered again is a duplicate, and the writes
    //    repeated with an empty crosswalk (a crash between Retail's answer and our record of it)
    //    find the item by SKU and the quantities already equal.
    let items_before = retail.list_items(&ListQuery::default()).await.unwrap().len();
    let intent = |target: &str, body: Value| heartsuite_flows::WriteIntent {
        target: target.into(),
        record_type: "item".into(),
        idempotency_key: format!("hs-rerun-{target}"),
        body,
        params: Default::default(),
    };
    let again = wired
        .connectors
        .execute(&intent("retail.item_upsert", json!({"public_id": "MUG-BLUE", "description": "Blue Mug 12oz", "price": "13.99"})))
        .await
        .unwrap();
    assert_eq!(again, rid.to_string());
    let stock_again = wired
        .connectors
        .execute(&intent("retail.inventory_set", json!({"netsuite_item_id": item, "retail_item_id": rid.to_string()})))
        .await
        .unwrap();
    assert_eq!(stock_again, "none", "a rerun must change no stock");
    assert_eq!(retail.list_items(&ListQuery::default()).await.unwrap().len(), items_before);
    assert_eq!(retail_stock(&retail, rid).await, BTreeMap::from([(main_id, dec("40")), (outlet_id, dec("7"))]));

    // 4. Drift: none yet. Then someone changes Outlet's count in Retail by hand and an item is
    //    made only in Retail: both are reported, the quantity per item and location.
    let stock_cfg = heartsuite::drift::StockConfig::default();
    let clean = heartsuite::drift::check(&ns, &retail, &stock_cfg).await.unwrap();
    assert!(clean.findings.is_empty(), "{:?}", clean.findings);
    assert_eq!(clean.items_checked, 1);
    assert_eq!(clean.locations.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["Main Store", "Outlet"]);

    let config_file = dir.join("heartsuite.toml");
    std::fs::write(
        &config_file,
        format!(
            "[netsuite]\naccount = \"1234567_SB1\"\nbase_url = \"{}\"\nauth = \"tba\"\nconsumer_key = \"sandbox-consumer-key\"\nconsumer_secret = \"sandbox-consumer-secret\"\ntoken_id = \"sandbox-token-id\"\ntoken_secret = \"sandbox-token-secret\"\n\n[retail]\nbase_url = \"{}\"\ntoken = \"sandbox-retail-token\"\n\n[stock.locations]\n\"1\" = {main_id}\n\"3\" = {outlet_id}\n",
            ns_sb.base_url(),
            hl.retail_url()
        ),
    )
    .unwrap();
    // The sandboxes answer on this test's runtime, so the CLI is awaited, never blocked on.
    let drift_cli = |format: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_heartsuite"))
            .args(["--config", config_file.to_str().unwrap(), "--data-dir", dir.to_str().unwrap(), "drift", "--format", format])
            .output()
    };
    let ok = drift_cli("table").await.unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("0 difference(s); 1 item(s) at 2 location(s)"), "{}", String::from_utf8_lossy(&ok.stdout));

    hl.sandbox().set_inventory(rid, outlet_id, dec("5"));
    let stray = retail
        .create_item(&ItemInput { public_id: Some("POS-ONLY".into()), description: Some("Keyed in at the till".into()), ..Default::default() })
        .await
        .unwrap();
    // A retired Retail item is not drift.
    retail
        .create_item(&ItemInput { public_id: Some("RETIRED".into()), description: Some("Old stock".into()), active: Some(false), ..Default::default() })
        .await
        .unwrap();
    let report = heartsuite::drift::check(&ns, &retail, &stock_cfg).await.unwrap();
    let got: Vec<(String, Option<String>, &str, Option<String>, Option<String>)> =
        report.findings.iter().map(|f| (f.sku.clone(), f.location.clone(), f.kind, f.netsuite.clone(), f.heartland.clone())).collect();
    assert_eq!(
        got,
        vec![
            ("MUG-BLUE".into(), Some("Outlet".into()), "quantity", Some("7".into()), Some("5".into())),
            ("POS-ONLY".into(), None, "only_in_heartland", None, Some(format!("item {stray}"))),
        ]
    );

    let out = drift_cli("json").await.unwrap();
    assert_eq!(out.status.code(), Some(1), "drift must exit 1: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["findings"][0], json!({"sku": "MUG-BLUE", "location": "Outlet", "kind": "quantity", "netsuite": "7", "heartland": "5"}));
    assert_eq!(v["findings"].as_array().unwrap().len(), 2);
    let table = String::from_utf8_lossy(&drift_cli("table").await.unwrap().stdout).to_string();
    assert!(table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["MUG-BLUE", "Outlet", "quantity", "7", "5"]), "{table}");

    // In `serve`, the scheduled check logs the drift and raises an alert.
    let stop = tokio_util::sync::CancellationToken::new();
    let task = heartsuite::drift::spawn(&heartsuite::drift::DriftConfig { every_secs: 1 }, wired.connectors.clone(), alerts.clone(), stop.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !alerts.sent().iter().any(|a| a.contains("stock drift: 2 difference(s)")) {
        assert!(Instant::now() < deadline, "no drift alert: {:?}", alerts.sent());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap();

    // 5. The next push of the item (any edit in NetSuite) puts Outlet back to NetSuite's count.
    ns.update("inventoryItem", &item, &json!({"basePrice": 14.25}), &[]).await.unwrap();
    wait_jobs_done(&store, 4).await;
    assert_eq!(retail_stock(&retail, rid).await, BTreeMap::from([(main_id, dec("40")), (outlet_id, dec("7"))]));
    assert_eq!(retail.get_item(rid).await.unwrap().price, Some(dec("14.25")));

    // 6. A count in NetSuite alone (no item edit): 3 fewer at Main Store, 2 more at Outlet.
    inventory_adjustment(&ns, &item, &[("1", -3), ("3", 2)]).await;
    wait_jobs_done(&store, 5).await;
    assert_eq!(retail_stock(&retail, rid).await, BTreeMap::from([(main_id, dec("37")), (outlet_id, dec("9"))]));
    let items = retail.list_items(&ListQuery::filter(json!({"public_id": {"$eq": "MUG-BLUE"}}))).await.unwrap();
    assert_eq!(items.len(), 1);

    running.shutdown().await;
    ns_sb.shutdown().await;
    hl.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
