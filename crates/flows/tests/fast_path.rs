//! The direct evaluator (plain paths, literals, our functions and tables on them, `has`, `&&`,
//! `? :`...) must give exactly what the CEL interpreter gives: the same JSON on success and the
//! same error text on failure. These tests evaluate each expression both ways.

use heartsuite_flows::expr::{Bindings, CelJson, RateTable, Runtime, StepValues, ValueTable};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;

fn runtime() -> Runtime {
    let table = ValueTable {
        name: "method".into(),
        args: vec!["brand".into()],
        rows: HashMap::from([
            ("visa".to_string(), json!("5")),
            ("mastercard".to_string(), json!(4)),
            ("amex".to_string(), json!({"id": "6", "x": [1, "2"]})),
        ]),
        default: None,
    };
    let rates: RateTable = HashMap::from([(
        ("EUR".into(), "USD".into()),
        "1.0842".parse().expect("rate"),
    )]);
    Runtime::new(vec![table], rates).expect("runtime")
}

const VARS: &[&str] = &["input", "steps", "record"];

/// Evaluates `src` both ways against the same bindings and returns (direct?, result) after
/// asserting the two agree.
fn both(
    rt: &Runtime,
    src: &str,
    b: &Bindings<'_>,
) -> Result<(bool, Result<Value, String>), TestCaseError> {
    let e = rt
        .compile(src, VARS)
        .map_err(|i| TestCaseError::fail(format!("{src}: {}", i[0].message)))?;
    let fast = rt.eval(&e, b);
    let slow = rt.eval_interpreted(&e, b);
    prop_assert_eq!(&fast, &slow, "`{}` differs", src);
    Ok((e.is_direct(), fast))
}

/// The built-in payment flow's expressions (and the shapes of the others) take the direct path.
#[test]
fn mapping_expressions_of_the_builtin_flows_are_direct() {
    let rt = runtime();
    let direct = [
        "concat('hs-cust-', string(input.customer.id))",
        "concat('hs-pay-', input.id)",
        "steps.customer",
        "minor_to_decimal(input.amount, input.currency)",
        "method(input.payment_method.card.brand)",
        "local_date(input.time_created, 'America/Chicago')",
        "true",
        "has(input.order) && has(input.order.invoice_internal_id) ? [{'doc': {'id': input.order.invoice_internal_id}, 'apply': true}] : null",
        "dec_gt(record.payment, '0')",
        "steps.payment.externalId",
        "input.type == 'SALE' && input.status == 'CAPTURED' && !(has(input.reference) && input.reference != 'x')",
        "convert_currency(input.amount, 'EUR', 'USD')",
    ];
    // Macros, member calls, arithmetic and indexing stay with the interpreter.
    let interpreted = [
        "input.items.map(x, x.id)",
        "input.name.trim()",
        "size(input.items)",
        "input.items[0]",
        "input.a + input.b",
        "int(input.a)",
    ];
    let cases = direct.iter().map(|s| (s, true));
    for (src, want) in cases.chain(interpreted.iter().map(|s| (s, false))) {
        let e = rt
            .compile(src, VARS)
            .unwrap_or_else(|i| panic!("{src}: {}", i[0].message));
        assert_eq!(
            e.is_direct(),
            want,
            "`{src}`: direct evaluation expected: {want}"
        );
    }
}

#[test]
fn direct_results_and_errors_match_the_interpreter_on_a_payment() {
    let rt = runtime();
    let input = heartsuite_flows::sample_captured_payment();
    let cj = CelJson::new(&input);
    let mut steps = StepValues::default();
    steps.set("customer", &json!("4417"));
    // Parsed from text so `2.50` and `-0` keep their exact spelling (as an event's JSON does).
    let payment: Value = serde_json::from_str(
        r#"{"externalId": "hs-pay-1", "payment": 129.99, "n": -0, "big": 18446744073709551615, "list": [{"b": 1, "a": 2.50}]}"#,
    )
    .expect("json");
    steps.set("payment", &payment);
    let record = json!({"payment": "129.99", "z": {"y": 1, "x": null}});
    let rj = CelJson::new(&record);
    let b = Bindings::new()
        .with("input", &cj)
        .with_steps(&steps)
        .with("record", &rj);
    let ok = |src: &str, want: Value| {
        let (direct, got) = both(&rt, src, &b).unwrap_or_else(|e| panic!("{e}"));
        assert!(direct, "`{src}` is direct");
        assert_eq!(got, Ok(want), "`{src}`");
    };
    ok(
        "concat('hs-cust-', string(input.customer.id))",
        json!("hs-cust-CUS_81922"),
    );
    ok(
        "minor_to_decimal(input.amount, input.currency)",
        json!("129.99"),
    );
    ok("method(input.payment_method.card.brand)", json!("5"));
    ok("method('AMEX')", json!({"id": "6", "x": [1, "2"]}));
    ok(
        "local_date(input.time_created, 'America/Chicago')",
        json!("2026-03-14"),
    );
    ok(
        "has(input.order) && has(input.order.invoice_internal_id) ? [{'doc': {'id': input.order.invoice_internal_id}, 'apply': true}] : null",
        json!([{"apply": true, "doc": {"id": "8812"}}]),
    );
    ok("has(input.nope) ? 1 : 2", json!(2));
    ok("dec_gt(record.payment, '0')", json!(true));
    ok("steps.payment.externalId", json!("hs-pay-1"));
    // Whole objects come out as CEL gives them: keys sorted, fractions as exact decimal text,
    // integers re-made.
    ok(
        "steps.payment",
        json!({"big": 18446744073709551615u64, "externalId": "hs-pay-1", "list": [{"a": "2.50", "b": 1}], "n": 0, "payment": "129.99"}),
    );
    ok("record.z", json!({"x": null, "y": 1}));
    ok("string(steps.payment.big)", json!("18446744073709551615"));
    ok("string(true) == 'true' && 1 != 2 && !false", json!(true));
    ok("null == null || 'a' == 'b'", json!(true));
    ok("convert_currency('19.99', 'EUR', 'USD')", json!("21.67"));

    // Failures are the interpreter's, word for word (the direct evaluator gives up on them).
    for src in [
        "input.nope",
        "input.customer.id.deeper",
        "steps.nope",
        "minor_to_decimal(input.amount, 'ZZZ')",
        "method('diners')",
        "string(input.order)",
        "has(input.id.x)",
        "input.type && true",
        "{'a': 1, 'a': 2}",
        "local_date(input.id, 'UTC')",
    ] {
        let (_, got) = both(&rt, src, &b).unwrap_or_else(|e| panic!("{e}"));
        assert!(got.is_err(), "`{src}` should fail, got {got:?}");
    }
    // Mixed types are CEL's to compare (it says false, not an error); both ways agree.
    let (_, got) = both(&rt, "input.amount == 12999", &b).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, Ok(json!(false)));
}

/// An object that has most of the keys the expressions ask for, so that paths mostly resolve.
fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(KEY, arb_json(), 3..7)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        (0i64..100000).prop_map(|i| json!(i.to_string())),
        "-?[0-9]{1,12}\\.[0-9]{1,8}".prop_map(|s| serde_json::from_str(&s).unwrap_or(Value::Null)),
        "-?[0-9]{1,6}(\\.[0-9]{1,3})?".prop_map(Value::String),
        prop_oneof![
            Just("visa"),
            Just("AMEX"),
            Just("USD"),
            Just("JPY"),
            Just("2026-03-14T22:41:07Z"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.into())),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 30, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(KEY, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const KEY: &str = "a|b|c|id|amount|currency";

/// Random expressions over the same keys the random inputs use, so paths sometimes exist and
/// sometimes do not.
fn arb_expr() -> impl Strategy<Value = String> {
    let path = (
        prop_oneof![Just("input"), Just("record"), Just("steps.s")],
        prop::collection::vec(KEY, 0..2),
    )
        .prop_map(|(root, segs)| {
            std::iter::once(root.to_string())
                .chain(segs)
                .collect::<Vec<_>>()
                .join(".")
        });
    let leaf = prop_oneof![
        4 => path.clone(),
        1 => "[a-z]{0,4}".prop_map(|s| format!("'{s}'")),
        1 => (-5i64..5).prop_map(|i| i.to_string()),
        1 => Just("5u".to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("null".to_string()),
        1 => (prop_oneof![Just("input"), Just("record")], KEY).prop_map(|(r, k)| format!("has({r}.{k})")),
    ];
    let has = (prop_oneof![Just("input"), Just("record")], KEY)
        .prop_map(|(r, k)| format!("has({r}.{k})"));
    leaf.prop_recursive(3, 24, 3, move |e| {
        // Weighted towards what succeeds on most inputs, so that most cases compare two values
        // rather than two errors; the rest still cover the error paths.
        prop_oneof![
            3 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("concat({a}, {b})")),
            2 => e.clone().prop_map(|a| format!("string({a})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            2 => (has.clone(), has.clone()).prop_map(|(a, b)| format!("({a} && !{b} || {b})")),
            1 => e.clone().prop_map(|a| format!("!({a})")),
            2 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("({a} == {b})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("({a} != {b})")),
            1 => (e.clone(), e.clone(), e.clone()).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            3 => (has.clone(), e.clone(), e.clone()).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            3 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            3 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("{{'k': {a}, 'j': {b}}}")),
            1 => e.clone().prop_map(|a| format!("method({a})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("minor_to_decimal({a}, {b})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("dec_add({a}, {b})")),
            2 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("coalesce({a}, {b})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("get({a}, 'a', {b})")),
            1 => e.clone().prop_map(|a| format!("upper({a})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("local_date({a}, {b})")),
            1 => (e.clone(), e.clone()).prop_map(|(a, b)| format!("dec_le({a}, {b})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Over random inputs, steps and records, and random expressions built from the shapes the
    /// direct evaluator handles, it returns exactly the interpreter's value or error.
    #[test]
    fn direct_evaluation_equals_the_interpreter(
        input in arb_object(),
        step in prop_oneof![arb_object(), arb_json()],
        record in arb_object(),
        exprs in prop::collection::vec(arb_expr(), 1..8),
    ) {
        let rt = runtime();
        let cj = CelJson::new(&input);
        let rj = CelJson::new(&record);
        let mut steps = StepValues::default();
        steps.set("s", &step);
        let b = Bindings::new().with("input", &cj).with_steps(&steps).with("record", &rj);
        for src in &exprs {
            // `steps.s` alone is a value; a bare `steps` never appears in generated text.
            let _ = both(&rt, src, &b)?;
        }
    }
}
