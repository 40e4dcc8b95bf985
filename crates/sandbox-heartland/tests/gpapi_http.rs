//! GP-API over HTTP: token, each operation and status transition, errors, idempotency,
//! batch close, deposits to the cent, settlement reports, status_url signatures.

mod common;

use common::{Gp, sale, secret};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

#[tokio::test]
async fn access_token_scope_credentials_and_expiry_rules() {
    let h = common::start().await;
    let http = common::client();
    let url = format!("{}/accesstoken", h.gpapi_url());
    let good = json!({"app_id": "sandbox-app-id", "nonce": "2025-03-14T10:00:00.123", "secret": secret("2025-03-14T10:00:00.123", "sandbox-app-key"), "grant_type": "client_credentials"});
    let r = http
        .post(&url)
        .header("X-GP-Version", "2021-03-22")
        .header("Content-Type", "charset=UTF-8")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["seconds_to_expire"], 86399);
    let accounts = v["scope"]["accounts"].as_array().unwrap();
    let find = |p: &str| {
        accounts
            .iter()
            .find(|a| a["id"].as_str().unwrap().starts_with(p))
            .map(|a| a["name"].as_str().unwrap().to_string())
    };
    assert_eq!(find("TRA_").as_deref(), Some("Transaction_Processing"));
    assert_eq!(find("DAA_").as_deref(), Some("Settlement Reporting"));
    assert_eq!(find("TKA_").as_deref(), Some("Tokenization"));

    let mut bad = good.clone();
    bad["secret"] = json!(secret("2025-03-14T10:00:00.123", "wrong-key"));
    let r = http
        .post(&url)
        .header("X-GP-Version", "2021-03-22")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_code"], "ACTION_NOT_AUTHORIZED");
    assert_eq!(e["detailed_error_code"], "40004");

    for (secs, status) in [(10, 400), (604801, 400), (60, 200)] {
        let mut b = good.clone();
        b["seconds_to_expire"] = json!(secs);
        let r = http
            .post(&url)
            .header("X-GP-Version", "2021-03-22")
            .json(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "seconds_to_expire {secs}");
        if status == 400 {
            assert_eq!(
                r.json::<Value>().await.unwrap()["detailed_error_code"],
                "40213"
            );
        }
    }
    // X-GP-Version is required.
    let r = http.post(&url).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_code"],
        "MANDATORY_DATA_MISSING"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn invalid_and_expired_tokens_are_not_authenticated() {
    let h = common::start().await;
    let mut gp = Gp::new(&h).await;
    let (s, _) = gp.get("/transactions").await;
    assert_eq!(s, 200);
    h.sandbox().expire_tokens();
    let (s, e) = gp.get("/transactions").await;
    assert_eq!(
        (
            s,
            e["error_code"].as_str(),
            e["detailed_error_code"].as_str()
        ),
        (401, Some("NOT_AUTHENTICATED"), Some("40001"))
    );
    gp.token = "nonsense".into();
    let (s, _) = gp
        .post("/transactions", sale("4263970000005262", "100", "AUTO"))
        .await;
    assert_eq!(s, 401);
    h.shutdown().await;
}

#[tokio::test]
async fn authorize_capture_refund_partial_full_and_over_refund() {
    let h = common::start().await;
    let gp = Gp::new(&h).await;
    let (s, auth) = gp
        .post("/transactions", sale("4263970000005262", "1999", "LATER"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(auth["status"], "PREAUTHORIZED");
    assert_eq!(auth["type"], "SALE");
    assert_eq!(auth["action"]["type"], "PREAUTHORIZE");
    assert_eq!(auth["batch_id"], "");
    assert_eq!(auth["payment_method"]["result"], "00");
    assert_eq!(auth["payment_method"]["card"]["brand"], "VISA");
    assert_eq!(
        auth["payment_method"]["card"]["masked_number_last4"],
        "XXXXXXXXXXXX5262"
    );
    // The full number is nowhere in the response.
    assert!(!auth.to_string().contains("4263970000005262"));
    let id = auth["id"].as_str().unwrap().to_string();

    // Refund before capture is refused.
    let (s, e) = gp
        .post(
            &format!("/transactions/{id}/refund"),
            json!({"amount": "100"}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("INVALID_REQUEST_DATA"))
    );

    // Capture over 115% is refused; capture 1999 works.
    let (s, e) = gp
        .post(
            &format!("/transactions/{id}/capture"),
            json!({"amount": "2400"}),
        )
        .await;
    assert_eq!((s, e["detailed_error_code"].as_str()), (400, Some("50020")));
    let (s, cap) = gp
        .post(
            &format!("/transactions/{id}/capture"),
            json!({"amount": "1999"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(cap["id"], id.as_str());
    assert_eq!(cap["status"], "CAPTURED");
    assert!(cap["batch_id"].as_str().unwrap().starts_with("BAT_"));
    // A second capture is refused.
    let (s, _) = gp
        .post(&format!("/transactions/{id}/capture"), json!({}))
        .await;
    assert_eq!(s, 400);

    let (s, r1) = gp
        .post(
            &format!("/transactions/{id}/refund"),
            json!({"amount": "500"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            r1["type"].as_str(),
            r1["status"].as_str(),
            r1["amount"].as_str()
        ),
        (Some("REFUND"), Some("CAPTURED"), Some("500"))
    );
    assert_eq!(r1["parent_resource_id"], id.as_str());
    assert_ne!(r1["id"], id.as_str());
    // 1499 remain: 1500 is an over-refund.
    let (s, e) = gp
        .post(
            &format!("/transactions/{id}/refund"),
            json!({"amount": "1500"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(e["detailed_error_code"], "40087");
    assert_eq!(e["error_code"], "INVALID_REQUEST_DATA");
    // No amount = the rest.
    let (s, r2) = gp
        .post(&format!("/transactions/{id}/refund"), json!({}))
        .await;
    assert_eq!((s, r2["amount"].as_str()), (200, Some("1499")));
    let (s, e) = gp
        .post(
            &format!("/transactions/{id}/refund"),
            json!({"amount": "1"}),
        )
        .await;
    assert_eq!((s, e["detailed_error_code"].as_str()), (400, Some("40087")));

    // Standalone REFUND type.
    let mut b = sale("4263970000005262", "700", "AUTO");
    b["type"] = json!("REFUND");
    let (s, r) = gp.post("/transactions", b).await;
    assert_eq!(
        (s, r["type"].as_str(), r["status"].as_str()),
        (200, Some("REFUND"), Some("CAPTURED"))
    );
    h.shutdown().await;
}

#[tokio::test]
async fn sale_reversal_and_partial_reversal() {
    let h = common::start().await;
    let gp = Gp::new(&h).await;
    let (_, s1) = gp
        .post("/transactions", sale("5425230000004415", "2500", "AUTO"))
        .await;
    assert_eq!(s1["status"], "CAPTURED");
    assert_eq!(s1["payment_method"]["card"]["brand"], "MASTERCARD");
    let id = s1["id"].as_str().unwrap();
    let (s, e) = gp
        .post(
            &format!("/transactions/{id}/reversal"),
            json!({"amount": "100"}),
        )
        .await;
    assert_eq!((s, e["detailed_error_code"].as_str()), (400, Some("40214")));
    let (s, r) = gp
        .post(&format!("/transactions/{id}/reversal"), json!({}))
        .await;
    assert_eq!(
        (s, r["status"].as_str(), r["batch_id"].as_str()),
        (200, Some("REVERSED"), Some(""))
    );
    let (s, _) = gp
        .post(&format!("/transactions/{id}/refund"), json!({}))
        .await;
    assert_eq!(s, 400, "a reversed sale cannot be refunded");
    // A reversed capture is not in the batch.
    let closed = h.sandbox().close_open_batches(jiff::Timestamp::now());
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].transaction_count, 0);
    h.shutdown().await;
}

#[tokio::test]
async fn decline_cards_answer_200_with_result_codes() {
    let h = common::start().await;
    let gp = Gp::new(&h).await;
    for (card, code) in [
        ("4000120000001154", "101"),
        ("5114610000004778", "101"),
        ("4000130000001724", "102"),
        ("5114630000009791", "102"),
        ("4000160000004147", "103"),
        ("5121220000006921", "103"),
    ] {
        let (s, v) = gp.post("/transactions", sale(card, "1000", "AUTO")).await;
        assert_eq!(s, 200, "{card}");
        assert_eq!(v["status"], "DECLINED");
        assert_eq!(v["action"]["result_code"], "DECLINED");
        assert_eq!(v["payment_method"]["result"], code);
        let id = v["id"].as_str().unwrap();
        let (s, _) = gp
            .post(&format!("/transactions/{id}/capture"), json!({}))
            .await;
        assert_eq!(s, 400, "a decline cannot be captured");
    }
    let (s, v) = gp
        .post("/transactions", sale("4009830000001985", "1000", "AUTO"))
        .await;
    assert_eq!(
        (
            s,
            v["error_code"].as_str(),
            v["detailed_error_code"].as_str()
        ),
        (502, Some("SYSTEM_ERROR_DOWNSTREAM"), Some("50018"))
    );
    let (s, v) = gp
        .post("/transactions", sale("4263970000005263", "1000", "AUTO"))
        .await;
    assert_eq!(
        (s, v["error_code"].as_str()),
        (400, Some("INVALID_REQUEST_DATA"))
    );
    // Other Luhn-valid numbers approve.
    let (s, v) = gp
        .post("/transactions", sale("4111111111111111", "1000", "AUTO"))
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("CAPTURED")));
    let mut no_currency = sale("4263970000005262", "1000", "AUTO");
    no_currency.as_object_mut().unwrap().remove("currency");
    let (s, v) = gp.post("/transactions", no_currency).await;
    assert_eq!((s, v["detailed_error_code"].as_str()), (400, Some("40005")));
    assert_eq!(
        v["detailed_error_description"],
        "Request expects the following fields currency"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn idempotency_key_reuse_is_duplicate_action() {
    let h = common::start().await;
    let gp = Gp::new(&h).await;
    let (s, first) = gp
        .post_with(
            "/transactions",
            sale("4263970000005262", "1000", "AUTO"),
            Some("key-1"),
        )
        .await;
    assert_eq!(s, 200);
    let (s, e) = gp
        .post_with(
            "/transactions",
            sale("4263970000005262", "1000", "AUTO"),
            Some("key-1"),
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(e["error_code"], "DUPLICATE_ACTION");
    assert_eq!(e["detailed_error_code"], "40039");
    assert_eq!(
        e["detailed_error_description"],
        format!(
            "Idempotency Key seen before: id={}",
            first["id"].as_str().unwrap()
        )
    );
    // Nothing was created by the replay.
    let (_, list) = gp.get("/transactions?page_size=100").await;
    assert_eq!(list["total_record_count"], 1);
    // Follow-ups honour the key too.
    let id = first["id"].as_str().unwrap();
    let (s, r) = gp
        .post_with(
            &format!("/transactions/{id}/refund"),
            json!({"amount": "100"}),
            Some("key-2"),
        )
        .await;
    assert_eq!(s, 200);
    let (s, e) = gp
        .post_with(
            &format!("/transactions/{id}/refund"),
            json!({"amount": "100"}),
            Some("key-2"),
        )
        .await;
    assert_eq!(s, 409);
    assert!(
        e["detailed_error_description"]
            .as_str()
            .unwrap()
            .ends_with(r["id"].as_str().unwrap())
    );
    h.shutdown().await;
}

#[tokio::test]
async fn get_list_filters_paging_and_not_found() {
    let h = common::start().await;
    let gp = Gp::new(&h).await;
    let (_, a) = gp
        .post("/transactions", sale("4263970000005262", "1000", "AUTO"))
        .await;
    gp.post("/transactions", sale("374101000000608", "2000", "LATER"))
        .await;
    gp.post("/transactions", sale("4000120000001154", "3000", "AUTO"))
        .await;
    let id = a["id"].as_str().unwrap();
    let (s, one) = gp.get(&format!("/transactions/{id}?")).await;
    assert_eq!((s, one["id"].as_str()), (200, Some(id)));
    let (s, e) = gp.get("/transactions/TRN_nope").await;
    assert_eq!(s, 404);
    assert_eq!(e["detailed_error_code"], "40118");
    assert_eq!(
        e["detailed_error_description"],
        "Transactions TRN_nope not found at this /ucp/transactions/TRN_nope"
    );

    let (_, all) = gp.get("/transactions?page=1&page_size=2&order=ASC").await;
    assert_eq!(all["total_record_count"], 3);
    assert_eq!(all["current_page_size"], 2);
    assert_eq!(all["paging"]["page_size"], 2);
    assert_eq!(all["transactions"][0]["id"], id);
    let (_, p2) = gp.get("/transactions?page=2&page_size=2&order=ASC").await;
    assert_eq!(p2["current_page_size"], 1);
    let (_, f) = gp.get("/transactions?status=PREAUTHORIZED").await;
    assert_eq!(f["total_record_count"], 1);
    assert_eq!(
        f["transactions"][0]["payment_method"]["card"]["brand"],
        "AMEX"
    );
    let (_, f) = gp
        .get("/transactions?brand=VISA&status=DECLINED&amount=3000")
        .await;
    assert_eq!(f["total_record_count"], 1);
    let (_, f) = gp.get("/transactions?number_last4=5262&from_time_created=2000-01-01&to_time_created=2999-01-01").await;
    assert_eq!(f["total_record_count"], 1);
    let (_, f) = gp.get("/transactions?from_time_created=2999-01-01").await;
    assert_eq!(f["total_record_count"], 0);
    let (s, _) = gp.get("/transactions?page_size=5000").await;
    assert_eq!(s, 400);
    h.shutdown().await;
}

#[tokio::test]
async fn tokenized_payment_method_pays() {
    let h = common::start().await;
    let gp = Gp::new(&h).await;
    let (s, pm) = gp.post("/payment-methods", json!({"card": {"number": "6011000000000087", "expiry_month": "12", "expiry_year": "30"}})).await;
    assert_eq!(s, 200);
    let pmt = pm["id"].as_str().unwrap();
    assert!(pmt.starts_with("PMT_"));
    assert_eq!(pm["card"]["brand"], "DISCOVER");
    let mut b = sale("4263970000005262", "1234", "AUTO");
    b["payment_method"] = json!({"id": pmt, "entry_mode": "ECOM"});
    let (s, t) = gp.post("/transactions", b.clone()).await;
    assert_eq!((s, t["status"].as_str()), (200, Some("CAPTURED")));
    assert_eq!(t["payment_method"]["card"]["brand"], "DISCOVER");
    assert_eq!(t["payment_method"]["id"], pmt);
    b["payment_method"]["id"] = json!("PMT_unknown");
    let (s, _) = gp.post("/transactions", b).await;
    assert_eq!(s, 404);
    h.shutdown().await;
}

#[tokio::test]
async fn batch_close_deposit_arithmetic_and_settlement_reports() {
    let h = common::start().await;
    let gp = Gp::new(&h).await;
    // VISA 100.00, AMEX 33.33, MC 10.01 (auth then capture), a refund of 12.34 on the VISA.
    let (_, v) = gp
        .post("/transactions", sale("4263970000005262", "10000", "AUTO"))
        .await;
    let (_, a) = gp
        .post("/transactions", sale("374101000000608", "3333", "AUTO"))
        .await;
    let (_, m) = gp
        .post("/transactions", sale("5425230000004415", "1001", "LATER"))
        .await;
    let vid = v["id"].as_str().unwrap();
    gp.post(
        &format!("/transactions/{}/capture", m["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    let (_, r) = gp
        .post(
            &format!("/transactions/{vid}/refund"),
            json!({"amount": "1234"}),
        )
        .await;
    let batch = v["batch_id"].as_str().unwrap().to_string();
    assert_eq!(a["batch_id"], batch.as_str());

    let (s, c) = gp.post(&format!("/batches/{batch}"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        (c["status"].as_str(), c["action"]["type"].as_str()),
        (Some("CLOSED"), Some("CLOSE"))
    );
    assert_eq!(c["transaction_count"], 4);
    assert_eq!(c["sales"], json!({"count": 3, "amount": "14334"}));
    assert_eq!(c["refunds"], json!({"count": 1, "amount": "1234"}));
    assert_eq!(c["amount"], "13100");
    let (s, e) = gp.post(&format!("/batches/{batch}"), json!({})).await;
    assert_eq!(
        (
            s,
            e["error_code"].as_str(),
            e["detailed_error_code"].as_str()
        ),
        (400, Some("ACTION_FAILED"), Some("500010"))
    );
    let (s, e) = gp.post("/batches/BAT_nope", json!({})).await;
    assert_eq!((s, e["detailed_error_code"].as_str()), (400, Some("40213")));
    let (_, t) = gp.get(&format!("/transactions/{vid}")).await;
    assert_eq!(t["status"], "BATCHED");

    let deps = h.sandbox().fund_deposits(jiff::civil::date(2025, 3, 15));
    assert_eq!(deps.len(), 1);
    let d = &deps[0];
    // Default fees: VISA 1.80% + 0.10, AMEX 2.90% + 0.15, MC 1.90% + 0.10, half-up per sale.
    let visa = 180 + 10; // 10000 * 1.8% = 180.00
    let amex = 97 + 15; // 3333 * 2.9% = 96.657 -> 97
    let mc = 19 + 10; // 1001 * 1.9% = 19.019 -> 19
    assert_eq!(d.fees_amount, visa + amex + mc);
    assert_eq!(d.fees_by_brand.get("AMEX"), Some(&amex));
    assert_eq!(
        d.net_amount,
        14334 - 1234 - d.fees_amount - d.chargebacks_amount
    );

    let (s, dep) = gp.get(&format!("/settlement/deposits/{}", d.id)).await;
    assert_eq!(s, 200);
    assert_eq!(dep["status"], "FUNDED");
    assert_eq!(dep["time_created"], "2025-03-15");
    assert_eq!(dep["sales"], json!({"count": 3, "amount": "14334"}));
    assert_eq!(dep["refunds"], json!({"count": 1, "amount": "-1234"}));
    assert_eq!(dep["fees"]["amount"], (visa + amex + mc).to_string());
    assert_eq!(dep["amount"], d.net_amount.to_string());
    assert_eq!(dep["funding_type"], "CREDIT");
    assert_eq!(dep["action"]["type"], "DEPOSIT_SINGLE");
    let (s, e) = gp.get("/settlement/deposits/DEP_nope").await;
    assert_eq!(
        (s, e["detailed_error_description"].as_str()),
        (
            404,
            Some("Deposits DEP_nope not found at this /ucp/settlement/deposits/DEP_nope")
        )
    );
    let (_, list) = gp
        .get("/settlement/deposits?status=FUNDED&from_time_created=2025-03-15")
        .await;
    assert_eq!(list["total_record_count"], 1);

    let (_, st) = gp
        .get(&format!(
            "/settlement/transactions?deposit_id={}&page_size=10",
            d.id
        ))
        .await;
    assert_eq!(st["total_record_count"], 4);
    let row = st["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == r["id"])
        .unwrap()
        .clone();
    assert_eq!(row["status"], "FUNDED");
    assert_eq!(row["deposit_status"], "FUNDED");
    assert_eq!(row["deposit_time_created"], "2025-03-15");
    assert_eq!(row["parent_resource_id"], vid);
    assert_eq!(
        row["payment_method"]["card"]["masked_number_first6last4"],
        "426397XXXXXX5262"
    );
    assert_eq!(
        row["payment_method"]["card"]["arn"].as_str().unwrap().len(),
        23
    );
    assert!(row["batch_time_created"].as_str().unwrap().ends_with('Z'));
    let (_, none) = gp
        .get("/settlement/transactions?deposit_id=DEP_other")
        .await;
    assert_eq!(none["total_record_count"], 0);
    h.shutdown().await;
}

#[tokio::test]
async fn chargebacks_are_seeded_and_subtracted() {
    // Every sale charges back: the deposit is negative (DEBIT) and still adds up exactly.
    let cfg = heartsuite_sandbox_heartland::Config {
        chargeback_ppm: 1_000_000,
        ..Default::default()
    };
    let h = common::start_with(cfg).await;
    let gp = Gp::new(&h).await;
    gp.post("/transactions", sale("4263970000005262", "5000", "AUTO"))
        .await;
    h.sandbox().close_open_batches(jiff::Timestamp::now());
    let d = h
        .sandbox()
        .fund_deposits(jiff::civil::date(2025, 3, 15))
        .remove(0);
    assert_eq!((d.chargebacks_count, d.chargebacks_amount), (1, 5000));
    assert_eq!(d.net_amount, 5000 - 5000 - d.fees_amount);
    let (_, dep) = gp.get(&format!("/settlement/deposits/{}", d.id)).await;
    assert_eq!(dep["funding_type"], "DEBIT");
    assert_eq!(
        dep["disputes"]["chargebacks"],
        json!({"count": 1, "amount": "5000"})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn status_url_notifications_are_signed_sha512_of_body_and_app_key() {
    let h = common::start().await;
    let rx = common::receiver(200).await;
    let gp = Gp::new(&h).await;
    let mut b = sale("4263970000005262", "1500", "LATER");
    b["notifications"] = json!({"status_url": rx.url});
    let (_, t) = gp.post("/transactions", b).await;
    gp.post(
        &format!("/transactions/{}/capture", t["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    let got = rx.got.clone();
    assert!(
        common::eventually(|| {
            let g = got.clone();
            async move { g.lock().await.len() >= 2 }
        })
        .await
    );
    let got = rx.got.lock().await;
    let mut statuses = Vec::new();
    for (headers, body) in got.iter() {
        let sig = headers.get("x-gp-signature").unwrap().to_str().unwrap();
        let mut signed = body.clone();
        signed.extend_from_slice(b"sandbox-app-key");
        assert_eq!(sig, hex::encode(Sha512::digest(&signed)));
        // Minified JSON, exactly the signed bytes.
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(serde_json::to_vec(&v).unwrap(), *body);
        assert_eq!(v["id"], t["id"]);
        statuses.push(v["status"].as_str().unwrap().to_string());
    }
    statuses.sort();
    assert_eq!(statuses, ["CAPTURED", "PREAUTHORIZED"]);
    h.shutdown().await;
}
