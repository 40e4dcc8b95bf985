//! Behaviour tests for flows: the built-in flow files and their examples, every transformation
//! kind, every auto-correction, every load-time error (message checked), and property tests.

use heartsuite_core::ErrorClass;
use heartsuite_flows::*;
use serde_json::json;
use std::path::Path;

fn load(src: &str) -> Result<Flow, Vec<LoadError>> {
    Flow::from_str(Path::new("flows/test.toml"), src)
}

fn load_ok(src: &str) -> Flow {
    match load(src) {
        Ok(f) => f,
        Err(e) => panic!(
            "flow did not load:\n{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn load_err(src: &str) -> Vec<String> {
    match load(src) {
        Ok(_) => panic!("flow loaded but should not have"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn builtin_flows_load_and_their_examples_pass() {
    let set = FlowSet::builtin().unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    // Every built-in file loads (the count grows as flows are added).
    assert_eq!(set.flows().len(), heartsuite_flows::BUILTIN_FLOWS.len());
    let report = set.run_examples();
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert!(report.results.len() >= 10);
}

/// Polls a future whose awaits complete at once (our test contexts never wait).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A flow with one map step over `fields` (TOML lines), run on `input`.
fn map_once(fields: &str, input: serde_json::Value) -> RunReport {
    let src = format!(
        "name = \"t\"\n[trigger]\nevents = [\"e\"]\n[[steps]]\nkind = \"map\"\nname = \"out\"\n[steps.fields]\n{fields}\n"
    );
    load_ok(&src).dry_run(&input, &mut DryRunContext::new())
}

fn mapped(fields: &str, input: serde_json::Value) -> serde_json::Value {
    let r = map_once(fields, input);
    assert!(r.failure.is_none(), "{:?}", r.failure);
    r.records[0].record.clone()
}

// ------------------------------------------------------------------ transformations

#[test]
fn type_conversion_string_to_number_date_boolean_integer() {
    let out = mapped(
        r#""amount" = { expr = "input.amount", type = "number" }
"when" = "parse_date(input.when)"
"vip" = { expr = "input.vip", type = "boolean" }
"vip2" = "to_bool(input.vip)"
"qty" = { expr = "input.qty", type = "integer" }
"qty2" = "to_int(input.big)"
"minor" = "decimal_to_minor(input.amount, 'USD')""#,
        json!({"amount": "1234.50", "when": "Mar 5, 2026", "vip": "yes", "qty": "7", "big": "1,204"}),
    );
    assert_eq!(
        out["amount"].to_string(),
        "1234.50",
        "exact decimal text, not a double"
    );
    assert_eq!(out["when"], json!("2026-03-05"));
    assert_eq!(out["vip"], json!(true));
    assert_eq!(out["vip2"], json!(true));
    assert_eq!(out["qty"], json!(7));
    assert_eq!(out["qty2"], json!(1204));
    assert_eq!(out["minor"], json!(123450));
}

#[test]
fn fractional_json_numbers_enter_expressions_as_exact_decimals() {
    // 0.1 + 0.2 is exactly 0.3 here because JSON fractions arrive as decimal strings.
    let out = mapped(
        r#""sum" = "dec_add(input.a, input.b)"
"eq" = "dec_eq(dec_add(input.a, input.b), '0.3')""#,
        json!({"a": 0.1, "b": 0.2}),
    );
    assert_eq!(out, json!({"sum": "0.3", "eq": true}));
}

#[test]
fn concatenation_and_splitting() {
    let out = mapped(
        r#""full" = "join_nonempty(' ', input.first, input.middle, input.last)"
"first" = "split_name(input.name).first"
"last" = "last_name(input.name)"
"reversed_first" = "first_name('Smith, Jane')"
"addr" = "parse_address(input.line)"
"tags" = "input.tags.split(',')""#,
        json!({"first": "Jane", "middle": null, "last": "Smith", "name": "Mary Ann Jones", "line": "500 Congress Ave, Suite 200, Austin, TX 78701-1234", "tags": "a,b"}),
    );
    assert_eq!(out["full"], json!("Jane Smith"));
    assert_eq!(out["first"], json!("Mary Ann"));
    assert_eq!(out["last"], json!("Jones"));
    assert_eq!(out["reversed_first"], json!("Jane"));
    assert_eq!(
        out["addr"],
        json!({"addr1": "500 Congress Ave", "addr2": "Suite 200", "city": "Austin", "state": "TX", "zip": "78701-1234", "country": ""})
    );
    assert_eq!(out["tags"], json!(["a", "b"]));
}

#[test]
fn lookup_enrichment_and_defaults() {
    let src = r#"
name = "t"
[trigger]
events = ["e"]
[[steps]]
kind = "lookup"
name = "cust"
system = "netsuite"
record_type = "customer"
key = "input.customer_id"
[[steps]]
kind = "lookup"
name = "loc"
system = "netsuite"
record_type = "location"
key = "input.store"
default = "'1'"
[[steps]]
kind = "lookup"
name = "opt"
system = "netsuite"
record_type = "employee"
key = "get(input, 'clerk')"
required = false
[[steps]]
kind = "map"
name = "out"
[steps.fields]
"customer.id" = "steps.cust"
"location.id" = "steps.loc"
"salesRep" = "steps.opt"
"memo" = "coalesce(get(input, 'memo'), input.fallback, 'none')"
"#;
    let flow = load_ok(src);
    let mut ctx = DryRunContext::new().with_lookup("netsuite", "customer", "CUS_1", "4417");
    let r = flow.dry_run(
        &json!({"customer_id": "CUS_1", "store": "S9", "memo": "", "fallback": "from default"}),
        &mut ctx,
    );
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(
        r.records[0].record,
        json!({"customer": {"id": "4417"}, "location": {"id": "1"}, "memo": "from default"})
    );
    assert_eq!(
        ctx.lookups_asked.len(),
        2,
        "no lookup is made for an absent optional key"
    );
}

#[test]
fn lookup_for_each_resolves_every_line_once_per_distinct_key() {
    let src = r#"
name = "t"
[trigger]
events = ["e"]
[[steps]]
kind = "lookup"
name = "items"
system = "netsuite"
record_type = "item"
for_each = "input.lines"
key = "item.sku"
[[steps]]
kind = "map"
name = "out"
[steps.fields]
"ids" = "steps.items"
"#;
    let flow = load_ok(src);
    let mut ctx = DryRunContext::new()
        .with_lookup("netsuite", "item", "SKU-A", "501")
        .with_lookup("netsuite", "item", "SKU-B", "502");
    let input = json!({"lines": [{"sku": "SKU-A"}, {"sku": "SKU-B"}, {"sku": "SKU-A"}]});
    let r = flow.dry_run(&input, &mut ctx);
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(r.records[0].record, json!({"ids": ["501", "502", "501"]}));
    assert_eq!(ctx.lookups_asked.len(), 2, "a repeated SKU is asked once");

    // A miss names the element, and is a dependency (retried later), not a data error.
    let mut ctx = DryRunContext::new().with_lookup("netsuite", "item", "SKU-A", "501");
    let r = flow.dry_run(&json!({"lines": [{"sku": "SKU-A"}, {"sku": "SKU-Z"}]}), &mut ctx);
    let f = r.failure.expect("a missing item fails");
    assert_eq!(f.class, ErrorClass::Dependency);
    assert_eq!(f.field_path.as_deref(), Some("steps.items[1]"));
    assert!(f.message.contains("SKU-Z"), "{}", f.message);

    // Not a list: a data error on for_each.
    let r = flow.dry_run(&json!({"lines": "SKU-A"}), &mut DryRunContext::new());
    let f = r.failure.expect("a scalar fails");
    assert_eq!(f.class, ErrorClass::Data);
    assert!(f.message.contains("for_each") && f.message.contains("expected a list"), "{}", f.message);
}

#[test]
fn conditional_logic_refund_becomes_credit_memo_and_sale_does_not() {
    let set = FlowSet::builtin().expect("builtin flows");
    let refund = json!({"id": "T1", "type": "REFUND", "status": "CAPTURED", "time_created": "2026-01-02T12:00:00Z", "amount": "100", "currency": "USD", "payment_method": {"card": {"brand": "AMEX"}}, "customer": {"id": "C"}});
    let sale = json!({"id": "T2", "type": "SALE", "status": "CAPTURED", "time_created": "2026-01-02T12:00:00Z", "amount": "100", "currency": "USD", "customer": {"id": "C"}});
    let names = |v: &serde_json::Value| {
        set.flows_for("gpapi.transaction.captured", v)
            .iter()
            .map(|f| f.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&refund), ["gpapi_refund_to_credit_memo"]);
    // POS card payments and their refunds are booked by the ticket flows, never twice.
    let mut pos_sale = sale.clone();
    pos_sale["reference"] = json!("POS-100734");
    let mut pos_refund = refund.clone();
    pos_refund["reference"] = json!("POS-100801");
    assert!(names(&pos_sale).is_empty() && names(&pos_refund).is_empty());
    assert_eq!(names(&sale), ["gpapi_payment_to_customer_payment"]);
    assert!(set.flows_for("shop.note.added", &sale).is_empty(), "an event kind no flow names");

    let flow = set.get("gpapi_refund_to_credit_memo").expect("flow");
    let mut ctx = DryRunContext::new().with_lookup("netsuite", "customer", "hs-cust-C", "9");
    let r = flow.dry_run(&refund, &mut ctx);
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(r.writes.len(), 2, "a credit memo, then the customer refund paying it out");
    assert_eq!(r.writes[0].intent.target, "netsuite.upsert");
    assert_eq!(r.writes[0].intent.record_type, "creditMemo");
    assert_eq!(r.writes[0].intent.idempotency_key, "hs-cm-T1");
    assert_eq!(r.writes[1].intent.record_type, "customerRefund");
    assert_eq!(r.writes[1].intent.idempotency_key, "hs-crf-T1");
    assert_eq!(r.writes[1].intent.body["paymentMethod"]["id"], json!("6"));
    assert_eq!(r.writes[1].intent.body["apply"]["items"][0]["amount"], json!("1.00"));

    let mut invoiced = refund.clone();
    invoiced["order"] = json!({"invoice_internal_id": "77"});
    invoiced["reference"] = json!("INV-1");
    let r = flow.dry_run(
        &invoiced,
        &mut DryRunContext::new().with_lookup("netsuite", "customer", "hs-cust-C", "9"),
    );
    assert_eq!(r.writes[0].intent.target, "netsuite.transform");
    assert_eq!(r.writes[0].intent.params["from_id"], json!("77"));
    assert_eq!(r.writes[0].intent.params["from_type"], json!("invoice"));
    assert_eq!(r.writes[1].intent.record_type, "customerRefund");
}

#[test]
fn currency_conversion_from_the_rate_table() {
    let src = r#"
name = "t"
[trigger]
events = ["e"]
[rates]
"EUR/USD" = "1.0842"
"USD/JPY" = 151.37
[[steps]]
kind = "map"
name = "out"
[steps.fields]
"usd" = "convert_currency('100.00', 'EUR', 'USD')"
"eur" = "convert_currency('108.42', 'USD', 'EUR')"
"jpy" = "convert_currency(input.amount, 'USD', 'JPY')"
"same" = "convert_currency('5', 'USD', 'USD')"
"rate" = "fx_rate('EUR', 'USD')"
"#;
    let r = load_ok(src).dry_run(&json!({"amount": "19.99"}), &mut DryRunContext::new());
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(
        r.records[0].record,
        json!({"usd": "108.42", "eur": "100.00", "jpy": "3026", "same": "5.00", "rate": "1.0842"})
    );

    let r = load_ok(
        src.replace("'EUR', 'USD')\"\n\"eur\"", "'EUR', 'GBP')\"\n\"eur\"")
            .as_str(),
    )
    .dry_run(&json!({"amount": "1"}), &mut DryRunContext::new());
    let f = r.failure.expect("missing rate fails");
    assert_eq!(f.class, ErrorClass::Data);
    assert!(f.message.contains("no rate EUR/GBP"), "{}", f.message);
    assert_eq!(f.field_path.as_deref(), Some("usd"));
}

#[test]
fn gl_account_mapping_from_a_value_table() {
    let src = r#"
name = "t"
[trigger]
events = ["e"]
[tables.gl_account]
args = ["brand", "location"]
[tables.gl_account.rows]
"visa|store-1" = "6111"
"visa|*" = "6110"
"*|store-1" = "6191"
[tables.strict]
args = ["k"]
rows = { "a" = 1 }
[[steps]]
kind = "map"
name = "out"
[steps.fields]
"exact" = "gl_account('VISA', 'STORE-1')"
"brand_any_loc" = "gl_account('Visa', 'store-2')"
"loc_any_brand" = "gl_account('AMEX', 'store-1')"
"#;
    let r = load_ok(src).dry_run(&json!({}), &mut DryRunContext::new());
    assert_eq!(
        r.records[0].record,
        json!({"exact": "6111", "brand_any_loc": "6110", "loc_any_brand": "6191"})
    );
    let r = load_ok(&format!(
        "{src}\"miss\" = \"gl_account('AMEX', 'store-9')\"\n"
    ))
    .dry_run(&json!({}), &mut DryRunContext::new());
    let f = r.failure.expect("a miss without default is a data error");
    assert_eq!(f.class, ErrorClass::Data);
    assert!(
        f.message.contains("no row for (AMEX, store-9)"),
        "{}",
        f.message
    );
    assert_eq!(f.field_path.as_deref(), Some("miss"));
}

#[test]
fn aggregate_groups_a_settlement_into_exact_sums() {
    // The built-in settlement flow reads the deposit poller's payload; the aggregate step
    // itself is shown here on a plain list.
    let src = r#"
name = "t"
[trigger]
events = ["e"]
[[steps]]
kind = "aggregate"
name = "totals"
items = "input.transactions"
sums = { gross = "minor_to_decimal(item.amount, input.currency)", fees = "minor_to_decimal(item.fee, input.currency)" }
[[steps]]
kind = "aggregate"
name = "fees_by_brand"
items = "input.transactions"
group_by = "upper(item.brand)"
sums = { fee = "minor_to_decimal(item.fee, input.currency)" }
"#;
    let input = json!({"currency": "USD",
        "transactions": [{"brand": "VISA", "amount": "10", "fee": "1"}, {"brand": "visa", "amount": "20", "fee": "2"}, {"brand": "AMEX", "amount": "5", "fee": "1"}]});
    let r = load_ok(src).dry_run(&input, &mut DryRunContext::new());
    assert!(r.failure.is_none(), "{:?}", r.failure);
    let record = |step: &str| r.records.iter().find(|x| x.step == step).map(|x| x.record.clone()).expect("aggregate record");
    assert_eq!(
        record("fees_by_brand"),
        json!([{"key": "AMEX", "count": 1, "fee": "0.01"}, {"key": "VISA", "count": 2, "fee": "0.03"}])
    );
    assert_eq!(record("totals"), json!({"count": 3, "gross": "0.35", "fees": "0.04"}));
}

#[test]
fn templates_render_strings_and_fail_on_missing_variables() {
    let out = mapped(
        r#""memo" = { template = "Order {{ input.id }} for {{ input.name | upper }}" }"#,
        json!({"id": 12, "name": "ann"}),
    );
    assert_eq!(out["memo"], json!("Order 12 for ANN"));
    let r = map_once(r#""memo" = { template = "{{ input.nope }}" }"#, json!({}));
    assert_eq!(
        r.failure.expect("strict undefined").field_path.as_deref(),
        Some("memo")
    );
}

// ------------------------------------------------------------------ corrections

/// Runs a validate step with one field rule over `value` and returns (corrected value, findings, failure).
fn correct(
    rule: &str,
    value: serde_json::Value,
) -> (
    serde_json::Value,
    Vec<Finding>,
    Option<heartsuite_core::Failure>,
) {
    let src = format!(
        "name = \"t\"\n[trigger]\nevents = [\"e\"]\n[[steps]]\nkind = \"map\"\nname = \"rec\"\n[steps.fields]\n\"f\" = \"input.v\"\n[[steps]]\nkind = \"validate\"\nname = \"check\"\nrecord = \"rec\"\nfields = [{{ path = \"f\", {rule} }}]\n"
    );
    let r = load_ok(&src).dry_run(&json!({"v": value}), &mut DryRunContext::new());
    (r.records[0].record["f"].clone(), r.findings, r.failure)
}

fn assert_corrected(
    rule: &str,
    before: serde_json::Value,
    after: serde_json::Value,
    rule_name: &str,
) {
    let (v, findings, failure) = correct(rule, before.clone());
    assert!(failure.is_none(), "{rule}: {failure:?}");
    assert_eq!(v, after, "{rule}");
    let f = findings
        .iter()
        .find(|f| f.rule == rule_name)
        .unwrap_or_else(|| panic!("no {rule_name} finding in {findings:?}"));
    assert_eq!(f.kind, FindingKind::Correction);
    assert_eq!(f.path, "f");
    assert_eq!(f.after.as_ref(), Some(&after));
}

#[test]
fn correction_trims_whitespace() {
    assert_corrected(
        "required = true",
        json!("  Acme Corp \t"),
        json!("Acme Corp"),
        "trim",
    );
}

#[test]
fn correction_email_case() {
    assert_corrected(
        "format = \"email\"",
        json!("Ann.Lee@Example.COM"),
        json!("ann.lee@example.com"),
        "email",
    );
}

#[test]
fn correction_phone_formats() {
    for raw in [
        "(512) 555-0100",
        "512.555.0100",
        "+1 512 555 0100",
        "1-512-555-0100 ext 9",
    ] {
        assert_corrected(
            "format = \"phone\"",
            json!(raw),
            json!("+15125550100"),
            "phone",
        );
    }
    assert_corrected(
        "format = \"phone\", region = \"GB\"",
        json!("020 7946 0958"),
        json!("+442079460958"),
        "phone",
    );
}

#[test]
fn correction_country_names_to_iso_codes() {
    assert_corrected(
        "format = \"country\"",
        json!("United States of America"),
        json!("US"),
        "country",
    );
    assert_corrected("format = \"country\"", json!("deu"), json!("DE"), "country");
}

#[test]
fn correction_us_state_names_to_codes() {
    assert_corrected(
        "format = \"us_state\"",
        json!("north carolina"),
        json!("NC"),
        "us_state",
    );
}

#[test]
fn correction_dates_in_common_formats() {
    assert_corrected(
        "format = \"date\"",
        json!("12/31/2025"),
        json!("2025-12-31"),
        "date",
    );
    assert_corrected(
        "format = \"date\"",
        json!("31.12.2025"),
        json!("2025-12-31"),
        "date",
    );
}

#[test]
fn correction_amounts_with_currency_symbols() {
    assert_corrected(
        "format = \"amount\"",
        json!("$1,299.00"),
        json!("1299.00"),
        "amount",
    );
    assert_corrected(
        "format = \"amount\"",
        json!("€ 5,50"),
        json!("5.50"),
        "amount",
    );
}

#[test]
fn correction_text_to_boolean_and_integer() {
    assert_corrected("format = \"boolean\"", json!("Yes"), json!(true), "boolean");
    assert_corrected(
        "format = \"integer\"",
        json!("1,200"),
        json!(1200),
        "integer",
    );
}

#[test]
fn uncorrectable_values_are_data_errors_naming_the_field() {
    for (rule, bad) in [
        ("format = \"email\"", json!("not-an-email")),
        ("format = \"phone\"", json!("555-01")),
        ("format = \"country\"", json!("Atlantis")),
        ("format = \"us_state\"", json!("Ontario")),
        ("format = \"date\"", json!("someday")),
        ("format = \"amount\"", json!("ten dollars")),
        ("required = true", json!("   ")),
        ("max_length = 3", json!("abcd")),
        ("one_of = [\"open\", \"closed\"]", json!("opne")),
    ] {
        let (_, findings, failure) = correct(rule, bad.clone());
        let f = failure.unwrap_or_else(|| panic!("{rule} accepted {bad}"));
        assert_eq!(f.class, ErrorClass::Data, "{rule}");
        assert_eq!(f.field_path.as_deref(), Some("f"), "{rule}");
        assert!(
            findings
                .iter()
                .any(|x| x.kind == FindingKind::Error && x.path == "f"),
            "{rule}: {findings:?}"
        );
    }
    let (_, findings, _) = correct("one_of = [\"open\", \"closed\"]", json!("opne"));
    assert!(
        findings[0].message.contains("did you mean `open`?"),
        "{}",
        findings[0].message
    );
}

#[test]
fn correct_false_reports_instead_of_fixing_and_warnings_do_not_fail() {
    let (v, findings, failure) = correct("format = \"email\", correct = false", json!("A@B.COM"));
    assert_eq!(v, json!("A@B.COM"));
    assert!(failure.is_some());
    assert_eq!(findings[0].after, Some(json!("a@b.com")));
    let (_, findings, failure) = correct(
        "format = \"country\", severity = \"warning\"",
        json!("Atlantis"),
    );
    assert!(failure.is_none());
    assert_eq!(findings[0].kind, FindingKind::Warning);
}

#[test]
fn business_rules_journal_balances_and_applied_not_above_due() {
    let src = r#"
name = "t"
[trigger]
events = ["e"]
[[steps]]
kind = "map"
name = "je"
[steps.fields]
"line.items" = "input.lines"
"applied" = "input.applied"
[[steps]]
kind = "validate"
name = "rules"
record = "je"
rules = [
  { check = "dec_eq(dec_sum(record.line.items.map(l, get(l, 'debit', '0'))), dec_sum(record.line.items.map(l, get(l, 'credit', '0'))))", path = "line.items", message = "journal entry does not balance" },
  { check = "dec_le(record.applied, input.amount_due)", path = "applied", message = "applied amount is more than the amount due" },
]
"#;
    let flow = load_ok(src);
    let ok = json!({"lines": [{"debit": "10.00"}, {"credit": "7.50"}, {"credit": "2.50"}], "applied": "5.00", "amount_due": "5.00"});
    assert!(
        flow.dry_run(&ok, &mut DryRunContext::new())
            .failure
            .is_none()
    );
    let bad = json!({"lines": [{"debit": "10.00"}, {"credit": "7.49"}], "applied": "5.01", "amount_due": "5.00"});
    let r = flow.dry_run(&bad, &mut DryRunContext::new());
    let f = r.failure.expect("rules fail");
    assert_eq!(f.class, ErrorClass::Data);
    assert_eq!(f.field_path.as_deref(), Some("line.items"));
    assert!(
        f.message.contains("journal entry does not balance")
            && f.message
                .contains("applied amount is more than the amount due"),
        "{}",
        f.message
    );
    assert_eq!(r.findings.len(), 2);
}

// ------------------------------------------------------------------ run contract

struct FakeEngine {
    writes: Vec<WriteIntent>,
}

#[async_trait::async_trait]
impl FlowContext for FakeEngine {
    async fn lookup(
        &mut self,
        _s: &str,
        _r: &str,
        key: &str,
    ) -> Result<Option<String>, heartsuite_core::Failure> {
        if key == "down" {
            Err(heartsuite_core::Failure::transient("timeout"))
        } else {
            Ok(Some(format!("ns-{key}")))
        }
    }
    async fn write(
        &mut self,
        intent: &WriteIntent,
    ) -> Result<WriteResult, heartsuite_core::Failure> {
        self.writes.push(intent.clone());
        Ok(WriteResult {
            remote_id: format!("{}", 1000 + self.writes.len()),
            response: json!({"ok": true}),
        })
    }
}

#[test]
fn write_results_are_available_to_later_steps_and_failures_pass_through() {
    let src = r#"
name = "two_writes"
[trigger]
events = ["shop.order.*"]
[retry.rate_limited]
max_attempts = 20
base_delay = "500ms"
max_delay = "2m"
[[steps]]
kind = "lookup"
name = "cust"
system = "netsuite"
record_type = "customer"
key = "input.customer"
[[steps]]
kind = "map"
name = "order"
[steps.fields]
"entity.id" = "steps.cust"
[[steps]]
kind = "write"
name = "create_order"
target = "netsuite.upsert"
record_type = "salesOrder"
external_id = "concat('hs-so-', input.id)"
body = "order"
[[steps]]
kind = "write"
name = "bill"
target = "netsuite.transform"
record_type = "invoice"
external_id = "concat('hs-inv-', input.id)"
body = "order"
params = { from_type = "'salesOrder'", from_id = "steps.create_order.remote_id" }
"#;
    let flow = load_ok(src);
    assert_eq!(flow.name(), "two_writes");
    let retry = flow.retry_policy().expect("retry overrides");
    let p = retry
        .for_class(ErrorClass::RateLimited)
        .expect("rate_limited policy");
    assert_eq!(
        (p.max_attempts, p.base_delay, p.max_delay),
        (
            Some(20),
            Some(std::time::Duration::from_millis(500)),
            Some(std::time::Duration::from_secs(120))
        )
    );

    let mut engine = FakeEngine { writes: Vec::new() };
    let report =
        block_on(flow.run(&json!({"id": "O1", "customer": "C1"}), &mut engine)).expect("run");
    assert_eq!(engine.writes.len(), 2);
    assert_eq!(engine.writes[0].body, json!({"entity": {"id": "ns-C1"}}));
    assert_eq!(engine.writes[1].params["from_id"], json!("1001"));
    assert_eq!(report.writes[1].result.remote_id, "1002");

    let err = block_on(flow.run(
        &json!({"id": "O2", "customer": "down"}),
        &mut FakeEngine { writes: Vec::new() },
    ))
    .expect_err("transient");
    assert_eq!(err.class, ErrorClass::Transient);
}

#[test]
fn dry_run_records_writes_with_fake_ids() {
    let set = FlowSet::builtin().expect("builtin");
    let flow = set.get("gpapi_payment_to_customer_payment").expect("flow");
    let mut ctx = DryRunContext::new().with_lookup("netsuite", "customer", "hs-cust-CUS_81922", "4417");
    let r = flow.dry_run(&sample_captured_payment(), &mut ctx);
    assert!(r.failure.is_none(), "{:?}", r.failure);
    assert_eq!(r.writes[0].result.remote_id, "dry-run:1");
    assert_eq!(ctx.writes.len(), 1);
    assert_eq!(ctx.writes[0].body["payment"].to_string(), "129.99");
}

#[test]
fn examples_report_readable_diffs_when_they_fail() {
    let src = r#"
name = "t"
[trigger]
events = ["e"]
[[steps]]
kind = "map"
name = "m"
[steps.fields]
"a" = "dec_add(input.x, '1')"
[[steps]]
kind = "write"
name = "w"
target = "netsuite.upsert"
record_type = "customer"
external_id = "'k'"
body = "m"
[[examples]]
name = "wrong on purpose"
input = { x = "1.5" }
[[examples.expect_writes]]
target = "netsuite.upsert"
record_type = "customer"
idempotency_key = "other"
body = { a = "2.6" }
"#;
    let set = FlowSet::from_sources([(Path::new("t.toml"), src)]).expect("loads");
    let report = set.run_examples();
    assert!(!report.passed());
    let text = report.to_string();
    assert!(
        text.contains("FAIL t :: wrong on purpose (t.toml:17)"),
        "{text}"
    );
    assert!(
        text.contains("expected idempotency key `other`, got `k`"),
        "{text}"
    );
    assert!(
        text.contains("write 0 body.a: expected \"2.6\", got \"2.5\""),
        "{text}"
    );
    assert!(text.ends_with("0 passed, 1 failed"), "{text}");
}

#[test]
fn load_dir_reads_the_repository_flows_and_init_copies_them() {
    let repo_flows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../flows");
    let set = FlowSet::load_dir(&repo_flows).expect("repo flows load");
    assert!(set.run_examples().passed());
    let dir = std::env::temp_dir().join(format!("hs-flows-init-{}", std::process::id()));
    let written = write_builtin_flows(&dir).expect("init");
    assert_eq!(written.len(), BUILTIN_FLOWS.len());
    assert_eq!(
        FlowSet::load_dir(&dir)
            .expect("copied flows load")
            .flows()
            .len(),
        BUILTIN_FLOWS.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ------------------------------------------------------------------ load-time errors

const BASE: &str = "name = \"t\"\n[trigger]\nevents = [\"e\"]\n";

fn with_steps(steps: &str) -> String {
    format!("{BASE}{steps}")
}

fn one_error(src: &str) -> String {
    let errs = load_err(src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs[0].clone()
}

#[test]
fn load_error_invalid_toml_names_the_line() {
    let e = one_error("name = \"t\"\n[trigger]\nevents = [\"e\"\n");
    assert!(e.starts_with("flows/test.toml:3:"), "{e}");
    assert!(e.contains("not valid TOML"), "{e}");
}

#[test]
fn load_error_unknown_top_level_key_suggests() {
    let e = one_error(&format!(
        "descripton = \"x\"\n{BASE}[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = {{ a = \"1\" }}\n"
    ));
    assert_eq!(
        e,
        "flows/test.toml:1:1: field `descripton`: unknown field `descripton`; expected one of: name, description, trigger, retry, tables, rates, steps, examples; did you mean `description`?"
    );
}

#[test]
fn load_error_unknown_step_kind_suggests() {
    let e = one_error(&with_steps("[[steps]]\nkind = \"mapp\"\nname = \"m\"\n"));
    assert_eq!(
        e,
        "flows/test.toml:5:8: step `m`: field `kind`: unknown step kind `mapp`; expected one of: map, validate, lookup, dedupe, branch, aggregate, write; did you mean `map`?"
    );
}

#[test]
fn load_error_misspelt_step_field_suggests() {
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"1\" }\n[[steps]]\nkind = \"write\"\nname = \"w\"\ntarget = \"netsuite.upsert\"\nrecrod_type = \"customer\"\nrecord_type = \"customer\"\nexternal_id = \"'k'\"\nbody = \"m\"\n",
    ));
    assert!(
        e.starts_with(
            "flows/test.toml:12:1: step `w`: field `recrod_type`: unknown field `recrod_type`"
        ),
        "{e}"
    );
    assert!(e.ends_with("did you mean `record_type`?"), "{e}");
}

#[test]
fn load_error_misspelt_function_suggests_with_position() {
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"pay\"\n[steps.fields]\n\"amount\" = \"minr_to_decimal(input.amount, 'USD')\"\n",
    ));
    assert!(e.starts_with("flows/test.toml:8:13: step `pay`: field `fields.amount`: unknown function `minr_to_decimal`"), "{e}");
    assert!(e.ends_with("did you mean `minor_to_decimal`?"), "{e}");
}

#[test]
fn load_error_unknown_variable_suggests() {
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"inptu.id\" }\n",
    ));
    assert!(
        e.contains("field `fields.a`: unknown variable `inptu`"),
        "{e}"
    );
    assert!(e.contains("expected one of: input, steps"), "{e}");
    assert!(e.ends_with("did you mean `input`?"), "{e}");
}

#[test]
fn load_error_doubles_are_rejected_on_money_paths() {
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { fee = \"dec_mul(input.amount, 0.029)\" }\n",
    ));
    assert!(
        e.contains("field `fields.fee`: a double (floating-point) number"),
        "{e}"
    );
    assert!(e.contains("money must stay exact"), "{e}");
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { fee = \"double(input.amount) * 2\" }\n",
    ));
    assert!(
        e.contains("`double()` converts to a floating-point number"),
        "{e}"
    );
}

#[test]
fn load_error_expression_syntax() {
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"input.id +\" }\n",
    ));
    assert!(
        e.contains("field `fields.a`: not a valid expression"),
        "{e}"
    );
}

#[test]
fn load_error_write_body_names_an_unknown_step() {
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"payment\"\nfields = { a = \"1\" }\n[[steps]]\nkind = \"write\"\nname = \"w\"\ntarget = \"netsuite.upsert\"\nrecord_type = \"customerPayment\"\nexternal_id = \"'k'\"\nbody = \"paymnet\"\n",
    ));
    assert!(e.contains("step `w`: field `body`: no earlier step named `paymnet`; expected one of: payment; did you mean `payment`?"), "{e}");
}

#[test]
fn load_error_bad_write_target_and_missing_field() {
    let errs = load_err(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"1\" }\n[[steps]]\nkind = \"write\"\nname = \"w\"\ntarget = \"netsuit.upsert\"\nexternal_id = \"'k'\"\nbody = \"m\"\n",
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("unknown write target `netsuit.upsert`")
                && e.contains("did you mean `netsuite.upsert`?")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e
                .contains("step `w`: field `record_type`: missing required field `record_type`")),
        "{errs:#?}"
    );
}

#[test]
fn load_error_duplicate_step_names() {
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"1\" }\n[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"1\" }\n",
    ));
    assert!(
        e.contains("step `m`: field `name`: step name `m` is used twice"),
        "{e}"
    );
}

#[test]
fn load_error_retry_class_and_duration() {
    let errs = load_err(&format!(
        "{BASE}[retry.dependncy]\nmax_attempts = 3\n[retry.transient]\nbase_delay = \"soon\"\n[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = {{ a = \"1\" }}\n"
    ));
    assert!(
        errs.iter().any(
            |e| e.contains("field `retry.dependncy`: unknown error class `dependncy`")
                && e.contains("did you mean `dependency`?")
        ),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains(
            "field `retry.transient.base_delay`: not a duration; expected a string like \"500ms\""
        )),
        "{errs:#?}"
    );
}

#[test]
fn load_error_validation_format_and_table_rows() {
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"1\" }\n[[steps]]\nkind = \"validate\"\nname = \"v\"\nrecord = \"m\"\nfields = [{ path = \"a\", format = \"emial\" }]\n",
    ));
    assert!(
        e.contains("unknown format `emial`") && e.ends_with("did you mean `email`?"),
        "{e}"
    );
    let e = one_error(&format!(
        "{BASE}[tables.gl]\nargs = [\"brand\", \"location\"]\nrows = {{ \"visa\" = \"6110\" }}\n[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = {{ a = \"gl('a', 'b')\" }}\n"
    ));
    assert!(
        e.contains("row key `visa` has 1 part(s) but the table has 2 argument(s)"),
        "{e}"
    );
}

#[test]
fn load_error_trigger_and_template() {
    let e = one_error(
        "name = \"t\"\n[trigger]\nfilter = \"true\"\n[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"1\" }\n",
    );
    assert!(
        e.contains("the trigger has neither events nor a schedule"),
        "{e}"
    );
    let e = one_error(&with_steps(
        "[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = { template = \"{{ input.x \" } }\n",
    ));
    assert!(
        e.contains("field `fields.a.template`: template does not parse"),
        "{e}"
    );
}

#[test]
fn load_dir_reports_every_file_and_duplicate_flow_names() {
    let dir = std::env::temp_dir().join(format!("hs-flows-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let good = with_steps("[[steps]]\nkind = \"map\"\nname = \"m\"\nfields = { a = \"1\" }\n");
    std::fs::write(dir.join("a.toml"), &good).expect("write");
    std::fs::write(dir.join("b.toml"), &good).expect("write");
    std::fs::write(dir.join("c.toml"), "name = ").expect("write");
    let errs: Vec<String> = FlowSet::load_dir(&dir)
        .expect_err("bad dir")
        .iter()
        .map(|e| e.to_string())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(
        errs[0].contains("b.toml:1:1: field `name`: flow name `t` is also used by"),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains("c.toml:1:") && errs[1].contains("not valid TOML"),
        "{errs:#?}"
    );
}

// ------------------------------------------------------------------ properties

mod props {
    use heartsuite_flows::expr::{Bindings, CelJson, RateTable, Runtime};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Every ISO 4217 currency iso_currency knows, found by trying every three-letter code
    /// (its iterator needs an extra feature and proc-macro dependency we do not want to build).
    static ALL_CURRENCIES: std::sync::LazyLock<Vec<iso_currency::Currency>> =
        std::sync::LazyLock::new(|| {
            let mut out = Vec::new();
            for a in b'A'..=b'Z' {
                for b in b'A'..=b'Z' {
                    for c in b'A'..=b'Z' {
                        let code = String::from_utf8(vec![a, b, c]).unwrap_or_default();
                        if let Some(cur) = iso_currency::Currency::from_code(&code) {
                            out.push(cur);
                        }
                    }
                }
            }
            out
        });

    #[test]
    fn every_exponent_is_covered() {
        let exps: std::collections::BTreeSet<u16> = ALL_CURRENCIES
            .iter()
            .map(|c| c.exponent().unwrap_or(0))
            .collect();
        assert!(ALL_CURRENCIES.len() > 150);
        assert_eq!(exps.into_iter().collect::<Vec<_>>(), vec![0, 2, 3, 4]);
    }

    fn runtime() -> Runtime {
        Runtime::new(Vec::new(), RateTable::new()).expect("runtime")
    }

    proptest! {
        /// minor → decimal → minor is exact for every ISO 4217 currency and exponent, through
        /// the CEL functions a consultant writes.
        #[test]
        fn money_round_trips_exactly_through_cel(minor in -9_000_000_000_000_000i64..9_000_000_000_000_000i64, idx in 0usize..400) {
            let all = &*ALL_CURRENCIES;
            let c = all[idx % all.len()];
            let rt = runtime();
            let e = rt.compile("decimal_to_minor(minor_to_decimal(input.m, input.c), input.c)", &["input"]).map_err(|_| TestCaseError::fail("compile"))?;
            let d = rt.compile("minor_to_decimal(input.m, input.c)", &["input"]).map_err(|_| TestCaseError::fail("compile"))?;
            let input = json!({"m": minor.to_string(), "c": c.code()});
            let cj = CelJson::new(&input);
            let b = Bindings::new().with("input", &cj);
            prop_assert_eq!(rt.eval(&e, &b), Ok(json!(minor)));
            let text = rt.eval(&d, &b).map_err(TestCaseError::fail)?;
            let places = c.exponent().unwrap_or(0) as usize;
            let s = text.as_str().unwrap_or_default();
            prop_assert_eq!(s.split('.').nth(1).map(str::len).unwrap_or(0), places);
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<u64>().prop_map(|u| json!(u)),
            "-?[0-9]{1,30}\\.[0-9]{1,30}"
                .prop_map(|s| serde_json::from_str(&s).unwrap_or(Value::Null)),
            ".{0,20}".prop_map(Value::String),
            "[ a-zA-Z0-9@.,$()+-]{0,24}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(
                    "[a-z]{1,3}|amount|currency|email|phone|date|name|items",
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const EXPRS: &[&str] = &[
        "minor_to_decimal(input.amount, input.currency)",
        "decimal_to_minor(input.amount, input.currency)",
        "dec_add(input.a, input.amount, '1')",
        "dec_div(input.amount, input.a, 2)",
        "dec_round(input.amount, input.a, input.name)",
        "dec_sum(input.items)",
        "dec_cmp(input.a, input.amount) == 0",
        "amount(input.amount)",
        "convert_currency(input.amount, input.currency, 'USD')",
        "parse_date(input.date)",
        "format_date(input.date, input.name)",
        "local_date(input.date, input.name)",
        "format_datetime(input.date, 'UTC', input.name)",
        "to_int(input.a)",
        "to_bool(input.a)",
        "concat(input.name, input.a, input.items)",
        "join_nonempty(input.a, input.items)",
        "upper(input.name) + lower(input.name) + title_case(input.name)",
        "split_name(input.name).first",
        "parse_address(input.name)",
        "phone_e164(input.phone, input.a)",
        "email_norm(input.email)",
        "country_code(input.name)",
        "us_state_code(input.name)",
        "coalesce(input.a, input.b, input.items)",
        "get(input, input.name, input.a)",
        "input.items.map(x, dec(x))",
        "size(input.items) > 0 && input.items[0].amount == input.amount",
        "input.name.split(',')",
        "int(input.a) / int(input.b)",
        "input.a + input.b",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// No input makes an expression panic: every call returns a value or an error.
        #[test]
        fn expressions_never_panic_on_arbitrary_json(input in arb_json(), extra in arb_json()) {
            let rt = runtime();
            let mut doc = match input { Value::Object(m) => Value::Object(m), other => json!({"a": other}) };
            if let Some(o) = doc.as_object_mut() {
                o.insert("b".into(), extra);
            }
            let cj = CelJson::new(&doc);
            let b = Bindings::new().with("input", &cj);
            for src in EXPRS {
                let e = rt.compile(src, &["input"]).map_err(|i| TestCaseError::fail(format!("{src}: {:?}", i[0].message)))?;
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.eval(&e, &b)));
                prop_assert!(out.is_ok(), "{} panicked on {}", src, doc);
                if let Ok(Err(m)) = out {
                    prop_assert!(!m.contains("internal error"), "{} hit an interpreter panic on {}: {}", src, doc, m);
                }
            }
        }
    }
}

// Mapping cost is measured, not asserted: `heartsuite bench mapping` (docs/benchmarks.md).

#[test]
fn functions_behave_as_the_guide_says() {
    use heartsuite_flows::expr::eval_standalone;
    let input = json!({"time_created": "2026-03-14T22:41:07.512Z", "memo": ""});
    for (src, want) in [
        ("minor_to_decimal('12999', 'USD')", json!("129.99")),
        ("minor_to_decimal('5000', 'JPY')", json!("5000")),
        ("minor_to_decimal('1234', 'BHD')", json!("1.234")),
        ("decimal_to_minor('19.99', 'USD')", json!(1999)),
        ("currency_places('JPY')", json!(0)),
        ("dec(42)", json!("42")),
        ("dec_add('0.1', '0.2')", json!("0.3")),
        ("dec_sub('10.00', '2.5')", json!("7.50")),
        ("dec_mul('19.99', '3')", json!("59.97")),
        ("dec_div('10', '3', 2)", json!("3.33")),
        ("dec_round('2.345', 2)", json!("2.35")),
        ("dec_round('2.345', 2, 'half_even')", json!("2.34")),
        ("dec_abs('-5.10')", json!("5.10")),
        ("dec_sum(['1.10', '2.20'])", json!("3.30")),
        ("dec_cmp('1.0', '1')", json!(0)),
        ("amount('$1,234.50')", json!("1234.50")),
        ("parse_date('03/14/2026')", json!("2026-03-14")),
        ("format_date('2026-03-14', '%m/%d/%Y')", json!("03/14/2026")),
        (
            "local_date('2026-03-15T03:00:00Z', 'America/Chicago')",
            json!("2026-03-14"),
        ),
        (
            "format_datetime(input.time_created, 'America/New_York', '%Y-%m-%d %H:%M')",
            json!("2026-03-14 18:41"),
        ),
        ("to_int('1,204')", json!(1204)),
        ("to_bool('Y')", json!(true)),
        ("concat('hs-pay-', 'TRN_1')", json!("hs-pay-TRN_1")),
        (
            "join_nonempty(' ', 'Jane', null, 'Smith')",
            json!("Jane Smith"),
        ),
        ("split_name('Smith, Jane').first", json!("Jane")),
        ("last_name('Mary Ann Jones')", json!("Jones")),
        ("title_case('dANA whitfield')", json!("Dana Whitfield")),
        ("collapse_spaces('  a   b ')", json!("a b")),
        ("phone_e164('(512) 555-0100')", json!("+15125550100")),
        ("email_norm(' Ann@Example.COM ')", json!("ann@example.com")),
        ("country_code('United States')", json!("US")),
        ("us_state_code('Texas')", json!("TX")),
        ("coalesce(get(input, 'memo'), 'none')", json!("none")),
        ("get(input, 'address.state', 'TX')", json!("TX")),
        ("'a,b'.split(',')", json!(["a", "b"])),
    ] {
        assert_eq!(eval_standalone(src, &input), Ok(want), "{src}");
    }
}
