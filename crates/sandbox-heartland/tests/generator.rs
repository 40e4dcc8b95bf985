//! The business-day generator: deterministic, internally consistent, and served by both APIs.

mod common;

use heartsuite_sandbox_heartland::DayOptions;
use serde_json::json;

fn small(seed: u64) -> DayOptions {
    DayOptions {
        seed,
        tickets: 400,
        web_orders: 40,
        ..Default::default()
    }
}

#[tokio::test]
async fn same_seed_same_day_different_seed_different_day() {
    let a = common::start().await;
    let b = common::start().await;
    let da = a.sandbox().generate_day(&small(7)).unwrap();
    let db = b.sandbox().generate_day(&small(7)).unwrap();
    assert_eq!(da.summary, db.summary);
    assert_eq!(da.webhooks, db.webhooks);
    b.sandbox().reset();
    let dc = b.sandbox().generate_day(&small(8)).unwrap();
    assert_ne!(
        da.summary.transaction_ids_digest,
        dc.summary.transaction_ids_digest
    );
    assert_ne!(da.summary.by_currency, dc.summary.by_currency);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn default_day_is_consistent_and_served_by_both_apis() {
    let h = common::start().await;
    let day = h.sandbox().generate_day(&DayOptions::default()).unwrap();
    let s = &day.summary;
    assert_eq!(s.tickets, 3000);
    assert_eq!(s.locations, 4);
    assert_eq!(s.cash_tickets + s.card_tickets, s.tickets);
    assert!(s.declines > 0 && s.returns > 0 && s.refunds > 0 && s.web_captured > 0);
    assert!(s.by_currency.contains_key("CAD") && s.by_currency.contains_key("USD"));
    for t in s.by_currency.values() {
        assert_eq!(t.net_sales_minor + t.tax_minor, t.gross_minor);
    }
    for brand in ["VISA", "MASTERCARD", "AMEX", "DISCOVER"] {
        assert!(s.card_by_brand["USD"][brand].count > 0, "{brand}");
    }
    // One batch and one deposit per currency; every deposit adds up to the cent and matches its batch.
    assert_eq!(s.batches.len(), 2);
    assert_eq!(s.deposits.len(), 2);
    for d in &s.deposits {
        assert_eq!(
            d.net_amount,
            d.sales_amount - d.refunds_amount - d.fees_amount - d.chargebacks_amount
        );
        assert_eq!(d.fees_by_brand.values().sum::<i64>(), d.fees_amount);
        let b = s
            .batches
            .iter()
            .find(|b| d.batch_ids.contains(&b.id))
            .unwrap();
        assert_eq!(
            (b.sales_amount, b.refunds_amount),
            (d.sales_amount, d.refunds_amount)
        );
        let cur = &s.by_currency[&d.currency];
        assert_eq!(d.sales_amount, cur.card_captured_minor);
        assert_eq!(d.refunds_amount, cur.card_refunded_minor);
    }
    assert_eq!(s.deposits[0].date, "2025-03-15");
    assert!(
        day.webhooks
            .iter()
            .filter(|w| w.event == "sales_transaction_completed")
            .count() as u64
            == s.tickets + s.returns
    );

    // GP-API serves the day.
    let gp = common::Gp::new(&h).await;
    let usd = s.deposits.iter().find(|d| d.currency == "USD").unwrap();
    let (_, st) = gp
        .get(&format!(
            "/settlement/transactions?deposit_id={}&page_size=1",
            usd.id
        ))
        .await;
    assert_eq!(
        st["total_record_count"].as_u64().unwrap() as i64,
        usd.sales_count + usd.refunds_count
    );
    let (_, dep) = gp.get(&format!("/settlement/deposits/{}", usd.id)).await;
    assert_eq!(dep["amount"], usd.net_amount.to_string());
    let (_, open) = gp
        .get("/transactions?status=PREAUTHORIZED&page_size=1")
        .await;
    assert_eq!(open["total_record_count"].as_u64(), Some(s.web_open));

    // Retail serves it too.
    let rt = common::Retail::new(&h);
    let (_, tickets) = rt.get("/sales/tickets?per_page=1").await;
    assert_eq!(tickets["total"].as_u64(), Some(s.tickets + s.returns));
    let enc = |f: serde_json::Value| {
        url::form_urlencoded::byte_serialize(f.to_string().as_bytes()).collect::<String>()
    };
    let (_, rets) = rt
        .get(&format!(
            "/sales/tickets?per_page=1&_filter={}",
            enc(json!({"type": "Return"}))
        ))
        .await;
    assert_eq!(rets["total"].as_u64(), Some(s.returns));
    let (_, locs) = rt.get("/locations").await;
    assert_eq!(locs["total"], 4);
    h.shutdown().await;
}

#[tokio::test]
async fn generated_day_reaches_registered_webhooks() {
    let h = common::start().await;
    let rx = common::receiver(200).await;
    common::Retail::new(&h)
        .post(
            "/webhooks",
            json!({"url": rx.url, "events": ["sales_transaction_completed"]}),
        )
        .await;
    let day = h
        .sandbox()
        .generate_day(&DayOptions {
            tickets: 20,
            web_orders: 0,
            return_per_mille: 0,
            ..Default::default()
        })
        .unwrap();
    let got = rx.got.clone();
    assert!(
        common::eventually(|| {
            let g = got.clone();
            async move { g.lock().await.len() >= 20 }
        })
        .await
    );
    assert_eq!(day.summary.tickets, 20);
    let first: serde_json::Value = serde_json::from_slice(&rx.got.lock().await[0].1).unwrap();
    assert_eq!(first["type"], "Ticket");
    assert_eq!(first["completed?"], true);
    h.shutdown().await;
}
