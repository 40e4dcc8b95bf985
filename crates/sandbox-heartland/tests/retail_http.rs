//! Heartland Retail over HTTP: auth, CRUD with 201 + Location, paging, `_filter`, tickets with
//! lines and payments, inventory decrement on completion, returns, webhooks to a receiver.

mod common;

use common::Retail;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn auth_items_crud_paging_and_filters() {
    let h = common::start().await;
    let rt = Retail::new(&h);
    let r = common::client()
        .get(format!("{}/items", rt.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let mut ids = Vec::new();
    for (i, price) in ["9.99", "19.99", "29.99", "39.99", "49.99"]
        .iter()
        .enumerate()
    {
        let (s, v, loc) = rt.post("/items", json!({"description": format!("Item {i}"), "price": price.parse::<Value>().unwrap(), "cost": 1.5})).await;
        assert_eq!(s, 201);
        let id = v["id"].as_i64().unwrap();
        assert_eq!(loc.as_deref(), Some(format!("/api/items/{id}").as_str()));
        assert_eq!(v["active?"], true);
        ids.push(id);
    }
    let (s, _, _) = rt.post("/items", json!({"price": 1})).await;
    assert_eq!(s, 422);
    let (s, one) = rt.get(&format!("/items/{}", ids[1])).await;
    assert_eq!(s, 200);
    // Money is an exact JSON decimal number.
    assert_eq!(one["price"].to_string(), "19.99");
    let (s, up) = rt
        .put(
            &format!("/items/{}", ids[1]),
            json!({"price": 17.5, "active?": false, "custom": {"color": "red"}}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(up["price"].to_string(), "17.5");
    assert_eq!(up["active?"], false);
    assert_eq!(up["id"], ids[1]);

    let (_, p) = rt.get("/items?per_page=2&page=3").await;
    assert_eq!(
        (p["total"].as_i64(), p["pages"].as_i64()),
        (Some(5), Some(3))
    );
    assert_eq!(p["results"].as_array().unwrap().len(), 1);
    let (_, p) = rt.get("/items?per_page=all").await;
    assert_eq!(p["results"].as_array().unwrap().len(), 5);

    let enc = |f: Value| {
        url::form_urlencoded::byte_serialize(f.to_string().as_bytes()).collect::<String>()
    };
    let (_, f) = rt
        .get(&format!(
            "/items?_filter={}",
            enc(json!({"price": {"$gte": 29.99, "$lte": 40}}))
        ))
        .await;
    assert_eq!(f["total"], 2);
    let (_, f) = rt
        .get(&format!(
            "/items?_filter={}",
            enc(json!({"price": {"$gt": 29.99}}))
        ))
        .await;
    assert_eq!(f["total"], 2);
    let (_, f) = rt
        .get(&format!(
            "/items?_filter={}",
            enc(json!({"id": {"$in": [ids[0], ids[4]]}}))
        ))
        .await;
    assert_eq!(f["total"], 2);
    let (_, f) = rt
        .get(&format!(
            "/items?_filter={}",
            enc(json!({"active?": {"$eq": false}}))
        ))
        .await;
    assert_eq!(f["results"][0]["id"], ids[1]);
    let (_, f) = rt
        .get(&format!(
            "/items?_filter={}",
            enc(json!({"custom.color": "red"}))
        ))
        .await;
    assert_eq!(f["total"], 1);
    let (_, f) = rt.get("/items?_filter[description][$eq]=Item%203").await;
    assert_eq!(f["results"][0]["id"], ids[3]);
    let (_, f) = rt
        .get(&format!(
            "/items?sort[]=price,desc&_filter={}",
            enc(json!({"price": {"$lte": 100}}))
        ))
        .await;
    assert_eq!(f["results"][0]["id"], ids[4]);
    let (s, _) = rt.get("/items?_filter=%7Bbad").await;
    assert_eq!(s, 400);
    let (s, _) = rt.get("/items/999").await;
    assert_eq!(s, 404);
    h.shutdown().await;
}

#[tokio::test]
async fn customers_addresses_and_locations() {
    let h = common::start().await;
    let rt = Retail::new(&h);
    let (s, c, loc) = rt
        .post(
            "/customers",
            json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(s, 201);
    let cid = c["id"].as_i64().unwrap();
    assert!(loc.unwrap().ends_with(&cid.to_string()));
    let (s, _, _) = rt.post(&format!("/customers/{cid}/addresses"), json!({"address_1": "1 Main", "city": "Chicago", "state": "IL", "zip": "60601", "country": "US"})).await;
    assert_eq!(s, 201);
    let (_, a) = rt.get(&format!("/customers/{cid}/addresses")).await;
    assert_eq!(
        (a["total"].as_i64(), a["results"][0]["city"].as_str()),
        (Some(1), Some("Chicago"))
    );
    let (s, u) = rt
        .put(
            &format!("/customers/{cid}"),
            json!({"email": "ada@analytical.example"}),
        )
        .await;
    assert_eq!(
        (s, u["email"].as_str()),
        (200, Some("ada@analytical.example"))
    );
    let (s, l, _) = rt
        .post(
            "/locations",
            json!({"name": "Loop", "time_zone": "America/Chicago"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, ls) = rt.get("/locations").await;
    assert_eq!(ls["results"][0]["id"], l["id"]);
    h.shutdown().await;
}

#[tokio::test]
async fn ticket_lines_payments_completion_decrements_inventory_and_returns_restock() {
    let h = common::start().await;
    let rt = Retail::new(&h);
    let (_, loc, _) = rt
        .post(
            "/locations",
            json!({"name": "Loop", "time_zone": "America/Chicago"}),
        )
        .await;
    let loc = loc["id"].as_i64().unwrap();
    let (_, item, _) = rt
        .post(
            "/items",
            json!({"description": "Mug", "price": 12.5, "cost": 4}),
        )
        .await;
    let item = item["id"].as_i64().unwrap();
    h.sandbox().set_inventory(item, loc, 10.into());

    let (s, t, tloc) = rt
        .post("/sales/tickets", json!({"source_location_id": loc}))
        .await;
    assert_eq!(s, 201);
    let tid = t["id"].as_i64().unwrap();
    assert_eq!(
        tloc.as_deref(),
        Some(format!("/api/sales/tickets/{tid}").as_str())
    );
    assert_eq!(t["type"], "Ticket");
    let (s, _, _) = rt
        .post(
            &format!("/sales/tickets/{tid}/lines"),
            json!({"type": "ItemLine", "item_id": item, "qty": 3}),
        )
        .await;
    assert_eq!(s, 201);
    rt.post(
        &format!("/sales/tickets/{tid}/lines"),
        json!({"type": "TaxLine", "value": 3.84, "description": "Tax"}),
    )
    .await;
    let (_, t) = rt.get(&format!("/sales/tickets/{tid}")).await;
    assert_eq!(
        (
            t["total"].to_string(),
            t["total_tax"].to_string(),
            t["balance"].to_string()
        ),
        ("41.34".into(), "3.84".into(), "41.34".into())
    );
    // Not paid: cannot complete.
    let (s, _) = rt
        .put(
            &format!("/sales/tickets/{tid}"),
            json!({"status": "complete"}),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _, _) = rt
        .post(
            &format!("/sales/tickets/{tid}/payments"),
            json!({"type": "CashPayment", "amount": 41.34}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, done) = rt
        .put(
            &format!("/sales/tickets/{tid}"),
            json!({"status": "complete"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (done["completed?"].as_bool(), done["status"].as_str()),
        (Some(true), Some("Complete"))
    );
    assert!(done["local_completed_at"].as_str().unwrap().len() == 19);
    assert_eq!(h.sandbox().inventory_qty(item, loc), 7.into());
    let (_, inv) = rt
        .get(&format!(
            "/inventory/values?item_id={item}&location_id={loc}"
        ))
        .await;
    assert_eq!(inv["total"], 1);
    assert_eq!(inv["results"][0]["qty_on_hand"].to_string(), "7");
    let (s, _, _) = rt
        .post(
            &format!("/sales/tickets/{tid}/lines"),
            json!({"type": "ItemLine", "item_id": item}),
        )
        .await;
    assert_eq!(s, 422, "a complete ticket takes no more lines");
    let (_, lines) = rt.get(&format!("/sales/tickets/{tid}/lines")).await;
    assert_eq!(lines["total"], 2);
    assert_eq!(lines["results"][0]["value"].to_string(), "37.5");

    // A return puts one back.
    let (_, r, _) = rt
        .post(
            "/sales/tickets",
            json!({"type": "Return", "source_location_id": loc, "parent_transaction_id": tid}),
        )
        .await;
    let rid = r["id"].as_i64().unwrap();
    rt.post(
        &format!("/sales/tickets/{rid}/lines"),
        json!({"type": "ItemLine", "item_id": item, "qty": -1}),
    )
    .await;
    rt.post(
        &format!("/sales/tickets/{rid}/payments"),
        json!({"type": "CashPayment", "amount": -12.5}),
    )
    .await;
    let (s, done) = rt
        .put(
            &format!("/sales/tickets/{rid}"),
            json!({"status": "complete"}),
        )
        .await;
    assert_eq!((s, done["total"].to_string()), (200, "-12.5".into()));
    assert_eq!(h.sandbox().inventory_qty(item, loc), 8.into());

    let enc = |f: Value| {
        url::form_urlencoded::byte_serialize(f.to_string().as_bytes()).collect::<String>()
    };
    let (_, rets) = rt
        .get(&format!(
            "/sales/tickets?_filter={}",
            enc(json!({"type": {"$eq": "Return"}}))
        ))
        .await;
    assert_eq!(rets["total"], 1);
    let (s, e) = rt
        .get(&format!(
            "/sales/tickets?_filter={}",
            enc(json!({"completed?": true}))
        ))
        .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_request")));
    let (_, pays) = rt.get("/payments").await;
    assert_eq!(pays["total"], 2);
    h.shutdown().await;
}

#[tokio::test]
async fn webhooks_deliver_bare_resources_and_retry() {
    let h = common::start_with(heartsuite_sandbox_heartland::Config {
        webhook_backoff: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let rt = Retail::new(&h);
    let rx = common::receiver(200).await;
    let (s, hook, _) = rt.post("/webhooks", json!({"url": rx.url, "events": ["item_created", "item_updated", "customer_created", "sales_transaction_completed"]})).await;
    assert_eq!(s, 201);
    let (_, hooks) = rt.get("/webhooks").await;
    assert_eq!(hooks["total"], 1);
    let (_, item, _) = rt
        .post("/items", json!({"description": "Pin", "price": 5}))
        .await;
    rt.put(&format!("/items/{}", item["id"]), json!({"price": 6}))
        .await;
    rt.post(
        "/customers",
        json!({"first_name": "Bo", "email": "bo@example.com"}),
    )
    .await;
    let got = rx.got.clone();
    assert!(
        common::eventually(|| {
            let g = got.clone();
            async move { g.lock().await.len() >= 3 }
        })
        .await
    );
    {
        let got = rx.got.lock().await;
        let bodies: Vec<Value> = got
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect();
        // Bare resources, no envelope, no signature header.
        assert!(
            bodies
                .iter()
                .any(|b| b["id"] == item["id"] && b["price"] == 6)
        );
        assert!(
            bodies
                .iter()
                .any(|b| b["first_name"] == "Bo" && b["email"] == "bo@example.com")
        );
        assert!(got.iter().all(|(h, _)| h.get("x-gp-signature").is_none()));
    }
    let (s, _, _) = rt
        .send(Method::DELETE, &format!("/webhooks/{}", hook["id"]), None)
        .await;
    assert_eq!(s, 204);
    rt.post("/items", json!({"description": "After delete", "price": 5}))
        .await;

    // A receiver that always fails gets the first attempt plus the configured retries.
    let bad = common::receiver(500).await;
    rt.post(
        "/webhooks",
        json!({"url": bad.url, "events": ["customer_created"]}),
    )
    .await;
    rt.post("/customers", json!({"first_name": "Cy"})).await;
    let got = bad.got.clone();
    assert!(
        common::eventually(|| {
            let g = got.clone();
            async move { g.lock().await.len() >= 4 }
        })
        .await
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(bad.got.lock().await.len(), 4);
    assert_eq!(
        rx.got.lock().await.len(),
        3,
        "nothing delivered after DELETE"
    );
    assert!(common::eventually(|| async { h.sandbox().stats().webhooks_failed == 1 }).await);
    h.shutdown().await;
}
