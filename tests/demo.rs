//! The README's first command, small: the demo runs a generated business day end to end, posts
//! every ticket, return and deposit once, recognises the whole day delivered again, and says
//! what happened. Its web-store orders go order to cash: each becomes a sales order, the
//! shipped ones are captured, invoiced and paid, and the declined ones are the only dead letters.

use std::process::Command;

/// The first number on the line that starts with `label` (after indentation).
fn number_after(text: &str, label: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
    line[line.find(label)? + label.len()..].split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
}

#[test]
fn demo_posts_a_business_day_once_and_explains_what_it_refused() {
    let dir = std::env::temp_dir().join(format!("hs-demo-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_heartsuite"))
        .args(["--data-dir", dir.to_str().unwrap(), "demo", "--tickets", "40", "--netsuite-latency-ms", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "error")
        .output()
        .expect("run heartsuite demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));

    let tickets = number_after(&text, "POS tickets").expect("ticket count");
    let returns = number_after(&text, "Returns ").unwrap_or(0);
    assert_eq!(tickets, 40, "{text}");
    assert_eq!(number_after(&text, "cashSale"), Some(tickets), "one cash sale per ticket:\n{text}");
    if returns > 0 {
        assert_eq!(number_after(&text, "cashRefund"), Some(returns), "one cash refund per return:\n{text}");
    }
    let deposits = text.lines().filter(|l| l.trim_start().starts_with("Deposit ")).count() as u64;
    assert!(deposits > 0, "the day funds deposits:\n{text}");
    let posted = number_after(&text, "deposit ").unwrap_or(0) + number_after(&text, "journalEntry").unwrap_or(0);
    assert_eq!(posted, deposits, "one NetSuite deposit or journal entry per funded deposit:\n{text}");
    assert!(text.contains(" recognised as already seen, 0 new NetSuite records"), "{text}");

    // Web-store orders (default 12, every seventh declined).
    let placed = number_after(&text, "Web orders placed").expect("orders placed");
    let authorized = number_after(&text, "Web orders authorized").expect("orders authorized");
    let declined = number_after(&text, "Web orders declined").expect("orders declined");
    let shipped = number_after(&text, "Web orders shipped").expect("orders shipped");
    assert_eq!((placed, authorized, declined), (12, 10, 2), "{text}");
    assert_eq!(shipped, authorized, "every authorized order ships:\n{text}");
    assert!(text.contains(&format!("Web orders shipped                           {shipped} ({} in full, 1 in part)", shipped - 1)), "{text}");
    assert_eq!(number_after(&text, "salesOrder"), Some(placed), "one sales order per order, declined ones on hold:\n{text}");
    assert_eq!(number_after(&text, "itemFulfillment"), Some(shipped), "{text}");
    assert!(number_after(&text, "invoice").unwrap_or(0) >= shipped, "{text}");
    assert!(number_after(&text, "customerPayment").unwrap_or(0) >= shipped, "{text}");
    // What GP-API captured, what NetSuite invoiced and what shipped agree to the cent.
    let captured = text.lines().find(|l| l.trim_start().starts_with("Web orders captured USD")).expect("captured line");
    let amounts: Vec<&str> = captured.split_whitespace().filter(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.')).collect();
    assert_eq!(amounts.len(), 3, "{captured}");
    assert!(amounts[0] == amounts[1] && amounts[1] == amounts[2] && amounts[0] != "0.00", "{captured}");
    assert!(captured.contains(&format!(" in {shipped} GP-API captures; ")) && captured.contains(&format!(" on {shipped} invoices; ")), "{captured}");
    // The only dead letters are the declined orders.
    let dead: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Dead-lettered"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(dead.len() as u64, declined, "{text}");
    assert!(dead.iter().all(|l| l.contains("(shop_order_to_sales_order)") && l.contains("custbody_hs_auth_status")), "{dead:?}");
    assert!(text.contains("Refused (401 unauthorized):"), "{text}");
    assert!(text.contains("Refused (400 invalid_payload):"), "{text}");
    assert!(text.contains("stored as: \"card 426397******5262 exp 12/30\""), "{text}");
    assert!(text.contains("Audit chain: intact"), "{text}");
    assert!(dir.join("demo-report.html").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
