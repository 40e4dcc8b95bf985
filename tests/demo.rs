//! The README's first command, small: the demo runs end to end and says what happened.

use std::process::Command;

#[test]
fn demo_posts_customers_payments_and_refunds_and_explains_the_dead_letter() {
    let dir = std::env::temp_dir().join(format!("hs-demo-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_heartsuite"))
        .args(["--data-dir", dir.to_str().unwrap(), "demo", "--customers", "6", "--payments", "20", "--netsuite-latency-ms", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "error")
        .output()
        .expect("run heartsuite demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    // 6 customers + 1 bad one + 20 payments + 2 refunds + 1 shop order, and the redeliveries.
    assert!(text.contains("Webhooks accepted and stored:        30"), "{text}");
    assert!(text.contains("Redeliveries recognised (no effect): 3"), "{text}");
    assert!(text.contains("Refused (401 unauthorized):"), "{text}");
    assert!(text.contains("Refused (400 invalid_payload):"), "{text}");
    assert!(text.contains("stored as: \"card 426397******5262 exp 12/30\""), "{text}");
    assert!(text.contains("customer           6"), "{text}");
    assert!(text.contains("customerPayment    20"), "{text}");
    assert!(text.contains("creditMemo         2"), "{text}");
    assert!(text.contains("`not-an-email` is not an e-mail address"), "{text}");
    assert!(text.contains("Audit chain: intact (28 entries)"), "{text}");
    assert!(dir.join("demo-report.html").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
